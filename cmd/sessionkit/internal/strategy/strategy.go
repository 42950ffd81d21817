package strategy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/nearcache"
)

// registry is every strategy, in the order serve lists them and the lab
// measures them. A new strategy is one entry here, defined in a file of
// its own.
var registry = []Strategy{memoryStrategy, tokenStrategy, redisStrategy, postgresStrategy, memcachedStrategy, olricStrategy, natsStrategy}

// All returns every strategy, in the registry's order.
func All() []Strategy { return slices.Clone(registry) }

// Names returns the names of every strategy, in the registry's order:
// memory, token, redis, postgres, memcached, olric, nats.
func Names() []string {
	names := make([]string, len(registry))
	for i, s := range registry {
		names[i] = s.Name
	}
	return names
}

// Lookup returns the strategy named name, and whether there is one.
func Lookup(name string) (Strategy, bool) {
	for _, s := range registry {
		if s.Name == name {
			return s, true
		}
	}
	return Strategy{}, false
}

// ErrSkip is wrapped by the error of a Testbed that cannot run on this
// machine because its service is not there (Redis, PostgreSQL or Memcached
// does not answer); the rest of the error says why.
var ErrSkip = errors.New("skipped")

// Strategy is one entry of the registry: one way of keeping sessions. The
// entries are defined in this package (see All); a Strategy made anywhere
// else opens nothing.
type Strategy struct {
	// Name is the strategy's name, as serve's --strategy and the lab's
	// --strategies take it.
	Name string
	// What describes the strategy in one line, for the lab's report.
	What string
	// Shared reports whether a session outlives the node that made it:
	// the failure policy of the balancer in front of the lab's nodes.
	Shared bool
	// Breaker reports whether a served node calls its store through a
	// circuit breaker (a store reached over the network): what serve's
	// --fail-open acts on.
	Breaker bool
	// Flags are serve's flags the strategy reads, in --help order. A flag
	// several strategies read (--redis, --cluster-addr) is in each one's
	// list; Uses says when it applies.
	Flags []*Flag

	uses    func(flag string, s *Settings) bool // nil: every flag of Flags, always
	mode    func(s *Settings) string            // nil: ""
	check   func(s *Settings) error             // nil: nothing to check
	open    func(ctx context.Context, n *Node) (*Sessions, error)
	testbed func(ctx context.Context, c *TestbedConfig) (*Testbed, error)
	plan    func(ctx context.Context, c *TestbedConfig) (*Plan, error)
}

// Uses reports whether the strategy, with the settings s, reads the flag
// named flag: --nats, say, only without --cluster-addr.
func (st Strategy) Uses(flag string, s *Settings) bool {
	if !slices.ContainsFunc(st.Flags, func(f *Flag) bool { return f.Name == flag }) {
		return false
	}
	return st.uses == nil || st.uses(flag, s)
}

// Describe names the strategy and the settings that decide which flags it
// reads, for messages: "--strategy nats with --cluster-addr", "--strategy
// token with --revocations memory", "--strategy redis".
func (st Strategy) Describe(s *Settings) string {
	d := "--strategy " + st.Name
	if st.mode != nil {
		d += st.mode(s)
	}
	return d
}

// Check returns what is wrong with the settings s for the strategy: a
// *FlagError for a flag's bad value, another error for a missing flag,
// or nil.
func (st Strategy) Check(s *Settings) error {
	if st.check == nil {
		return nil
	}
	return st.check(s)
}

// Open opens node n's sessions as serve runs them: it checks n.Settings
// (Check), then opens the store or token codec they describe, starting
// the embedded NATS node or Olric member first when --cluster-addr is
// set. The caller closes them (Sessions.Close) when the node stops.
func (st Strategy) Open(ctx context.Context, n Node) (*Sessions, error) {
	if st.open == nil {
		return nil, fmt.Errorf("strategy %q is not in the registry", st.Name)
	}
	if err := st.Check(&n.Settings); err != nil {
		return nil, err
	}
	return st.open(ctx, &n)
}

// Node is what one node opens its sessions with. Serve fills it from its
// flags; the lab from its run and the testbed's plan.
type Node struct {
	// Name names the node: the route tag of its session IDs, and the
	// server name of its embedded NATS node. Required.
	Name string
	// Settings are the strategy's settings: serve's flags (see Flags).
	// The zero value of a field is not the flag's default: start from
	// Defaults.
	Settings Settings
	// Lifetime is the sessions' absolute lifetime. Tokens live at most
	// the longer of it and session.DefaultRememberLifetime; default
	// session.DefaultLifetime.
	Lifetime time.Duration
	// Timeout, if positive, bounds each call to a store reached over the
	// network (Redis, PostgreSQL, Olric, NATS); default 0: the store's own
	// default, 2 s.
	Timeout time.Duration
	// Breaker configures the circuit breaker in front of the store of a
	// strategy with Breaker set; the zero value means the breaker
	// package's defaults. Serve sets OnStateChange (its metrics, a log
	// line), the lab a shorter OpenFor.
	Breaker breaker.Config
	// Wrap, if set, wraps every store the node calls (the token
	// strategy's revocation store too), inside the breaker: the lab counts
	// store calls with it. Default: none.
	Wrap func(store.Store) store.Store
	// Logger receives the logs of the stores, members and key ring, and
	// failures to close them; default slog.Default().
	Logger *slog.Logger
}

func (n *Node) logger() *slog.Logger {
	if n.Logger == nil {
		return slog.Default()
	}
	return n.Logger
}

func (n *Node) wrap(st store.Store) store.Store {
	if n.Wrap == nil {
		return st
	}
	return n.Wrap(st)
}

// Sessions is where one node keeps its sessions, as Open returns them:
// exactly one of Store and Tokens is set.
type Sessions struct {
	// Store is the node's store as its session Manager calls it: through
	// Node.Wrap and, for a strategy with Breaker set, a circuit breaker.
	// Nil for the token strategy.
	Store store.Store
	// Tokens is the token strategy's codec, or nil.
	Tokens session.TokenCodec
	// Memstore is the memory strategy's store itself, for its metrics
	// (sessionmetrics.WatchMemstore); nil for the other strategies.
	Memstore *memstore.Store
	// Scanner lists the live keys of the store itself (behind Store's
	// wrappers), for counting the sessions left in an old store (serve
	// --migrate-from); nil when the store cannot list them.
	Scanner interface {
		ScanKeys(ctx context.Context, fn func(key string) bool) error
	}
	// NearCache reports the node's near cache (--near-cache), for its
	// metrics (sessionmetrics.WatchNearCache); nil without one.
	NearCache nearcache.Reporter

	routes map[string]http.Handler // by exact path
	logger *slog.Logger
	shut   func(log *slog.Logger) // releases everything, reporting failures to log
	once   sync.Once
}

// Handler returns next with the node's own routes in front of it,
// answered outside the session middleware: the token strategy's JWKS at
// GET /.well-known/jwks.json, with --token-format jwt. With no such
// route it returns next.
func (s *Sessions) Handler(next http.Handler) http.Handler {
	if len(s.routes) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := s.routes[r.URL.Path]; ok {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Close releases the node's sessions in order: it stops their background
// work (key-ring reloads, revocation refreshes), closes the store, then
// shuts down the embedded NATS node or Olric member and removes a
// temporary data directory. Failures are logged to Node.Logger. Calls
// after the first, or after Kill, do nothing.
func (s *Sessions) Close() { s.once.Do(func() { s.shut(s.logger) }) }

// Kill drops what the node held, as a node that dies: a memory node's
// sessions are gone, its connections closed, its embedded member gone
// from the cluster (shut down, in this process, which hands over its
// data where a killed process would not). Nothing is logged. A node comes
// back by opening again: Open with the same Node, or Testbed.Open with
// the same index. Calls after the first, or after Close, do nothing.
func (s *Sessions) Kill() { s.once.Do(func() { s.shut(discard) }) }

var discard = slog.New(slog.DiscardHandler)

// stored returns the Sessions of node n kept in st, which the Manager
// calls through n.Wrap and, if guard, a circuit breaker. Closing them
// closes st, then calls stop, if set, which reports to the logger it is
// given. If the breaker cannot be made, st is closed, stop called, and
// the error returned.
func stored(n *Node, st store.Store, guard bool, stop func(log *slog.Logger)) (*Sessions, error) {
	shut := func(log *slog.Logger) {
		if err := st.Close(); err != nil {
			log.Warn("serve: closing the store", "err", err)
		}
		if stop != nil {
			stop(log)
		}
	}
	s := &Sessions{Store: n.wrap(st), logger: n.logger(), shut: shut}
	if sc, ok := st.(interface {
		ScanKeys(ctx context.Context, fn func(key string) bool) error
	}); ok {
		s.Scanner = sc
	}
	if r, ok := st.(nearcache.Reporter); ok {
		if _, on := r.NearCacheStats(); on {
			s.NearCache = r
		}
	}
	if guard {
		b, err := breaker.New(n.Breaker)
		if err != nil {
			shut(discard)
			return nil, err
		}
		s.Store = breaker.Wrap(s.Store, b)
	}
	return s, nil
}

// storedNear is stored with st behind a near cache (store/nearcache) when
// the node's settings ask for one (--near-cache): for the strategies whose
// store has a change feed that nearcache follows (nats, postgres with
// pgstore.Config.Notify); stored finds its nearcache.Reporter. The
// Scanner, if st has one, scans st itself.
func storedNear(n *Node, st store.Store, guard bool, stop func(log *slog.Logger)) (*Sessions, error) {
	if !n.Settings.NearCache {
		return stored(n, st, guard, stop)
	}
	nc, err := nearcache.Wrap(st, nearcache.Config{})
	if err != nil {
		st.Close()
		if stop != nil {
			stop(discard)
		}
		return nil, err
	}
	s, err := stored(n, nc, guard, stop)
	if err != nil {
		return nil, err
	}
	if sc, ok := st.(interface {
		ScanKeys(ctx context.Context, fn func(key string) bool) error
	}); ok && s.Scanner == nil {
		s.Scanner = sc
	}
	return s, nil
}

// TestbedConfig is what the lab gives a strategy to run its nodes on this
// machine. Serve, which runs one node, needs none of it.
type TestbedConfig struct {
	// Nodes is how many nodes the testbed runs; at least 1.
	Nodes int
	// Dir is a scratch directory for the nodes' files (the JetStream
	// directories of embedded NATS nodes), which the caller removes after
	// Close. Required by the nats strategy.
	Dir string
	// Settings are what the nodes' settings start from: start from
	// Defaults and set the shared services' addresses (RedisURL,
	// PostgresURL). A testbed chooses the rest itself: ports, peers,
	// directories.
	Settings Settings
	// Logger receives the logs of what the nodes share (the embedded
	// members); default slog.Default().
	Logger *slog.Logger
	// FreeAddrs returns n loopback host:port addresses whose ports were
	// free a moment ago, for the listeners of an embedded cluster.
	// Required by the olric and nats strategies.
	FreeAddrs func(n int) ([]string, error)
	// Proxy, if set, is given the host:port of a shared store's server
	// (Redis, PostgreSQL) while the testbed is made, and returns the
	// address the nodes dial instead: the lab puts its fault proxy there.
	// Default: the nodes dial the server.
	Proxy func(addr string) (string, error)
	// MemoryPressure asks for a testbed whose store can be made to evict
	// sessions, with Testbed.Pressure: the lab's evict fault. The
	// memcached strategy then runs on a small Memcached of its own
	// (FreeAddrs is required, and the memcached program); the others
	// ignore it. Default false.
	MemoryPressure bool
}

// Testbed is one strategy's nodes on this machine, and what they share,
// as the lab runs them. Make one with Strategy.Testbed.
type Testbed struct {
	nodes    int
	open     func(ctx context.Context, i int, n *Node) (*Sessions, error)
	close    func()                                    // nil: nothing shared
	pressure func(ctx context.Context) (string, error) // nil: the store does not evict
}

// Pressure puts the testbed's store under memory pressure until it evicts
// (the memcached strategy, made with TestbedConfig.MemoryPressure, fills
// its Memcached with items the size of sessions), and says what it did.
// It returns ok false, doing nothing, for a store that does not evict.
func (t *Testbed) Pressure(ctx context.Context) (what string, ok bool, err error) {
	if t.pressure == nil {
		return "", false, nil
	}
	what, err = t.pressure(ctx)
	return what, true, err
}

// Testbed prepares c.Nodes nodes of the strategy on this machine and
// what they share: it checks that a shared store's server answers (an
// error wrapping ErrSkip if not), and starts the members of an embedded
// cluster so that the first node's store finds a quorum. Release it with
// Close.
func (st Strategy) Testbed(ctx context.Context, c TestbedConfig) (*Testbed, error) {
	if st.testbed == nil {
		return nil, fmt.Errorf("strategy %q is not in the registry", st.Name)
	}
	if c.Nodes < 1 {
		return nil, fmt.Errorf("strategy: a testbed of %d nodes; want at least 1", c.Nodes)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	t, err := st.testbed(ctx, &c)
	if err != nil {
		return nil, err
	}
	t.nodes = c.Nodes
	return t, nil
}

// Open opens the sessions of node i (0 <= i < TestbedConfig.Nodes): at
// the start, and again after their Kill, which restarts the node (an
// embedded NATS node on its directory, an Olric member on new ports). n
// names the node and gives what the lab sets of Node (Lifetime, Timeout,
// Breaker, Wrap, Logger); the testbed sets its Settings.
func (t *Testbed) Open(ctx context.Context, i int, n Node) (*Sessions, error) {
	if i < 0 || i >= t.nodes {
		return nil, fmt.Errorf("strategy: testbed node %d; want 0 to %d", i, t.nodes-1)
	}
	return t.open(ctx, i, &n)
}

// Close releases what the nodes share. Close or kill every node's
// sessions first.
func (t *Testbed) Close() {
	if t.close != nil {
		t.close()
	}
}

// independent is the testbed of a strategy whose nodes share nothing but
// the services named in the settings: each node opens as serve opens it.
func independent(open func(context.Context, *Node) (*Sessions, error)) func(context.Context, *TestbedConfig) (*Testbed, error) {
	return func(_ context.Context, c *TestbedConfig) (*Testbed, error) {
		return &Testbed{open: func(ctx context.Context, _ int, n *Node) (*Sessions, error) {
			n.Settings = c.Settings
			return open(ctx, n)
		}}, nil
	}
}

// dialAddr returns the address the nodes of a testbed dial to reach a
// shared store's server at addr: c.Proxy's, if set.
func (c *TestbedConfig) dialAddr(addr string) (string, error) {
	if c.Proxy == nil {
		return addr, nil
	}
	return c.Proxy(addr)
}

// reachable returns nil if something accepts TCP connections at addr, and
// an error wrapping ErrSkip if not.
func reachable(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: nothing answers at %s (%v)", ErrSkip, addr, err)
	}
	c.Close()
	return nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(list string) []string {
	var out []string
	for p := range strings.SplitSeq(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// nodeName is the name of a testbed's node i: n1, n2, ...
func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

// others returns addrs without its i-th element: the peers of node i.
func others(addrs []string, i int) []string {
	var out []string
	for j, a := range addrs {
		if j != i {
			out = append(out, a)
		}
	}
	return out
}
