package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/lab"
)

const labAbout = `
Measures the session strategies side by side on this machine: for each row
(a strategy, and extra serve flags: redis+near-cache is serve --strategy
redis --near-cache), --nodes 'sessionkit serve' processes of this binary
sharing that strategy, on loopback ports, behind a balancer (--front:
sessionkit balance, or HAProxy or nginx configured as docs/balancer.md
shows); --users virtual users log in, add to their carts (sometimes several
items at once), read them back and log out, for --duration each (olric and
nats: --settle longer, so that a NATS election ends inside the run). One
node's process is killed with SIGKILL at about 40% of each run and a new
process started in its place at about 70% (--faults replace: a new member
under a new name, for olric and nats); with --faults store (or node,store)
the connections to the shared store are cut from about 45% to 60%; with
--faults evict every third user steps away at about 40% and the memcached
strategy's Memcached (a 4 MB one the lab starts) is flooded at about 45%
until it evicts: the idle users' sessions are lost, as Memcached's LRU
drops them before their idle timeout.

Prints a table: requests/s, latency percentiles, errors, users who lost a
session, sessions lost (a logged-in user suddenly without a session),
updates lost (an acknowledged cart item later missing), stale reads (a read
at another node, right after an add, that lacks it), logout lag (from a
logout acknowledged to 401 on every node: p50/p99/max), recovery after the
fault (the first success, and the throughput back to 90% of its median),
session bytes on the wire per request and store calls per request. Every
count comes from what the virtual users saw. A row whose service does not
answer, whose front is not installed or whose serve flags serve refuses is
reported as skipped, with the reason.

With no flags it needs no service and finishes in under two minutes on two
CPUs. The nodes' logs are kept in a scratch directory while each row runs;
every process the lab starts ends with it, on Ctrl-C too.
`

type labConfig struct {
	strategies string
	fronts     string
	binary     string
	settle     time.Duration
	nodes      int
	users      int
	duration   time.Duration
	faults     string
	seed       int
	json       bool
	report     string
	redisURL   string
	pgURL      string
	memcached  string
	migrate    string
}

func parseLab(s *sys, args []string) (cfg lab.Config, lc labConfig, code int, ok bool) {
	f := newFlagSet("lab")
	f.String(&lc.strategies, "strategies", strings.Join(lab.Strategies, ","),
		"comma-separated `rows` to measure, in order: a strategy's name, with +flag\n        for each extra boolean serve flag (redis+near-cache)")
	f.String(&lc.fronts, "front", lab.DefaultFront,
		"the balancer in front of the nodes, or a comma-separated `list` of them (a set\n        of rows each): sessionkit, haproxy, nginx")
	f.String(&lc.binary, "binary", "",
		"the sessionkit `executable` the nodes and the sessionkit front run (none:\n        this one)")
	f.Int(&lc.nodes, "nodes", lab.DefaultNodes, "reference-app `count` behind the balancer (2 to 16)")
	f.Int(&lc.users, "users", lab.DefaultUsers, "virtual users, each with its own cookie jar (`count`)")
	f.Duration(&lc.duration, "duration", lab.DefaultDuration, "how long each strategy runs (`duration`, 1s to 1h)")
	f.Duration(&lc.settle, "settle", lab.DefaultSettle,
		"how much longer olric and nats run when a node is killed (`duration`; 0: none)")
	f.String(&lc.faults, "faults", lab.FaultNode, "faults to inject: `list` of node, replace, store, evict\n        (comma-separated), or none")
	f.Int(&lc.seed, "seed", lab.DefaultSeed, "`seed` of the virtual users' choices")
	f.String(&lc.migrate, "migrate", "",
		"instead of the strategies' rows, switch strategy in the middle of each run:\n        a `list` of FROM:TO (memory:redis, token:redis, redis:postgres, ...), as\n        docs/migration.md says; counts the sessions and updates the switch loses")
	f.Bool(&lc.json, "json", false, "print the report as JSON on stdout instead of the table")
	f.String(&lc.report, "report", "", "also write the report as a self-contained HTML `file` with charts")
	f.String(&lc.redisURL, "redis", lab.DefaultRedisURL, "Redis `url` of the redis strategy")
	f.String(&lc.pgURL, "postgres", lab.DefaultPostgresURL, "PostgreSQL `url` of the postgres strategy")
	f.String(&lc.memcached, "memcached", lab.DefaultMemcached, "Memcached servers of the memcached strategy, `host:port,...`")
	if code, ok := f.parse(s, args, labAbout); !ok {
		return cfg, lc, code, false
	}
	if lc.binary == "" {
		self, err := os.Executable()
		if err != nil {
			return cfg, lc, f.errf(s, "cannot find this executable for the nodes (%v): give --binary", err), false
		}
		lc.binary = self
	}
	cfg = lab.Config{
		Binary:      lc.binary,
		Settle:      lc.settle,
		Nodes:       lc.nodes,
		Users:       lc.users,
		Duration:    lc.duration,
		RedisURL:    lc.redisURL,
		PostgresURL: lc.pgURL,
		Memcached:   lc.memcached,
	}
	// The library takes 0 for "the default"; on the command line a 0 is
	// a mistake, refused as --help's ranges say.
	switch {
	case lc.nodes < 2 || lc.nodes > 16:
		return cfg, lc, f.invalid(s, "nodes", fmt.Sprint(lc.nodes), "want 2 to 16"), false
	case lc.users < 1 || lc.users > 10000:
		return cfg, lc, f.invalid(s, "users", fmt.Sprint(lc.users), "want 1 to 10000"), false
	case lc.duration < time.Second || lc.duration > time.Hour:
		return cfg, lc, f.invalid(s, "duration", lc.duration.String(), "want 1s to 1h"), false
	case lc.settle < 0 || lc.settle > time.Hour:
		return cfg, lc, f.invalid(s, "settle", lc.settle.String(), "want 0 to 1h"), false
	}
	if lc.settle == 0 {
		cfg.Settle = -1 // none; the library's 0 is its default
	}
	var bad bool
	if cfg.Strategies, bad = splitNames(lc.strategies); bad {
		return cfg, lc, f.invalid(s, "strategies", lc.strategies, "want names separated by single commas"), false
	}
	if cfg.Faults, bad = splitNames(lc.faults); bad {
		return cfg, lc, f.invalid(s, "faults", lc.faults, "want some of node, replace, store, evict, or none"), false
	}
	if cfg.Fronts, bad = splitNames(lc.fronts); bad {
		return cfg, lc, f.invalid(s, "front", lc.fronts, "want some of sessionkit, haproxy, nginx"), false
	}
	if lc.migrate != "" {
		if cfg.Migrate, bad = splitNames(lc.migrate); bad {
			return cfg, lc, f.invalid(s, "migrate", lc.migrate, "want FROM:TO pairs separated by single commas"), false
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

// splitNames splits a comma-separated list, trimming spaces. bad is true
// if an element is empty ("a,,b", a trailing comma, or only spaces).
func splitNames(list string) (names []string, bad bool) {
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			return nil, true
		}
		names = append(names, name)
	}
	return names, false
}

func runLab(ctx context.Context, s *sys, args []string) int {
	cfg, lc, code, ok := parseLab(s, args)
	if !ok {
		return code
	}
	// The report is written to a new file beside --report, created before
	// the runs (which can take minutes) so that a directory that cannot
	// be written fails at once, and renamed over --report at the end, so
	// that a failed run leaves an earlier report in place.
	var report *os.File
	if lc.report != "" {
		var err error
		report, err = os.CreateTemp(filepath.Dir(lc.report), "."+filepath.Base(lc.report)+".*")
		if err != nil {
			fmt.Fprintf(s.stderr, "sessionkit lab: --report %s: %v\n", lc.report, err)
			return exitError
		}
		defer func() {
			if report != nil { // not renamed: leave nothing behind
				report.Close()
				os.Remove(report.Name())
			}
		}()
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
	if report != nil {
		err := rep.WriteHTML(report)
		if err == nil {
			err = report.Chmod(0o644) // CreateTemp's 0600 is for secrets; a report is not one
		}
		if cerr := report.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(report.Name(), lc.report)
		}
		if err != nil {
			fmt.Fprintf(s.stderr, "sessionkit lab: --report %s: %v\n", lc.report, err)
			return exitError // the deferred function removes the new file
		}
		report = nil
		fmt.Fprintf(s.stderr, "sessionkit lab: report written to %s\n", lc.report)
	}
	return exitOK
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
