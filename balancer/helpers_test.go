package balancer

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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
	n.srv = srv
	n.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the node's listener and connections: it is dead.
func (n *testNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Close()
		n.srv = nil
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
// with no background health checks, a fake clock and its own registry.
// edit may change the Config.
func newTestBalancer(t testing.TB, names []string, edit func(*Config)) (*Balancer, map[string]*testNode, *fakeClock, *prometheus.Registry) {
	t.Helper()
	nodes := map[string]*testNode{}
	clock := newClock()
	reg := prometheus.NewRegistry()
	cfg := Config{Health: HealthCheck{Interval: -1, Fall: 1, Rise: 1}, Now: clock.Now, Registerer: reg}
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
	return b, nodes, clock, reg
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

// counter returns the value of a metric with the given labels (0 when the
// series does not exist).
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}
