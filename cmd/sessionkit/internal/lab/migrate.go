package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit/balancer"
	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/migrate"
)

// switchAt is when a migration run (Config.Migrate) switches strategy, as
// a share of the run.
const switchAt = 0.5

// parseMigration returns the strategies of a Config.Migrate entry,
// "FROM:TO".
func parseMigration(m string) (from, to strategy.Strategy, err error) {
	f, t, ok := strings.Cut(m, ":")
	if !ok {
		return from, to, fmt.Errorf("lab: migration %q: want FROM:TO, such as token:redis", m)
	}
	var okF, okT bool
	from, okF = strategy.Lookup(f)
	to, okT = strategy.Lookup(t)
	switch {
	case !okF || !okT:
		return from, to, fmt.Errorf("lab: migration %q: unknown strategy (want some of %s)", m, strings.Join(Strategies, ", "))
	case f == t:
		return from, to, fmt.Errorf("lab: migration %q: the same strategy twice", m)
	case t == "memory":
		return from, to, fmt.Errorf("lab: migration %q: memory keeps no shared store to move sessions into", m)
	}
	return from, to, nil
}

// runMigration measures a switch from one strategy to another in the
// middle of the run, under the same load: the nodes start on from; at
// switchAt they move to to as docs/migration.md says. From memory, new
// nodes on to join the balancer and the memory nodes drain (their users
// keep them until the run ends); from tokens to a store or back, every
// node switches at once and takes the other kind's sessions over
// (session.Config.Previous); from a store to another, every node wraps
// the two with store/migrate.
func runMigration(ctx context.Context, cfg Config, from, to strategy.Strategy) (Result, error) {
	settings := strategy.Defaults()
	settings.RedisURL, settings.PostgresURL, settings.MemcachedAddrs = cfg.RedisURL, cfg.PostgresURL, cfg.Memcached
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var tbs [2]*strategy.Testbed
	for i, s := range []strategy.Strategy{from, to} {
		dir, removeDir, err := scratchDir()
		if err != nil {
			return Result{}, err
		}
		defer removeDir()
		tb, err := s.Testbed(setupCtx, strategy.TestbedConfig{
			Nodes: cfg.Nodes, Dir: dir, Settings: settings, Logger: cfg.Logger, FreeAddrs: freeAddrs,
		})
		if err != nil {
			return Result{}, err
		}
		defer tb.Close()
		tbs[i] = tb
	}
	topo, err := startTopology(setupCtx, from, tbs[0], cfg.Nodes, cfg.Logger)
	if err != nil {
		return Result{}, err
	}
	defer topo.close()

	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Users * 4, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	start := time.Now()
	bucket := bucketOf(cfg.Duration)
	c := newCounters(start, bucket, int((cfg.Duration+bucket-1)/bucket))
	c.oneAtATime = true
	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	var wg sync.WaitGroup
	users := startUsers(runCtx, cfg, topo.url, tr, c, &wg)
	var events []Event
	var closers []func()
	defer func() {
		for _, f := range closers {
			f()
		}
	}()
	wg.Go(func() {
		pause(runCtx, time.Until(start.Add(time.Duration(switchAt*float64(cfg.Duration)))))
		if runCtx.Err() != nil {
			return
		}
		label, cl, err := topo.migrate(context.WithoutCancel(runCtx), from, to, tbs[0], tbs[1])
		closers = cl
		if err != nil {
			label = "switch failed: " + err.Error()
		}
		events = append(events, Event{At: time.Since(start).Seconds(), Label: label})
	})
	name := from.Name + ":" + to.Name
	progress(runCtx, cfg, progressLabel{n: 1, of: 1, name: name, front: FrontSessionkit}, cfg.Duration, start, c)
	wg.Wait()
	res := summarize(to, c, users, topo.storeCalls.Load(), time.Since(start), events)
	res.Front = FrontSessionkit
	res.Strategy = name
	res.What = fmt.Sprintf("%s, switched to %s at %.0f%% of the run (docs/migration.md)", from.What, to.Name, switchAt*100)
	return res, nil
}

// migrate switches t's nodes from the strategy from to to, and returns the
// event's label and what to close when the run ends.
func (t *topology) migrate(ctx context.Context, from, to strategy.Strategy, oldTB, newTB *strategy.Testbed) (string, []func(), error) {
	var closers []func()
	if from.Name == "memory" {
		// New nodes on the shared store; the memory nodes drain, keeping
		// their users until the run is over.
		n := len(t.nodes)
		addrs, err := freeAddrs(n)
		if err != nil {
			return "", closers, err
		}
		for i := range n {
			nd := &labNode{name: fmt.Sprintf("n%d", n+i+1), addr: addrs[i]}
			t.nodes = append(t.nodes, nd)
			sess, err := newTB.Open(ctx, i, t.node(n+i))
			if err != nil {
				return "", closers, err
			}
			closers = append(closers, sess.Kill)
			app, err := t.app(nd, to.Name, sess.Store, sess.Tokens, nil)
			if err != nil {
				return "", closers, err
			}
			if err := t.serve(nd, sess.Handler(app)); err != nil {
				return "", closers, err
			}
			if err := t.bal.AddNode(balancer.Backend{Name: nd.name, URL: "http://" + nd.addr}); err != nil {
				return "", closers, err
			}
		}
		for _, nd := range t.nodes[:n] {
			if err := t.bal.Drain(nd.name, time.Now().Add(time.Hour)); err != nil {
				return "", closers, err
			}
		}
		return fmt.Sprintf("%d %s nodes added, the memory nodes draining", n, to.Name), closers, nil
	}
	// Every node at once: open its sessions of both strategies, then swap
	// the apps, so that no instance of one kind is left beside the other
	// (docs/migration.md).
	apps := make([]http.Handler, len(t.nodes))
	for i, nd := range t.nodes {
		old, err := oldTB.Open(ctx, i, t.node(i))
		if err != nil {
			return "", closers, err
		}
		closers = append(closers, old.Kill)
		nu, err := newTB.Open(ctx, i, t.node(i))
		if err != nil {
			return "", closers, err
		}
		closers = append(closers, nu.Kill)
		var st store.Store = nu.Store
		var prev *session.Previous
		switch {
		case old.Tokens != nil:
			prev = &session.Previous{Tokens: old.Tokens}
		case nu.Tokens != nil:
			prev = &session.Previous{Store: old.Store}
		default:
			st, _ = migrate.New(old.Store, nu.Store) // never closed: the sessions' Kill closes both
		}
		app, err := t.app(nd, to.Name, st, nu.Tokens, prev)
		if err != nil {
			return "", closers, err
		}
		apps[i] = nu.Handler(app)
	}
	for i, nd := range t.nodes {
		nd.app.Store(&apps[i])
	}
	return fmt.Sprintf("every node switched to %s", to.Name), closers, nil
}

// serve starts serving h on nd's address.
func (t *topology) serve(nd *labNode, h http.Handler) error {
	ln, err := net.Listen("tcp", nd.addr)
	if err != nil {
		return err
	}
	nd.app.Store(&h)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*nd.app.Load()).ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	nd.mu.Lock()
	nd.srv = srv
	nd.mu.Unlock()
	return nil
}
