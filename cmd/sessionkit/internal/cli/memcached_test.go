package cli_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// TestServe_memcached serves the routes from the shared Memcached
// (started by scripts/test).
func TestServe_memcached(t *testing.T) {
	addr := testenv.TCPAddr(t, "SESSIONKIT_MEMCACHED_ADDR", "127.0.0.1:11211")
	checkRoutes(t, "memcached", "--memcached", addr)
}

// memcachedProc is a memcached the test started.
type memcachedProc struct {
	bin, port string
	cmd       *exec.Cmd
	done      chan struct{}
}

func startMemcachedProc(t *testing.T) *memcachedProc {
	t.Helper()
	bin := testenv.Command(t, "memcached")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	p := &memcachedProc{bin: bin, port: port}
	p.start(t)
	t.Cleanup(p.kill)
	return p
}

func (p *memcachedProc) addr() string { return "127.0.0.1:" + p.port }

func (p *memcachedProc) start(t *testing.T) {
	t.Helper()
	args := []string{"-l", "127.0.0.1", "-p", p.port, "-U", "0", "-t", "2"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	p.cmd = exec.Command(p.bin, args...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.done)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", p.addr()); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached on %s did not start", p.addr())
		}
	}
}

func (p *memcachedProc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// TestServe_memcachedTwoNodes runs two serve nodes on a Memcached of the
// test's own: a session made on one is read on the other, 30 concurrent
// adds spread over both lose nothing, and with Memcached killed both
// nodes answer 503 within a second, then recover by themselves once it
// is back.
func TestServe_memcachedTwoNodes(t *testing.T) {
	mc := startMemcachedProc(t)
	var nodes []*server
	for _, name := range []string{"m1", "m2"} {
		nodes = append(nodes, startServe(t, nil, "serve", "--strategy", "memcached", "--memcached", mc.addr(),
			"--addr", "127.0.0.1:0", "--insecure-cookie", "--node", name))
	}
	jar, err := cookiejar.New(nil) // cookies ignore ports: one jar serves both nodes
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	post := func(url, body string) (int, string, error) {
		resp, err := c.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	user := "carol-" + rand.Text()[:8]
	if st, body, err := post(nodes[0].url+"/login", `{"user":"`+user+`"}`); err != nil || st != 200 {
		t.Fatalf("login on m1: %d %s %v", st, body, err)
	}

	const adds = 30
	var wg sync.WaitGroup
	for i := range adds {
		wg.Go(func() {
			st, body, err := post(nodes[i%2].url+"/cart", fmt.Sprintf(`{"item":"i%d"}`, i))
			if err != nil || st != 200 {
				t.Errorf("add i%d on %s: %d %s %v", i, nodes[i%2].node, st, body, err)
			}
		})
	}
	wg.Wait()
	resp, err := c.Get(nodes[1].url + "/cart")
	if err != nil {
		t.Fatal(err)
	}
	var cart struct{ Items []string }
	err = json.NewDecoder(resp.Body).Decode(&cart)
	resp.Body.Close()
	if err != nil || len(cart.Items) != adds {
		t.Fatalf("cart on m2 after %d concurrent adds over two nodes: %d items %q, %v; want all %d", adds, len(cart.Items), cart.Items, err, adds)
	}

	mc.kill()
	for i := range 10 {
		start := time.Now()
		st, body, err := post(nodes[i%2].url+"/cart", `{"item":"down"}`)
		if d := time.Since(start); err != nil || st != http.StatusServiceUnavailable || d > time.Second {
			t.Errorf("add with Memcached killed, on %s: %d %s %v after %v; want 503 within a second", nodes[i%2].node, st, body, err, d)
		}
	}

	mc.start(t)
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for {
			// Memcached kept nothing: log in again.
			st, body, err := post(n.url+"/login", `{"user":"`+user+`"}`)
			if err == nil && st == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("login on %s 10s after Memcached came back: %d %s %v", n.node, st, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if st, body, err := post(nodes[1].url+"/cart", `{"item":"after"}`); err != nil || st != 200 {
		t.Errorf("add after the recovery: %d %s %v", st, body, err)
	}
}
