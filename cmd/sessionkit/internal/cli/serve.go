package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/sessionmetrics"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/natsstore"
	"github.com/sessionkit/sessionkit/store/olricstore"
	"github.com/sessionkit/sessionkit/store/pgstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
	"github.com/sessionkit/sessionkit/token"
)

// Strategies of DESIGN.md, and those this build can serve.
var (
	strategies      = []string{"memory", "token", "redis", "postgres", "olric", "nats"}
	builtStrategies = []string{"memory", "token", "redis", "postgres", "olric", "nats"}
)

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// The serve command's HTTP server limits.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 10 * time.Second
)

const serveAbout = `
Runs one node of the reference app until SIGINT or SIGTERM, then shuts down
gracefully (up to 10s for requests in flight). The app is a JSON API:

  POST /login {"user":"alice"}   POST /cart {"item":"x"}   GET /cart
  GET /whoami   POST /logout   POST /logout-all   GET /healthz

A flag on the command line that the chosen strategy does not use (such as
--cluster-addr without --strategy nats or olric) is refused; the same
setting from an environment variable is ignored.

Every response carries the header X-Node. When listening, one line on stderr
gives the real address: "sessionkit serve: node n1 (strategy memory)
listening on http://127.0.0.1:8080".

GET /metrics, on the same address, serves Prometheus metrics: session
events, store calls by operation and result, store latency, the circuit
breaker's state (redis, postgres, olric, nats) or the in-memory store's
size and evictions (memory), and Go and process metrics. It is not authenticated:
keep it from the public internet (see docs/operations.md).

--strategy token keeps each session in its cookie, sealed (or signed, with
--token-format jwt) with the key ring of --keys; run every node with the
same file and, to share logouts, --revocations redis. A logout on one node
is honoured by the others within --revocation-refresh (2s by default) plus
one Redis call. With --token-format jwt, GET /.well-known/jwks.json serves
the ring's public keys. The key-ring file is re-read every --keys-reload (5s
by default) and on SIGHUP: a ring rotated with 'sessionkit keys rotate' is
used without a restart (its new key verifies tokens at once and signs new
ones from its activation time, --activate-in of keys rotate; tokens of its
older keys are still accepted), and a file that cannot be used is logged and
ignored.`

// serveConfig is the serve command's configuration, from its flags.
type serveConfig struct {
	strategy       string
	node           string
	addr           string
	idleTimeout    time.Duration
	lifetime       time.Duration
	maxSessions    int
	insecureCookie bool
	logLevel       string
	redisURL       string
	postgresURL    string
	natsURL        string
	olricAddrs     string
	olricAddr      string
	clusterAddr    string
	peers          string
	dataDir        string
	failOpen       bool
	keys           string
	keysReload     time.Duration
	tokenFormat    string
	revocations    string
	revRefresh     time.Duration
}

// defaultKeysReload is how often serve re-reads its key-ring file: the
// default leeway of token checks, so that a node still signing with a key
// another node has just seen retired issues tokens that node accepts
// (a retired key verifies tokens issued up to its retirement plus the
// leeway).
const defaultKeysReload = token.DefaultLeeway

// Default addresses of the shared stores: the local servers.
const (
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
	defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	defaultNATSURL     = "nats://127.0.0.1:4222"
	defaultOlricAddrs  = "127.0.0.1:3320"
)

// checkFlagUse refuses a flag given on the command line that cfg's
// strategy does not use: without --strategy nats, --cluster-addr would
// otherwise start a lone in-memory node without a word. The same flags set
// by environment variables are ignored, since one environment often serves
// nodes of several strategies.
func checkFlagUse(s *sys, f *flagSet, cfg serveConfig) (code int, ok bool) {
	st, embedded := cfg.strategy, cfg.clusterAddr != ""
	uses := []struct {
		flag string
		used bool
		when string
	}{
		{"max-sessions", st == "memory", "--strategy memory"},
		{"fail-open", st != "memory" && st != "token", "--strategy redis, postgres, olric or nats"},
		{"redis", st == "redis" || st == "token" && cfg.revocations == "redis",
			"--strategy redis, or --strategy token with --revocations redis"},
		{"postgres", st == "postgres", "--strategy postgres"},
		{"nats", st == "nats" && !embedded, "--strategy nats without --cluster-addr"},
		{"olric", st == "olric" && !embedded, "--strategy olric without --cluster-addr"},
		{"cluster-addr", st == "nats" || st == "olric", "--strategy nats or olric"},
		{"peers", (st == "nats" || st == "olric") && embedded, "--strategy nats or olric and --cluster-addr"},
		{"olric-addr", st == "olric" && embedded, "--strategy olric and --cluster-addr"},
		{"data-dir", st == "nats" && embedded, "--strategy nats and --cluster-addr"},
		{"keys", st == "token", "--strategy token"},
		{"keys-reload", st == "token", "--strategy token"},
		{"token-format", st == "token", "--strategy token"},
		{"revocations", st == "token", "--strategy token"},
		{"revocation-refresh", st == "token", "--strategy token"},
	}
	for _, u := range uses {
		if f.fromCLI[u.flag] && !u.used {
			here := "--strategy " + st
			switch {
			case embedded && (st == "nats" || st == "olric"):
				here += " with --cluster-addr"
			case st == "token":
				here += " with --revocations " + cfg.revocations
			}
			return f.errf(s, "--%s is used only with %s (here: %s; see 'sessionkit serve --help')", u.flag, u.when, here), false
		}
	}
	return exitOK, true
}

// parseServe parses serve's flags and environment. ok = false means stop
// with the returned exit status.
func parseServe(s *sys, args []string) (cfg serveConfig, code int, ok bool) {
	f := newFlagSet("serve")
	f.String(&cfg.strategy, "strategy", "memory",
		"`name` of the session strategy: "+strings.Join(strategies, ", ")+"\n        (this build serves: "+strings.Join(builtStrategies, ", ")+")")
	f.String(&cfg.node, "node", "n1",
		"node `name`, sent as X-Node and used as the route tag of new session IDs\n        (ASCII letters, digits, '-' and '_'; at most 64)")
	f.String(&cfg.addr, "addr", "127.0.0.1:8080", "`host:port` to listen on; port 0 picks a free port")
	f.Duration(&cfg.idleTimeout, "idle-timeout", session.DefaultIdleTimeout,
		"end a session after this `duration` without a request")
	f.Duration(&cfg.lifetime, "lifetime", session.DefaultLifetime,
		"end a session this `duration` after it was created, whatever its activity")
	f.Int(&cfg.maxSessions, "max-sessions", memstore.DefaultMaxEntries,
		"bound the sessions held in memory to `count` (0: no bound); beyond it\n        the session closest to its end is evicted, and counted")
	f.Bool(&cfg.insecureCookie, "insecure-cookie", false,
		"drop the cookie's Secure attribute: only for plain http to hosts other than\n        localhost and 127.0.0.1 (where clients send Secure cookies anyway),\n        or for Go's cookiejar")
	f.String(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	f.String(&cfg.redisURL, "redis", defaultRedisURL,
		"Redis `url` for --strategy redis (and --revocations redis):\n"+
			"        redis://[user:pass@]host:port[/db], rediss:// for TLS, several hosts\n"+
			"        (redis://h1:p1,h2:p2,h3:p3) for a Redis Cluster, or\n"+
			"        redis-sentinel://s1:p1,s2:p2/master for Sentinel (see package redisstore)")
	f.String(&cfg.postgresURL, "postgres", defaultPostgresURL,
		"PostgreSQL `url` for --strategy postgres; the session table is created if missing")
	f.String(&cfg.natsURL, "nats", defaultNATSURL,
		"NATS `url` for --strategy nats in client mode (an existing NATS with JetStream)")
	f.String(&cfg.olricAddrs, "olric", defaultOlricAddrs,
		"Olric member `addresses` (host:port,...) for --strategy olric in client mode\n"+
			"        (an Olric cluster run apart)")
	f.String(&cfg.clusterAddr, "cluster-addr", "",
		"with --strategy nats or olric: run an embedded NATS node or Olric member whose\n"+
			"        cluster (gossip) listener is this `host:port`, instead of connecting to\n"+
			"        --nats or --olric")
	f.String(&cfg.peers, "peers", "",
		"with --cluster-addr: the other nodes' cluster `addresses`, host:port,...")
	f.String(&cfg.olricAddr, "olric-addr", "",
		"with --strategy olric and --cluster-addr: the embedded member's Olric\n"+
			"        `host:port`, which the other members connect to (default: the\n"+
			"        --cluster-addr host with its port plus one)")
	f.String(&cfg.dataDir, "data-dir", "",
		"with --cluster-addr: the embedded node's JetStream `directory`\n"+
			"        (default: a new temporary directory, removed on exit)")
	f.Bool(&cfg.failOpen, "fail-open", false,
		"while the store is down, serve read-only requests with an empty, degraded\n"+
			"        session instead of answering 503")
	f.String(&cfg.keys, "keys", "",
		"key-ring `file` for --strategy token (create one with 'sessionkit keys new FILE');\n"+
			"        every node of one app needs the same file")
	f.Duration(&cfg.keysReload, "keys-reload", defaultKeysReload,
		"how often to re-read --keys: a changed ring (sessionkit keys rotate) is used\n"+
			"        at once, with no restart; 0: only on SIGHUP, which always re-reads it")
	f.String(&cfg.tokenFormat, "token-format", "sealed",
		"`format` of --strategy token: sealed (encrypted cookie, XC20P keys) or jwt\n"+
			"        (signed, readable by other services; EdDSA, ES256 or HS256 keys)")
	f.String(&cfg.revocations, "revocations", "memory",
		"`store` of token revocations (logout): memory (this node only) or redis\n"+
			"        (shared by every node using the same --redis)")
	f.Duration(&cfg.revRefresh, "revocation-refresh", token.DefaultRefreshInterval,
		"how often each node re-reads the revocation list: the bound on how long a\n"+
			"        logout on one node takes to reach the others")
	if code, ok := f.parse(s, args, serveAbout); !ok {
		return cfg, code, false
	}

	switch {
	case !slices.Contains(strategies, cfg.strategy):
		return cfg, f.invalid(s, "strategy", cfg.strategy, "want one of "+strings.Join(strategies, ", ")), false
	case !slices.Contains(builtStrategies, cfg.strategy):
		return cfg, f.errf(s, "strategy %q is not available in this build yet (available: %s)",
			cfg.strategy, strings.Join(builtStrategies, ", ")), false
	}
	if cfg.node == "" {
		return cfg, f.invalid(s, "node", cfg.node, "a node name is required"), false
	}
	if err := sid.CheckRoute(cfg.node); err != nil {
		return cfg, f.invalid(s, "node", cfg.node, "want at most 64 ASCII letters, digits, '-' or '_'"), false
	}
	if _, _, err := net.SplitHostPort(cfg.addr); err != nil {
		why := "want host:port, such as 127.0.0.1:8080 or :8080"
		if ae, ok := errors.AsType[*net.AddrError](err); ok {
			why = ae.Err + "; " + why
		}
		return cfg, f.invalid(s, "addr", cfg.addr, why), false
	}
	if cfg.idleTimeout <= 0 {
		return cfg, f.invalid(s, "idle-timeout", cfg.idleTimeout.String(), "must be positive"), false
	}
	if cfg.lifetime <= 0 {
		return cfg, f.invalid(s, "lifetime", cfg.lifetime.String(), "must be positive"), false
	}
	if cfg.maxSessions < 0 {
		return cfg, f.invalid(s, "max-sessions", fmt.Sprint(cfg.maxSessions), "must be 0 (no bound) or positive"), false
	}
	if code, ok := checkFlagUse(s, f, cfg); !ok {
		return cfg, code, false
	}
	if cfg.strategy == "token" {
		switch {
		case cfg.keys == "":
			return cfg, f.errf(s, "--strategy token needs --keys FILE (create one with 'sessionkit keys new FILE')"), false
		case cfg.tokenFormat != "sealed" && cfg.tokenFormat != "jwt":
			return cfg, f.invalid(s, "token-format", cfg.tokenFormat, "want sealed or jwt"), false
		case cfg.revocations != "memory" && cfg.revocations != "redis":
			return cfg, f.invalid(s, "revocations", cfg.revocations, "want memory or redis"), false
		case cfg.revRefresh <= 0:
			return cfg, f.invalid(s, "revocation-refresh", cfg.revRefresh.String(), "must be positive"), false
		case cfg.keysReload < 0:
			return cfg, f.invalid(s, "keys-reload", cfg.keysReload.String(), "must be 0 (only on SIGHUP) or positive"), false
		}
	}
	if _, ok := logLevels[cfg.logLevel]; !ok {
		return cfg, f.invalid(s, "log-level", cfg.logLevel, "want one of debug, info, warn, error"), false
	}
	return cfg, exitOK, true
}

// runServe is "sessionkit serve".
func runServe(ctx context.Context, s *sys, args []string) int {
	cfg, code, ok := parseServe(s, args)
	if !ok {
		return code
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(s.stderr, "sessionkit serve: "+format+"\n", args...)
		return exitError
	}
	logger := slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: logLevels[cfg.logLevel]}))
	if cfg.lifetime < cfg.idleTimeout {
		logger.Warn("serve: --lifetime is shorter than --idle-timeout: every session ends at its lifetime, "+
			"and the idle timeout never applies", "lifetime", cfg.lifetime, "idle_timeout", cfg.idleTimeout)
	}

	reg, sm, err := newMetrics()
	if err != nil {
		return fail("%v", err)
	}
	var (
		st         store.Store
		closeStore = func() {}
		tokens     *tokenStrategy
	)
	if cfg.strategy == "token" {
		if tokens, err = openTokens(ctx, cfg, logger); err != nil {
			return fail("%v", err)
		}
		defer tokens.Close()
	} else {
		if st, closeStore, err = openStore(ctx, cfg, logger, sm); err != nil {
			return fail("%v", err)
		}
		defer closeStore()
	}
	var codec session.TokenCodec
	if tokens != nil {
		codec = tokens.codec
	}
	m, err := session.New(session.Config{
		Store:        st,
		Tokens:       codec,
		Observer:     sm,
		FailOpen:     cfg.failOpen && tokens == nil,
		Transport:    session.Cookie{Insecure: cfg.insecureCookie},
		IdleTimeout:  cfg.idleTimeout,
		Lifetime:     cfg.lifetime,
		Route:        cfg.node,
		ErrorHandler: refapp.NewErrorHandler(logger),
		Logger:       logger,
	})
	if err != nil {
		return fail("%v", err)
	}
	app, err := refapp.New(refapp.Config{Node: cfg.node, Strategy: cfg.strategy, Manager: m, Logger: logger})
	if err != nil {
		return fail("%v", err)
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fail("%v", err)
	}
	handler := withMetrics(app, reg, cfg.node, logger)
	if tokens != nil && tokens.jwks != nil {
		handler = withJWKS(handler, tokens.jwks)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(s.stderr, "sessionkit serve: node %s (strategy %s) listening on http://%s\n",
		cfg.node, cfg.strategy, ln.Addr())
	logger.Debug("serve: configuration", "idle_timeout", cfg.idleTimeout, "lifetime", cfg.lifetime,
		"max_sessions", cfg.maxSessions, "insecure_cookie", cfg.insecureCookie)

	select {
	case err := <-served: // Serve ended by itself: the listener failed
		return fail("%v", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("serve: requests still running after the shutdown timeout were cut off",
			"timeout", shutdownTimeout, "err", err)
		srv.Close()
	}
	<-served
	closeStore()
	if tokens != nil {
		if err := tokens.Close(); err != nil {
			logger.Warn("serve: closing the revocation store", "err", err)
		}
	}
	fmt.Fprintln(s.stderr, "sessionkit serve: stopped")
	return exitOK
}

// metricsPath is where serve answers with its Prometheus metrics.
const metricsPath = "/metrics"

// newMetrics returns the serve command's registry, holding the session
// metrics (as sm) and the Go runtime and process collectors.
func newMetrics() (*prometheus.Registry, *sessionmetrics.Metrics, error) {
	reg, err := processRegistry()
	if err != nil {
		return nil, nil, err
	}
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		return nil, nil, err
	}
	return reg, sm, nil
}

// processRegistry returns a registry holding the Go runtime and process
// collectors, which every long-running command exports.
func processRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// withMetrics answers GET and HEAD of exactly metricsPath with the metrics
// of reg, and passes every other request to app. The metrics bypass the
// session middleware, so scrapes cost no store call and show in no counter.
func withMetrics(app http.Handler, reg *prometheus.Registry, node string, logger *slog.Logger) http.Handler {
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != metricsPath {
			app.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Node", node)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed; use GET", http.StatusMethodNotAllowed)
			return
		}
		metrics.ServeHTTP(w, r)
	})
}

// openStore opens the store of cfg.strategy and reports it to sm. Shared
// stores go behind a circuit breaker, so that an outage costs requests
// microseconds, not timeouts, and ends by itself.
func openStore(ctx context.Context, cfg serveConfig, logger *slog.Logger, sm *sessionmetrics.Metrics) (
	_ store.Store, closeStore func(), err error) {
	st, stop, err := openRawStore(ctx, cfg, logger, sm)
	if err != nil || cfg.strategy == "memory" {
		return st, stop, err
	}
	hook := sm.BreakerHook(cfg.strategy)
	b, err := breaker.New(breaker.Config{OnStateChange: func(from, to breaker.State) {
		hook(from, to)
		logger.Warn("serve: session store circuit "+to.String(), "from", from.String(), "strategy", cfg.strategy)
	}})
	if err != nil {
		stop()
		return nil, nil, err
	}
	return breaker.Wrap(st, b), stop, nil
}

// openRawStore opens the store of cfg.strategy; stop closes it (once) and
// whatever it runs on.
func openRawStore(ctx context.Context, cfg serveConfig, logger *slog.Logger, sm *sessionmetrics.Metrics) (
	_ store.Store, stop func(), err error) {
	var st store.Store
	closer := func(st store.Store, also func()) func() {
		var once sync.Once
		return func() {
			once.Do(func() {
				if err := st.Close(); err != nil {
					logger.Warn("serve: closing the store", "err", err)
				}
				if also != nil {
					also()
				}
			})
		}
	}
	switch cfg.strategy {
	case "memory":
		maxEntries := cfg.maxSessions
		if maxEntries == 0 {
			maxEntries = -1 // memstore: no bound
		}
		ms, err := memstore.New(memstore.Config{MaxEntries: maxEntries})
		if err != nil {
			return nil, nil, err
		}
		if err := sm.WatchMemstore(cfg.strategy, ms); err != nil {
			ms.Close()
			return nil, nil, err
		}
		return ms, closer(ms, nil), nil
	case "redis":
		var rc redisstore.Config
		if rc, err = redisstore.ParseURL(cfg.redisURL); err != nil {
			return nil, nil, err
		}
		st, err = redisstore.New(ctx, rc)
	case "postgres":
		st, err = pgstore.OpenMigrated(ctx, cfg.postgresURL, pgstore.Config{Logger: logger})
	case "olric":
		if cfg.clusterAddr != "" {
			return openEmbeddedOlric(ctx, cfg, logger, closer)
		}
		st, err = olricstore.New(ctx, olricstore.Config{Addrs: splitList(cfg.olricAddrs), Logger: logger})
	case "nats":
		if cfg.clusterAddr != "" {
			return openEmbeddedNATS(ctx, cfg, logger, closer)
		}
		st, err = natsstore.New(ctx, natsstore.Config{URL: cfg.natsURL, Logger: logger})
	default:
		return nil, nil, fmt.Errorf("strategy %q is not available in this build", cfg.strategy)
	}
	if err != nil {
		return nil, nil, err
	}
	return st, closer(st, nil), nil
}

// openEmbeddedNATS starts this process's node of an embedded NATS cluster
// and a store on it, replicated on up to 3 nodes.
func openEmbeddedNATS(ctx context.Context, cfg serveConfig, logger *slog.Logger,
	closer func(store.Store, func()) func()) (store.Store, func(), error) {
	dir, removeDir := cfg.dataDir, func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "sessionkit-nats-"+cfg.node+"-")
		if err != nil {
			return nil, nil, err
		}
		dir, removeDir = tmp, func() { os.RemoveAll(tmp) }
	}
	peers := splitList(cfg.peers)
	nc := natsstore.NodeConfig{Name: cfg.node, Dir: dir, ClusterAddr: cfg.clusterAddr, Peers: peers}
	if len(peers) == 0 {
		nc.ClusterAddr = "" // a cluster of one would wait for a quorum that never comes
	}
	node, err := natsstore.StartNode(nc)
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	st, err := natsstore.New(ctx, natsstore.Config{URL: node.ClientURL(), Replicas: min(3, 1+len(peers)), Logger: logger})
	if err != nil {
		node.Shutdown()
		removeDir()
		return nil, nil, err
	}
	return st, closer(st, func() { node.Shutdown(); removeDir() }), nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(list string) []string {
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// openEmbeddedOlric starts this process's member of an embedded Olric
// cluster (2 copies of each session once a second member has joined) and a
// store on it. Closing the store shuts the member down, which tells the
// others at once that it left.
func openEmbeddedOlric(ctx context.Context, cfg serveConfig, logger *slog.Logger,
	closer func(store.Store, func()) func()) (store.Store, func(), error) {
	addr := cfg.olricAddr
	if addr == "" {
		host, port, err := net.SplitHostPort(cfg.clusterAddr)
		if err != nil {
			return nil, nil, fmt.Errorf("--cluster-addr %q: %w", cfg.clusterAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p >= 65535 {
			return nil, nil, fmt.Errorf("--cluster-addr %q: want a port from 1 to 65534 (the Olric port is the next one)", cfg.clusterAddr)
		}
		addr = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	m, err := olricstore.StartMember(olricstore.MemberConfig{
		Addr: addr, ClusterAddr: cfg.clusterAddr, Peers: splitList(cfg.peers), Logger: logger,
	})
	if err != nil {
		return nil, nil, err
	}
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := m.Shutdown(sctx); err != nil {
			logger.Warn("serve: shutting down the Olric member", "err", err)
		}
	}
	st, err := olricstore.New(ctx, olricstore.Config{Member: m, Logger: logger})
	if err != nil {
		shutdown()
		return nil, nil, err
	}
	logger.Info("serve: Olric member started", "olric_addr", m.Name(), "cluster_addr", cfg.clusterAddr)
	return st, closer(st, shutdown), nil
}
