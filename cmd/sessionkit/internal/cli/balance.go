package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionkit/sessionkit/balancer"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/sessionmetrics"
)

// The balancer's Prometheus metrics are sessionmetrics.Balancer, which
// implements balancer.Observer without importing the balancer.
var _ balancer.Observer = (*sessionmetrics.Balancer)(nil)

const balanceAbout = `
Runs sessionkit's sticky-session load balancer until SIGINT or SIGTERM, then
shuts down gracefully (up to 10s for requests, WebSockets and event streams
in flight). Each request goes to
the node named by the route tag of its session cookie (sessionkit session IDs
are "<random>.<route>", and 'sessionkit serve --node n1' tags them n1), or by
the balancer's own signed affinity cookie (--affinity-cookie) for other apps.
New users, and users whose node is down or gone, are placed by rendezvous
hashing, so several balancers agree without talking to each other.

  sessionkit balance --listen 127.0.0.1:8000 --admin 127.0.0.1:9000 \
    --backend n1=http://127.0.0.1:8081 --backend n2=http://127.0.0.1:8082

--admin serves a JSON API (GET /nodes; POST /nodes {"name":..,"url":..};
DELETE /nodes/NAME; POST /nodes/NAME/drain {"timeout":"10m"}; POST
/nodes/NAME/activate) and Prometheus metrics at GET /metrics. It is not
authenticated: keep it on a private address.

--config FILE reads a JSON object whose keys are these flags' names (with
'-' or '_'), for example {"listen":"127.0.0.1:8000","backend":
[{"name":"n1","url":"http://127.0.0.1:8081"}],"health-interval":"5s"}.
Flags and environment variables win over the file. SESSIONKIT_BACKEND holds
a comma-separated list of NAME=URL.`

// backendList is the repeatable --backend flag.
type backendList []balancer.Backend

func (l *backendList) String() string {
	var parts []string
	for _, b := range *l {
		parts = append(parts, b.Name+"="+b.URL)
	}
	return strings.Join(parts, ",")
}

// Set adds NAME=URL, or a comma-separated list of them.
func (l *backendList) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		name, url, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || name == "" || url == "" {
			return fmt.Errorf("want NAME=URL, such as n1=http://127.0.0.1:8081")
		}
		if err := sid.CheckRoute(name); err != nil {
			return fmt.Errorf("node name %q: want 1 to 64 ASCII letters, digits, '-' or '_'", name)
		}
		*l = append(*l, balancer.Backend{Name: name, URL: url})
	}
	return nil
}

// balanceConfig is the balance command's configuration.
type balanceConfig struct {
	listen, admin, configFile string
	backends                  backendList
	cookie, affinityCookie    string
	affinityKeyFile           string
	affinityKey               []byte // read from affinityKeyFile
	insecureCookie            bool
	sharedSessions            bool
	trustForwarded            bool
	healthPath                string
	healthInterval            time.Duration
	healthTimeout             time.Duration
	ejectFor, drainTimeout    time.Duration
	backendIdle               time.Duration
	loadFactor                float64
	maxBody                   int
	healthRise, healthFall    int
	engine                    string
	maxResponseBody           int
	logLevel                  string
}

const maxConfigFile = 1 << 20

func parseBalance(s *sys, args []string) (cfg balanceConfig, code int, ok bool) {
	f := newFlagSet("balance")
	f.String(&cfg.listen, "listen", "127.0.0.1:8000", "`host:port` to serve the balanced app on; port 0 picks a free port")
	f.Var(&cfg.backends, "backend", "a node as `name=url`, such as n1=http://127.0.0.1:8081; repeat it for each node\n"+
		"        (the name is the route tag of the node's session IDs: its serve --node)")
	f.String(&cfg.admin, "admin", "", "`host:port` of the admin API and /metrics (empty: none); keep it private")
	f.String(&cfg.configFile, "config", "", "JSON `file` of settings (keys: these flags' names); flags win over it")
	f.String(&cfg.cookie, "cookie", balancer.DefaultSessionCookie, "`name` of the app's session cookie, whose route tag picks the node; a\n        __Host- name is read first, then the same name without the prefix")
	f.Bool(&cfg.sharedSessions, "shared-sessions", false,
		"sessions live in a shared store or tokens: a user whose node is gone is re-homed\n"+
			"        silently; without it (in-memory sessions) each re-homed session counts as lost")
	f.String(&cfg.affinityCookie, "affinity-cookie", "",
		"`name` of the balancer's own signed affinity cookie, for apps whose sessions carry\n"+
			"        no route tag (empty: off)")
	f.String(&cfg.affinityKeyFile, "affinity-key-file", "",
		"`file` holding the affinity cookie's HMAC key (at least 32 bytes); balancers that\n"+
			"        share it accept each other's cookies (empty: a random key per process)")
	f.Bool(&cfg.insecureCookie, "insecure-cookie", false, "drop the affinity cookie's Secure attribute (plain-HTTP development)")
	f.String(&cfg.healthPath, "health-path", balancer.DefaultHealthPath, "`path` of the nodes' health check (GET; 2xx or 3xx passes)")
	f.Duration(&cfg.healthInterval, "health-interval", balancer.DefaultHealthInterval, "`duration` between health checks")
	f.Duration(&cfg.healthTimeout, "health-timeout", balancer.DefaultHealthTimeout, "`duration` a health check may take")
	f.Duration(&cfg.ejectFor, "eject-for", balancer.DefaultEjectFor,
		"keep a node whose connection failed out of rotation this `duration` (or until its next passed check)")
	f.Duration(&cfg.drainTimeout, "drain-timeout", balancer.DefaultDrainTimeout, "default drain deadline (`duration`) of the admin API")
	f.Duration(&cfg.backendIdle, "backend-idle-timeout", balancer.DefaultBackendIdleTimeout,
		"close keep-alive connections to the nodes after this `duration` idle: keep it under\n"+
			"        the nodes' own keep-alive timeout, or a POST can meet a closing connection (502)")
	f.Float64(&cfg.loadFactor, "load-factor", 0,
		"bound new sessions and re-homes to `factor` times the average load (0: no bound; else >= 1)")
	f.Int(&cfg.healthRise, "health-rise", balancer.DefaultRise, "consecutive passed checks that bring a down node back (`n`)")
	f.Int(&cfg.healthFall, "health-fall", balancer.DefaultFall, "consecutive failed checks that take a node down (`n`)")
	f.Int(&cfg.maxBody, "max-body", balancer.DefaultMaxBodyBytes, "largest request body in `bytes` (-1: no limit; needs --engine net/http)")
	f.String(&cfg.engine, "engine", "fast",
		"HTTP `engine`: fast (fasthttp: about half the CPU per request; bodies are buffered,\n"+
			"        upgrades and event streams tunneled) or net/http (httputil.ReverseProxy; streams every body)")
	f.Int(&cfg.maxResponseBody, "max-response-body", balancer.DefaultFastMaxResponseBody,
		"largest response body in `bytes` the fast engine buffers (a larger one is answered 502)")
	f.Bool(&cfg.trustForwarded, "trust-forwarded", false,
		"keep the clients' X-Forwarded-* headers (only behind another trusted proxy)")
	f.String(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	if code, ok := f.parse(s, args, balanceAbout); !ok {
		return cfg, code, false
	}
	if cfg.configFile != "" {
		if code, ok := readBalanceConfig(s, f, &cfg); !ok {
			return cfg, code, false
		}
	}

	for _, a := range []struct{ name, v string }{{"listen", cfg.listen}, {"admin", cfg.admin}} {
		if a.v == "" && a.name == "admin" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return cfg, f.invalid(s, a.name, a.v, "want host:port, such as 127.0.0.1:8000 or :8000"), false
		}
	}
	if len(cfg.backends) == 0 {
		return cfg, f.errf(s, "no backend: give at least one --backend NAME=URL (see 'sessionkit balance --help')"), false
	}
	if _, ok := logLevels[cfg.logLevel]; !ok {
		return cfg, f.invalid(s, "log-level", cfg.logLevel, "want one of debug, info, warn, error"), false
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"health-interval", cfg.healthInterval}, {"health-timeout", cfg.healthTimeout}, {"eject-for", cfg.ejectFor}, {"drain-timeout", cfg.drainTimeout}, {"backend-idle-timeout", cfg.backendIdle}} {
		if d.v <= 0 {
			return cfg, f.invalid(s, d.name, d.v.String(), "must be positive"), false
		}
	}
	if cfg.maxBody == 0 || cfg.maxBody < -1 {
		return cfg, f.invalid(s, "max-body", strconv.Itoa(cfg.maxBody), "want a positive number of bytes, or -1 for no limit"), false
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"health-rise", cfg.healthRise}, {"health-fall", cfg.healthFall}, {"max-response-body", cfg.maxResponseBody}} {
		if n.v <= 0 {
			return cfg, f.invalid(s, n.name, strconv.Itoa(n.v), "must be positive"), false
		}
	}
	switch cfg.engine {
	case "fast":
		if cfg.maxBody < 0 {
			return cfg, f.invalid(s, "max-body", strconv.Itoa(cfg.maxBody), "the fast engine buffers bodies and needs a limit; use --engine net/http for none"), false
		}
	case "net/http":
	default:
		return cfg, f.invalid(s, "engine", cfg.engine, "want fast or net/http"), false
	}
	if code, ok := readAffinityKey(s, f, &cfg); !ok {
		return cfg, code, false
	}
	// The balancer checks the rest (node names, URLs, cookie names, the
	// load factor, the key); its errors are reported in one line too.
	b, err := balancer.New(cfg.balancerConfig(nil))
	if err != nil {
		return cfg, balancerError(s, f, err), false
	}
	b.Close()
	return cfg, exitOK, true
}

// readAffinityKey reads --affinity-key-file into cfg.affinityKey. The
// balancer checks the key's length; an empty file, which it would take for
// "no key" (a random one per process), is refused here.
func readAffinityKey(s *sys, f *flagSet, cfg *balanceConfig) (int, bool) {
	file := cfg.affinityKeyFile
	switch {
	case file == "":
		return exitOK, true
	case cfg.affinityCookie == "":
		// From the environment it is ignored, as serve ignores settings
		// its strategy does not use.
		if f.fromCLI["affinity-key-file"] {
			return f.errf(s, "--affinity-key-file is used only with --affinity-cookie (see 'sessionkit balance --help')"), false
		}
		return exitOK, true
	}
	key, err := readKeyFile(file)
	if err != nil {
		why := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			why = pe.Err.Error() // without the file name, which the message has
		}
		return f.invalid(s, "affinity-key-file", file, why), false
	}
	if len(key) == 0 {
		return f.invalid(s, "affinity-key-file", file, fmt.Sprintf("0 bytes; want at least %d", balancer.MinAffinityKeyLen)), false
	}
	cfg.affinityKey = key
	return exitOK, true
}

// balancerFlags names the flag that sets each Config field the balancer
// may refuse (balancer.FieldError), so that the error names the flag.
var balancerFlags = map[string]string{
	"SessionCookie": "cookie",
	"Affinity.Name": "affinity-cookie",
	"Affinity.Key":  "affinity-key-file",
	"Health.Path":   "health-path",
	"LoadFactor":    "load-factor",
}

// balancerError reports an error of balancer.New in one line: by the flag
// that set the field, when it is a field with a flag.
func balancerError(s *sys, f *flagSet, err error) int {
	if fe, ok := errors.AsType[*balancer.FieldError](err); ok {
		if name, ok := balancerFlags[fe.Field]; ok {
			why := fe.Why
			if other, ok := balancerFlags[fe.Other]; ok {
				why += " (" + f.source(other) + ")"
			}
			return f.invalid(s, name, f.fs.Lookup(name).Value.String(), why)
		}
	}
	return f.errf(s, "%s (see 'sessionkit balance --help')", strings.TrimPrefix(err.Error(), "balancer: "))
}

// maxKeyFile bounds the affinity key file: a key is tens of bytes, and a
// path such as /dev/zero must not be read forever.
const maxKeyFile = 4 << 10

// readKeyFile reads a key file of at most maxKeyFile bytes.
func readKeyFile(name string) ([]byte, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	key, err := io.ReadAll(io.LimitReader(file, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(key) > maxKeyFile {
		return nil, fmt.Errorf("larger than %d bytes: not a key file", maxKeyFile)
	}
	return key, nil
}

// readBalanceConfig applies the JSON file's settings to the flags that
// neither the command line nor the environment set.
func readBalanceConfig(s *sys, f *flagSet, cfg *balanceConfig) (int, bool) {
	file, err := os.Open(cfg.configFile)
	if err != nil {
		return f.errf(s, "--config: %v", err), false
	}
	defer file.Close()
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(io.LimitReader(file, maxConfigFile))
	if err := dec.Decode(&raw); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok { // an array, a string...: not the Go types
			article := "a "
			if strings.HasPrefix(te.Value, "a") {
				article = "an "
			}
			return f.errf(s, "--config %s: not a JSON object but %s%s", cfg.configFile, article, te.Value), false
		}
		return f.errf(s, "--config %s: not a JSON object: %s", cfg.configFile, strings.TrimPrefix(err.Error(), "json: ")), false
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		if name == "backends" {
			name = "backend"
		}
		fl := f.fs.Lookup(name)
		if fl == nil || name == "config" {
			return f.errf(s, "--config %s: unknown setting %q", cfg.configFile, k), false
		}
		if f.fromCLI[name] || f.fromEnv[name] {
			continue
		}
		if name == "backend" {
			var list []balancer.Backend
			if err := json.Unmarshal(raw[k], &list); err != nil {
				return f.errf(s, `--config %s: %q: want [{"name":"n1","url":"http://..."}, ...]`, cfg.configFile, k), false
			}
			cfg.backends = list
			continue
		}
		var v any
		if err := json.Unmarshal(raw[k], &v); err != nil {
			return f.errf(s, "--config %s: %q: %v", cfg.configFile, k, err), false
		}
		var text string
		switch v := v.(type) {
		case string:
			text = v
		case float64, bool:
			text = string(raw[k])
		default:
			return f.errf(s, "--config %s: %q: want a string, number or boolean", cfg.configFile, k), false
		}
		if err := f.fs.Set(name, text); err != nil {
			return f.errf(s, "--config %s: invalid %q %q: %s", cfg.configFile, k, text, hint(fl, err)), false
		}
	}
	return exitOK, true
}

// balancerConfig returns the balancer.Config of the command's settings,
// reporting to obs. Health checks are off when obs is nil (validation
// only).
func (c *balanceConfig) balancerConfig(obs balancer.Observer) balancer.Config {
	maxBody := int64(c.maxBody)
	cfg := balancer.Config{
		Backends:       c.backends,
		SessionCookie:  c.cookie,
		SharedSessions: c.sharedSessions,
		LoadFactor:     c.loadFactor,
		Health: balancer.HealthCheck{Path: c.healthPath, Interval: c.healthInterval, Timeout: c.healthTimeout,
			Rise: c.healthRise, Fall: c.healthFall},
		EjectFor:           c.ejectFor,
		DrainTimeout:       c.drainTimeout,
		BackendIdleTimeout: c.backendIdle,
		MaxBodyBytes:       maxBody,
		TrustForwarded:     c.trustForwarded,
		Observer:           obs,
	}
	if obs == nil {
		cfg.Health.Interval = -1
	}
	if c.affinityCookie != "" {
		cfg.Affinity = balancer.AffinityCookie{Enabled: true, Name: c.affinityCookie, Insecure: c.insecureCookie}
	}
	cfg.Affinity.Key = c.affinityKey
	return cfg
}

// nodeGauges returns the nodes' gauges for sessionmetrics.Balancer.
func nodeGauges(nodes []balancer.NodeStatus) []sessionmetrics.NodeGauge {
	gs := make([]sessionmetrics.NodeGauge, len(nodes))
	for i, st := range nodes {
		gs[i] = sessionmetrics.NodeGauge{Name: st.Name, Healthy: st.Healthy, State: st.State,
			InFlight: st.InFlight, Sessions: st.Sessions}
	}
	return gs
}

// metricsMethodNotAllowed answers a request to /metrics with a method
// other than GET or HEAD: 405, as the admin API answers its own paths.
func metricsMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Allow", "GET, HEAD")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusMethodNotAllowed)
	json.NewEncoder(w).Encode(map[string]string{ //nolint:errcheck // the client is gone
		"error": "method " + r.Method + " not allowed on /metrics; allowed: GET, HEAD"})
}

// runBalance is "sessionkit balance".
func runBalance(ctx context.Context, s *sys, args []string) int {
	cfg, code, ok := parseBalance(s, args)
	if !ok {
		return code
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(s.stderr, "sessionkit balance: "+format+"\n", args...)
		return exitError
	}
	logger := slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: logLevels[cfg.logLevel]}))

	reg, err := processRegistry()
	if err != nil {
		return fail("%v", err)
	}
	bm, err := sessionmetrics.NewBalancer(reg)
	if err != nil {
		return fail("%v", err)
	}
	bc := cfg.balancerConfig(bm)
	bc.Logger = logger
	b, err := balancer.New(bc)
	if err != nil {
		return fail("%v", err)
	}
	defer b.Close()
	if err := bm.WatchNodes(func() []sessionmetrics.NodeGauge { return nodeGauges(b.Nodes()) }); err != nil {
		return fail("%v", err)
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fail("%v", err)
	}
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	// shutdowns stop the servers gracefully; closes stop them at once.
	var shutdowns []func(context.Context) error
	var closes []func() error
	served := make(chan error, 2)
	if cfg.engine == "fast" {
		fsrv, err := b.NewFastServer(balancer.FastConfig{IdleTimeout: idleTimeout, MaxResponseBodyBytes: cfg.maxResponseBody})
		if err != nil {
			ln.Close()
			return fail("%v", err)
		}
		shutdowns = append(shutdowns, fsrv.ShutdownWithContext)
		closes = append(closes, func() error { // shut down without waiting
			done, cancel := context.WithCancel(context.Background())
			cancel()
			return fsrv.ShutdownWithContext(done)
		})
		go func() { served <- fsrv.Serve(balancer.FastListener(ln)) }()
	} else {
		// No ReadTimeout or WriteTimeout: they would cut off WebSockets,
		// server-sent events and slow uploads. Slow clients are bounded by
		// ReadHeaderTimeout and IdleTimeout, the nodes by the transport's.
		srv := &http.Server{
			Handler:           b,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          errLog,
		}
		shutdowns = append(shutdowns, srv.Shutdown)
		closes = append(closes, srv.Close)
		go func() { served <- srv.Serve(ln) }()
	}
	names := make([]string, len(cfg.backends))
	for i, be := range cfg.backends {
		names[i] = be.Name
	}
	fmt.Fprintf(s.stderr, "sessionkit balance: listening on http://%s (nodes %s; engine %s)\n", ln.Addr(), strings.Join(names, ", "), cfg.engine)

	if cfg.admin != "" {
		aln, err := net.Listen("tcp", cfg.admin)
		if err != nil {
			closes[0]()
			return fail("admin: %v", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errLog, ErrorHandling: promhttp.ContinueOnError}))
		mux.HandleFunc("/metrics", metricsMethodNotAllowed)
		mux.Handle("/", b.AdminHandler())
		asrv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes, ErrorLog: errLog}
		shutdowns = append(shutdowns, asrv.Shutdown)
		closes = append(closes, asrv.Close)
		go func() { served <- asrv.Serve(aln) }()
		fmt.Fprintf(s.stderr, "sessionkit balance: admin API and /metrics on http://%s\n", aln.Addr())
	}

	select {
	case err := <-served:
		for _, c := range closes {
			c()
		}
		return fail("%v", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for i, shutdown := range shutdowns {
		if err := shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("balance: requests still running after the shutdown timeout were cut off",
				"timeout", shutdownTimeout, "err", err)
			closes[i]()
		}
	}
	if err := b.WaitTunnels(sctx); err != nil {
		logger.Warn("balance: long-lived connections cut off at the shutdown timeout", "timeout", shutdownTimeout, "err", err)
	}
	b.Close()
	fmt.Fprintln(s.stderr, "sessionkit balance: stopped")
	return exitOK
}
