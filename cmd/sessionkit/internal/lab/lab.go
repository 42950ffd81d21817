package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
)

// Faults Config.Faults may name.
const (
	// FaultNode kills one node's process with SIGKILL at about 40% of
	// the run and starts a new process in its place (same name, same
	// data directory) at about 70%.
	FaultNode = "node"
	// FaultReplace kills the node as FaultNode does, and at about 70%
	// starts a new member under a new name in its place, as an operator
	// replaces a dead machine: for the strategies whose nodes are members
	// of an embedded cluster (olric, nats); for the others it is
	// FaultNode.
	FaultReplace = "replace"
	// FaultStore cuts the shared store from about 45% to 60%.
	FaultStore = "store"
	// FaultEvict fills the store's memory at about 45% until it evicts:
	// the memcached strategy, on a 4 MB Memcached of the lab's own; no
	// other store evicts, and their runs are as without it.
	FaultEvict = "evict"
)

// Defaults of Config.
const (
	DefaultNodes    = 3
	DefaultUsers    = 24
	DefaultDuration = 6 * time.Second
	// DefaultSettle is how much longer than Duration the rows of the
	// distributed strategies (olric, nats) run with a node fault: a NATS
	// leader election after a SIGKILL takes 4.5 to 8 s (the crash tests
	// of store/natsstore), and the recovery must end inside the run.
	DefaultSettle = 7 * time.Second
	DefaultSeed   = 1
	DefaultFront  = FrontSessionkit

	DefaultRedisURL    = strategy.DefaultRedisURL
	DefaultPostgresURL = strategy.DefaultPostgresURL
	DefaultMemcached   = strategy.DefaultMemcachedAddrs
)

// Config configures Run. The zero value of every field means its default.
type Config struct {
	// Strategies are the rows to measure, in order (see ParseRow): a
	// strategy's name, with "+flag" for each extra serve flag ("redis" or
	// "redis+near-cache"); default Strategies.
	Strategies []string
	// Fronts are the balancers to put in front of the nodes, each a set
	// of rows: FrontSessionkit, FrontHAProxy, FrontNginx; default
	// DefaultFront. A front that is not installed is reported as skipped.
	Fronts []string
	// Binary is the sessionkit executable whose serve and balance
	// commands the nodes and the sessionkit front run. Required, except
	// for Migrate runs. `sessionkit lab` gives its own (os.Executable).
	Binary string
	// Nodes per topology; default DefaultNodes (at least 2).
	Nodes int
	// Users is the number of virtual users; default DefaultUsers.
	Users int
	// Duration of each row's run; default DefaultDuration. The faults
	// happen at shares of it.
	Duration time.Duration
	// Settle is how much longer the rows of the distributed strategies
	// run when a node is killed; default DefaultSettle, negative none.
	Settle time.Duration
	// Faults to inject: any of FaultNode, FaultReplace, FaultStore and
	// FaultEvict, or "none". Default FaultNode.
	Faults []string
	// Seed of the users' choices; default DefaultSeed.
	Seed uint64
	// Migrate, if set, replaces the strategies' rows by migrations, one
	// row each: "FROM:TO" (token:redis, memory:redis, redis:postgres, ...)
	// runs the nodes on FROM and switches them to TO in the middle of the
	// run, as docs/migration.md says, without faults. These runs keep
	// their nodes in the lab's process behind sessionkit's balancer, to
	// switch them without a restart. Default none.
	Migrate []string

	// RedisURL and PostgresURL are the services of the redis and
	// postgres strategies (URLs as redisstore.ParseURL and pgstore.Open
	// take them); defaults DefaultRedisURL and DefaultPostgresURL. The
	// token strategy keeps its revocations in that Redis when it answers.
	RedisURL    string
	PostgresURL string
	// Memcached are the servers of the memcached strategy, host:port,...;
	// default DefaultMemcached. With FaultEvict the strategy runs on a
	// Memcached the lab starts instead.
	Memcached string

	// Progress, if set, receives a progress line that is rewritten
	// (carriage returns) while a strategy runs, or with ProgressLines one
	// line per strategy when it ends (for a log, not a terminal).
	Progress      io.Writer
	ProgressLines bool
	// Logger receives the in-process nodes' and balancer's logs of the
	// migration runs; default discard. The node processes' logs go to a
	// file each in the run's scratch directory, removed at the end.
	Logger *slog.Logger
	// BeforeStop, if set, is called at the end of each row's run, after
	// the users stopped and before the nodes and the front are stopped,
	// with where they are: for an outside count of what the run did.
	BeforeStop func(Endpoints)
}

// Endpoints are where a row's processes answer (Config.BeforeStop).
type Endpoints struct {
	Row   string
	Front string
	// FrontURL is the front's base URL; FrontMetrics its Prometheus
	// endpoint ("" for HAProxy and nginx).
	FrontURL, FrontMetrics string
	// Nodes are the base URLs of the nodes running at the end (each
	// serves GET /metrics).
	Nodes []string
}

// nearCacheStaleBound is how long, on a row with a near cache, a read
// through the front may lag behind an acknowledged write before the item
// it lacks counts as an update lost: the caches' maximum age (1 s, the
// default of serve --near-cache) and a margin.
const nearCacheStaleBound = 1500 * time.Millisecond

// Strategies are the rows Run measures by default, in order: every
// strategy of the registry (package strategy), and those with a near
// cache (serve --near-cache).
var Strategies = []string{"memory", "token", "redis", "redis+near-cache", "postgres", "memcached", "olric", "nats", "nats+near-cache"}

// Row is one row of the report: a strategy and the extra serve flags its
// nodes run with.
type Row struct {
	Name     string   // as Config.Strategies names it
	Strategy string   // the registry's name
	Flags    []string // extra serve flags: --near-cache
}

// ParseRow parses a row's name: a strategy of the registry followed by
// "+flag" for each boolean serve flag its nodes get ("nats+near-cache":
// serve --strategy nats --near-cache). A flag serve refuses makes the
// row skipped when it runs, with serve's reason.
func ParseRow(name string) (Row, error) {
	parts := strings.Split(name, "+")
	if _, ok := strategy.Lookup(parts[0]); !ok {
		return Row{}, fmt.Errorf("lab: unknown strategy %q (want some of %s)", name, strings.Join(strategy.Names(), ", "))
	}
	r := Row{Name: name, Strategy: parts[0]}
	for _, f := range parts[1:] {
		if !flagName.MatchString(f) {
			return Row{}, fmt.Errorf("lab: row %q: %q is not a flag name", name, f)
		}
		r.Flags = append(r.Flags, "--"+f)
	}
	return r, nil
}

var flagName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,40}$`)

func (c Config) withDefaults() (Config, error) {
	if len(c.Strategies) == 0 {
		c.Strategies = Strategies
	}
	for i, s := range c.Strategies {
		if _, err := ParseRow(s); err != nil {
			return c, err
		}
		if slices.Contains(c.Strategies[:i], s) {
			return c, fmt.Errorf("lab: strategy %q given twice", s)
		}
	}
	if len(c.Fronts) == 0 {
		c.Fronts = []string{DefaultFront}
	}
	for i, f := range c.Fronts {
		switch {
		case f != FrontSessionkit && f != FrontHAProxy && f != FrontNginx:
			return c, fmt.Errorf("lab: unknown front %q (want %s, %s or %s)", f, FrontSessionkit, FrontHAProxy, FrontNginx)
		case slices.Contains(c.Fronts[:i], f):
			return c, fmt.Errorf("lab: front %q given twice", f)
		}
	}
	if c.Binary == "" && len(c.Migrate) == 0 {
		return c, errors.New("lab: Config.Binary is required: the sessionkit executable the nodes run")
	}
	switch {
	case c.Nodes == 0:
		c.Nodes = DefaultNodes
	case c.Nodes < 2 || c.Nodes > 16:
		return c, fmt.Errorf("lab: %d nodes: want 2 to 16", c.Nodes)
	}
	switch {
	case c.Users == 0:
		c.Users = DefaultUsers
	case c.Users < 1 || c.Users > 10000:
		return c, fmt.Errorf("lab: %d users: want 1 to 10000", c.Users)
	}
	switch {
	case c.Duration == 0:
		c.Duration = DefaultDuration
	case c.Duration < time.Second || c.Duration > time.Hour:
		return c, fmt.Errorf("lab: duration %v: want 1s to 1h", c.Duration)
	}
	switch {
	case c.Settle == 0:
		c.Settle = DefaultSettle
	case c.Settle < 0:
		c.Settle = 0
	}
	if len(c.Faults) == 0 {
		c.Faults = []string{FaultNode}
	}
	for _, f := range c.Faults {
		switch {
		case f != FaultNode && f != FaultReplace && f != FaultStore && f != FaultEvict && f != "none":
			return c, fmt.Errorf("lab: unknown fault %q (want %s, %s, %s, %s or none)", f, FaultNode, FaultReplace, FaultStore, FaultEvict)
		case f == "none" && len(c.Faults) > 1:
			return c, fmt.Errorf("lab: faults %s: none excludes the others", strings.Join(c.Faults, ","))
		}
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	for _, m := range c.Migrate {
		if _, _, err := parseMigration(m); err != nil {
			return c, err
		}
	}
	if c.RedisURL == "" {
		c.RedisURL = DefaultRedisURL
	}
	if c.PostgresURL == "" {
		c.PostgresURL = DefaultPostgresURL
	}
	if c.Memcached == "" {
		c.Memcached = DefaultMemcached
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func (c Config) fault(name string) bool { return slices.Contains(c.Faults, name) }

// nodeFault reports whether a node is killed: FaultNode or FaultReplace.
func (c Config) nodeFault() bool { return c.fault(FaultNode) || c.fault(FaultReplace) }

// duration is how long the row of strategy s runs.
func (c Config) duration(s strategy.Strategy) time.Duration {
	if s.Members() && c.nodeFault() {
		return c.Duration + c.Settle
	}
	return c.Duration
}

// Report is the result of Run.
type Report struct {
	Started  time.Time     `json:"started"`
	Nodes    int           `json:"nodes"`
	Users    int           `json:"users"`
	Duration time.Duration `json:"duration_ns"`
	// Settle is the distributed strategies' longer run (Config.Settle).
	Settle  time.Duration `json:"settle_ns"`
	Fronts  []string      `json:"fronts"`
	Faults  []string      `json:"faults"`
	Seed    uint64        `json:"seed"`
	CPUs    int           `json:"cpus"`
	Results []Result      `json:"results"`
	// Elapsed is how long Run took, start-ups included.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Result is one row's measurements.
type Result struct {
	// Strategy is the row's name (see ParseRow).
	Strategy string `json:"strategy"`
	// Name is the row's name in the HTML report: Strategy, and with
	// several fronts " via " and Front.
	Name string `json:"-"`
	// Front is the balancer in front of the nodes.
	Front string `json:"front"`
	// Flags are the row's extra serve flags.
	Flags []string `json:"serve_flags,omitempty"`
	What  string   `json:"what"`
	// Skipped is the reason the row did not run, or "".
	Skipped string `json:"skipped,omitempty"`
	// Seconds is how long the users ran.
	Seconds float64 `json:"seconds"`

	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"requests_per_second"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`

	Logins       int64 `json:"logins"`
	SessionsLost int64 `json:"sessions_lost"`
	// Users is the number of virtual users; UsersLost those who lost at
	// least one session.
	Users        int   `json:"users"`
	UsersLost    int   `json:"users_lost"`
	UpdatesAcked int64 `json:"updates_acknowledged"`
	UpdatesLost  int64 `json:"updates_lost"`

	// StaleProbes are reads of a cart made directly at another node than
	// the one that acknowledged the last add, right after it; StaleReads
	// those that lacked an item acknowledged before the read started.
	StaleProbes int64 `json:"stale_probes"`
	StaleReads  int64 `json:"stale_reads"`
	// LogoutLag is how long after a logout's acknowledgement every node
	// answered the old cookie 401.
	LogoutLag Lag `json:"logout_lag"`

	// BytesPerRequest is session state on the wire: Cookie and Set-Cookie
	// headers, per request.
	BytesPerRequest float64 `json:"session_bytes_per_request"`
	// StoreCallsPerRequest is the nodes' store calls per request, as
	// their metrics count them (sessionkit_store_calls_total).
	StoreCallsPerRequest float64 `json:"store_calls_per_request"`

	Timeline []Point `json:"timeline"`
	Events   []Event `json:"events"`
}

// Lag is the distribution of the logout lags measured.
type Lag struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	// Late counts logouts that some node still honoured the old cookie
	// for after 5 s (not in the figures above).
	Late int `json:"late"`
}

// Point is one slice of the run's time line.
type Point struct {
	At       float64 `json:"t_s"` // seconds since the start, at the slice's start
	Requests int     `json:"requests"`
	RPS      float64 `json:"requests_per_second"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Errors   int     `json:"errors"`
	OK       int     `json:"ok"` // answered 2xx
}

// Event is a fault, at a time since the start, and the recovery after it.
type Event struct {
	At    float64 `json:"t_s"`
	Label string  `json:"label"`
	// FirstOK is the time from the event to the end of the first request
	// started after it that succeeded, in seconds; nil if none did.
	FirstOK *float64 `json:"first_success_s,omitempty"`
	// Back90 is the time from the event until the successes per second
	// (over 1 s), having dipped under 90% of their normal rate (the lower
	// of their median before the first fault and over the run's last
	// quarter) within 2 s of the event, were back to it: 0 if they did not
	// dip; nil if they were not back before the run ended.
	Back90 *float64 `json:"back_to_90pct_s,omitempty"`
}

// Run measures every row of cfg, for each front, one after another, and
// returns the report. A row that cannot run is in the report with Skipped
// set; an error is returned only for a bad Config or when ctx ends, after
// every process the run started has ended.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	rep := &Report{Started: began.UTC(), Nodes: cfg.Nodes, Users: cfg.Users, Duration: cfg.Duration,
		Settle: cfg.Settle, Fronts: cfg.Fronts, Faults: cfg.Faults, Seed: cfg.Seed, CPUs: runtime.NumCPU()}
	defer func() { rep.Elapsed = time.Since(began) }()
	if len(cfg.Migrate) > 0 {
		rep.Faults, rep.Fronts, rep.Settle = []string{"none"}, []string{FrontSessionkit}, 0
		for _, m := range cfg.Migrate {
			from, to, _ := parseMigration(m) // checked by withDefaults
			res, err := runMigration(ctx, cfg, from, to)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if err != nil {
				res = Result{Strategy: m, Front: FrontSessionkit, What: "migration", Skipped: skipReason(err)}
			}
			rep.Results = append(rep.Results, res)
		}
		return rep, nil
	}
	total := len(cfg.Fronts) * len(cfg.Strategies)
	for _, front := range cfg.Fronts {
		for _, name := range cfg.Strategies {
			row, _ := ParseRow(name) // checked by withDefaults
			s, _ := strategy.Lookup(row.Strategy)
			prog := progressLabel{n: len(rep.Results) + 1, of: total, name: row.Name, front: front}
			res, err := runRow(ctx, cfg, row, front, s, prog)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if err != nil {
				res = Result{Strategy: row.Name, Front: front, Flags: row.Flags, What: s.What, Skipped: skipReason(err)}
				if cfg.Progress != nil {
					fmt.Fprintf(cfg.Progress, "\r\033[K%s: skipped\n", prog)
				}
			}
			rep.Results = append(rep.Results, res)
		}
	}
	if cfg.Progress != nil && !cfg.ProgressLines {
		fmt.Fprint(cfg.Progress, "\r\033[K")
	}
	return rep, nil
}

// startUsers starts cfg.Users virtual users on url, in goroutines added to
// wg, until ctx ends, and returns them.
func startUsers(ctx context.Context, cfg Config, url string, tr *http.Transport, c *counters, wg *sync.WaitGroup) []*user {
	var users []*user
	for i := range cfg.Users {
		u := newUser(i, url, tr, c, cfg.Seed)
		users = append(users, u)
		wg.Go(func() { u.run(ctx) })
	}
	return users
}

// skipReason is the Result.Skipped of a run that failed with err.
func skipReason(err error) string {
	reason := err.Error()
	if !errors.Is(err, strategy.ErrSkip) {
		reason = "failed: " + reason
	}
	return strings.TrimPrefix(reason, strategy.ErrSkip.Error()+": ")
}

// timeline slices: 100 ms each, or a 600th of a run longer than a minute.
func bucketOf(d time.Duration) time.Duration { return max(100*time.Millisecond, d/600) }

// runRow runs one row: its nodes as serve processes behind front, the
// users, the faults.
func runRow(ctx context.Context, cfg Config, row Row, front string, s strategy.Strategy, prog progressLabel) (Result, error) {
	dir, removeDir, err := scratchDir()
	if err != nil {
		return Result{}, err
	}
	defer removeDir()
	// The fault proxies in front of the shared store, made by the plan,
	// closed after the nodes.
	var proxies []*faultProxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	settings := strategy.Defaults()
	settings.RedisURL, settings.PostgresURL, settings.MemcachedAddrs = cfg.RedisURL, cfg.PostgresURL, cfg.Memcached
	setupCtx, cancel := context.WithTimeout(ctx, 2*startTimeout)
	defer cancel()
	plan, err := s.Plan(setupCtx, strategy.TestbedConfig{
		Nodes: cfg.Nodes, Dir: dir, Settings: settings, FreeAddrs: freeAddrs,
		MemoryPressure: cfg.fault(FaultEvict),
		Proxy: func(addr string) (string, error) {
			p, err := newFaultProxy(addr)
			if err != nil {
				return "", err
			}
			proxies = append(proxies, p)
			return p.Addr(), nil
		},
	})
	if err != nil {
		return Result{}, err
	}
	defer plan.Close()
	topo, err := startProcTopology(setupCtx, cfg, row, front, s, plan, dir)
	if err != nil {
		return Result{}, err
	}
	defer topo.close()

	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Users * 4, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	if err := warmUp(setupCtx, topo.url, tr); err != nil {
		return Result{}, fmt.Errorf("no login through %s within %v: %w; the end of node n1's log:\n%s",
			front, startTimeout, err, logTail(filepath.Join(dir, "node-1.log"), 8))
	}
	d := cfg.duration(s)
	bucket := bucketOf(d)
	start := time.Now()
	c := newCounters(start, bucket, int((d+bucket-1)/bucket))
	c.nodes, c.unshared = topo.liveURLs, !s.Shared
	if slices.Contains(row.Flags, "--near-cache") {
		c.staleBound = nearCacheStaleBound
	}
	runCtx, stop := context.WithTimeout(ctx, d)
	defer stop()

	var wg sync.WaitGroup
	users := startUsers(runCtx, cfg, topo.url, tr, c, &wg)
	events := schedule(runCtx, cfg, topo, plan, c, proxies, start, &wg)
	progress(runCtx, cfg, prog, d, start, c)
	wg.Wait()
	elapsed := time.Since(start)
	c.lagWG.Wait()
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	topo.scrape(context.WithoutCancel(ctx))
	if cfg.BeforeStop != nil {
		ep := Endpoints{Row: row.Name, Front: front, FrontURL: topo.url, FrontMetrics: topo.front.metrics}
		for _, n := range topo.liveURLs() {
			ep.Nodes = append(ep.Nodes, n.url)
		}
		cfg.BeforeStop(ep)
	}
	res := summarize(s, c, users, topo.storeCalls(), elapsed, events.list())
	res.Strategy, res.Front, res.Flags = row.Name, front, row.Flags
	return res, nil
}

// warmUp logs a user in through the front until it works (an embedded
// cluster may still be forming its streams), then out.
func warmUp(ctx context.Context, base string, tr http.RoundTripper) error {
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Transport: tr, Timeout: 5 * time.Second}
	post := func(path, body string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var last error
	for ctx.Err() == nil {
		st, err := post("/login", `{"user":"warm-up"}`)
		if err == nil && st == http.StatusOK {
			post("/logout", "")
			return nil
		}
		if last = err; err == nil {
			last = fmt.Errorf("login answered %d", st)
		}
		pause(ctx, 100*time.Millisecond)
	}
	return last
}

// eventList is the events of a run, appended to as they happen.
type eventList struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventList) list() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// schedule runs the faults of cfg on their schedule, in goroutines added
// to wg, and returns the list they append their events to (complete once
// wg is done). The node fault kills the last node's process with SIGKILL
// and starts a new one (FaultReplace: a new member) in its place; the
// store fault cuts the proxies in front of the shared store, if the
// strategy has one; the evict fault has every third user step away at
// about 40%, puts the plan's store under memory pressure at about 45%, if
// it can evict, and has the users come back when it is done (and at least
// at 60%).
func schedule(ctx context.Context, cfg Config, t *procTopology, plan *strategy.Plan, c *counters,
	proxies []*faultProxy, start time.Time, wg *sync.WaitGroup) *eventList {
	events := &eventList{}
	mark := func(label string) {
		events.mu.Lock() // events and the counters' watches in one order
		defer events.mu.Unlock()
		now := time.Now()
		c.watch(now)
		events.events = append(events.events, Event{At: now.Sub(start).Seconds(), Label: label})
	}
	at := func(frac float64) bool {
		pause(ctx, time.Until(start.Add(time.Duration(frac*float64(cfg.Duration)))))
		return ctx.Err() == nil
	}
	victim := len(t.nodes) - 1
	if cfg.nodeFault() {
		wg.Go(func() {
			if !at(0.4) {
				return
			}
			name := t.kill(victim)
			mark("node " + name + " killed")
			if !at(0.7) {
				return
			}
			how, verb := strategy.Restart, "back"
			if cfg.fault(FaultReplace) && t.strat.Members() {
				how, verb = strategy.Replace, "replaces "+name
			}
			if err := t.restart(ctx, victim, how); err != nil {
				if ctx.Err() == nil { // not just the end of the run
					mark("node " + name + " failed to restart: " + oneLine(err.Error()))
				}
				return
			}
			t.nodes[victim].mu.Lock()
			now := t.nodes[victim].name
			t.nodes[victim].mu.Unlock()
			if verb == "back" {
				mark("node " + now + " back")
			} else {
				mark("node " + now + " " + verb)
			}
		})
	}
	if len(proxies) > 0 && cfg.fault(FaultStore) {
		wg.Go(func() {
			if !at(0.45) {
				return
			}
			for _, p := range proxies {
				p.Break()
			}
			mark("store down")
			at(0.6)
			for _, p := range proxies {
				p.Heal() // even when the run ends first
			}
			mark("store back")
		})
	}
	if cfg.fault(FaultEvict) {
		wg.Go(func() {
			if !at(0.4) {
				return
			}
			c.idle.Store(true)
			defer c.idle.Store(false) // even when the run ends first
			if !at(0.45) {
				return
			}
			what, ok, err := plan.Pressure(ctx)
			switch {
			case err != nil:
				mark("memory pressure failed: " + err.Error())
			case ok:
				mark("memory pressure: " + what)
			}
			at(0.6)
		})
	}
	return events
}

// oneLine shortens a multi-line error to its first and last lines.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	return strings.TrimSuffix(lines[0], ":") + " ... " + strings.TrimSpace(lines[len(lines)-1])
}

// progressLabel names a row on the progress line: "[3/9] redis".
type progressLabel struct {
	n, of       int
	name, front string
}

func (p progressLabel) String() string {
	s := fmt.Sprintf("[%d/%d] %s", p.n, p.of, p.name)
	if p.front != FrontSessionkit {
		s += " via " + p.front
	}
	return s
}

// progress draws the progress line until ctx ends.
func progress(ctx context.Context, cfg Config, name fmt.Stringer, d time.Duration, start time.Time, c *counters) {
	if cfg.Progress == nil || cfg.ProgressLines {
		<-ctx.Done()
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s: %d requests, %d errors, %d sessions lost\n",
				name, c.requests.Load(), c.errors.Load(), c.sessionsLost.Load())
		}
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		frac := min(1, float64(time.Since(start))/float64(d))
		const width = 30
		bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
		fmt.Fprintf(cfg.Progress, "\r\033[K%-24s [%s] %3.0f%%  %d requests, %d errors, %d sessions lost",
			name, bar, frac*100, c.requests.Load(), c.errors.Load(), c.sessionsLost.Load())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func summarize(s strategy.Strategy, c *counters, users []*user, storeCalls int64, elapsed time.Duration, events []Event) Result {
	r := Result{
		Strategy:     s.Name,
		What:         s.What,
		Seconds:      elapsed.Seconds(),
		Requests:     c.requests.Load(),
		Errors:       c.errors.Load(),
		Logins:       c.logins.Load(),
		SessionsLost: c.sessionsLost.Load(),
		Users:        len(users),
		UpdatesAcked: c.updatesAcked.Load(),
		UpdatesLost:  c.updatesLost.Load(),
		StaleProbes:  c.staleProbes.Load() + c.frontStale.Load(),
		StaleReads:   c.staleReads.Load() + c.frontStale.Load(),
		Events:       events,
	}
	for _, u := range users {
		if u.lostOne {
			r.UsersLost++
		}
	}
	if r.Requests > 0 {
		r.RPS = float64(r.Requests) / elapsed.Seconds()
		r.BytesPerRequest = float64(c.wireBytes.Load()) / float64(r.Requests)
		r.StoreCallsPerRequest = float64(storeCalls) / float64(r.Requests)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []time.Duration
	for i, l := range c.lat {
		all = append(all, l...)
		sortDurations(l)
		r.Timeline = append(r.Timeline, Point{
			At:       (time.Duration(i) * c.bucket).Seconds(),
			Requests: len(l),
			RPS:      float64(len(l)) / c.bucket.Seconds(),
			P50:      ms(quantile(l, 0.5)),
			P99:      ms(quantile(l, 0.99)),
			Errors:   c.errs[i],
			OK:       c.oks[i],
		})
	}
	sortDurations(all)
	r.P50, r.P95, r.P99 = ms(quantile(all, 0.5)), ms(quantile(all, 0.95)), ms(quantile(all, 0.99))
	sortDurations(c.lags)
	r.LogoutLag = Lag{Samples: len(c.lags), Late: c.lagLate}
	if len(c.lags) > 0 {
		r.LogoutLag.P50, r.LogoutLag.P99 = ms(quantile(c.lags, 0.5)), ms(quantile(c.lags, 0.99))
		r.LogoutLag.Max = ms(c.lags[len(c.lags)-1])
	}
	recoveries(&r, c)
	return r
}

// recoveries sets each event's recovery: its first success (from the
// counters' watches, in event order) and when the successes per second
// were back to 90% of their rate before the first event.
func recoveries(r *Result, c *counters) {
	if len(r.Events) == 0 || len(r.Timeline) == 0 {
		return
	}
	width := c.bucket.Seconds()
	window := max(1, int(1/width+0.5)) // slices averaged: 1 s
	rate := func(k int) float64 {
		var sum float64
		for _, p := range r.Timeline[k : k+window] {
			sum += float64(p.OK)
		}
		return sum / float64(window)
	}
	// The normal rate: the lower of the median 1 s rate before the first
	// fault (from the first half second on: connections warm up) and
	// over the run's last quarter (the last slice may be partial). The
	// users' carts grow through the run and the rate drifts down with
	// them; a shared machine's load moves it too.
	last := len(r.Timeline) - 1 - window
	median := func(from, to int) float64 {
		var rates []float64
		for k := max(0, from); k <= min(to, last); k++ {
			rates = append(rates, rate(k))
		}
		if len(rates) == 0 {
			return math.Inf(1)
		}
		slices.Sort(rates)
		return rates[len(rates)/2]
	}
	base := min(median(int(0.5/width), int(r.Events[0].At/width)-window),
		median(last-(last+window)/4, last))
	if math.IsInf(base, 1) {
		return
	}
	for i := range r.Events {
		e := &r.Events[i]
		if i < len(c.firstOK) && !c.firstOK[i].firstOK.IsZero() {
			v := c.firstOK[i].firstOK.Sub(c.firstOK[i].at).Seconds()
			e.FirstOK = &v
		}
		if base == 0 {
			continue
		}
		// The successes per second dip under 90% of the rate before,
		// within 2 s of the event and before the next one (a later dip
		// is not the fault's), and come back to it: when the first
		// window at 90% again starts; 0 if they did not dip, never if
		// they did not come back before the run ended. The last slice
		// may be partial: it is left out.
		from := int(e.At / width)
		until := min(last, from+int(2/width))
		if i+1 < len(r.Events) {
			until = min(until, int(r.Events[i+1].At/width))
		}
		dip := -1
		for k := from; k <= until && dip < 0; k++ {
			if rate(k) < 0.9*base {
				dip = k
			}
		}
		if dip < 0 {
			zero := 0.0
			e.Back90 = &zero
			continue
		}
		for k := dip + 1; k <= last; k++ {
			if rate(k) >= 0.9*base {
				v := max(0, float64(k)*width-e.At)
				e.Back90 = &v
				break
			}
		}
	}
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// quantile of sorted d, nearest rank; 0 for none.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Check returns the error Run would return for cfg's values, without
// running anything.
func Check(cfg Config) error {
	_, err := cfg.withDefaults()
	return err
}
