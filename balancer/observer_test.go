package balancer

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestObserver_events follows one scripted run and checks the events the
// Observer got, with their arguments.
func TestObserver_events(t *testing.T) {
	b, nodes, _, rec := newTestBalancer(t, three, nil)
	n4 := startNode(t, "n4")

	do(b, "GET", "/", "")        // a new user: miss
	nodeOf(t, b, newID(t, "n2")) // hit
	gone := newID(t, "n9")
	nodeOf(t, b, gone) // a node never seen: rehome unknown_node, lost
	nodeOf(t, b, gone) // rehome unknown_node; its session was lost already
	if w := do(b, "POST", "/cart", "x", &http.Cookie{Name: "session", Value: newID(t, "n1")}); w.Code != http.StatusOK {
		t.Fatalf("POST: status %d", w.Code) // hit
	}
	if err := b.AddNode(n4.backend()); err != nil {
		t.Fatal(err)
	}
	on4 := newID(t, "n4")
	nodeOf(t, b, on4) // hit
	if err := b.RemoveNode("n4"); err != nil {
		t.Fatal(err)
	}
	nodeOf(t, b, on4) // rehome node_removed, lost
	nodes["n3"].stop()
	on3 := newID(t, "n3")
	nodeOf(t, b, on3) // hit; refused: n3 ejected, retried, rehome node_down, lost
	nodeOf(t, b, on3) // n3 is ejected: rehome node_down
	nodes["n1"].stop()
	nodes["n2"].stop()
	// A new user, miss; refused by its node, retried on the other, refused
	// again: both ejected, 503 (NoNode) and a RequestDone without an answer.
	if w := do(b, "GET", "/", ""); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET with every node dead: status %d; want 503", w.Code)
	}
	// Every node is out now: no node takes it (NoNode, no RequestDone).
	if w := do(b, "GET", "/", ""); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET with every node ejected: status %d; want 503", w.Code)
	}

	sum := func(format string, nodes ...string) int {
		n := 0
		for _, node := range nodes {
			n += rec.count(strings.ReplaceAll(format, "%s", node))
		}
		return n
	}
	all := []string{"n1", "n2", "n3", "n4"}
	for key, want := range map[string]int{
		"NodeAdded n1": 1, "NodeAdded n2": 1, "NodeAdded n3": 1, "NodeAdded n4": 1, "NodeRemoved n4": 1,
		"Affinity miss": 3, "Affinity hit": 4, "Affinity rehome": 5,
		"Affinity rehome unknown_node": 2, "Affinity rehome node_removed": 1, "Affinity rehome node_down": 2,
		"SessionLost unknown_node": 1, "SessionLost node_removed": 1, "SessionLost node_down": 1,
		"Retried": 2, "NoNode": 2, "Ejected n1": 1, "Ejected n2": 1, "Ejected n3": 1,
		"RequestDone n4": 1, "RequestDone n4 200": 1, "RequestDone n4 2xx": 1,
	} {
		if got := rec.count(key); got != want {
			t.Errorf("%s: %d; want %d", key, got, want)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		if got := rec.count("RequestDone " + n + " 200"); got < 1 {
			t.Errorf("RequestDone %s 200: %d; want at least 1 (its hit)", n, got)
		}
	}
	for key, want := range map[string]int{
		"RequestDone %s":       10, // every request but the last
		"RequestDone %s 200":   9,
		"RequestDone %s error": 1, // the one no connection could be made for
		"ConnError %s":         0,
	} {
		if got := sum(key, all...); got != want {
			t.Errorf("%s over every node: %d; want %d", key, got, want)
		}
	}
}

// TestObserver_nil runs the paths that report events without an Observer:
// routing, re-homing, a retry after a refused connection, removal, no node.
func TestObserver_nil(t *testing.T) {
	b, nodes, _, _ := newTestBalancer(t, three, func(c *Config) { c.Observer = nil })
	nodeOf(t, b, newID(t, "n1"))
	nodeOf(t, b, newID(t, "n9"))
	nodes["n2"].stop()
	nodeOf(t, b, newID(t, "n2"))
	if err := b.RemoveNode("n3"); err != nil {
		t.Fatal(err)
	}
	nodeOf(t, b, newID(t, "n3"))
	nodes["n1"].stop()
	if w := do(b, "GET", "/", ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET with every node dead: status %d; want 503", w.Code)
	}
}

// TestObserver_bodyTooLarge: the net/http engine answers a body over
// MaxBodyBytes itself, 413, reported as the request's status; the fast
// engine refuses it before it is routed, so nothing is reported.
func TestObserver_bodyTooLarge(t *testing.T) {
	b, _, _, rec := newTestBalancer(t, []string{"n1"}, func(c *Config) { c.MaxBodyBytes = 8 })
	w := do(b, "POST", "/cart", strings.Repeat("x", 64), &http.Cookie{Name: "session", Value: newID(t, "n1")})
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST over MaxBodyBytes: status %d; want 413", w.Code)
	}
	want := 1
	if testEngine == "fast" {
		want = 0
	}
	if got := rec.count("RequestDone n1 413"); got != want {
		t.Errorf("RequestDone n1 413: %d; want %d", got, want)
	}
	if got := rec.count("Affinity hit"); got != want {
		t.Errorf("Affinity hit: %d; want %d", got, want)
	}
}

// countingObserver counts events as a metrics adapter would, with atomic
// counters and no lookups.
type countingObserver struct{ n atomic.Int64 }

func (c *countingObserver) NodeAdded(string)                       { c.n.Add(1) }
func (c *countingObserver) NodeRemoved(string)                     { c.n.Add(1) }
func (c *countingObserver) RequestDone(string, int, time.Duration) { c.n.Add(1) }
func (c *countingObserver) Affinity(string, string)                { c.n.Add(1) }
func (c *countingObserver) SessionLost(string)                     { c.n.Add(1) }
func (c *countingObserver) Retried()                               { c.n.Add(1) }
func (c *countingObserver) Ejected(string)                         { c.n.Add(1) }
func (c *countingObserver) ConnError(string)                       { c.n.Add(1) }
func (c *countingObserver) NoNode()                                { c.n.Add(1) }
func (c *countingObserver) RouteTagMismatch(string, string)        { c.n.Add(1) }

// BenchmarkServeFast runs the fast engine's handler on a sticky GET to a
// fasthttp node on a loopback connection, without an Observer and with one:
// the events cost no allocation, and nothing at all without an Observer.
// The allocations counted include the node's.
func BenchmarkServeFast(b *testing.B) {
	if testEngine == "fast" {
		b.Skip("engine-independent; ran in the first pass")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	node := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Node", "n1")
		ctx.WriteString(`{"items":["a","b"],"node":"n1"}`)
	}}
	go node.Serve(ln)
	b.Cleanup(func() { node.Shutdown() })
	id := newID(b, "n1")
	for _, tc := range []struct {
		name string
		obs  Observer
	}{{"observer=nil", nil}, {"observer=counting", &countingObserver{}}} {
		b.Run(tc.name, func(b *testing.B) {
			bal, err := New(Config{Backends: []Backend{{Name: "n1", URL: "http://" + ln.Addr().String()}},
				Health: HealthCheck{Interval: -1}, Observer: tc.obs})
			if err != nil {
				b.Fatal(err)
			}
			defer bal.Close()
			if _, err := bal.NewFastServer(FastConfig{}); err != nil {
				b.Fatal(err)
			}
			var req fasthttp.Request
			req.SetRequestURI("http://balancer.test/cart")
			req.Header.SetCookie("session", id)
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
			b.ReportAllocs()
			for b.Loop() {
				req.CopyTo(&ctx.Request)
				ctx.Response.Reset()
				bal.serveFast(&ctx)
				if ctx.Response.StatusCode() != http.StatusOK {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}

// BenchmarkRoute routes a sticky request and ends it, the part of every
// request that reports events, without the proxying: what an Observer
// adds to a request, and that nil adds nothing.
func BenchmarkRoute(b *testing.B) {
	if testEngine == "fast" {
		b.Skip("engine-independent; ran in the first pass")
	}
	id := newID(b, "n1")
	cookie := func(name string) (string, bool) { return id, name == DefaultSessionCookie }
	for _, tc := range []struct {
		name string
		obs  Observer
	}{{"observer=nil", nil}, {"observer=counting", &countingObserver{}}} {
		b.Run(tc.name, func(b *testing.B) {
			bal, err := New(Config{Backends: []Backend{{Name: "n1", URL: "http://127.0.0.1:1"}},
				Health: HealthCheck{Interval: -1}, Observer: tc.obs})
			if err != nil {
				b.Fatal(err)
			}
			defer bal.Close()
			b.ReportAllocs()
			for b.Loop() {
				var st reqState
				start := bal.start()
				if !bal.routeBy(cookie, &st) {
					b.Fatal("not routed")
				}
				st.node.inflight.Add(1)
				st.status = http.StatusOK
				bal.finish(&st, start)
			}
		})
	}
}
