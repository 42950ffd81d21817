package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	FaultNode  = "node"  // kill one node at about 40%, bring it back at about 70%
	FaultStore = "store" // cut the shared store from about 45% to 60%
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
	DefaultSeed     = 1

	DefaultRedisURL    = strategy.DefaultRedisURL
	DefaultPostgresURL = strategy.DefaultPostgresURL
	DefaultMemcached   = strategy.DefaultMemcachedAddrs
)

// Config configures Run. The zero value of every field means its default.
type Config struct {
	// Strategies to measure, in order; default Strategies (all).
	Strategies []string
	// Nodes per topology; default DefaultNodes (at least 2).
	Nodes int
	// Users is the number of virtual users; default DefaultUsers.
	Users int
	// Duration of each strategy's run; default DefaultDuration.
	Duration time.Duration
	// Faults to inject: any of FaultNode, FaultStore and FaultEvict, or
	// "none". Default FaultNode.
	Faults []string
	// Seed of the users' choices; default DefaultSeed.
	Seed uint64
	// Migrate, if set, replaces the strategies' rows by migrations, one
	// row each: "FROM:TO" (token:redis, memory:redis, redis:postgres, ...)
	// runs the nodes on FROM and switches them to TO in the middle of the
	// run, as docs/migration.md says, without faults. Default none.
	Migrate []string

	// RedisURL and PostgresURL are the services of the redis and
	// postgres strategies (URLs as redisstore.ParseURL and pgstore.Open
	// take them); defaults DefaultRedisURL and DefaultPostgresURL.
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
	// Logger receives the nodes' and the balancer's logs; default
	// discard (a node killed on purpose makes noise).
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Strategies) == 0 {
		c.Strategies = Strategies
	}
	for i, s := range c.Strategies {
		if _, ok := strategy.Lookup(s); !ok {
			return c, fmt.Errorf("lab: unknown strategy %q (want some of %s)", s, strings.Join(Strategies, ", "))
		}
		if slices.Contains(c.Strategies[:i], s) {
			return c, fmt.Errorf("lab: strategy %q given twice", s)
		}
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
	if len(c.Faults) == 0 {
		c.Faults = []string{FaultNode}
	}
	for _, f := range c.Faults {
		switch {
		case f != FaultNode && f != FaultStore && f != FaultEvict && f != "none":
			return c, fmt.Errorf("lab: unknown fault %q (want %s, %s, %s or none)", f, FaultNode, FaultStore, FaultEvict)
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

// Report is the result of Run.
type Report struct {
	Started  time.Time     `json:"started"`
	Nodes    int           `json:"nodes"`
	Users    int           `json:"users"`
	Duration time.Duration `json:"duration_ns"`
	Faults   []string      `json:"faults"`
	Seed     uint64        `json:"seed"`
	CPUs     int           `json:"cpus"`
	Results  []Result      `json:"results"`
}

// Result is one strategy's measurements.
type Result struct {
	Strategy string `json:"strategy"`
	What     string `json:"what"`
	// Skipped is the reason the strategy did not run, or "".
	Skipped string `json:"skipped,omitempty"`

	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"requests_per_second"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`

	Logins       int64 `json:"logins"`
	SessionsLost int64 `json:"sessions_lost"`
	UpdatesAcked int64 `json:"updates_acknowledged"`
	UpdatesLost  int64 `json:"updates_lost"`

	// BytesPerRequest is session state on the wire: Cookie and Set-Cookie
	// headers, per request.
	BytesPerRequest float64 `json:"session_bytes_per_request"`
	// StoreCallsPerRequest is the nodes' store calls per request.
	StoreCallsPerRequest float64 `json:"store_calls_per_request"`

	Timeline []Point `json:"timeline"`
	Events   []Event `json:"events"`
}

// Point is one slice of the run's time line.
type Point struct {
	At       float64 `json:"t_s"` // seconds since the start, at the slice's start
	Requests int     `json:"requests"`
	RPS      float64 `json:"requests_per_second"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Errors   int     `json:"errors"`
}

// Event is a fault, at a time since the start.
type Event struct {
	At    float64 `json:"t_s"`
	Label string  `json:"label"`
}

// Run measures every strategy of cfg, one after another, and returns the
// report. A strategy that cannot run is in the report with Skipped set; an
// error is returned only for a bad Config or when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now().UTC(), Nodes: cfg.Nodes, Users: cfg.Users, Duration: cfg.Duration,
		Faults: cfg.Faults, Seed: cfg.Seed, CPUs: runtime.NumCPU()}
	if len(cfg.Migrate) > 0 {
		rep.Faults = []string{"none"}
		for _, m := range cfg.Migrate {
			from, to, _ := parseMigration(m) // checked by withDefaults
			res, err := runMigration(ctx, cfg, from, to)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if err != nil {
				res = Result{Strategy: m, What: "migration", Skipped: skipReason(err)}
			}
			rep.Results = append(rep.Results, res)
		}
		return rep, nil
	}
	for _, name := range cfg.Strategies {
		s, _ := strategy.Lookup(name)
		res, err := runStrategy(ctx, cfg, s)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if err != nil {
			res = Result{Strategy: s.Name, What: s.What, Skipped: skipReason(err)}
		}
		rep.Results = append(rep.Results, res)
	}
	if cfg.Progress != nil && !cfg.ProgressLines {
		fmt.Fprint(cfg.Progress, "\r\033[K")
	}
	return rep, nil
}

// startUsers starts cfg.Users virtual users on url, in goroutines added to
// wg, until ctx ends.
func startUsers(ctx context.Context, cfg Config, url string, tr *http.Transport, c *counters, wg *sync.WaitGroup) {
	for i := range cfg.Users {
		u := newUser(i, url, tr, c, cfg.Seed)
		wg.Go(func() { u.run(ctx) })
	}
}

// skipReason is the Result.Skipped of a run that failed with err.
func skipReason(err error) string {
	reason := err.Error()
	if !errors.Is(err, strategy.ErrSkip) {
		reason = "failed: " + reason
	}
	return strings.TrimPrefix(reason, strategy.ErrSkip.Error()+": ")
}

// slices of the time line per run
const timelineSlices = 60

func runStrategy(ctx context.Context, cfg Config, s strategy.Strategy) (Result, error) {
	dir, removeDir, err := scratchDir()
	if err != nil {
		return Result{}, err
	}
	defer removeDir()
	// The fault proxies in front of the shared store, made by the
	// testbed, closed after it.
	var proxies []*faultProxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	settings := strategy.Defaults()
	settings.RedisURL, settings.PostgresURL, settings.MemcachedAddrs = cfg.RedisURL, cfg.PostgresURL, cfg.Memcached
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tb, err := s.Testbed(setupCtx, strategy.TestbedConfig{
		Nodes: cfg.Nodes, Dir: dir, Settings: settings, Logger: cfg.Logger, FreeAddrs: freeAddrs,
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
	defer tb.Close()
	topo, err := startTopology(setupCtx, s, tb, cfg.Nodes, cfg.Logger)
	if err != nil {
		return Result{}, err
	}
	defer topo.close()

	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Users * 4, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	bucket := cfg.Duration / timelineSlices
	start := time.Now()
	c := newCounters(start, bucket, timelineSlices)
	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()

	var wg sync.WaitGroup
	startUsers(runCtx, cfg, topo.url, tr, c, &wg)
	events := schedule(runCtx, cfg, topo, tb, c, proxies, start, &wg)
	progress(runCtx, cfg, s.Name, start, c)
	wg.Wait()
	elapsed := time.Since(start)
	return summarize(s, c, topo, elapsed, *events), nil
}

// schedule runs the faults of cfg on their schedule, in goroutines added
// to wg, and returns the list they append their events to (complete once
// wg is done). The store fault cuts the proxies in front of the shared
// store, if the strategy has one; the evict fault has every third user
// step away at about 40%, puts the testbed's store under memory pressure
// at about 45%, if it can evict, and has the users come back when it is
// done (and at least at 60%).
func schedule(ctx context.Context, cfg Config, t *topology, tb *strategy.Testbed, c *counters,
	proxies []*faultProxy, start time.Time, wg *sync.WaitGroup) *[]Event {
	var mu sync.Mutex
	events := &[]Event{}
	mark := func(label string) {
		mu.Lock()
		*events = append(*events, Event{At: time.Since(start).Seconds(), Label: label})
		mu.Unlock()
	}
	at := func(frac float64) bool {
		pause(ctx, time.Until(start.Add(time.Duration(frac*float64(cfg.Duration)))))
		return ctx.Err() == nil
	}
	victim := len(t.nodes) - 1
	if cfg.fault(FaultNode) {
		wg.Go(func() {
			if !at(0.4) {
				return
			}
			t.killNode(victim)
			mark("node " + t.nodes[victim].name + " killed")
			if !at(0.7) {
				return
			}
			if err := t.start(context.WithoutCancel(ctx), victim); err != nil {
				mark("node " + t.nodes[victim].name + " failed to restart: " + err.Error())
				return
			}
			mark("node " + t.nodes[victim].name + " back")
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
			what, ok, err := tb.Pressure(ctx)
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

// progress draws the progress line until ctx ends.
func progress(ctx context.Context, cfg Config, name string, start time.Time, c *counters) {
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
		frac := min(1, float64(time.Since(start))/float64(cfg.Duration))
		const width = 30
		bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
		fmt.Fprintf(cfg.Progress, "\r\033[K%-9s [%s] %3.0f%%  %d requests, %d errors, %d sessions lost",
			name, bar, frac*100, c.requests.Load(), c.errors.Load(), c.sessionsLost.Load())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func summarize(s strategy.Strategy, c *counters, t *topology, elapsed time.Duration, events []Event) Result {
	r := Result{
		Strategy:     s.Name,
		What:         s.What,
		Requests:     c.requests.Load(),
		Errors:       c.errors.Load(),
		Logins:       c.logins.Load(),
		SessionsLost: c.sessionsLost.Load(),
		UpdatesAcked: c.updatesAcked.Load(),
		UpdatesLost:  c.updatesLost.Load(),
		Events:       events,
	}
	if r.Requests > 0 {
		r.RPS = float64(r.Requests) / elapsed.Seconds()
		r.BytesPerRequest = float64(c.wireBytes.Load()) / float64(r.Requests)
		r.StoreCallsPerRequest = float64(t.storeCalls.Load()) / float64(r.Requests)
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
		})
	}
	sortDurations(all)
	r.P50, r.P95, r.P99 = ms(quantile(all, 0.5)), ms(quantile(all, 0.95)), ms(quantile(all, 0.99))
	return r
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
