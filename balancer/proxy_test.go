package balancer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// wsNode is a backend that answers an Upgrade: websocket request with 101
// and then echoes every byte over the hijacked connection.
func wsNode(t *testing.T, name string) Backend {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !headerHasToken(r.Header["Connection"], "upgrade") ||
			r.Header.Get("Sec-WebSocket-Key") == "" {
			http.Error(w, "want a websocket upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Node: %s\r\n\r\n", name)
		brw.Flush()
		io.Copy(conn, brw) // echo until the client closes
	}))
	t.Cleanup(srv.Close)
	return Backend{Name: name, URL: srv.URL}
}

func TestBalancer_websocket(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{wsNode(t, "n1"), wsNode(t, "n2")}
	})
	front := frontURL(t, b)

	v := newID(t, "n2")
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(front, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: session=%s\r\n\r\n", v)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Node") != "n2" {
		t.Fatalf("upgrade: status %d from %q; want 101 from n2", resp.StatusCode, resp.Header.Get("X-Node"))
	}
	for _, msg := range []string{"hello", "second message"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Errorf("echo = %q; want %q", got, msg)
		}
	}

	// A graceful shutdown's last step: the open WebSocket is waited for,
	// and when the wait is over, the fast server closes it.
	over, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.WaitTunnels(over); err == nil || !strings.Contains(err.Error(), "1 WebSocket") {
		t.Errorf("WaitTunnels with the WebSocket open: %v; want an error counting 1", err)
	}
	if testEngine == "fast" {
		if n, err := br.Read(make([]byte, 1)); err == nil {
			t.Errorf("after WaitTunnels gave up, the WebSocket is still open (read %d bytes)", n)
		}
	}
	conn.Close()
	wait, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := b.WaitTunnels(wait); err != nil {
		t.Errorf("WaitTunnels after the client closed: %v", err)
	}
}

func TestBalancer_serverSentEvents(t *testing.T) {
	release := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select { // hold the stream open until the client has the first event
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "data: second\n\n")
	}))
	defer sse.Close()
	defer close(release)
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) { c.Backends = []Backend{{Name: "n1", URL: sse.URL}} })
	front := frontURL(t, b)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", front+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event = %q, %v; want it before the stream ends", line, err)
	}
}

func TestBalancer_forwardedHeaders(t *testing.T) {
	var got http.Header
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer echo.Close()
	for _, trust := range []bool{false, true} {
		b, _, _, _ := newTestBalancer(t, nil, func(c *Config) {
			c.Backends = []Backend{{Name: "n1", URL: echo.URL}}
			c.TrustForwarded = trust
		})
		r := httptest.NewRequest("GET", "http://front.example/x", nil)
		r.RemoteAddr = "192.0.2.7:5555"
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		r.Header.Set("X-Forwarded-Proto", "https")
		serveReq(b, r)
		client := "192.0.2.7"
		if testEngine == "fast" { // a real connection, from loopback
			client = "127.0.0.1"
		}
		wantFor, wantProto := client, "http"
		if trust {
			wantFor, wantProto = "203.0.113.9, "+client, "https"
		}
		if f := got.Get("X-Forwarded-For"); f != wantFor {
			t.Errorf("trust=%v: X-Forwarded-For = %q; want %q", trust, f, wantFor)
		}
		if p := got.Get("X-Forwarded-Proto"); p != wantProto {
			t.Errorf("trust=%v: X-Forwarded-Proto = %q; want %q", trust, p, wantProto)
		}
		if h := got.Get("X-Forwarded-Host"); h != "front.example" {
			t.Errorf("trust=%v: X-Forwarded-Host = %q; want front.example", trust, h)
		}
	}
}

// TestBalancer_contentTypeAsSent: a request body goes on with the
// Content-Type the client sent, and without one if it sent none (the fast
// engine added application/octet-stream, which an API may refuse).
func TestBalancer_contentTypeAsSent(t *testing.T) {
	var got []string
	var mu sync.Mutex
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Values("Content-Type")
		mu.Unlock()
	}))
	defer echo.Close()
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) { c.Backends = []Backend{{Name: "n1", URL: echo.URL}} })
	for _, ct := range []string{"", "application/json"} {
		r := httptest.NewRequest("POST", "http://front.example/cart", strings.NewReader(`{"item":"x"}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if w := serveReq(b, r); w.Code != 200 {
			t.Fatalf("POST: %d", w.Code)
		}
		mu.Lock()
		if want := []string{ct}; ct == "" && len(got) != 0 || ct != "" && !slices.Equal(got, want) {
			t.Errorf("sent Content-Type %q: the node got %q", ct, got)
		}
		mu.Unlock()
	}
}

func TestAdminHandler(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, nil)
	admin := b.AdminHandler()
	call := func(method, path, body string) (int, string) {
		w := do(admin, method, path, body)
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
		return w.Code, w.Body.String()
	}
	// Sessions seen are counted per node.
	for range 3 {
		nodeOf(t, b, newID(t, "n1"))
	}
	code, body := call("GET", "/nodes", "")
	var list []NodeStatus
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 3 {
		t.Fatalf("GET /nodes: %d %s (%v)", code, body, err)
	}
	if list[0].Name != "n1" || list[0].State != StateActive || list[0].Sessions != 3 || list[1].Sessions != 0 {
		t.Errorf("GET /nodes = %+v; want n1 active with 3 sessions, n2 with 0", list)
	}

	n4 := startNode(t, "n4")
	tests := []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"POST", "/nodes", `{"name":"n4","url":"` + n4.url() + `"}`, 201, `"name":"n4"`},
		{"POST", "/nodes", `{"name":"n4","url":"` + n4.url() + `"}`, 409, "already exists"},
		{"POST", "/nodes", `{"name":"n 5","url":"http://x"}`, 400, "backend name"},
		{"POST", "/nodes", `{"name":"n5"`, 400, "bad JSON"},
		{"POST", "/nodes", `{"name":"n5","url":"http://x","extra":1}`, 400, "unknown field"},
		{"POST", "/nodes", `{"name":"n5","url":"http://x"} {}`, 400, "trailing"},
		{"POST", "/nodes", `{"name":"` + strings.Repeat("x", maxAdminBody) + `"}`, 413, "too large"},
		{"POST", "/nodes/n4/drain", `{"timeout":"90s"}`, 200, `"state":"draining"`},
		{"POST", "/nodes/n4/drain", `{"timeout":"soon"}`, 400, "positive duration"},
		{"POST", "/nodes/n4/activate", "", 200, `"state":"active"`},
		{"POST", "/nodes/n4/drain", "", 200, `"drain_deadline"`},
		{"POST", "/nodes/n9/drain", "", 404, "no such node"},
		{"DELETE", "/nodes/n4", "", 200, `"removed":"n4"`},
		{"DELETE", "/nodes/n4", "", 404, "no such node"},
		{"GET", "/other", "", 404, "no such admin route"},
	}
	for _, tt := range tests {
		code, body := call(tt.method, tt.path, tt.body)
		if code != tt.code || !strings.Contains(body, tt.contains) {
			t.Errorf("%s %s %.40s: %d %s; want %d containing %q", tt.method, tt.path, tt.body, code, body, tt.code, tt.contains)
		}
	}
}

// TestAdminHandler_methods: a known path with a method it does not
// support is answered 405 with the methods it does in Allow; an unknown
// path is 404, whatever the method.
func TestAdminHandler_methods(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, nil)
	admin := b.AdminHandler()
	for _, tt := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"PUT", "/nodes", 405, "GET, HEAD, POST"},
		{"DELETE", "/nodes", 405, "GET, HEAD, POST"},
		{"PATCH", "/nodes", 405, "GET, HEAD, POST"},
		{"GET", "/nodes/n1", 405, "DELETE"},
		{"POST", "/nodes/n1", 405, "DELETE"},
		{"GET", "/nodes/n1/drain", 405, "POST"},
		{"PUT", "/nodes/n1/drain", 405, "POST"},
		{"DELETE", "/nodes/n1/activate", 405, "POST"},
		{"GET", "/other", 404, ""},
		{"PUT", "/other", 404, ""},
		{"GET", "/nodes/n1/other", 404, ""},
		{"POST", "/nodes/n1/drain/x", 404, ""},
		{"HEAD", "/nodes", 200, ""},
	} {
		w := do(admin, tt.method, tt.path, "")
		if w.Code != tt.code || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", tt.method, tt.path, w.Code, w.Header().Get("Allow"), tt.code, tt.allow)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q; want application/json", tt.method, tt.path, ct)
		}
		var e struct{ Error string }
		if tt.code == 405 && (json.Unmarshal(w.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, tt.allow)) {
			t.Errorf("%s %s: body %q; want a JSON error naming the allowed methods", tt.method, tt.path, w.Body)
		}
	}
}

// TestAdminHandler_badJSONTypes: a body with a value of the wrong JSON
// type is refused with a message in the API's terms, naming the field and
// what it must be, not Go's types.
func TestAdminHandler_badJSONTypes(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, three, nil)
	admin := b.AdminHandler()
	for _, tt := range []struct{ path, body, want string }{
		{"/nodes/n1/drain", `{"timeout":-5}`, `bad JSON body: "timeout" must be a duration string such as "30s"`},
		{"/nodes/n1/drain", `{"timeout":{"s":5}}`, `bad JSON body: "timeout" must be a duration string`},
		{"/nodes/n1/drain", `"30s"`, "bad JSON body: want a JSON object, not a string"},
		{"/nodes", `{"name":4,"url":"http://x"}`, `bad JSON body: "name" must be a string`},
		{"/nodes", `{"name":"n5","url":true}`, `bad JSON body: "url" must be a string`},
		{"/nodes", `[{"name":"n5","url":"http://x"}]`, "bad JSON body: want a JSON object, not an array"},
		{"/nodes", `{"name":"n5","url":"http://x","extra":1}`, `bad JSON body: unknown field "extra"`},
	} {
		w := do(admin, "POST", tt.path, tt.body)
		var e struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); w.Code != http.StatusBadRequest || err != nil || !strings.HasPrefix(e.Error, tt.want) {
			t.Errorf("POST %s %s: %d %s; want 400 with an error starting %s", tt.path, tt.body, w.Code, w.Body, tt.want)
		}
		for _, leak := range []string{"Go ", "struct", "json:", "balancer.", "RawMessage"} {
			if strings.Contains(e.Error, leak) {
				t.Errorf("POST %s %s: %q names Go internals (%q)", tt.path, tt.body, e.Error, leak)
			}
		}
	}
	if st := b.Nodes()[0]; st.State != StateActive {
		t.Errorf("after refused drains n1 is %s; want active", st.State)
	}
}

// TestAdminHandler_logsState: activating or draining a node that is down
// logs the state the node is left in, as the answer reports it, not "node
// active" or "node draining".
func TestAdminHandler_logsState(t *testing.T) {
	logs := &logBuffer{}
	b, nodes, _, _ := newTestBalancer(t, three, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	admin := b.AdminHandler()
	nodes["n3"].stop()
	b.CheckHealth(t.Context())
	for _, tt := range []struct{ path, state, msg string }{
		{"/nodes/n3/drain", StateDown, `msg="balancer: node set to drain`},
		{"/nodes/n3/activate", StateDown, `msg="balancer: node re-admitted`},
	} {
		w := do(admin, "POST", tt.path, "")
		var st NodeStatus
		if err := json.Unmarshal(w.Body.Bytes(), &st); w.Code != 200 || err != nil || st.State != tt.state {
			t.Fatalf("POST %s: %d %s; want 200 and state %s", tt.path, w.Code, w.Body, tt.state)
		}
		line := logs.line("node=n3", "state="+tt.state)
		if !strings.Contains(line, tt.msg) || strings.Contains(line, "node active") || strings.Contains(line, "node draining") {
			t.Errorf("POST %s answered state %s; logged %q; want %s with state=%s", tt.path, tt.state, line, tt.msg, tt.state)
		}
	}
	nodes["n3"].restart()
	b.CheckHealth(t.Context())
	for _, tt := range []struct{ path, state, msg string }{
		{"/nodes/n3/drain", StateDraining, `msg="balancer: node draining"`},
		{"/nodes/n3/activate", StateActive, `msg="balancer: node active"`},
	} {
		w := do(admin, "POST", tt.path, "")
		if !strings.Contains(w.Body.String(), `"state":"`+tt.state+`"`) {
			t.Fatalf("POST %s once n3 is up: %d %s; want state %s", tt.path, w.Code, w.Body, tt.state)
		}
		if line := logs.line("node=n3", "state="+tt.state); !strings.Contains(line, tt.msg) {
			t.Errorf("POST %s answered state %s; logged %q; want %s", tt.path, tt.state, line, tt.msg)
		}
	}
}

func TestObserver_requestsAndNodes(t *testing.T) {
	b, _, _, rec := newTestBalancer(t, three, nil)
	nodeOf(t, b, newID(t, "n3"))
	do(b, "GET", "/", "")
	if got := rec.count("RequestDone n3 2xx"); got < 1 {
		t.Errorf("RequestDone(n3, 2xx) = %v; want at least 1", got)
	}
	if got := rec.count("RequestDone n3 200"); got < 1 {
		t.Errorf("RequestDone(n3, 200) = %v; want at least 1", got)
	}
	for _, n := range three {
		if got := rec.count("NodeAdded " + n); got != 1 {
			t.Errorf("NodeAdded(%s) = %v; want 1", n, got)
		}
	}
	nodes := b.Nodes()
	if st := nodes[0]; !st.Healthy {
		t.Errorf("n1 = %+v; want healthy", st)
	}
	if st := nodes[1]; st.State != StateActive {
		t.Errorf("n2 state = %s; want active", st.State)
	}
	if st := nodes[2]; st.Sessions != 1 {
		t.Errorf("n3 sessions = %d; want 1", st.Sessions)
	}
}

func TestKeyCounter_window(t *testing.T) {
	var k keyCounter
	const w = 10 * time.Minute
	k.see(1, 0, w)
	k.see(2, 0, w)
	k.see(2, int64(4*time.Minute), w)
	if got := k.count(int64(4*time.Minute), w); got != 2 {
		t.Errorf("count = %d; want 2", got)
	}
	k.see(3, int64(6*time.Minute), w) // rotates: {1,2} become old
	if got := k.count(int64(6*time.Minute), w); got != 3 {
		t.Errorf("count after a rotation = %d; want 3", got)
	}
	if got := k.count(int64(11*time.Minute), w); got != 1 {
		t.Errorf("count after another = %d; want 1 (key 3 only)", got)
	}
	if got := k.count(int64(40*time.Minute), w); got != 0 {
		t.Errorf("count long after = %d; want 0", got)
	}
}

func TestClose_stopsHealthLoop(t *testing.T) {
	b, err := New(Config{Health: HealthCheck{Interval: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close() // twice is fine
	if err := b.AddNode(Backend{Name: "n1", URL: "http://127.0.0.1:1"}); err != ErrClosed {
		t.Errorf("AddNode after Close: %v; want ErrClosed", err)
	}
}

// TestBalancer_websocket_affinityCookie: a WebSocket opened as a user's
// first request gets the affinity cookie, as any proxied request does, and
// the user's next request with it goes to the same node.
func TestBalancer_websocket_affinityCookie(t *testing.T) {
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{wsNode(t, "n1"), wsNode(t, "n2"), wsNode(t, "n3")}
		withAffinity(c)
	})
	front := strings.TrimPrefix(frontURL(t, b), "http://")
	upgrade := func(cookie string) *http.Response {
		t.Helper()
		conn, err := net.DialTimeout("tcp", front, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n", cookie)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: status %d; want 101", resp.StatusCode)
		}
		return resp
	}
	first := upgrade("")
	c := affinityCookie(t, first.Header)
	if c == nil {
		t.Fatalf("a WebSocket as the first request: no affinity cookie in %v", first.Header)
	}
	node := first.Header.Get("X-Node")
	for range 5 {
		again := upgrade("Cookie: " + c.Name + "=" + c.Value + "\r\n")
		if got := again.Header.Get("X-Node"); got != node {
			t.Fatalf("with its affinity cookie, the user went to %s; want %s", got, node)
		}
		if affinityCookie(t, again.Header) != nil {
			t.Errorf("a valid affinity cookie was set again")
		}
	}
}
