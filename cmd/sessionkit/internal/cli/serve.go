package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/sessionmetrics"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/migrate"
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
  GET /sessions   DELETE /sessions/{handle}   POST /logout-others

GET /sessions lists the user's sessions ("your devices": when each was
created and last used, and the browser); DELETE /sessions/{handle} ends one
of them; POST /logout-others ends all but the caller's. On the token
strategy only the caller's own session is known (docs/account-sessions.md).
--max-user-sessions bounds how many sessions one user may hold: a login
beyond it ends the least recently used one (policy evict) or is refused with
409 (policy refuse). With --strategy memory each node counts its own.

A flag on the command line that the chosen strategy does not use (such as
--cluster-addr without --strategy nats or olric) is refused; the same
setting from an environment variable is ignored.

Every response carries the header X-Node. When listening, one line on stderr
gives the real address: "sessionkit serve: node n1 (strategy memory)
listening on http://127.0.0.1:8080".

GET /metrics, on the same address, serves Prometheus metrics: session
events, store calls by operation and result, store latency, the circuit
breaker's state (redis, postgres, memcached, olric, nats) or the in-memory store's
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
	strat          strategy.Strategy // the registry's entry named strategy
	node           string
	addr           string
	idleTimeout    time.Duration
	lifetime       time.Duration
	insecureCookie bool
	hostPrefix     bool
	logLevel       string
	failOpen       bool
	maxUser        int                 // --max-user-sessions
	limitPolicy    string              // --max-user-sessions-policy
	limit          session.LimitPolicy // limitPolicy, parsed
	clientIP       string              // --client-ip
	recordFormat   int                 // --record-format
	migrateFrom    string              // --migrate-from
	from           strategy.Strategy   // the registry's entry named migrateFrom
	settings       strategy.Settings   // the flags the strategies declare
}

// clientIPs are the values of --client-ip.
var clientIPs = map[string]session.ClientIP{
	"off": session.ClientIPOff, "network": session.ClientIPTruncated, "full": session.ClientIPFull,
}

// checkFlagUse refuses a flag given on the command line that cfg's
// strategy does not use: without --strategy nats, --cluster-addr would
// otherwise start a lone in-memory node without a word. The same flags set
// by environment variables are ignored, since one environment often serves
// nodes of several strategies.
func checkFlagUse(s *sys, f *flagSet, cfg serveConfig) (code int, ok bool) {
	for _, name := range f.order {
		if !f.fromCLI[name] {
			continue
		}
		var used bool
		when := ""
		switch fl := strategyFlag(name); {
		case name == "fail-open":
			used, when = cfg.strat.Breaker, "--strategy "+orList(breakerStrategies())
		case fl != nil:
			used, when = cfg.strat.Uses(name, &cfg.settings), fl.When
			if cfg.migrateFrom != "" && cfg.from.Uses(name, &cfg.settings) {
				used = true // the old strategy's (see --migrate-from)
			}
		default:
			continue // one of serve's own flags: every strategy uses it
		}
		if !used {
			return f.errf(s, "--%s is used only with %s (here: %s; see 'sessionkit serve --help')",
				name, when, cfg.strat.Describe(&cfg.settings)), false
		}
	}
	return exitOK, true
}

// strategyFlag returns the strategies' flag named name, or nil.
func strategyFlag(name string) *strategy.Flag {
	for _, fl := range strategy.Flags() {
		if fl.Name == name {
			return fl
		}
	}
	return nil
}

// breakerStrategies are the names of the strategies whose store is
// behind a circuit breaker: those --fail-open acts on.
func breakerStrategies() []string {
	var names []string
	for _, st := range strategy.All() {
		if st.Breaker {
			names = append(names, st.Name)
		}
	}
	return names
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// parseServe parses serve's flags and environment. ok = false means stop
// with the returned exit status.
func parseServe(s *sys, args []string) (cfg serveConfig, code int, ok bool) {
	names := strings.Join(strategy.Names(), ", ")
	f := newFlagSet("serve")
	f.String(&cfg.strategy, "strategy", "memory", "`name` of the session strategy: "+names)
	f.String(&cfg.node, "node", "n1",
		"node `name`, sent as X-Node and used as the route tag of new session IDs\n        (ASCII letters, digits, '-' and '_'; at most 64)")
	f.String(&cfg.addr, "addr", "127.0.0.1:8080", "`host:port` to listen on; port 0 picks a free port")
	f.Duration(&cfg.idleTimeout, "idle-timeout", session.DefaultIdleTimeout,
		"end a session after this `duration` without a request")
	f.Duration(&cfg.lifetime, "lifetime", session.DefaultLifetime,
		"end a session this `duration` after it was created, whatever its activity")
	f.Bool(&cfg.insecureCookie, "insecure-cookie", false,
		"drop the cookie's Secure attribute (and with it the __Host- prefix): only\n        for plain http to hosts other than localhost and 127.0.0.1 (where\n        clients send Secure cookies anyway), or for Go's cookiejar")
	f.Bool(&cfg.hostPrefix, "cookie-host-prefix", true,
		"name the Secure cookie __Host-session, which browsers accept only when\n        Secure, host-only and Path=/ (so no sibling subdomain can plant or\n        shadow it); false names it session, for a front end or proxy that reads\n        it by that name. A session cookie of an earlier version, named session,\n        is still read")
	f.String(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	f.Bool(&cfg.failOpen, "fail-open", false,
		"while the store is down, serve read-only requests with an empty, degraded\n"+
			"        session instead of answering 503")
	f.Int(&cfg.maxUser, "max-user-sessions", 0,
		"at most this `number` of live sessions per user (0: no limit; not with\n        --strategy token)")
	f.String(&cfg.limitPolicy, "max-user-sessions-policy", "evict",
		"`policy` of a login beyond --max-user-sessions: evict (end the user's least\n        recently used session) or refuse (answer 409)")
	f.Int(&cfg.recordFormat, "record-format", 3,
		"the session `format` this node writes: 3, or 1 while a rolling upgrade from a\n        release that reads only format 1 (one without GET /sessions) still runs old\n        nodes; every format is read (docs/migration.md)")
	f.String(&cfg.migrateFrom, "migrate-from", "",
		"move sessions from this old `strategy` (token, redis, postgres, memcached, or\n        nats or olric as clients) to --strategy while serving them: a session found\n        only in the old store is copied, a logout deletes it in both; a token of the\n        old ring becomes a stored session, or a stored session a token\n        (docs/migration.md); the old strategy's own flags (--keys, --redis, ...) say\n        where it is")
	f.String(&cfg.clientIP, "client-ip", "off",
		"keep the client's IP address with its sessions, for GET /sessions: `off`,\n        network (its /24 or /48) or full; it is the address of the TCP peer, so\n        behind a balancer, the balancer's")
	for _, fl := range strategy.Flags() {
		fl.Define(f, &cfg.settings)
	}
	if code, ok := f.parse(s, args, serveAbout); !ok {
		return cfg, code, false
	}

	if cfg.strat, ok = strategy.Lookup(cfg.strategy); !ok {
		return cfg, f.invalid(s, "strategy", cfg.strategy, "want one of "+names), false
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
	if cfg.maxUser < 0 {
		return cfg, f.invalid(s, "max-user-sessions", fmt.Sprint(cfg.maxUser), "must be 0 (no limit) or positive"), false
	}
	if cfg.recordFormat != 1 && cfg.recordFormat != 3 {
		return cfg, f.invalid(s, "record-format", fmt.Sprint(cfg.recordFormat), "want 3, or 1 during a rolling upgrade"), false
	}
	var err error
	if cfg.limit, err = session.ParseLimitPolicy(cfg.limitPolicy); err != nil {
		return cfg, f.invalid(s, "max-user-sessions-policy", cfg.limitPolicy, "want evict or refuse"), false
	}
	if _, ok := clientIPs[cfg.clientIP]; !ok {
		return cfg, f.invalid(s, "client-ip", cfg.clientIP, "want off, network or full"), false
	}
	if cfg.maxUser > 0 && cfg.strategy == "token" {
		return cfg, f.errf(s, "--max-user-sessions cannot be enforced with --strategy token: "+
			"no server knows how many tokens a user holds (see docs/account-sessions.md)"), false
	}
	if cfg.migrateFrom != "" {
		if msg := checkMigrateFrom(&cfg); msg != "" {
			return cfg, f.invalid(s, "migrate-from", cfg.migrateFrom, msg), false
		}
	}
	if code, ok := checkFlagUse(s, f, cfg); !ok {
		return cfg, code, false
	}
	if err := cfg.strat.Check(&cfg.settings); err != nil {
		if fe, ok := errors.AsType[*strategy.FlagError](err); ok {
			return cfg, f.invalid(s, fe.Flag, fe.Value, fe.Why), false
		}
		return cfg, f.errf(s, "%v", err), false
	}
	if _, ok := logLevels[cfg.logLevel]; !ok {
		return cfg, f.invalid(s, "log-level", cfg.logLevel, "want one of debug, info, warn, error"), false
	}
	return cfg, exitOK, true
}

// checkMigrateFrom looks up --migrate-from and returns why it cannot be
// used with cfg's strategy, or "".
func checkMigrateFrom(cfg *serveConfig) string {
	from, ok := strategy.Lookup(cfg.migrateFrom)
	switch {
	case !ok:
		return "want one of " + strings.Join(strategy.Names(), ", ")
	case cfg.migrateFrom == cfg.strategy:
		return "it is --strategy itself; to move to another server of the same kind, see docs/migration.md"
	case cfg.strategy == "memory":
		return "--strategy memory keeps no shared store to move sessions into"
	case cfg.migrateFrom == "memory":
		return "a node's memory is empty once it restarts: move sticky in-memory sessions as docs/migration.md says"
	case !from.Shared:
		return "not a shared store"
	case cfg.settings.ClusterAddr != "" && from.Uses("cluster-addr", &cfg.settings):
		return "with --cluster-addr the old strategy would start a member of its own; reach the old cluster as a client"
	}
	if err := from.Check(&cfg.settings); err != nil {
		return err.Error()
	}
	cfg.from = from
	return ""
}

// breakerWatch returns the OnStateChange of the circuit breaker in front
// of the store of strategy name (what, for the log): the state goes to the
// metrics and each change to the log.
func breakerWatch(sm *sessionmetrics.Metrics, logger *slog.Logger, name, what string) func(from, to breaker.State) {
	hook := sm.BreakerHook(name)
	return func(from, to breaker.State) {
		hook(from, to)
		logger.Warn("serve: "+what+" circuit "+to.String(), "from", from.String(), "strategy", name)
	}
}

// remainingEvery is how often serve counts the sessions left in the old
// store (--migrate-from): a scan of the old store, too costly per scrape.
const remainingEvery = time.Minute

// registerMigrate exports the store/migrate wrapper's counts: the copies,
// and the sessions left in the old store, counted every remainingEvery
// until ctx ends (absent from /metrics until the first count, and for an
// old store that cannot list its keys).
func registerMigrate(ctx context.Context, reg *prometheus.Registry, mig *migrate.Store, logger *slog.Logger) error {
	if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sessionkit_migrate_copied_total",
		Help: "Sessions copied from the old store (--migrate-from) into the new one.",
	}, func() float64 { return float64(mig.Stats().Copied) })); err != nil {
		return err
	}
	left := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sessionkit_migrate_remaining_sessions",
		Help: "Sessions that live only in the old store (--migrate-from), counted every minute: at 0 it can go.",
	})
	go func() {
		registered := false
		for {
			n, err := mig.Remaining(ctx)
			switch {
			case errors.Is(err, store.ErrUnsupported):
				logger.Info("serve: the old store cannot list its keys; sessionkit_migrate_remaining_sessions is not exported", "err", err)
				return
			case err != nil && ctx.Err() == nil:
				logger.Warn("serve: counting the sessions left in the old store failed", "err", err)
			case err == nil:
				left.Set(float64(n))
				if !registered {
					registered = reg.Register(left) == nil
				}
				logger.Info("serve: sessions left in the old store", "remaining", n, "copied", mig.Stats().Copied)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(remainingEvery):
			}
		}
	}()
	return nil
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
	node := strategy.Node{Name: cfg.node, Settings: cfg.settings, Lifetime: cfg.lifetime, Logger: logger}
	if cfg.strat.Breaker {
		// Shared stores go behind a circuit breaker, so that an outage
		// costs requests microseconds, not timeouts, and ends by itself.
		node.Breaker.OnStateChange = breakerWatch(sm, logger, cfg.strategy, "session store")
	}
	sess, err := cfg.strat.Open(ctx, node)
	if err != nil {
		return fail("%v", err)
	}
	defer sess.Close()
	st := sess.Store
	var previous *session.Previous
	if cfg.migrateFrom != "" {
		oldNode := node
		oldNode.Breaker.OnStateChange = nil
		if cfg.from.Breaker {
			oldNode.Breaker.OnStateChange = breakerWatch(sm, logger, cfg.migrateFrom, "old session store")
		}
		old, err := cfg.from.Open(ctx, oldNode)
		if err != nil {
			return fail("--migrate-from %s: %v", cfg.migrateFrom, err)
		}
		defer old.Close()
		switch {
		case old.Tokens != nil: // tokens to a store
			previous = &session.Previous{Tokens: old.Tokens}
		case sess.Tokens != nil: // a store to tokens
			previous = &session.Previous{Store: old.Store}
		default: // a store to another
			var mig *migrate.Store
			st, mig = migrate.New(old.Store, sess.Store)
			if old.Scanner != nil {
				mig.Scanner = old.Scanner
			}
			if err := registerMigrate(ctx, reg, mig, logger); err != nil {
				return fail("%v", err)
			}
		}
		logger.Info("serve: moving sessions from the old store as they are used", "from", cfg.migrateFrom, "to", cfg.strategy)
	}
	if sess.NearCache != nil {
		if err := sm.WatchNearCache(cfg.strategy, sess.NearCache); err != nil {
			return fail("%v", err)
		}
	}
	if sess.Memstore != nil {
		if err := sm.WatchMemstore(cfg.strategy, sess.Memstore); err != nil {
			return fail("%v", err)
		}
	}
	m, err := session.New(session.Config{
		Store:        st,
		Tokens:       sess.Tokens,
		Observer:     sm,
		FailOpen:     cfg.failOpen && sess.Tokens == nil,
		Transport:    session.Cookie{Insecure: cfg.insecureCookie, NoHostPrefix: !cfg.hostPrefix},
		IdleTimeout:  cfg.idleTimeout,
		Lifetime:     cfg.lifetime,
		Route:        cfg.node,
		ErrorHandler: refapp.NewErrorHandler(logger),
		Logger:       logger,

		MaxSessionsPerUser: cfg.maxUser,
		SessionLimit:       cfg.limit,
		ClientIP:           clientIPs[cfg.clientIP],
		RecordFormat:       cfg.recordFormat,
		Previous:           previous,
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
	// The strategy's own routes (the JWKS) go outside the metrics, as
	// the metrics go outside the session middleware.
	handler := sess.Handler(withMetrics(app, reg, cfg.node, logger))
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
		"max_sessions", cfg.settings.MaxSessions, "insecure_cookie", cfg.insecureCookie,
		"cookie_host_prefix", cfg.hostPrefix, "max_user_sessions", cfg.maxUser,
		"max_user_sessions_policy", cfg.limitPolicy, "client_ip", cfg.clientIP)

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
	sess.Close()
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
