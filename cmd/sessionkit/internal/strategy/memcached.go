package strategy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit/store/memcachedstore"
)

// DefaultMemcachedAddrs is the default of --memcached: the local Memcached.
const DefaultMemcachedAddrs = memcachedstore.DefaultAddr

// memcachedStrategy is a centralized store: every node keeps its sessions
// in Memcached, one server or several (rendezvous hashing), behind a
// circuit breaker (and one per server inside the store).
var memcachedStrategy = Strategy{
	Name:    "memcached",
	What:    "centralized: memcachedstore on Memcached (no disk; evicts under memory pressure), behind a circuit breaker",
	Shared:  true,
	Breaker: true,
	Flags:   []*Flag{memcachedFlag},
	check: func(s *Settings) error {
		_, err := memcachedServers(s.MemcachedAddrs)
		return err
	},
	open: func(ctx context.Context, n *Node) (*Sessions, error) {
		servers, err := memcachedServers(n.Settings.MemcachedAddrs)
		if err != nil {
			return nil, err
		}
		return openMemcached(ctx, n, memcachedstore.Config{Servers: servers})
	},
	testbed: memcachedTestbed,
	plan:    memcachedPlan,
}

var memcachedFlag = &Flag{Name: "memcached", When: "--strategy memcached",
	define: func(fs FlagSet, name string, s *Settings) {
		fs.String(&s.MemcachedAddrs, name, DefaultMemcachedAddrs,
			"Memcached servers for --strategy memcached, `host:port,...`; sessions are spread\n"+
				"        over several by rendezvous hashing, so every node must list the same servers")
	}}

// memcachedServers splits and checks --memcached.
func memcachedServers(list string) ([]string, error) {
	servers := splitList(list)
	if len(servers) == 0 {
		return nil, &FlagError{Flag: "memcached", Value: list, Why: "want host:port,..."}
	}
	for _, a := range servers {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, &FlagError{Flag: "memcached", Value: list, Why: fmt.Sprintf("%q is not host:port", a)}
		}
	}
	return servers, nil
}

// openMemcached opens node n's store on the Memcached servers of cfg,
// behind a circuit breaker; each server also has a breaker of its own
// inside the store, configured as n's.
func openMemcached(ctx context.Context, n *Node, cfg memcachedstore.Config) (*Sessions, error) {
	if n.Timeout > 0 {
		cfg.Timeout = n.Timeout
	}
	cfg.Breaker = n.Breaker
	cfg.Breaker.OnStateChange = nil // the node's hook is for its own breaker
	st, err := memcachedstore.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return stored(n, st, true, nil)
}

// pressureMemory is the item memory, in MB, of the Memcached the lab
// starts for its evict fault (memcached -m; 2 is its least).
const pressureMemory = 4

// memcachedTestbed runs the nodes on the Memcached servers of the settings,
// each reached through c.Proxy (the lab cuts the connections there), under
// a key prefix of their own. With c.MemoryPressure it starts a Memcached
// of its own with 4 MB of memory instead, so that Pressure can fill it
// without evicting anyone else's items.
func memcachedTestbed(ctx context.Context, c *TestbedConfig) (*Testbed, error) {
	direct, dial, stop, err := memcachedDial(ctx, c)
	if err != nil {
		return nil, err
	}
	// Items expire with the sessions (the lab's idle timeout), so a run
	// leaves nothing behind for long.
	prefix := fmt.Sprintf("sessionkit-lab:%d:", time.Now().UnixNano())
	tb := &Testbed{
		open: func(ctx context.Context, _ int, n *Node) (*Sessions, error) {
			n.Settings = c.Settings
			return openMemcached(ctx, n, memcachedstore.Config{Servers: dial, KeyPrefix: prefix})
		},
		close: stop,
	}
	if c.MemoryPressure {
		tb.pressure = func(ctx context.Context) (string, error) { return fillMemcached(ctx, direct[0], prefix) }
	}
	return tb, nil
}

// memcachedDial returns the Memcached servers a lab's nodes use (the
// settings', or with c.MemoryPressure a small one it starts, which stop
// kills) and the addresses the nodes dial them at (through c.Proxy). The
// error wraps ErrSkip when a server does not answer.
func memcachedDial(ctx context.Context, c *TestbedConfig) (direct, dial []string, stop func(), err error) {
	direct, err = memcachedServers(c.Settings.MemcachedAddrs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrSkip, err)
	}
	if c.MemoryPressure {
		addr, kill, err := startMemcached(ctx, c, pressureMemory)
		if err != nil {
			return nil, nil, nil, err
		}
		direct, stop = []string{addr}, kill
	}
	dial = make([]string, len(direct))
	for i, a := range direct {
		if err = reachable(ctx, a); err == nil {
			dial[i], err = c.dialAddr(a)
		}
		if err != nil {
			if stop != nil {
				stop()
			}
			return nil, nil, nil, err
		}
	}
	return direct, dial, stop, nil
}

// startMemcached starts a memcached with mb MB of item memory on a free
// loopback port, and returns its address and the function that kills it.
// The error wraps ErrSkip when memcached is not installed.
func startMemcached(ctx context.Context, c *TestbedConfig, mb int) (string, func(), error) {
	bin, err := exec.LookPath("memcached")
	if err != nil {
		return "", nil, fmt.Errorf("%w: the evict fault starts a memcached of its own, and memcached is not installed", ErrSkip)
	}
	if c.FreeAddrs == nil {
		return "", nil, errMissing("memcached", "FreeAddrs")
	}
	addrs, err := c.FreeAddrs(1)
	if err != nil {
		return "", nil, err
	}
	host, port, _ := net.SplitHostPort(addrs[0])
	args := []string{"-l", host, "-p", port, "-U", "0", "-t", "1", "-m", strconv.Itoa(mb)}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root without it
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	kill := func() { cmd.Process.Kill(); <-done }
	deadline := time.Now().Add(5 * time.Second)
	for reachable(ctx, addrs[0]) != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			kill()
			return "", nil, fmt.Errorf("strategy: memcached %s did not start", strings.Join(args, " "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addrs[0], kill, nil
}

// fillMemcached floods the Memcached at addr with filler items, ten times
// its memory, as fast as it takes them (pipelined sets with noreply, on one
// connection): items of 100 to 1000 bytes, the sizes of the lab's sessions
// and user indexes, so that they land in the same slab classes. Memcached
// then evicts from the cold end of its LRU: the items nobody read lately,
// the sessions of idle users among them; the sessions being read stay. It
// returns what it did, for the lab's event line.
func fillMemcached(ctx context.Context, addr, prefix string) (string, error) {
	limit, before, err := memcachedStats(addr)
	if err != nil {
		return "", err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, 1000)
	for i := range value {
		value[i] = 'f'
	}
	var buf []byte
	var written, total int64
	for total < 10*limit && ctx.Err() == nil {
		n := 100 + r.IntN(900)
		buf = fmt.Appendf(buf, "set %sfiller:%d 0 60 %d noreply\r\n", prefix, written, n)
		buf = append(append(buf, value[:n]...), "\r\n"...)
		written, total = written+1, total+int64(n)
		if len(buf) >= 256<<10 {
			if _, err := conn.Write(buf); err != nil {
				return "", fmt.Errorf("strategy: filling memcached at %s: %w", addr, err)
			}
			buf = buf[:0]
		}
	}
	// One command with an answer: when it comes, the sets before it are done.
	buf = append(buf, "version\r\n"...)
	if _, err := conn.Write(buf); err != nil {
		return "", fmt.Errorf("strategy: filling memcached at %s: %w", addr, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "VERSION") {
		return "", fmt.Errorf("strategy: filling memcached at %s: got %q, %v after the filler", addr, line, err)
	}
	_, after, err := memcachedStats(addr)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d filler items (%d MB) into a %d MB memcached, which evicted %d items",
		written, total>>20, limit>>20, after-before), nil
}

// memcachedStats returns the server's limit_maxbytes and evictions.
func memcachedStats(addr string) (limit, evictions int64, err error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("stats\r\n")); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 0, 8<<10)
	tmp := make([]byte, 4<<10)
	for !strings.Contains(string(buf), "END\r\n") {
		n, err := conn.Read(tmp)
		if err != nil {
			return 0, 0, err
		}
		buf = append(buf, tmp[:n]...)
	}
	for _, line := range strings.Split(string(buf), "\r\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			continue
		}
		switch f[1] {
		case "limit_maxbytes":
			limit, _ = strconv.ParseInt(f[2], 10, 64)
		case "evictions":
			evictions, _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	if limit == 0 {
		return 0, 0, errors.New("strategy: memcached stats gave no limit_maxbytes")
	}
	return limit, evictions, nil
}
