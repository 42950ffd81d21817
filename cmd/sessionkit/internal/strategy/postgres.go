package strategy

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/sessionkit/sessionkit/store/pgstore"
)

// DefaultPostgresURL is the default of --postgres: the local PostgreSQL,
// user postgres, no TLS.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// postgresStrategy is a centralized store: every node keeps its sessions
// in one PostgreSQL table, behind a circuit breaker.
var postgresStrategy = Strategy{
	Name:    "postgres",
	What:    "centralized: pgstore on one PostgreSQL, behind a circuit breaker",
	Shared:  true,
	Breaker: true,
	Flags:   []*Flag{postgresFlag, nearCacheFlag},
	open: func(ctx context.Context, n *Node) (*Sessions, error) {
		// serve owns its table: it creates it if missing.
		return openPostgres(ctx, n, pgstore.Config{}, true)
	},
	testbed: postgresTestbed,
	plan:    postgresPlan,
}

var postgresFlag = &Flag{Name: "postgres", When: "--strategy postgres",
	define: func(fs FlagSet, name string, s *Settings) {
		fs.String(&s.PostgresURL, name, DefaultPostgresURL,
			"PostgreSQL `url` for --strategy postgres; the session table is created if missing")
	}}

// openPostgres opens node n's store on its PostgreSQL, in cfg.Table,
// behind a circuit breaker; migrate creates the table first if it is
// missing.
func openPostgres(ctx context.Context, n *Node, cfg pgstore.Config, migrate bool) (*Sessions, error) {
	cfg.Logger = n.logger()
	cfg.Notify = n.Settings.NearCache // the near cache follows the table's notifications
	if n.Timeout > 0 {
		cfg.Timeout = n.Timeout
	}
	open := pgstore.Open
	if migrate {
		open = pgstore.OpenMigrated
	}
	st, err := open(ctx, n.Settings.PostgresURL, cfg)
	if err != nil {
		return nil, err
	}
	return storedNear(n, st, true, nil)
}

// postgresTestbed runs the nodes on one PostgreSQL, reached through
// c.Proxy (the lab cuts the connections there), in a table of their own.
func postgresTestbed(ctx context.Context, c *TestbedConfig) (*Testbed, error) {
	pgURL := c.Settings.PostgresURL
	u, err := url.Parse(pgURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: PostgreSQL URL %q is not a URL with a host", ErrSkip, pgURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	if err := reachable(ctx, addr); err != nil {
		return nil, err
	}
	// One table for every run; expired rows are removed by pgstore's
	// cleanup, so it stays small.
	const table = "sessionkit_lab_sessions"
	probe, err := pgstore.OpenMigrated(ctx, pgURL, pgstore.Config{Table: table, CleanupInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("%w: PostgreSQL at %s: %v", ErrSkip, addr, err)
	}
	probe.Close()
	if u.Host, err = c.dialAddr(addr); err != nil {
		return nil, err
	}
	settings := c.Settings
	settings.PostgresURL = u.String()
	return &Testbed{open: func(ctx context.Context, _ int, n *Node) (*Sessions, error) {
		n.Settings = settings
		return openPostgres(ctx, n, pgstore.Config{Table: table}, false)
	}}, nil
}
