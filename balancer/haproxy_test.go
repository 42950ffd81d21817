package balancer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// HAProxyConfig is the configuration docs/balancer.md shows: HAProxy
// reads the route tag after the '.' of the session cookie (__Host-session,
// or session for an app without the prefix) and sends the
// request to the server of that name; requests without one are balanced
// round-robin, and a down server's users are redispatched.
const haproxyConfig = `global
	maxconn 4096

defaults
	mode http
	timeout connect 2s
	timeout client 30s
	timeout server 30s
	option redispatch

frontend app
	bind {{.Listen}}
	default_backend nodes

backend nodes
	balance roundrobin
	option httpchk GET /healthz
	http-request set-var(txn.sk_route) req.cook(__Host-session),field(2,.)
	http-request set-var(txn.sk_route) req.cook(session),field(2,.) unless { var(txn.sk_route) -m found }
{{range .Nodes}}	use-server {{.Name}} if { var(txn.sk_route) -m str {{.Name}} }
{{end}}{{range .Nodes}}	server {{.Name}} {{.Addr}} check inter 2s
{{end}}`

// plainCookie makes refNode's nodes name their session cookie "session"
// instead of the default "__Host-session" (NoHostPrefix), for the tests of
// the proxies' fallback to that name; set only by tests that run alone.
var plainCookie bool

func sessionCookieName() string {
	if plainCookie {
		return "session"
	}
	return "__Host-session"
}

// refNode starts one reference-app node (memory sessions) on a loopback
// port; its session IDs carry its name as route tag.
func refNode(t *testing.T, name string) *httptest.Server {
	t.Helper()
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := session.New(session.Config{Store: st, Route: name, ErrorHandler: refapp.ErrorHandler,
		Transport: session.Cookie{NoHostPrefix: plainCookie}})
	if err != nil {
		t.Fatal(err)
	}
	app, err := refapp.New(refapp.Config{Node: name, Strategy: "memory", Manager: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return srv
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHAProxy_routeTag, with the nodes' session cookie named __Host-session
// (the default) and then session, puts a real HAProxy in front of three reference-app
// nodes, configured to route by the route tag of sessionkit's session
// cookie, and checks that every user stays on the node that holds their
// session.
func TestHAProxy_routeTag(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "__Host-session", true: "session"}[plain], func(t *testing.T) {
			plainCookie = plain
			t.Cleanup(func() { plainCookie = false })
			testHAProxyRouteTag(t)
		})
	}
}

func testHAProxyRouteTag(t *testing.T) {
	haproxy := testenv.Command(t, "haproxy")
	type node struct{ Name, Addr string }
	var nodes []node
	for _, name := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, node{name, refNode(t, name).Listener.Addr().String()})
	}
	listen := freeAddr(t)
	var cfg bytes.Buffer
	template.Must(template.New("").Parse(haproxyConfig)).Execute(&cfg, map[string]any{"Listen": listen, "Nodes": nodes})
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, cfg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &lockedBuffer{}
	cmd := exec.CommandContext(ctx, haproxy, "-db", "-f", file)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	waitListening(t, listen, stderr)

	checkSticky(t, "http://"+listen)
}

// checkSticky logs 12 users in through the proxy at base and checks that
// each one's requests all reach the node that holds their session, and
// that the users were spread over the three nodes.
func checkSticky(t *testing.T, base string) map[string]string {
	t.Helper()
	homes := map[string]int{}
	users := map[string]string{} // cookie -> node
	for i := range 12 {
		resp := call(t, "POST", base+"/login", fmt.Sprintf(`{"user":"user%d"}`, i), "")
		home := resp.Header.Get("X-Node")
		var cookie string
		for _, c := range resp.Cookies() {
			if c.Name == sessionCookieName() {
				cookie = c.Value
			}
		}
		if resp.StatusCode != 200 || !strings.HasSuffix(cookie, "."+home) {
			t.Fatalf("login: %d from %s, cookie tagged %q", resp.StatusCode, home, cookie[strings.LastIndexByte(cookie, '.')+1:])
		}
		homes[home]++
		users[cookie] = home
		for j := range 4 {
			resp := call(t, "POST", base+"/cart", fmt.Sprintf(`{"item":"i%d"}`, j), cookie)
			if resp.StatusCode != 200 || resp.Header.Get("X-Node") != home {
				t.Fatalf("user of %s: POST /cart answered %d by %s", home, resp.StatusCode, resp.Header.Get("X-Node"))
			}
		}
		if resp := call(t, "GET", base+"/cart", "", cookie); resp.StatusCode != 200 || resp.Header.Get("X-Node") != home {
			t.Fatalf("user of %s: GET /cart answered %d by %s", home, resp.StatusCode, resp.Header.Get("X-Node"))
		}
	}
	if len(homes) != 3 {
		t.Errorf("users per node = %v; want all three nodes used", homes)
	}
	return users
}

func call(t *testing.T, method, url, body, cookie string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookieName(), Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// lockedBuffer collects a process's output; safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitListening(t *testing.T, addr string, stderr *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v\n%s", addr, err, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
