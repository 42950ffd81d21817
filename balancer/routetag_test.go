package balancer

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// refAppNode serves the reference app with in-memory sessions whose IDs
// are tagged route.
func refAppNode(t *testing.T, route string) *httptest.Server {
	t.Helper()
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := session.New(session.Config{Store: st, Route: route, ErrorHandler: refapp.ErrorHandler})
	if err != nil {
		t.Fatal(err)
	}
	app, err := refapp.New(refapp.Config{Node: route, Strategy: "memory", Manager: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return srv
}

// sessionCookieOf returns the value of the session cookie that w sets.
func sessionCookieOf(w *httptest.ResponseRecorder) string {
	for _, c := range (&http.Response{Header: w.Header()}).Cookies() {
		if c.Name == DefaultSessionCookie {
			return c.Value
		}
	}
	return ""
}

// TestBalancer_routeTagMismatch: three nodes started as node1, node2 and
// node3 behind backends named x1, x2 and x3. Their session IDs' tags name
// no backend, so each request went wherever hashing sent it: users were
// answered 401 on their next request, and nothing was logged. The balancer
// sees in the nodes' answers which tag each backend mints: it logs the
// mismatch once per node, with the fix, reports each such answer to the
// Observer, and sends the tag to its node.
func TestBalancer_routeTagMismatch(t *testing.T) {
	logs := &logBuffer{}
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		for i := 1; i <= 3; i++ {
			c.Backends = append(c.Backends, Backend{Name: fmt.Sprintf("x%d", i), URL: refAppNode(t, fmt.Sprintf("node%d", i)).URL})
		}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	logins := map[string]int{}
	var lost []string
	for i := range 10 {
		w := do(b, "POST", "/login", fmt.Sprintf(`{"user":"u%d"}`, i))
		home, cookie := w.Header().Get("X-Node"), sessionCookieOf(w)
		if w.Code != 200 || sid.RouteOf(cookie) != home {
			t.Fatalf("login %d: %d from %q, cookie tagged %q", i, w.Code, home, sid.RouteOf(cookie))
		}
		logins[home]++
		for _, req := range []struct{ method, body string }{{"POST", `{"item":"tea"}`}, {"GET", ""}} {
			w := do(b, req.method, "/cart", req.body, &http.Cookie{Name: DefaultSessionCookie, Value: cookie})
			if w.Code != 200 || w.Header().Get("X-Node") != home {
				lost = append(lost, fmt.Sprintf("user %d of %s: %s /cart answered %d by %s", i, home, req.method, w.Code, w.Header().Get("X-Node")))
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d requests of 20 after login not answered by the user's node:\n  %s", len(lost), strings.Join(lost, "\n  "))
	}
	for home, n := range logins {
		node := "x" + strings.TrimPrefix(home, "node")
		if got := rec.count("RouteTagMismatch " + node + " " + home); got != n {
			t.Errorf("Observer.RouteTagMismatch(%s, %s) %d times; want %d (one per login there)", node, home, got, n)
		}
		want := []string{"level=WARN", "route tag mismatch", "node=" + node, "tag=" + home, "--backend " + home + "=URL", "serve --node " + node + ")"}
		line := logs.line(want...)
		if line == "" {
			t.Errorf("no log line with %q; log:\n%s", want, logs)
		}
		if got := strings.Count(logs.String(), "tag="+home+"\n"); got != 1 {
			t.Errorf("%d log lines for %s's tag %s; want one", got, node, home)
		}
	}
}

// tagNode is a backend that answers each request with the Set-Cookie
// header of its X-Set-Cookie request header, if any.
func tagNode(t *testing.T, name string) Backend {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Node", name)
		if v := r.Header.Get("X-Set-Cookie"); v != "" {
			w.Header().Add("Set-Cookie", v)
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return Backend{Name: name, URL: srv.URL}
}

// TestBalancer_routeTagLearned: what the balancer learns from the session
// cookies the nodes set, and what it does not.
func TestBalancer_routeTagLearned(t *testing.T) {
	logs := &logBuffer{}
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{tagNode(t, "x1"), tagNode(t, "x2"), tagNode(t, "x3")}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	// answer has node (by its own session cookie) set the cookie line.
	answer := func(node, line string) {
		t.Helper()
		r := httptest.NewRequest("GET", "http://balancer.test/", nil)
		r.AddCookie(&http.Cookie{Name: DefaultSessionCookie, Value: newID(t, node)})
		r.Header.Set("X-Set-Cookie", line)
		if w := serveReq(b, r); w.Code != 200 || w.Header().Get("X-Node") != node {
			t.Fatalf("request to %s: %d from %s", node, w.Code, w.Header().Get("X-Node"))
		}
	}
	// routedTo returns the node that a request whose session is tagged tag
	// goes to, with hashing: the node of the most of 12 sessions.
	routedTo := func(tag string) map[string]int {
		got := map[string]int{}
		for range 12 {
			got[nodeOf(t, b, newID(t, tag))]++
		}
		return got
	}

	// x1 sets an ID tagged node1: requests tagged node1 go to x1.
	answer("x1", DefaultSessionCookie+"="+newID(t, "node1")+"; Path=/; Secure; HttpOnly")
	if got := routedTo("node1"); got["x1"] != 12 {
		t.Errorf("sessions tagged node1 went to %v; want all to x1", got)
	}
	// A cookie that deletes the session, an untagged value, another
	// cookie, and x2's own tag are not mismatches.
	answer("x2", DefaultSessionCookie+"="+newID(t, "node2")+"; Max-Age=0")
	answer("x2", DefaultSessionCookie+"="+newID(t, "node2")+"; Expires=Thu, 01 Jan 1970 00:00:01 GMT")
	answer("x2", DefaultSessionCookie+"=")
	answer("x2", "other="+newID(t, "node2"))
	answer("x2", DefaultSessionCookie+"="+newID(t, "x2"))
	if got := rec.count("RouteTagMismatch x2"); got != 0 {
		t.Errorf("RouteTagMismatch(x2) %d times; want 0", got)
	}
	// The cookie without the __Host- prefix counts too.
	answer("x2", "session="+newID(t, "node2")+"; Max-Age=60")
	if got := rec.count("RouteTagMismatch x2 node2"); got != 1 {
		t.Errorf("RouteTagMismatch(x2, node2) %d times; want 1", got)
	}

	// x3 sets x1's name: a tag that names another backend is reported, not
	// learned.
	answer("x3", DefaultSessionCookie+"="+newID(t, "x1"))
	if logs.line("route tag mismatch", "node=x3", "tag=x1", "the name of another backend") == "" {
		t.Errorf("no log line for x3 tagging its IDs x1; log:\n%s", logs)
	}
	if got := routedTo("x1"); got["x1"] != 12 {
		t.Errorf("sessions tagged x1 went to %v; want all to x1", got)
	}

	// x1 renamed: it now sets its own name, and node1 is forgotten.
	answer("x1", DefaultSessionCookie+"="+newID(t, "x1"))
	if got := routedTo("node1"); got["x1"] == 12 {
		t.Errorf("sessions tagged node1 went to %v after x1 set its own tag; want them spread by hashing", got)
	}
	if logs.line("level=INFO", "node x1 now tags its session IDs with its backend name") == "" {
		t.Errorf("no log line for x1's new tag; log:\n%s", logs)
	}

	// The tag moves with the node that sets it, and goes with it.
	answer("x2", DefaultSessionCookie+"="+newID(t, "node1"))
	if got := routedTo("node1"); got["x2"] != 12 {
		t.Errorf("sessions tagged node1 went to %v; want all to x2", got)
	}
	if err := b.RemoveNode("x2"); err != nil {
		t.Fatal(err)
	}
	before := rec.count("Affinity rehome node_removed")
	routedTo("node1")
	if got := rec.count("Affinity rehome node_removed") - before; got != 12 {
		t.Errorf("sessions tagged node1 after x2 was removed: %d re-homed as node_removed; want 12", got)
	}
}

// FuzzSetCookieTag: a node's Set-Cookie line never panics the parser, and
// a tag it returns is a valid route tag taken from the line's value.
func FuzzSetCookieTag(f *testing.F) {
	id := strings.Repeat("A", sid.RandomLen)
	f.Add("__Host-session=" + id + ".node1; Path=/; Secure; HttpOnly")
	f.Add("session=" + id + ".n2; Max-Age=0")
	f.Add("session=\"" + id + ".n2\"; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=60")
	f.Add("session=; Max-Age=-1")
	f.Add("=;;=")
	f.Fuzz(func(t *testing.T, line string) {
		tag, ok := setCookieTag(line)
		if !ok {
			return
		}
		if sid.CheckRoute(tag) != nil || !strings.Contains(line, "."+tag) {
			t.Fatalf("setCookieTag(%q) = %q: not a route tag of the line", line, tag)
		}
	})
}
