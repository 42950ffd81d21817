package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit/balancer"
	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
)

// The in-process nodes' store settings (the migration runs).
const (
	// storeTimeout bounds each call to a store reached over the network,
	// and breakerOpenFor is how long a node's circuit breaker stays open.
	storeTimeout   = time.Second
	breakerOpenFor = 500 * time.Millisecond
)

// topology is a balancer in front of n reference-app nodes sharing one
// strategy, all on loopback and all in this process: the in-process mode,
// which only the migration runs (Config.Migrate) use, as they switch
// every node's strategy in the middle of the run without a restart.
type topology struct {
	strat strategy.Strategy
	tb    *strategy.Testbed
	log   *slog.Logger

	// storeCalls counts the nodes' calls to their stores.
	storeCalls atomic.Int64

	nodes []*labNode
	bal   *balancer.Balancer
	front *http.Server
	url   string // the balancer's base URL
}

// labNode is one reference-app node.
type labNode struct {
	name string
	addr string // fixed for the run, so that a restart comes back on it

	mu   sync.Mutex
	srv  *http.Server
	kill func() // drops the node's sessions
	// app is the handler srv serves, swapped when the node switches
	// strategy (lab --migrate) without dropping a connection.
	app atomic.Pointer[http.Handler]
}

func startTopology(ctx context.Context, s strategy.Strategy, tb *strategy.Testbed, n int, log *slog.Logger) (*topology, error) {
	t := &topology{strat: s, tb: tb, log: log}
	addrs, err := freeAddrs(n + 1)
	if err != nil {
		return nil, err
	}
	var backends []balancer.Backend
	for i := range n {
		nd := &labNode{name: fmt.Sprintf("n%d", i+1), addr: addrs[i]}
		t.nodes = append(t.nodes, nd)
		backends = append(backends, balancer.Backend{Name: nd.name, URL: "http://" + nd.addr})
	}
	for i := range t.nodes {
		if err := t.start(ctx, i); err != nil {
			t.close()
			return nil, fmt.Errorf("starting node n%d: %w", i+1, err)
		}
	}
	t.bal, err = balancer.New(balancer.Config{
		Backends:       backends,
		SharedSessions: s.Shared,
		// Notice a dead node within a few hundred milliseconds: the run
		// lasts seconds.
		Health:   balancer.HealthCheck{Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond, Rise: 1, Fall: 1},
		EjectFor: time.Second,
		Logger:   log,
	})
	if err != nil {
		t.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", addrs[n])
	if err != nil {
		t.close()
		return nil, err
	}
	t.front = &http.Server{Handler: t.bal, ReadHeaderTimeout: 5 * time.Second}
	go t.front.Serve(ln)
	t.url = "http://" + ln.Addr().String()
	return t, nil
}

// node returns the strategy.Node that node i opens its sessions with.
func (t *topology) node(i int) strategy.Node {
	return strategy.Node{
		Name:     t.nodes[i].name,
		Lifetime: lifetime,
		Timeout:  storeTimeout,
		Breaker:  breaker.Config{OpenFor: breakerOpenFor},
		Logger:   t.log,
		Wrap: func(st store.Store) store.Store {
			return store.Intercept(st, func(ctx context.Context, _ string, call func(context.Context) error) error {
				t.storeCalls.Add(1)
				return call(ctx)
			})
		},
	}
}

// app returns the reference app of node nd on st or tokens, taking over
// the sessions of prev if set.
func (t *topology) app(nd *labNode, strat string, st store.Store, tokens session.TokenCodec, prev *session.Previous) (http.Handler, error) {
	m, err := session.New(session.Config{
		Store:  st,
		Tokens: tokens,
		// The virtual users speak plain HTTP on loopback, and Go's cookie
		// jar sends Secure cookies over HTTPS only.
		Transport:    session.Cookie{Insecure: true},
		Route:        nd.name,
		IdleTimeout:  idleTimeout,
		Lifetime:     lifetime,
		ErrorHandler: refapp.NewErrorHandler(t.log),
		Logger:       t.log,
		Previous:     prev,
	})
	if err != nil {
		return nil, err
	}
	return refapp.New(refapp.Config{Node: nd.name, Strategy: strat, Manager: m, Logger: t.log})
}

// start starts (or restarts) node i: a fresh Manager on the sessions the
// testbed opens for it.
func (t *topology) start(ctx context.Context, i int) error {
	nd := t.nodes[i]
	sess, err := t.tb.Open(ctx, i, t.node(i))
	if err != nil {
		return err
	}
	kill := sess.Kill
	app, err := t.app(nd, t.strat.Name, sess.Store, sess.Tokens, nil)
	if err != nil {
		kill()
		return err
	}
	app = sess.Handler(app)
	nd.app.Store(&app)
	var ln net.Listener
	// The port was ours a moment ago (or until the kill); another socket
	// may hold it briefly.
	for attempt := 0; ; attempt++ {
		if ln, err = net.Listen("tcp", nd.addr); err == nil || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		kill()
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*nd.app.Load()).ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	nd.mu.Lock()
	nd.srv, nd.kill = srv, kill
	nd.mu.Unlock()
	return nil
}

// killNode kills node i abruptly: its listener and every connection
// closed at once, its sessions dropped (Sessions.Kill: for the memory
// strategy, every session in it; for nats and olric, its member).
func (t *topology) killNode(i int) {
	nd := t.nodes[i]
	nd.mu.Lock()
	srv, kill := nd.srv, nd.kill
	nd.srv, nd.kill = nil, nil
	nd.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	if kill != nil {
		kill()
	}
}

func (t *topology) close() {
	if t.front != nil {
		t.front.Close()
	}
	if t.bal != nil {
		t.bal.Close()
	}
	for i := range t.nodes {
		t.killNode(i)
	}
}
