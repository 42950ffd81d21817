package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/natsstore"
	"github.com/sessionkit/sessionkit/store/olricstore"
	"github.com/sessionkit/sessionkit/store/pgstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
	"github.com/sessionkit/sessionkit/token"
)

// Strategies are the names Config.Strategies accepts, in the order Run
// measures them by default.
var Strategies = func() []string {
	var names []string
	for _, s := range allStrategies() {
		names = append(names, s.name)
	}
	return names
}()

// strategy is one way of keeping sessions, as the lab runs it.
type strategy struct {
	name string
	// shared says whether a session survives its node's death (the
	// balancer's failure policy).
	shared bool
	// what describes it in one line for the report.
	what string
	// setup prepares what the nodes share. An error whose chain holds
	// errSkip skips the strategy with that reason.
	setup func(ctx context.Context, e *env) (backend, error)
}

// errSkip marks a reason to skip a strategy (its service is not there).
var errSkip = errors.New("skipped")

// env is what strategies get from the run.
type env struct {
	cfg   Config
	nodes int
	dir   string // a scratch directory, removed after the strategy
	log   *slog.Logger
}

// nodeSessions is where one node keeps its sessions: a store, or (the
// token strategy) a token codec.
type nodeSessions struct {
	store  store.Store
	tokens session.TokenCodec
}

// backend makes the session keeping of the nodes of one topology.
type backend interface {
	// open returns node i's sessions, at the start and after a restart;
	// wrap must be applied to every store the node calls (it counts the
	// calls). kill is called when the node dies abruptly, and drops
	// whatever the node held.
	open(ctx context.Context, i int, wrap func(store.Store) store.Store) (ns nodeSessions, kill func(), err error)
	// proxy is the fault proxy in front of the shared store, or nil when
	// the strategy has none.
	proxy() *faultProxy
	// close releases what setup made.
	close()
}

func strategyByName(name string) (strategy, bool) {
	for _, s := range allStrategies() {
		if s.name == name {
			return s, true
		}
	}
	return strategy{}, false
}

func allStrategies() []strategy {
	return []strategy{
		{name: "memory", what: "sticky sessions: each node's memstore, the balancer routes by route tag", setup: setupMemory},
		{name: "token", shared: true, what: "stateless: the session sealed in its cookie (XChaCha20-Poly1305), logouts in a shared revocation list", setup: setupToken},
		{name: "redis", shared: true, what: "centralized: redisstore on one Redis, behind a circuit breaker", setup: setupRedis},
		{name: "postgres", shared: true, what: "centralized: pgstore on one PostgreSQL, behind a circuit breaker", setup: setupPostgres},
		{name: "olric", shared: true, what: "distributed cache: an embedded Olric member in each app node, 2 copies of each session", setup: setupOlric},
		{name: "nats", shared: true, what: "distributed cache: an embedded NATS node in each app node, bucket with 3 replicas", setup: setupNATS},
	}
}

// ---- memory ----

type memBackend struct{}

func setupMemory(context.Context, *env) (backend, error) { return memBackend{}, nil }

func (memBackend) open(_ context.Context, _ int, wrap func(store.Store) store.Store) (nodeSessions, func(), error) {
	ms, err := memstore.New(memstore.Config{})
	if err != nil {
		return nodeSessions{}, nil, err
	}
	return nodeSessions{store: wrap(ms)}, func() { ms.Close() }, nil
}

// ---- tokens ----

// tokenBackend gives every node the same key ring and one shared
// revocation store (a memstore in this process, standing for the Redis
// the nodes of a real deployment share).
type tokenBackend struct {
	ring   *token.Ring
	shared store.Store
	log    *slog.Logger
}

func setupToken(_ context.Context, e *env) (backend, error) {
	key, err := token.NewKey(token.XC20P, time.Now())
	if err != nil {
		return nil, err
	}
	ring, err := token.NewRing(key)
	if err != nil {
		return nil, err
	}
	shared, err := memstore.New(memstore.Config{})
	if err != nil {
		return nil, err
	}
	return &tokenBackend{ring: ring, shared: shared, log: e.log}, nil
}

func (b *tokenBackend) open(ctx context.Context, _ int, wrap func(store.Store) store.Store) (nodeSessions, func(), error) {
	format, err := token.NewSealed(token.Config{Ring: b.ring})
	if err != nil {
		return nodeSessions{}, nil, err
	}
	rev, err := token.NewRevocations(ctx, token.RevocationConfig{Store: wrap(b.shared), Logger: b.log})
	if err != nil {
		return nodeSessions{}, nil, err
	}
	codec, err := token.NewCodec(format, rev)
	if err != nil {
		rev.Close()
		return nodeSessions{}, nil, err
	}
	return nodeSessions{tokens: codec}, func() { rev.Close() }, nil
}
func (b *tokenBackend) proxy() *faultProxy { return nil }
func (b *tokenBackend) close()             { b.shared.Close() }
func (memBackend) proxy() *faultProxy      { return nil }
func (memBackend) close()                  {}

// ---- shared stores behind the fault proxy ----

// sharedBackend is a store server every node reaches through one fault
// proxy; dial opens a node's store on the proxy's address.
type sharedBackend struct {
	p    *faultProxy
	dial func(ctx context.Context, addr string) (store.Store, error)
}

func (b *sharedBackend) open(ctx context.Context, _ int, wrap func(store.Store) store.Store) (nodeSessions, func(), error) {
	st, err := b.dial(ctx, b.p.Addr())
	if err != nil {
		return nodeSessions{}, nil, err
	}
	br, err := breaker.New(breaker.Config{OpenFor: 500 * time.Millisecond})
	if err != nil {
		st.Close()
		return nodeSessions{}, nil, err
	}
	return nodeSessions{store: breaker.Wrap(wrap(st), br)}, func() { st.Close() }, nil
}
func (b *sharedBackend) proxy() *faultProxy { return b.p }
func (b *sharedBackend) close()             { b.p.Close() }

// reachable returns nil if something accepts TCP connections at addr.
func reachable(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: nothing answers at %s (%v)", errSkip, addr, err)
	}
	c.Close()
	return nil
}

func setupRedis(ctx context.Context, e *env) (backend, error) {
	rc, err := redisstore.ParseURL(e.cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSkip, err)
	}
	if len(rc.Addrs) != 1 || rc.SentinelMaster != "" {
		return nil, fmt.Errorf("%w: the lab runs on one standalone Redis (it cuts the connections to it), not %s", errSkip, e.cfg.RedisURL)
	}
	if err := reachable(ctx, rc.Addrs[0]); err != nil {
		return nil, err
	}
	p, err := newFaultProxy(rc.Addrs[0])
	if err != nil {
		return nil, err
	}
	// Keys expire with the sessions (the lab's idle timeout), so a run
	// leaves nothing behind for long.
	rc.KeyPrefix = fmt.Sprintf("sessionkit-lab:%d:", time.Now().UnixNano())
	rc.Timeout = time.Second
	return &sharedBackend{p: p, dial: func(ctx context.Context, addr string) (store.Store, error) {
		c := rc
		c.Addrs = []string{addr}
		return redisstore.New(ctx, c)
	}}, nil
}

func setupPostgres(ctx context.Context, e *env) (backend, error) {
	u, err := url.Parse(e.cfg.PostgresURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: PostgreSQL URL %q is not a URL with a host", errSkip, e.cfg.PostgresURL)
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
	probe, err := pgstore.OpenMigrated(ctx, e.cfg.PostgresURL, pgstore.Config{Table: table, CleanupInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("%w: PostgreSQL at %s: %v", errSkip, addr, err)
	}
	probe.Close()
	p, err := newFaultProxy(addr)
	if err != nil {
		return nil, err
	}
	return &sharedBackend{p: p, dial: func(ctx context.Context, addr string) (store.Store, error) {
		v := *u
		v.Host = addr
		return pgstore.Open(ctx, v.String(), pgstore.Config{Table: table, Timeout: time.Second})
	}}, nil
}

// ---- NATS, embedded in the nodes ----

// natsBackend runs one NATS node inside each app node: the distributed
// cache. A node's death kills its NATS node too.
type natsBackend struct {
	e       *env
	routes  []string
	clients []string
	nodes   []*natsstore.Node
}

func setupNATS(ctx context.Context, e *env) (backend, error) {
	b := &natsBackend{e: e, nodes: make([]*natsstore.Node, e.nodes)}
	addrs, err := freeAddrs(2 * e.nodes)
	if err != nil {
		return nil, err
	}
	b.routes, b.clients = addrs[:e.nodes], addrs[e.nodes:]
	// Start every NATS node before the first store: the bucket needs a
	// quorum.
	for i := range e.nodes {
		if err := b.startNode(i); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *natsBackend) startNode(i int) error {
	var peers []string
	for j, r := range b.routes {
		if j != i {
			peers = append(peers, r)
		}
	}
	n, err := natsstore.StartNode(natsstore.NodeConfig{
		Name:        fmt.Sprintf("n%d", i+1),
		Dir:         filepath.Join(b.e.dir, fmt.Sprintf("nats-n%d", i+1)),
		ClientAddr:  b.clients[i],
		ClusterAddr: b.routes[i],
		Peers:       peers,
	})
	if err != nil {
		return err
	}
	b.nodes[i] = n
	return nil
}

func (b *natsBackend) open(ctx context.Context, i int, wrap func(store.Store) store.Store) (nodeSessions, func(), error) {
	if b.nodes[i] == nil { // a restart: the node comes back on its disk
		if err := b.startNode(i); err != nil {
			return nodeSessions{}, nil, err
		}
	}
	st, err := natsstore.New(ctx, natsstore.Config{URL: b.nodes[i].ClientURL(), Replicas: min(3, b.e.nodes),
		Timeout: time.Second, Logger: b.e.log})
	if err != nil {
		return nodeSessions{}, nil, err
	}
	return nodeSessions{store: wrap(st)}, func() {
		st.Close()
		b.nodes[i].Shutdown()
		b.nodes[i] = nil
	}, nil
}

func (b *natsBackend) proxy() *faultProxy { return nil }

func (b *natsBackend) close() {
	for i, n := range b.nodes {
		if n != nil {
			n.Shutdown()
			b.nodes[i] = nil
		}
	}
}

// ---- Olric, embedded in the nodes ----

// olricBackend runs one Olric member inside each app node: the other
// distributed cache. A node's death takes its member with it.
type olricBackend struct {
	e       *env
	addrs   []string // Olric listeners
	gossip  []string // memberlist listeners
	members []*olricstore.Member
}

func setupOlric(_ context.Context, e *env) (backend, error) {
	b := &olricBackend{e: e, members: make([]*olricstore.Member, e.nodes)}
	addrs, err := freeAddrs(2 * e.nodes)
	if err != nil {
		return nil, err
	}
	b.addrs, b.gossip = addrs[:e.nodes], addrs[e.nodes:]
	// One after another: Olric tracks start-ups process-wide.
	for i := range e.nodes {
		if err := b.startMember(i); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *olricBackend) startMember(i int) error {
	var peers []string
	for j, g := range b.gossip {
		if j != i {
			peers = append(peers, g)
		}
	}
	m, err := olricstore.StartMember(olricstore.MemberConfig{
		Addr: b.addrs[i], ClusterAddr: b.gossip[i], Peers: peers,
		Network: "local", // one host: a lost member is noticed in about 4 s
		Logger:  b.e.log,
	})
	if err != nil {
		return err
	}
	b.members[i] = m
	return nil
}

func (b *olricBackend) open(ctx context.Context, i int, wrap func(store.Store) store.Store) (nodeSessions, func(), error) {
	if b.members[i] == nil {
		// A restart: a new member, on new addresses (memberlist refuses a
		// member that comes back under a name it still remembers as
		// gone, for a while).
		addrs, err := freeAddrs(2)
		if err != nil {
			return nodeSessions{}, nil, err
		}
		b.addrs[i], b.gossip[i] = addrs[0], addrs[1]
		if err := b.startMember(i); err != nil {
			return nodeSessions{}, nil, err
		}
	}
	st, err := olricstore.New(ctx, olricstore.Config{Member: b.members[i], Timeout: time.Second, Logger: b.e.log})
	if err != nil {
		return nodeSessions{}, nil, err
	}
	return nodeSessions{store: wrap(st)}, func() {
		st.Close()
		b.stopMember(i)
	}, nil
}

func (b *olricBackend) stopMember(i int) {
	if b.members[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.members[i].Shutdown(ctx)
	b.members[i] = nil
}

func (b *olricBackend) proxy() *faultProxy { return nil }

func (b *olricBackend) close() {
	for i := range b.members {
		b.stopMember(i)
	}
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago.
func freeAddrs(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// scratchDir makes a directory for one strategy's files.
func scratchDir() (string, func(), error) {
	dir, err := os.MkdirTemp("", "sessionkit-lab-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
