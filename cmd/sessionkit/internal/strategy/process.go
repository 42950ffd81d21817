package strategy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit/store/pgstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
	"github.com/sessionkit/sessionkit/token"
)

// Start says why a node process of a Plan starts.
type Start int

const (
	// First is the node's first start.
	First Start = iota
	// Restart is a new process in a dead node's place, under its name and
	// on its data directory, where the strategy keeps one.
	Restart
	// Replace is a new member, under a new name, in a dead node's place:
	// for the strategies whose nodes are members of an embedded cluster
	// (see Strategy.Members); for the others it is a Restart.
	Replace
)

// Plan is one strategy's nodes as `sessionkit serve` processes on this
// machine, as the lab runs them: what they share (a store server behind
// the lab's fault proxy, a key-ring file, the cluster addresses) and the
// flags each node's serve process takes. Make one with Strategy.Plan; it
// starts no node itself. Its methods are safe for concurrent use.
type Plan struct {
	st       Strategy
	mu       sync.Mutex
	settings func(i int, how Start, name string) (Settings, error)
	close    func()                                    // nil: nothing shared
	pressure func(ctx context.Context) (string, error) // nil: the store does not evict
}

// Plan prepares c.Nodes serve processes of the strategy and what they
// share: it checks that a shared store's server answers (an error
// wrapping ErrSkip if not), writes a token key ring into c.Dir, and picks
// the cluster addresses of an embedded cluster. c.Logger is unused.
// Release it with Close once every node process has ended.
func (st Strategy) Plan(ctx context.Context, c TestbedConfig) (*Plan, error) {
	if st.plan == nil {
		return nil, fmt.Errorf("strategy %q is not in the registry", st.Name)
	}
	if c.Nodes < 1 {
		return nil, fmt.Errorf("strategy: a plan of %d nodes; want at least 1", c.Nodes)
	}
	p, err := st.plan(ctx, &c)
	if err != nil {
		return nil, err
	}
	p.st = st
	return p, nil
}

// Members reports whether the strategy's nodes are members of an
// embedded cluster (olric, nats), which a new member of another name can
// replace (Replace).
func (st Strategy) Members() bool { return st.Name == "olric" || st.Name == "nats" }

// Args returns the serve flags, past --strategy, --node and --addr, of
// node i (0 <= i < TestbedConfig.Nodes) starting as how: the strategy's
// flags whose value differs from their default. name is the node's
// --node (a Replace's new name), which a cluster's member is known by.
func (p *Plan) Args(i int, how Start, name string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := p.settings(i, how, name)
	if err != nil {
		return nil, err
	}
	return p.st.Args(&s), nil
}

// Pressure puts the plan's store under memory pressure until it evicts,
// as Testbed.Pressure does; ok is false for a store that does not evict.
func (p *Plan) Pressure(ctx context.Context) (what string, ok bool, err error) {
	if p.pressure == nil {
		return "", false, nil
	}
	what, err = p.pressure(ctx)
	return what, true, err
}

// Close releases what the nodes share (a Memcached the plan started).
func (p *Plan) Close() {
	if p.close != nil {
		p.close()
	}
}

// Args returns the serve flags that give a node the settings s: each of
// the strategy's flags that it uses with s (Uses) and whose value is not
// its default, as --name=value.
func (st Strategy) Args(s *Settings) []string {
	r := &argRecorder{}
	for _, f := range st.Flags {
		if st.Uses(f.Name, s) {
			f.define(r, f.Name, s)
		}
	}
	return r.args
}

// argRecorder is a FlagSet that records the flags whose value, where the
// flag points, differs from the default.
type argRecorder struct{ args []string }

func (r *argRecorder) add(name, v string) { r.args = append(r.args, "--"+name+"="+v) }

func (r *argRecorder) String(p *string, name, def, _ string) {
	if *p != def {
		r.add(name, *p)
	}
}

func (r *argRecorder) Int(p *int, name string, def int, _ string) {
	if *p != def {
		r.add(name, strconv.Itoa(*p))
	}
}

func (r *argRecorder) Duration(p *time.Duration, name string, def time.Duration, _ string) {
	if *p != def {
		r.add(name, p.String())
	}
}

func (r *argRecorder) Bool(p *bool, name string, def bool, _ string) {
	if *p != def {
		r.add(name, strconv.FormatBool(*p))
	}
}

// samePlan is the plan of a strategy whose nodes all take the settings s.
func samePlan(s Settings) *Plan {
	return &Plan{settings: func(int, Start, string) (Settings, error) { return s, nil }}
}

func memoryPlan(_ context.Context, c *TestbedConfig) (*Plan, error) { return samePlan(c.Settings), nil }

// tokenPlan writes a new key ring into c.Dir for every node. Logouts go
// to a revocation list in the Redis of the settings (through c.Proxy)
// when it answers, shared by the nodes as in a real deployment; without
// it each node keeps its own (--revocations memory), and a logout is
// never honoured by the other nodes, which the lab then shows.
func tokenPlan(ctx context.Context, c *TestbedConfig) (*Plan, error) {
	if c.Dir == "" {
		return nil, errMissing("token", "Dir")
	}
	ring, err := newLabRing()
	if err != nil {
		return nil, err
	}
	s := c.Settings
	s.Keys = filepath.Join(c.Dir, "keys.json")
	if err := token.WriteRingFile(s.Keys, ring, true); err != nil {
		return nil, err
	}
	s.Revocations = "memory"
	if u, err := proxiedRedis(ctx, c); err == nil {
		s.Revocations, s.RedisURL = "redis", u
	}
	return samePlan(s), nil
}

// proxiedRedis returns the URL of the settings' Redis as the nodes reach
// it (through c.Proxy), after checking that it answers.
func proxiedRedis(ctx context.Context, c *TestbedConfig) (string, error) {
	rc, err := redisstore.ParseURL(c.Settings.RedisURL)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrSkip, err)
	}
	if len(rc.Addrs) != 1 || rc.SentinelMaster != "" {
		return "", fmt.Errorf("%w: the lab runs on one standalone Redis (it cuts the connections to it), not %s", ErrSkip, c.Settings.RedisURL)
	}
	if err := reachable(ctx, rc.Addrs[0]); err != nil {
		return "", err
	}
	return proxiedURL(c, c.Settings.RedisURL, rc.Addrs[0])
}

// proxiedURL returns raw with its host replaced by what c.Proxy gives
// for addr.
func proxiedURL(c *TestbedConfig, raw, addr string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrSkip, err)
	}
	if u.Host, err = c.dialAddr(addr); err != nil {
		return "", err
	}
	return u.String(), nil
}

func redisPlan(ctx context.Context, c *TestbedConfig) (*Plan, error) {
	u, err := proxiedRedis(ctx, c)
	if err != nil {
		return nil, err
	}
	s := c.Settings
	s.RedisURL = u
	return samePlan(s), nil
}

func postgresPlan(ctx context.Context, c *TestbedConfig) (*Plan, error) {
	u, err := url.Parse(c.Settings.PostgresURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: PostgreSQL URL %q is not a URL with a host", ErrSkip, c.Settings.PostgresURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "5432")
	}
	if err := reachable(ctx, addr); err != nil {
		return nil, err
	}
	// serve creates its table if missing; a probe says now, with the
	// reason, when the server refuses us.
	probe, err := pgstore.OpenMigrated(ctx, c.Settings.PostgresURL, pgstore.Config{CleanupInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("%w: PostgreSQL at %s: %v", ErrSkip, addr, err)
	}
	probe.Close()
	s := c.Settings
	if s.PostgresURL, err = proxiedURL(c, s.PostgresURL, addr); err != nil {
		return nil, err
	}
	return samePlan(s), nil
}

// memcachedPlan runs the nodes on the Memcached servers of the settings,
// each through c.Proxy; with c.MemoryPressure on a small Memcached of its
// own, as memcachedTestbed does.
func memcachedPlan(ctx context.Context, c *TestbedConfig) (*Plan, error) {
	direct, dial, stop, err := memcachedDial(ctx, c)
	if err != nil {
		return nil, err
	}
	s := c.Settings
	s.MemcachedAddrs = strings.Join(dial, ",")
	p := samePlan(s)
	p.close = stop
	if c.MemoryPressure {
		p.pressure = func(ctx context.Context) (string, error) { return fillMemcached(ctx, direct[0], "") }
	}
	return p, nil
}

// clusterPlan keeps the cluster addresses of each node of an embedded
// cluster: addrs(i) are node i's (one or several listeners), renewed by
// fresh for a new member; node i's peers are the first address of every
// other node.
type clusterPlan struct {
	c     *TestbedConfig
	per   int        // addresses per node
	addrs [][]string // by node
}

func newClusterPlan(c *TestbedConfig, name string, per int) (*clusterPlan, error) {
	all, err := testbedAddrs(c, name, per*c.Nodes)
	if err != nil {
		return nil, err
	}
	cp := &clusterPlan{c: c, per: per}
	for i := range c.Nodes {
		cp.addrs = append(cp.addrs, all[i*per:(i+1)*per])
	}
	return cp, nil
}

// renew gives node i new addresses.
func (cp *clusterPlan) renew(i int) error {
	a, err := cp.c.FreeAddrs(cp.per)
	if err != nil {
		return err
	}
	cp.addrs[i] = a
	return nil
}

// peers returns the first address of every node but i.
func (cp *clusterPlan) peers(i int) string {
	var out []string
	for j, a := range cp.addrs {
		if j != i {
			out = append(out, a[0])
		}
	}
	return strings.Join(out, ",")
}

// natsPlan runs an embedded NATS node in each node process, each on its
// own JetStream directory under c.Dir: a restart comes back on it, a
// replacement (a new name) starts on a new directory and new addresses.
func natsPlan(_ context.Context, c *TestbedConfig) (*Plan, error) {
	if c.Dir == "" {
		return nil, errMissing("nats", "Dir")
	}
	cp, err := newClusterPlan(c, "nats", 1)
	if err != nil {
		return nil, err
	}
	return &Plan{settings: func(i int, how Start, name string) (Settings, error) {
		if how == Replace {
			if err := cp.renew(i); err != nil {
				return Settings{}, err
			}
		}
		s := c.Settings
		s.DataDir = filepath.Join(c.Dir, "nats-"+name)
		s.ClusterAddr, s.Peers = cp.addrs[i][0], cp.peers(i)
		return s, nil
	}}, nil
}

// olricPlan runs an Olric member in each node process. A member that
// comes back, restarted or replaced, takes new addresses: memberlist
// refuses, for a while, a member at an address it remembers as gone.
func olricPlan(_ context.Context, c *TestbedConfig) (*Plan, error) {
	cp, err := newClusterPlan(c, "olric", 2)
	if err != nil {
		return nil, err
	}
	return &Plan{settings: func(i int, how Start, _ string) (Settings, error) {
		if how != First {
			if err := cp.renew(i); err != nil {
				return Settings{}, err
			}
		}
		s := c.Settings
		s.ClusterAddr, s.OlricAddr, s.Peers = cp.addrs[i][0], cp.addrs[i][1], cp.peers(i)
		return s, nil
	}}, nil
}
