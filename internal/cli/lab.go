package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit/internal/lab"
)

const labAbout = `
Measures the session strategies side by side on this machine: for each one,
sessionkit's balancer in front of --nodes reference-app nodes sharing that
strategy, all in this process on loopback ports; --users virtual users log
in, add to their carts (sometimes several items at once), read them back and
log out, for --duration each. One node is killed abruptly at about 40% of
each run and brought back at about 70%; with --faults store (or node,store)
the connections to the shared store are cut from about 45% to 60%.

Prints a table: requests/s, latency percentiles, errors, sessions lost (a
logged-in user suddenly without a session), updates lost (an acknowledged
cart item later missing), session bytes on the wire per request and store
calls per request. Every count comes from what the virtual users saw.
Strategies whose service does not answer are reported as skipped.

With no flags it needs no service and finishes within a minute.
`

type labConfig struct {
	strategies string
	nodes      int
	users      int
	duration   time.Duration
	faults     string
	seed       int
	json       bool
	report     string
	redisURL   string
	pgURL      string
}

func parseLab(s *sys, args []string) (cfg lab.Config, lc labConfig, code int, ok bool) {
	f := newFlagSet("lab")
	f.String(&lc.strategies, "strategies", strings.Join(lab.Strategies, ","),
		"comma-separated `names` of the strategies to measure, in order")
	f.Int(&lc.nodes, "nodes", lab.DefaultNodes, "reference-app `count` behind the balancer (2 to 16)")
	f.Int(&lc.users, "users", lab.DefaultUsers, "virtual users, each with its own cookie jar (`count`)")
	f.Duration(&lc.duration, "duration", lab.DefaultDuration, "how long each strategy runs (`duration`, 1s to 1h)")
	f.String(&lc.faults, "faults", lab.FaultNode, "faults to inject: `list` of node, store (comma-separated), or none")
	f.Int(&lc.seed, "seed", lab.DefaultSeed, "`seed` of the virtual users' choices")
	f.Bool(&lc.json, "json", false, "print the report as JSON on stdout instead of the table")
	f.String(&lc.report, "report", "", "also write the report as a self-contained HTML `file` with charts")
	f.String(&lc.redisURL, "redis", lab.DefaultRedisURL, "Redis `url` of the redis strategy")
	f.String(&lc.pgURL, "postgres", lab.DefaultPostgresURL, "PostgreSQL `url` of the postgres strategy")
	if code, ok := f.parse(s, args, labAbout); !ok {
		return cfg, lc, code, false
	}
	cfg = lab.Config{
		Nodes:       lc.nodes,
		Users:       lc.users,
		Duration:    lc.duration,
		RedisURL:    lc.redisURL,
		PostgresURL: lc.pgURL,
	}
	for _, name := range strings.Split(lc.strategies, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.Strategies = append(cfg.Strategies, name)
		}
	}
	for _, name := range strings.Split(lc.faults, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.Faults = append(cfg.Faults, name)
		}
	}
	if lc.seed < 1 {
		return cfg, lc, f.invalid(s, "seed", fmt.Sprint(lc.seed), "want a positive integer"), false
	}
	cfg.Seed = uint64(lc.seed)
	if err := lab.Check(cfg); err != nil {
		return cfg, lc, f.errf(s, "%v", strings.TrimPrefix(err.Error(), "lab: ")), false
	}
	return cfg, lc, exitOK, true
}

func runLab(ctx context.Context, s *sys, args []string) int {
	cfg, lc, code, ok := parseLab(s, args)
	if !ok {
		return code
	}
	if !lc.json {
		cfg.Progress = s.stderr
		cfg.ProgressLines = !isTerminal(s.stderr)
	}
	rep, err := lab.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(s.stderr, "sessionkit lab: %v\n", err)
		return exitError
	}
	if lc.json {
		err = rep.WriteJSON(s.stdout)
	} else {
		err = rep.WriteTable(s.stdout)
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "sessionkit lab: %v\n", err)
		return exitError
	}
	if lc.report != "" {
		if err := writeReport(lc.report, rep); err != nil {
			fmt.Fprintf(s.stderr, "sessionkit lab: %v\n", err)
			return exitError
		}
		fmt.Fprintf(s.stderr, "sessionkit lab: report written to %s\n", lc.report)
	}
	return exitOK
}

func writeReport(path string, rep *lab.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isTerminal reports whether w is (a lockedWriter around) a terminal.
func isTerminal(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
