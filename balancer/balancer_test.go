package balancer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var three = []string{"n1", "n2", "n3"}

func TestBalancer_routeTag_sticks(t *testing.T) {
	b, _, _, rec := newTestBalancer(t, three, nil)
	for _, route := range three {
		for range 50 {
			v := newID(t, route)
			for range 2 {
				if got := nodeOf(t, b, v); got != route {
					t.Fatalf("session tagged %s went to %s", route, got)
				}
			}
		}
	}
	if got := rec.count("Affinity hit"); got != 300 {
		t.Errorf("affinity hits = %v; want 300", got)
	}
}

// The session cookie is __Host-session by default; without it, the same
// name without the prefix is read (an app that does not add the prefix, or
// a cookie of an earlier sessionkit), as session.Cookie reads them.
func TestBalancer_routeTag_plainCookie(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, nil)
	for _, tt := range []struct {
		cookies []*http.Cookie
		want    string
	}{
		{[]*http.Cookie{{Name: "session", Value: newID(t, "n2")}}, "n2"},
		{[]*http.Cookie{{Name: "session", Value: newID(t, "n2")}, {Name: "__Host-session", Value: newID(t, "n3")}}, "n3"},
		{[]*http.Cookie{{Name: "__Host-session", Value: newID(t, "n1")}, {Name: "session", Value: newID(t, "n2")}}, "n1"},
	} {
		for range 20 { // without the route tag, a request lands on a random node
			if got := do(b, "GET", "/cart", "", tt.cookies...).Header().Get("X-Node"); got != tt.want {
				t.Fatalf("cookies %v went to %s; want %s", tt.cookies, got, tt.want)
			}
		}
	}
	// A configured name without the prefix is read alone.
	b2, _, _, _ := newTestBalancer(t, three, func(c *Config) { c.SessionCookie = "sid" })
	hits := map[string]int{}
	for range 60 {
		hits[do(b2, "GET", "/cart", "", &http.Cookie{Name: "__Host-sid", Value: newID(t, "n2")}).Header().Get("X-Node")]++
	}
	if hits["n2"] == 60 {
		t.Errorf("SessionCookie sid: a __Host-sid cookie routed every request: %v", hits)
	}
}

func TestBalancer_newUsers_spread(t *testing.T) {
	b, _, _, rec := newTestBalancer(t, three, nil)
	seen := map[string]int{}
	for range 300 {
		w := do(b, "GET", "/", "")
		seen[w.Header().Get("X-Node")]++
	}
	for _, n := range three {
		if seen[n] < 50 { // expected 100; 50 is > 7 standard deviations away
			t.Errorf("new users per node = %v; want each near 100", seen)
		}
	}
	if got := rec.count("Affinity miss"); got != 300 {
		t.Errorf("affinity misses = %v; want 300", got)
	}
}

func TestBalancer_malformedCookie_isMiss(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, nil)
	good := newID(t, "n2")
	for _, v := range []string{"", ".n2", "abc.n2", good + "x", good[:43] + ".", good[:43] + ".n2.n3",
		strings.Repeat("!", 43) + ".n2", good[:43] + ".n 2", "\"" + good, "\""} {
		r := httptest.NewRequest("GET", "http://balancer.test/", nil)
		r.Header.Set("Cookie", "__Host-session="+v)
		w := serveReq(b, r)
		if w.Code != http.StatusOK {
			t.Errorf("cookie %q: status %d; want 200 from some node", v, w.Code)
		}
	}
}

func TestBalancer_nodeDeath_movesOnlyItsUsers(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			b, nodes, _, rec := newTestBalancer(t, three, func(c *Config) { c.SharedSessions = shared })
			// A second balancer instance, sharing nothing with the first.
			b2, _, _, _ := newTestBalancer(t, nil, func(c *Config) {
				for _, n := range three {
					c.Backends = append(c.Backends, nodes[n].backend())
				}
			})
			ids := map[string][]string{}
			for _, route := range three {
				for range 60 {
					ids[route] = append(ids[route], newID(t, route))
				}
			}
			nodes["n2"].stop()
			b.CheckHealth(t.Context())
			b2.CheckHealth(t.Context())
			if st := b.Nodes()[1]; st.State != StateDown {
				t.Fatalf("n2 state = %s; want down", st.State)
			}
			moved := map[string]int{}
			for route, list := range ids {
				for _, v := range list {
					got := nodeOf(t, b, v)
					if route != "n2" && got != route {
						t.Fatalf("session of live node %s moved to %s", route, got)
					}
					if route == "n2" {
						if got == "n2" {
							t.Fatal("session went to the dead node")
						}
						moved[got]++
						if got2 := nodeOf(t, b2, v); got2 != got {
							t.Fatalf("balancers disagree on a re-homed session: %s and %s", got, got2)
						}
						if again := nodeOf(t, b, v); again != got {
							t.Fatalf("re-homed session moved again: %s then %s", got, again)
						}
					}
				}
			}
			if moved["n1"] == 0 || moved["n3"] == 0 {
				t.Errorf("the dead node's sessions went to %v; want them spread over n1 and n3", moved)
			}
			rehomes := rec.count("Affinity rehome node_down")
			if rehomes != 120 { // 60 sessions, 2 requests each
				t.Errorf("rehomes = %v; want 120", rehomes)
			}
			lost := rec.count("SessionLost node_down")
			want := 60
			if shared {
				want = 0
			}
			if lost != want {
				t.Errorf("sessions lost = %v; want %v", lost, want)
			}

			// Recovery: the node comes back and passes its checks.
			nodes["n2"].restart()
			b.CheckHealth(t.Context())
			if got := nodeOf(t, b, ids["n2"][0]); got != "n2" {
				t.Errorf("after recovery a session of n2 went to %s", got)
			}
		})
	}
}

func TestBalancer_retry(t *testing.T) {
	b, nodes, clock, rec := newTestBalancer(t, three, nil)
	v := newID(t, "n2")
	nodes["n2"].stop() // dead, and no health check has noticed yet

	w := do(b, "GET", "/cart", "", &http.Cookie{Name: "__Host-session", Value: v})
	if w.Code != http.StatusOK || w.Header().Get("X-Node") == "n2" {
		t.Fatalf("GET to a dead node: status %d from %q; want 200 from another node", w.Code, w.Header().Get("X-Node"))
	}
	if got := rec.count("Retried"); got != 1 {
		t.Errorf("retries = %v; want 1", got)
	}
	if st := b.Nodes()[1]; st.State != StateEjected {
		t.Errorf("n2 state = %s; want ejected", st.State)
	}

	// While ejected, its sessions go elsewhere without a failed attempt.
	nodeOf(t, b, v)
	if got := rec.count("Retried"); got != 1 {
		t.Errorf("retries = %v; want still 1", got)
	}

	// A POST whose connection failed before its body was read is retried
	// with the whole body.
	clock.Add(DefaultEjectFor) // the ejection ends; n2 is still dead
	w = do(b, "POST", "/cart", `{"item":"x"}`, &http.Cookie{Name: "__Host-session", Value: v})
	if w.Code != http.StatusOK || !strings.HasSuffix(w.Body.String(), ` POST /cart {"item":"x"}`) {
		t.Fatalf("POST to a dead node: status %d, body %q; want it retried with its body", w.Code, w.Body)
	}

	// The node returns: after the ejection it gets its sessions back.
	nodes["n2"].restart()
	clock.Add(DefaultEjectFor)
	if got := nodeOf(t, b, v); got != "n2" {
		t.Errorf("after the node returned its session went to %s", got)
	}
}

func TestBalancer_retry_notAfterBodySent(t *testing.T) {
	// A node that reads the body, then drops the connection without an
	// answer: the POST must not be sent again.
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{hangUpNode(t, "bad", true), startNode(t, "good").backend()}
	})
	v := newID(t, "bad")
	w := do(b, "POST", "/cart", `{"item":"x"}`, &http.Cookie{Name: "__Host-session", Value: v})
	if w.Code != http.StatusBadGateway {
		t.Errorf("POST after its body was sent: status %d; want 502", w.Code)
	}
	if got := rec.count("Retried"); got != 0 {
		t.Errorf("retries = %v; want 0", got)
	}
	if got := rec.count("RequestDone bad error"); got != 1 {
		t.Errorf("requests{bad,error} = %v; want 1", got)
	}
	// The node still accepts connections, as after a keep-alive connection
	// it closed just as the balancer reused it: it stays in the rotation,
	// with its users.
	if st := b.Nodes()[0]; st.State != StateActive {
		t.Errorf("a node that dropped one connection but accepts new ones: state %s; want active", st.State)
	}
	if got := rec.count("Ejected bad"); got != 0 {
		t.Errorf("ejections{bad} = %v; want 0", got)
	}
	if got := rec.count("ConnError bad"); got != 1 {
		t.Errorf("conn_errors{bad} = %v; want 1", got)
	}
	// A GET to the same kind of failure is retried.
	b2, _, _, _ := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{hangUpNode(t, "bad", false), startNode(t, "good").backend()}
	})
	if got := nodeOf(t, b2, v); got != "good" {
		t.Errorf("GET after a dropped connection answered by %s; want good", got)
	}
}

func TestBalancer_activeHealth(t *testing.T) {
	b, nodes, _, _ := newTestBalancer(t, three, func(c *Config) { c.Health.Fall, c.Health.Rise = 2, 2 })
	nodes["n3"].stop()
	b.CheckHealth(t.Context())
	if st := b.Nodes()[2]; st.State != StateActive || st.LastCheck == "ok" {
		t.Fatalf("after one failed check n3 = %+v; want active, with the failure noted", st)
	}
	b.CheckHealth(t.Context())
	if st := b.Nodes()[2]; st.State != StateDown {
		t.Fatalf("after two failed checks n3 state = %s; want down", st.State)
	}
	if st := b.Nodes()[2]; st.Healthy {
		t.Errorf("after two failed checks n3 = %+v; want not healthy", st)
	}
	nodes["n3"].restart()
	b.CheckHealth(t.Context())
	if st := b.Nodes()[2]; st.State != StateDown {
		t.Fatalf("after one passed check n3 state = %s; want still down (Rise 2)", st.State)
	}
	b.CheckHealth(t.Context())
	if st := b.Nodes()[2]; st.State != StateActive {
		t.Fatalf("after two passed checks n3 state = %s; want active", st.State)
	}
}

func TestBalancer_noNode(t *testing.T) {
	b, nodes, _, rec := newTestBalancer(t, []string{"n1"}, nil)
	nodes["n1"].stop()
	b.CheckHealth(t.Context())
	w := do(b, "GET", "/", "")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("no healthy node: status %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if got := rec.count("NoNode"); got != 1 {
		t.Errorf("no_node = %v; want 1", got)
	}
}

// TestBalancer_noNodeReachable: every node is dead and no health check has
// noticed yet. The request is tried on one node and retried on the other,
// and neither connection can be made: no node received it, so it is
// answered as when no node is up, 503 with Retry-After, not 502.
func TestBalancer_noNodeReachable(t *testing.T) {
	b, nodes, clock, rec := newTestBalancer(t, []string{"n1", "n2"}, nil)
	for _, n := range nodes {
		n.stop()
	}
	want503 := func(what string, w *httptest.ResponseRecorder, noNode, retries int) {
		t.Helper()
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" ||
			!strings.HasPrefix(w.Body.String(), "no backend available") {
			t.Errorf("%s to dead nodes: status %d, Retry-After %q, body %q; want 503, Retry-After 1, no backend available",
				what, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
		if got := rec.count("NoNode"); got != noNode {
			t.Errorf("after the %s: no_node = %v; want %v", what, got, noNode)
		}
		if got := rec.count("Retried"); got != retries {
			t.Errorf("after the %s: retries = %v; want %v (one per request: the retry rules are unchanged)", what, got, retries)
		}
	}
	want503("GET", do(b, "GET", "/healthz", ""), 1, 1)
	// Both connections failed: both nodes are out, on both engines.
	for _, n := range b.Nodes() {
		if n.State != StateEjected {
			t.Errorf("after the GET: node %s is %s; want %s", n.Name, n.State, StateEjected)
		}
	}
	clock.Add(DefaultEjectFor) // the ejections end; the nodes are still dead
	want503("POST", do(b, "POST", "/cart", `{"item":"x"}`), 2, 2)
	clock.Add(DefaultEjectFor)
	r := httptest.NewRequest("GET", "http://balancer.test/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	want503("WebSocket upgrade", serveReq(b, r), 3, 3) // the fast engine tunnels it

	// One dead node: nowhere to retry, and the one attempt did not connect.
	one, n1, _, rec1 := newTestBalancer(t, []string{"n1"}, nil)
	n1["n1"].stop()
	w := do(one, "GET", "/", "")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Errorf("GET to the only node, dead: status %d, Retry-After %q; want 503, Retry-After 1", w.Code, w.Header().Get("Retry-After"))
	}
	if got := rec1.count("NoNode"); got != 1 {
		t.Errorf("no_node = %v; want 1", got)
	}
}

// TestBalancer_noNodeReachable_afterOneReceivedIt: a node received the
// request and dropped the connection; the retry could not connect to the
// other node. A node may have processed the request, so it is 502.
func TestBalancer_noNodeReachable_afterOneReceivedIt(t *testing.T) {
	dead := startNode(t, "dead")
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{hangUpNode(t, "bad", false), dead.backend()}
	})
	dead.stop()
	w := do(b, "GET", "/cart", "", &http.Cookie{Name: "__Host-session", Value: newID(t, "bad")})
	if w.Code != http.StatusBadGateway || w.Header().Get("Retry-After") != "" {
		t.Errorf("GET dropped by one node, then refused by the other: status %d, Retry-After %q; want 502 without Retry-After",
			w.Code, w.Header().Get("Retry-After"))
	}
	if got := rec.count("Retried"); got != 1 {
		t.Errorf("retries = %v; want 1", got)
	}
	if got := rec.count("NoNode"); got != 0 {
		t.Errorf("no_node = %v; want 0", got)
	}
}

func TestBalancer_drain(t *testing.T) {
	b, _, clock, rec := newTestBalancer(t, three, nil)
	old := newID(t, "n1")
	if err := b.Drain("n1", clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := nodeOf(t, b, old); got != "n1" {
		t.Fatalf("existing session of a draining node went to %s; want n1", got)
	}
	for range 200 {
		if got := do(b, "GET", "/", "").Header().Get("X-Node"); got == "n1" {
			t.Fatal("a new user went to the draining node")
		}
	}
	clock.Add(time.Minute)
	if st := b.Nodes()[0]; st.State != StateDrained {
		t.Errorf("after its deadline n1 state = %s; want drained", st.State)
	}
	if got := nodeOf(t, b, old); got == "n1" {
		t.Fatal("after the deadline the session still went to n1")
	}
	if got := rec.count("SessionLost drain_deadline"); got != 1 {
		t.Errorf("sessions lost by drain_deadline = %v; want 1", got)
	}
	if err := b.Activate("n1"); err != nil {
		t.Fatal(err)
	}
	if got := nodeOf(t, b, old); got != "n1" {
		t.Errorf("after Activate the session went to %s; want n1", got)
	}
	if err := b.Drain("nope", time.Time{}); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("Drain of an unknown node: %v; want ErrNodeNotFound", err)
	}
}

func TestBalancer_addRemove(t *testing.T) {
	b, _, _, rec := newTestBalancer(t, three, nil)
	n4 := startNode(t, "n4")
	v := newID(t, "n4")
	if got := nodeOf(t, b, v); got == "n4" {
		t.Fatal("a session tagged with an unknown node reached it")
	}
	if got := rec.count("Affinity rehome unknown_node"); got != 1 {
		t.Errorf("rehomes{unknown_node} = %v; want 1", got)
	}
	if err := b.AddNode(n4.backend()); err != nil {
		t.Fatal(err)
	}
	if err := b.AddNode(n4.backend()); !errors.Is(err, ErrNodeExists) {
		t.Errorf("adding n4 twice: %v; want ErrNodeExists", err)
	}
	if got := nodeOf(t, b, v); got != "n4" {
		t.Fatalf("after AddNode a session tagged n4 went to %s", got)
	}
	seen := false
	for range 200 {
		if do(b, "GET", "/", "").Header().Get("X-Node") == "n4" {
			seen = true
			break
		}
	}
	if !seen {
		t.Error("no new user went to the added node")
	}
	v = newID(t, "n4") // the first ID was already counted as lost (unknown_node)
	if got := nodeOf(t, b, v); got != "n4" {
		t.Fatalf("a session tagged n4 went to %s", got)
	}
	if err := b.RemoveNode("n4"); err != nil {
		t.Fatal(err)
	}
	if got := nodeOf(t, b, v); got == "n4" {
		t.Fatal("after RemoveNode a session still went to n4")
	}
	if got := rec.count("SessionLost node_removed"); got != 1 {
		t.Errorf("sessions lost by node_removed = %v; want 1", got)
	}
	if err := b.RemoveNode("n4"); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("removing n4 twice: %v; want ErrNodeNotFound", err)
	}
	if len(b.Nodes()) != 3 {
		t.Errorf("nodes after add and remove = %d; want 3", len(b.Nodes()))
	}
}

// TestRendezvous_minimalMoves checks the hashing itself: adding a node
// moves only keys to it, removing one moves only its keys, and the shares
// are even.
func TestRendezvous_minimalMoves(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, nil)
	const keys = 20000
	before := make([]string, keys)
	share := map[string]int{}
	set := b.set.Load()
	for i := range keys {
		before[i] = b.pick(set, 0, hashKey(fmt.Sprint("key", i)), nil).name
		share[before[i]]++
	}
	for _, n := range three {
		if share[n] < keys/3*9/10 || share[n] > keys/3*11/10 {
			t.Errorf("shares = %v; want each within 10%% of %d", share, keys/3)
		}
	}
	if err := b.AddNode(startNode(t, "n4").backend()); err != nil {
		t.Fatal(err)
	}
	set = b.set.Load()
	moved := 0
	for i := range keys {
		after := b.pick(set, 0, hashKey(fmt.Sprint("key", i)), nil).name
		if after != before[i] {
			if after != "n4" {
				t.Fatalf("key %d moved from %s to %s; only moves to n4 are allowed", i, before[i], after)
			}
			moved++
		}
	}
	if moved < keys/4*9/10 || moved > keys/4*11/10 {
		t.Errorf("%d keys moved to n4; want about %d", moved, keys/4)
	}
	if err := b.RemoveNode("n4"); err != nil {
		t.Fatal(err)
	}
	set = b.set.Load()
	for i := range keys {
		if got := b.pick(set, 0, hashKey(fmt.Sprint("key", i)), nil).name; got != before[i] {
			t.Fatalf("after removing n4 key %d is on %s; want %s again", i, got, before[i])
		}
	}
}

func TestPick_boundedLoad(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, func(c *Config) { c.LoadFactor = 1.25 })
	set := b.set.Load()
	key := hashKey("some key")
	first := b.pick(set, 0, key, nil)
	first.inflight.Store(100) // far over its share
	defer first.inflight.Store(0)
	if got := b.pick(set, 0, key, nil); got == first {
		t.Errorf("an overloaded node (%s) was picked with LoadFactor 1.25", got.name)
	}
	// Sticky requests still go to it.
	v := newID(t, first.name)
	if got := nodeOf(t, b, v); got != first.name {
		t.Errorf("a sticky request went to %s; want %s", got, first.name)
	}
}

func TestBalancer_bodyLimit(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, func(c *Config) { c.MaxBodyBytes = 10 })
	if w := do(b, "POST", "/cart", strings.Repeat("x", 11)); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("11-byte body with a 10-byte limit: status %d; want 413", w.Code)
	}
	if w := do(b, "POST", "/cart", strings.Repeat("x", 10)); w.Code != http.StatusOK {
		t.Errorf("10-byte body with a 10-byte limit: status %d; want 200", w.Code)
	}
}

func TestNew_invalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no backend name", Config{Backends: []Backend{{URL: "http://a"}}}},
		{"bad backend name", Config{Backends: []Backend{{Name: "a.b", URL: "http://a"}}}},
		{"bad scheme", Config{Backends: []Backend{{Name: "a", URL: "ftp://a"}}}},
		{"no host", Config{Backends: []Backend{{Name: "a", URL: "http://"}}}},
		{"query", Config{Backends: []Backend{{Name: "a", URL: "http://a/?x=1"}}}},
		{"duplicate", Config{Backends: []Backend{{Name: "a", URL: "http://a"}, {Name: "a", URL: "http://b"}}}},
		{"cookie name", Config{SessionCookie: "a b"}},
		{"short key", Config{Affinity: AffinityCookie{Enabled: true, Key: []byte("short")}}},
		{"same cookie names", Config{Affinity: AffinityCookie{Enabled: true, Name: "__Host-session"}}},
		{"affinity named as the session cookie's fallback", Config{Affinity: AffinityCookie{Enabled: true, Name: "session"}}},
		{"load factor", Config{LoadFactor: 0.5}},
		{"health path", Config{Health: HealthCheck{Path: "healthz"}}},
		{"negative eject", Config{EjectFor: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) {
				t.Errorf("New: %v; want ErrConfig", err)
			}
			if b != nil {
				b.Close()
			}
		})
	}
}

func TestNew_doesNotModifyConfig(t *testing.T) {
	cfg := Config{Backends: []Backend{{Name: "a", URL: "http://127.0.0.1:1"}}, Health: HealthCheck{Interval: -1}}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if cfg.SessionCookie != "" || cfg.Health.Path != "" || cfg.Transport != nil {
		t.Errorf("New wrote into the caller's Config: %+v", cfg)
	}
}

// TestBalancer_backendIdleTimeout: a node closes keep-alive connections
// idle for 300ms (as Node.js does after 5s); with BackendIdleTimeout under
// that, the balancer has closed its idle connection first, and a POST
// after a pause goes on a new connection instead of one the node closed
// (TestBalancer_idleConnClosedByNode has the node close first). The pause
// is real: the node's idle timer cannot be faked.
func TestBalancer_backendIdleTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{IdleTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, "n1 "+r.Method+" "+string(body))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{{Name: "n1", URL: "http://" + ln.Addr().String()}}
		c.BackendIdleTimeout = 100 * time.Millisecond
	})
	for i := range 2 {
		if i > 0 {
			time.Sleep(500 * time.Millisecond) // past the node's idle timeout
		}
		w := do(b, "POST", "/cart", `{"item":"x"}`)
		if w.Code != http.StatusOK || w.Body.String() != `n1 POST {"item":"x"}` {
			t.Fatalf("POST %d: status %d, body %q; want 200 from n1", i+1, w.Code, w.Body)
		}
	}
	if got := rec.count("ConnError n1"); got != 0 {
		t.Errorf("conn_errors{n1} = %v; want 0", got)
	}
}

// TestBalancer_busyNode: the fast engine keeps at most fastMaxConns
// connections to a node. A request that finds them all in use is not sent:
// it is answered 503 with Retry-After (not 502), and the node, loaded but
// healthy, is neither ejected nor counted as a connection error, nor is its
// user moved to another node.
func TestBalancer_busyNode(t *testing.T) {
	if testEngine != "fast" {
		t.Skip("the net/http engine sets no connection limit per node")
	}
	defer func(n int) { fastMaxConns = n }(fastMaxConns)
	fastMaxConns = 1

	release, held := make(chan struct{}), make(chan struct{}, 1)
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			held <- struct{}{}
			<-release
		}
		w.Header().Set("X-Node", "busy")
	}))
	t.Cleanup(busy.Close)
	t.Cleanup(func() { close(release) }) // before busy.Close, which waits for handlers
	other := startNode(t, "other")
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{{Name: "busy", URL: busy.URL}, other.backend()}
	})
	cookie := &http.Cookie{Name: "__Host-session", Value: newID(t, "busy")}

	slow := make(chan *httptest.ResponseRecorder, 1)
	go func() { slow <- do(b, "GET", "/slow", "", cookie) }()
	<-held // the node's one connection is in use
	w := do(b, "GET", "/cart", "", cookie)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
		t.Errorf("request to a busy node: status %d, Retry-After %q, X-Node %q; want 503, Retry-After 1",
			w.Code, w.Header().Get("Retry-After"), w.Header().Get("X-Node"))
	}
	release <- struct{}{}
	if w := <-slow; w.Code != http.StatusOK {
		t.Errorf("the request holding the connection: status %d; want 200", w.Code)
	}
	for _, n := range b.Nodes() {
		if n.State != StateActive {
			t.Errorf("node %s is %s; want active", n.Name, n.State)
		}
	}
	for name, want := range map[string]int{
		"NoNode":  1,
		"Retried": 0,
	} {
		if got := rec.count(name); got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	if got := rec.count("ConnError busy"); got != 0 {
		t.Errorf("conn_errors_total{node=busy} = %v; want 0", got)
	}
	if got := nodeOf(t, b, cookie.Value); got != "busy" {
		t.Errorf("the user is now on %q; want busy", got)
	}
}

// TestNew_fieldError: a refused field is reported as a *FieldError naming
// it, so that a program can name its own input for it (the CLI names its
// flags).
func TestNew_fieldError(t *testing.T) {
	for field, cfg := range map[string]Config{
		"SessionCookie": {SessionCookie: "a b"},
		"Affinity.Name": {Affinity: AffinityCookie{Enabled: true, Name: "session"}},
		"Affinity.Key":  {Affinity: AffinityCookie{Enabled: true, Key: []byte("short")}},
		"Health.Path":   {Health: HealthCheck{Path: "healthz"}},
		"LoadFactor":    {LoadFactor: 0.5},
	} {
		_, err := New(cfg)
		fe, ok := errors.AsType[*FieldError](err)
		if !ok || fe.Field != field || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: New: %v; want a *FieldError for %s wrapping ErrConfig", field, err, field)
		}
	}
}
