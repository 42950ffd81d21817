package balancer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session/sid"
)

// testNode is a backend on a loopback port that can be stopped and started
// again on the same address. It answers every request with its name in
// X-Node and in the body ("<name> <method> <path> <body>").
type testNode struct {
	t    testing.TB
	name string
	addr string

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

func startNode(t testing.TB, name string) *testNode {
	t.Helper()
	n := &testNode{t: t, name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	n.serve(ln)
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) url() string { return "http://" + n.addr }

func (n *testNode) backend() Backend { return Backend{Name: n.name, URL: n.url()} }

func (n *testNode) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Node", n.name)
		if r.URL.Path == "/healthz" {
			io.WriteString(w, "ok\n")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, n.name+" "+r.Method+" "+r.URL.Path+" "+string(body))
	})}
	n.mu.Lock()
	n.srv, n.ln = srv, ln
	n.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the node's listener and connections: it is dead.
func (n *testNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		// The listener first, and by itself: Server.Close closes only the
		// listeners Serve has started on, and a node stopped before its
		// Serve goroutine ran would otherwise let the kernel accept a
		// connection into the backlog, then reset it: a 502, not the
		// refused connection of a dead node.
		n.ln.Close()
		n.srv.Close()
		n.srv, n.ln = nil, nil
	}
}

// restart serves again on the same address.
func (n *testNode) restart() {
	n.t.Helper()
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatalf("listening again on %s: %v", n.addr, err)
	}
	n.serve(ln)
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logBuffer collects log lines written concurrently.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// line returns the last line that contains every part, or "".
func (l *logBuffer) line(parts ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(l.b.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(lines[i], p)
		}
		if ok {
			return lines[i]
		}
	}
	return ""
}

// newTestBalancer starts nodes named names and a Balancer in front of them
// with no background health checks, a fake clock and a recorder as its
// Observer. edit may change the Config.
func newTestBalancer(t testing.TB, names []string, edit func(*Config)) (*Balancer, map[string]*testNode, *fakeClock, *recorder) {
	t.Helper()
	nodes := map[string]*testNode{}
	clock := newClock()
	rec := newRecorder(t)
	cfg := Config{Health: HealthCheck{Interval: -1, Fall: 1, Rise: 1}, Now: clock.Now, Observer: rec}
	for _, name := range names {
		n := startNode(t, name)
		nodes[name] = n
		cfg.Backends = append(cfg.Backends, n.backend())
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if testEngine == "fast" && cfg.MaxBodyBytes >= 0 {
		fastFront(t, b)
	}
	return b, nodes, clock, rec
}

// newID returns a fresh session ID tagged route.
func newID(t testing.TB, route string) string {
	t.Helper()
	id, err := sid.New(route)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// do sends one request through h and returns the recorder.
func do(h http.Handler, method, path, body string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequestWithContext(context.Background(), method, "http://balancer.test"+path, rd)
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return serveReq(h, r)
}

// nodeOf sends a GET with the session cookie v and returns the node that
// answered ("" for an error status).
func nodeOf(t testing.TB, h http.Handler, v string) string {
	t.Helper()
	w := do(h, "GET", "/cart", "", &http.Cookie{Name: "__Host-session", Value: v})
	if w.Code != http.StatusOK {
		t.Fatalf("GET /cart with session .%s: status %d, body %q", sid.RouteOf(v), w.Code, w.Body)
	}
	return w.Header().Get("X-Node")
}

// recorder is an Observer that counts its events by their arguments,
// and checks that they name only nodes it was told of.
type recorder struct {
	t      testing.TB
	mu     sync.Mutex
	counts map[string]int
	nodes  map[string]bool // true: added; false: removed
}

var _ Observer = (*recorder)(nil)

// newRecorder returns a recorder that fails t on an event that names a
// node it was not told of, or has a value the Observer's contract rules out.
func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, counts: map[string]int{}, nodes: map[string]bool{}}
}

// count returns the number of events recorded under key: the method's
// name, then its arguments, space-separated ("Affinity rehome node_down",
// "Ejected n1", "NoNode"). RequestDone counts under "RequestDone <node>",
// "RequestDone <node> <status>" and "RequestDone <node> <class>", where the
// class is 1xx to 5xx, or error for status 0. Affinity counts under
// "Affinity <result>" and, with a cause, "Affinity <result> <cause>".
func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

func (r *recorder) add(keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		r.counts[k]++
	}
}

// known reports an event of node that was never added: a node is named
// only after NodeAdded; a request may end after NodeRemoved (removed).
func (r *recorder) known(event, node string, removed bool) {
	r.mu.Lock()
	added, ok := r.nodes[node]
	r.mu.Unlock()
	if !ok || !added && !removed {
		r.t.Errorf("Observer.%s(%q): a node that is not in the balancer", event, node)
	}
}

func (r *recorder) NodeAdded(node string) {
	r.mu.Lock()
	if r.nodes[node] {
		r.t.Errorf("Observer.NodeAdded(%q) twice", node)
	}
	r.nodes[node] = true
	r.mu.Unlock()
	r.add("NodeAdded " + node)
}

func (r *recorder) NodeRemoved(node string) {
	r.known("NodeRemoved", node, false)
	r.mu.Lock()
	r.nodes[node] = false
	r.mu.Unlock()
	r.add("NodeRemoved " + node)
}

func (r *recorder) RequestDone(node string, status int, d time.Duration) {
	r.known("RequestDone", node, true)
	class := "error"
	switch {
	case status >= 100 && status <= 599:
		class = fmt.Sprintf("%dxx", status/100)
	case status != 0:
		r.t.Errorf("Observer.RequestDone(%q, %d, %v): not an HTTP status, nor 0", node, status, d)
	}
	if d <= 0 {
		r.t.Errorf("Observer.RequestDone(%q, %d, %v): want a positive duration", node, status, d)
	}
	r.add("RequestDone "+node, fmt.Sprintf("RequestDone %s %d", node, status), "RequestDone "+node+" "+class)
}

func (r *recorder) Affinity(result, cause string) {
	switch {
	case (result == AffinityHit || result == AffinityMiss) && cause == "":
		r.add("Affinity " + result)
	case result == AffinityRehome && isCause(cause):
		r.add("Affinity "+result, "Affinity "+result+" "+cause)
	default:
		r.t.Errorf("Observer.Affinity(%q, %q): want hit or miss without a cause, or rehome with one", result, cause)
	}
}

func (r *recorder) SessionLost(cause string) {
	if !isCause(cause) {
		r.t.Errorf("Observer.SessionLost(%q): not a cause", cause)
	}
	r.add("SessionLost " + cause)
}

func (r *recorder) Retried() { r.add("Retried") }

func (r *recorder) Ejected(node string) {
	r.known("Ejected", node, true)
	r.add("Ejected " + node)
}

func (r *recorder) ConnError(node string) {
	r.known("ConnError", node, true)
	r.add("ConnError " + node)
}

func (r *recorder) NoNode() { r.add("NoNode") }

func (r *recorder) RouteTagMismatch(node, tag string) {
	r.known("RouteTagMismatch", node, true)
	if tag == "" || tag == node {
		r.t.Errorf("Observer.RouteTagMismatch(%q, %q): want a tag other than the node's name", node, tag)
	}
	r.add("RouteTagMismatch "+node, "RouteTagMismatch "+node+" "+tag)
}

func isCause(c string) bool {
	return c == CauseNodeDown || c == CauseDrainDeadline || c == CauseNodeRemoved || c == CauseUnknownNode
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rawNode is a backend on a loopback port that writes its answers itself:
// for each request it reads on a connection, answer writes the response,
// bytes as they go on the wire. It returns the node's URL.
func rawNode(t testing.TB, answer func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					answer(c, req)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}
