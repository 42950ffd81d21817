package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Crash tests run a cluster's nodes as child processes, so that they can
// kill one with SIGKILL: no graceful leave, its memory gone. The child is
// the test binary itself, started again with an environment variable that
// holds its spec as JSON; the package's TestMain notices it and runs the
// node instead of the tests:
//
//	func TestMain(m *testing.M) {
//		var spec nodeSpec
//		if testenv.IsChild(childEnv, &spec) {
//			n := start(spec) // exits on error
//			testenv.ChildReady(n.URL()) // until the parent goes away
//			n.Shutdown()
//			os.Exit(0)
//		}
//		os.Exit(m.Run())
//	}

// IsChild reports whether this process is a child started by StartChild
// with env, and decodes its spec into spec. A spec that does not decode
// ends the process with status 2.
func IsChild(env string, spec any) bool {
	v := os.Getenv(env)
	if v == "" {
		return false
	}
	if err := json.Unmarshal([]byte(v), spec); err != nil {
		fmt.Fprintf(os.Stderr, "child spec in %s: %v\n", env, err)
		os.Exit(2)
	}
	return true
}

// ChildReady tells the parent that the child is ready, with info (an
// address, say) for Child.Info, and returns when the parent goes away
// (its end of the child's stdin closes).
func ChildReady(info string) {
	fmt.Printf("ready %s\n", info)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// Child is a child process started by StartChild.
type Child struct {
	cmd *exec.Cmd
	// Info is what the child passed to ChildReady.
	Info string
}

// StartChild starts the test binary again with env set to spec as JSON,
// waits until the child calls ChildReady, and kills it when t ends. Its
// stderr goes to the test's.
func StartChild(t testing.TB, env string, spec any) *Child {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env+"="+string(b))
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil { // closed when the test binary exits
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{cmd: cmd}
	t.Cleanup(c.Kill)
	type result struct {
		line string
		err  error
	}
	ready := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		ready <- result{line, err}
	}()
	select {
	case r := <-ready:
		info, ok := strings.CutPrefix(strings.TrimRight(r.line, "\r\n"), "ready ")
		if r.err != nil || !ok {
			t.Fatalf("child %s did not start: %q %v", b, r.line, r.err)
		}
		c.Info = info
	case <-time.After(ChildStartTimeout):
		c.Kill()
		t.Fatalf("child %s not ready after %v", b, ChildStartTimeout)
	}
	return c
}

// ChildStartTimeout bounds StartChild's wait for the child to be ready.
const ChildStartTimeout = 90 * time.Second

// Kill ends the child with SIGKILL and reaps it. Killing twice is harmless.
func (c *Child) Kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// Parallel runs f(0) to f(n-1) on workers goroutines and fails t with the
// first error; after an error no new f starts. Crash tests use it to
// write and read their thousands of sessions.
func Parallel(t testing.TB, workers, n int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}
