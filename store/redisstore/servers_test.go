package redisstore_test

// Test-owned Redis processes: standalone servers, a 3-master cluster and a
// Sentinel, each on free loopback ports, stopped when the test ends.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// startTimeout bounds the start of one server process.
const startTimeout = 10 * time.Second

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // ports handed out by this test binary
)

// freePort returns a loopback TCP port below 55000 that nothing listens on;
// with bus, port+10000 (a cluster node's bus port) is free too.
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 500 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen on a loopback port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p >= 55000 || ports[p] || (bus && ports[p+10000]) {
			continue
		}
		if bus {
			lb, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
			if err != nil {
				continue
			}
			lb.Close()
			ports[p+10000] = true
		}
		ports[p] = true
		return p
	}
	t.Fatal("no free loopback port below 55000")
	return 0
}

// proc is a redis-server process the test started.
type proc struct {
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

func (p *proc) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// stop sends sig to the process (SIGSTOP and SIGCONT pause and resume it).
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to redis-server on port %d: %v", sig, p.port, err)
	}
}

// kill stops the process and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGCONT) // in case a test paused it
	p.cmd.Process.Kill()
	<-p.done
}

// startRedis starts redis-server on a free loopback port with the arguments
// args returns for that port, waits until it answers PING, and stops it
// when t ends. name names its log file in dir. It retries on new ports if
// the process dies at start (another program took the port).
func startRedis(t testing.TB, dir, name string, bus bool, args func(port int) []string) *proc {
	t.Helper()
	bin := testenv.Command(t, "redis-server")
	var lastErr error
	for range 5 {
		port := freePort(t, bus)
		logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, port))
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, args(port)...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("start %s: %v", bin, err)
		}
		p := &proc{port: port, cmd: cmd, done: make(chan struct{})}
		go func() {
			cmd.Wait()
			logFile.Close()
			close(p.done)
		}()
		if lastErr = waitPing(p); lastErr == nil {
			t.Cleanup(p.kill)
			return p
		}
		p.kill()
		log, _ := os.ReadFile(logPath)
		lastErr = fmt.Errorf("%w; log:\n%s", lastErr, log)
	}
	t.Fatalf("redis-server %s did not start: %v", name, lastErr)
	return nil
}

// waitPing waits until the server answers PING, or fails if it exits or
// startTimeout passes.
func waitPing(p *proc) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server on port %d exited", p.port)
		default:
		}
		if err := ping(p.addr()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d: no PONG within %v: %v", p.port, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends an inline PING and wants +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING: got %q", line)
	}
	return nil
}

// baseArgs are the arguments of every test server: loopback only, no
// persistence, in the foreground.
func baseArgs(dir string, port int) []string {
	return []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no",
	}
}

// startStandalone starts a standalone redis-server for the test alone.
func startStandalone(t testing.TB) *proc {
	t.Helper()
	dir := t.TempDir()
	return startRedis(t, dir, "standalone", false, func(port int) []string { return baseArgs(dir, port) })
}

// startCluster starts three cluster-enabled masters, joins them with
// redis-cli --cluster create, and waits until every node reports
// cluster_state:ok. It returns the nodes' addresses.
func startCluster(t testing.TB) []string {
	t.Helper()
	cli := testenv.Command(t, "redis-cli")
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		p := startRedis(t, dir, "cluster", true, func(port int) []string {
			return append(baseArgs(dir, port),
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
				"--cluster-node-timeout", "5000")
		})
		addrs = append(addrs, p.addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		c := adminClient(t, a)
		for {
			info, err := c.Do(ctx, c.B().ClusterInfo().Build()).ToString()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok within 15s: %v\n%s", a, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}

// startSentinel starts a master and one Sentinel that monitors it as
// master set "mymaster" (quorum 1), waits until the Sentinel reports the
// master, and returns the Sentinel's address.
func startSentinel(t testing.TB) (sentinel string, master *proc) {
	t.Helper()
	dir := t.TempDir()
	master = startRedis(t, dir, "master", false, func(port int) []string { return baseArgs(dir, port) })
	s := startRedis(t, dir, "sentinel", false, func(port int) []string {
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"+
			"sentinel resolve-hostnames no\n"+
			"sentinel monitor mymaster 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds mymaster 5000\n", port, dir, master.port)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{conf, "--sentinel"}
	})
	c := adminClient(t, s.addr())
	deadline := time.Now().Add(startTimeout)
	for {
		got, err := c.Do(t.Context(), c.B().SentinelGetMasterAddrByName().Master("mymaster").Build()).AsStrSlice()
		if err == nil && len(got) == 2 && got[1] == strconv.Itoa(master.port) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel %s does not report mymaster at port %d: got %q, err %v", s.addr(), master.port, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s.addr(), master
}

// adminClient returns a plain client of one server (no cluster routing),
// closed when t ends.
func adminClient(t testing.TB, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{addr},
		ForceSingleClient: true,
		DisableCache:      true,
	})
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}
