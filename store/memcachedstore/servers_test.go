package memcachedstore_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// memcachedAddr returns the address of the shared Memcached the tests may
// use (with unique key prefixes), from SESSIONKIT_MEMCACHED_ADDR.
func memcachedAddr(t testing.TB) string {
	return testenv.TCPAddr(t, "SESSIONKIT_MEMCACHED_ADDR", "127.0.0.1:11211")
}

// server is a memcached process a test started.
type server struct {
	addr string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// startMemcached starts a memcached of the test's own on a free loopback
// port, with extra arguments (-m, -I ...), and kills it when t ends.
func startMemcached(t testing.TB, extra ...string) *server {
	t.Helper()
	bin := testenv.Command(t, "memcached")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-t", "2"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root without it
	}
	s := &server{addr: addr, args: append(args, extra...)}
	s.cmd = exec.Command(bin, s.args...)
	s.start(t)
	t.Cleanup(s.kill)
	return s
}

// start runs the process and waits until it answers.
func (s *server) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.cmd.Path, s.args...)
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.kill()
			t.Fatalf("memcached %v did not listen on %s: %v", s.args, s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL and waits for it.
func (s *server) kill() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

func (s *server) String() string { return fmt.Sprintf("memcached on %s", s.addr) }
