package balancer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// crashNodeEnv holds the spec of a child process that runs one
// reference-app node (in-memory sessions), for the tests that kill nodes
// with SIGKILL. TestMain runs the node instead of the tests when it is set.
const crashNodeEnv = "SESSIONKIT_BALANCER_TEST_NODE"

// crashNodeSpec is a child node's name (its route tag) and address
// ("127.0.0.1:0" for a free port; a killed node comes back on its own).
type crashNodeSpec struct{ Name, Addr string }

// runCrashNode serves a reference-app node until the parent goes away.
func runCrashNode(spec crashNodeSpec) {
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "crash node %s: %v\n", spec.Name, err)
		os.Exit(1)
	}
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		fail(err)
	}
	m, err := session.New(session.Config{Store: st, Route: spec.Name, ErrorHandler: refapp.ErrorHandler})
	if err != nil {
		fail(err)
	}
	app, err := refapp.New(refapp.Config{Node: spec.Name, Strategy: "memory", Manager: m})
	if err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", spec.Addr)
	if err != nil {
		fail(err)
	}
	go (&http.Server{Handler: app}).Serve(ln)
	testenv.ChildReady(ln.Addr().String())
}

// crashNode is a reference-app node in a child process.
type crashNode struct {
	name, addr string
	child      *testenv.Child
}

func startCrashNode(t *testing.T, name, addr string) *crashNode {
	t.Helper()
	c := testenv.StartChild(t, crashNodeEnv, crashNodeSpec{Name: name, Addr: addr})
	return &crashNode{name: name, addr: c.Info, child: c}
}

// TestBalancer_nodeKilled kills the node of a logged-in user with SIGKILL,
// 20 times, each time while the balancer holds idle keep-alive connections
// to it, and sends the user's next request: a GET /cart, or a POST /cart
// with a body. No node received the request (the node is gone), so it must
// reach another node, which answers 401 (the session was in the dead
// node's memory): never 502, as when the fast engine wrote the request on
// a pooled connection the node had closed as it died, and then could not
// send it again.
func TestBalancer_nodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills 40 child processes")
	}
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) { testNodeKilled(t, method, 20) })
	}
}

func testNodeKilled(t *testing.T, method string, kills int) {
	nodes := map[string]*crashNode{}
	var backends []Backend
	for _, name := range three {
		n := startCrashNode(t, name, "127.0.0.1:0")
		nodes[name] = n
		backends = append(backends, Backend{Name: name, URL: "http://" + n.addr})
	}
	logs := &logBuffer{}
	b, err := New(Config{Backends: backends, Health: HealthCheck{Interval: -1, Fall: 1, Rise: 1},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	base := frontURL(t, b)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)
	send := func(method, path, body, cookie string) (int, string, []*http.Cookie, error) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body == "" {
			req.Body = nil
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: DefaultSessionCookie, Value: cookie})
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Node"), resp.Cookies(), nil
	}

	var failures []string
	for i := range kills {
		code, home, cookies, err := send("POST", "/login", fmt.Sprintf(`{"user":"u%d"}`, i), "")
		var cookie string
		for _, c := range cookies {
			if c.Name == DefaultSessionCookie {
				cookie = c.Value
			}
		}
		if err != nil || code != 200 || cookie == "" {
			// The balancer may still hold connections to a node killed
			// earlier, which has come back since.
			failures = append(failures, fmt.Sprintf("before kill %d: POST /login: %d from %q %v", i+1, code, home, err))
			continue
		}
		// Requests in parallel, so that the balancer keeps several idle
		// connections to the user's node.
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if code, node, _, err := send("POST", "/cart", `{"item":"x"}`, cookie); err != nil || code != 200 || node != home {
					t.Errorf("kill %d: POST /cart before the kill: %d from %s, %v", i+1, code, node, err)
				}
			})
		}
		wg.Wait()

		nodes[home].child.Kill()
		// A user's next request comes a moment after the crash: what
		// matters is that the balancer notices the closed connections
		// before it reuses them.
		time.Sleep(50 * time.Millisecond)
		body := ""
		if method == "POST" {
			body = `{"item":"y"}`
		}
		code, got, _, err := send(method, "/cart", body, cookie)
		if err != nil || code != http.StatusUnauthorized || got == "" || got == home {
			failures = append(failures, fmt.Sprintf("kill %d (%s): %d from %q %v", i+1, home, code, got, err))
		}

		// The node comes back on its address; a passed check returns it
		// to the rotation at once.
		nodes[home] = startCrashNode(t, home, nodes[home].addr)
		b.CheckHealth(context.Background())
	}
	t.Logf("engine %s: %s /cart after its node was killed: %d kills, %d failures", testEngine, method, kills, len(failures))
	if len(failures) > 0 {
		t.Errorf("%s /cart after its node was killed, %d failures in %d kills (want 401 from another node):\n  %s\nlog:\n%s",
			method, len(failures), kills, strings.Join(failures, "\n  "), logs.String())
	}
}

// TestBalancer_idleConnClosedByNode: a node that closes keep-alive
// connections sooner than the balancer (its idle timeout is shorter than
// BackendIdleTimeout) gets a POST after a pause on a new connection, once:
// the balancer sees that the node closed the idle one before it reuses it.
func TestBalancer_idleConnClosedByNode(t *testing.T) {
	var posts sync.Map // body -> times received
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{IdleTimeout: 100 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, _ := posts.LoadOrStore(string(body), new(int))
		*n.(*int)++
		io.WriteString(w, "n1 "+r.Method+" "+string(body))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{{Name: "n1", URL: "http://" + ln.Addr().String()}}
		c.BackendIdleTimeout = time.Minute
	})
	for i := range 3 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // past the node's idle timeout
		}
		body := fmt.Sprintf(`{"item":"%d"}`, i)
		w := do(b, "POST", "/cart", body)
		if w.Code != http.StatusOK || w.Body.String() != "n1 POST "+body {
			t.Fatalf("POST %d after the node closed the idle connection: status %d, body %q; want 200 from n1", i+1, w.Code, w.Body)
		}
		if n, _ := posts.Load(body); *n.(*int) != 1 {
			t.Errorf("POST %d received %d times; want once", i+1, *n.(*int))
		}
	}
	if got := rec.count("ConnError n1") + rec.count("Ejected n1") + rec.count("Retried"); got != 0 {
		t.Errorf("conn errors, ejections and retries = %v; want 0", got)
	}
}

// TestBalancer_unsolicitedBytes: a node that writes on an idle keep-alive
// connection (here a 408, as some servers send before they close one) must
// not have those bytes taken for the answer to the next request: the
// balancer drops the connection, as Go's http.Transport does, and sends the
// request on a new one.
func TestBalancer_unsolicitedBytes(t *testing.T) {
	node := rawNode(t, func(c net.Conn, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		answer := "n1 " + req.Method + " " + string(body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Node: n1\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
	})
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) { c.Backends = []Backend{{Name: "n1", URL: node}} })
	for i := range 3 {
		if i > 0 {
			time.Sleep(150 * time.Millisecond) // the node has written its 408
		}
		w := do(b, "POST", "/cart", `{"item":"x"}`)
		if w.Code != http.StatusOK || w.Body.String() != `n1 POST {"item":"x"}` {
			t.Fatalf("POST %d: status %d, body %q; want 200 from n1", i+1, w.Code, w.Body)
		}
	}
}
