package balancer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// The package's tests run twice: once through Balancer.ServeHTTP (net/http)
// and once through NewFastServer (fasthttp), so that both front ends are
// held to the same behaviour. testEngine names the one running.
var testEngine = "net/http"

func TestMain(m *testing.M) {
	var spec crashNodeSpec
	if testenv.IsChild(crashNodeEnv, &spec) {
		runCrashNode(spec) // until the parent goes away
		os.Exit(0)
	}
	code := m.Run()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(code) // fuzzing: once is enough
	}
	if code == 0 {
		testEngine = "fast"
		fmt.Println("balancer: the same tests through the fast server (NewFastServer)")
		code = m.Run()
	}
	os.Exit(code)
}

// fronts holds the URL of each Balancer's fast server, started on first
// use.
var fronts sync.Map // *Balancer -> string

// frontURL returns the URL of a server in front of b for the engine under
// test, stopped when t ends.
func frontURL(t testing.TB, b *Balancer) string {
	t.Helper()
	if testEngine != "fast" {
		srv := httptest.NewServer(b)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	return fastFront(t, b)
}

func fastFront(t testing.TB, b *Balancer) string {
	if u, ok := fronts.Load(b); ok {
		return u.(string)
	}
	srv, err := b.NewFastServer(FastConfig{})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(FastListener(ln))
	if t != nil {
		t.Cleanup(func() { srv.ShutdownWithContext(context.Background()) })
	}
	u := "http://" + ln.Addr().String()
	fronts.Store(b, u)
	return u
}

// frontClient sends requests to fast servers as they are: no redirects
// followed, no compression asked.
var frontClient = &http.Client{
	Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// serveReq runs r through h: directly, or through b's fast server when h is
// a *Balancer and the fast engine is under test.
func serveReq(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	b, ok := h.(*Balancer)
	if !ok || testEngine != "fast" {
		h.ServeHTTP(w, r)
		return w
	}
	out := r.Clone(r.Context())
	u := *r.URL
	base := fastFront(nil, b)
	u.Scheme, u.Host = "http", base[len("http://"):]
	out.URL, out.RequestURI, out.Host = &u, "", r.Host
	if r.Body == http.NoBody || r.Body == nil {
		out.Body = nil
	}
	resp, err := frontClient.Do(out)
	if err != nil {
		w.Code = 599
		io.WriteString(w, err.Error())
		return w
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
	return w
}

func TestBalancer_pathPrefixAndEncoding(t *testing.T) {
	var gotPath, gotRaw, gotQuery, gotHost string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotRaw, gotQuery, gotHost = r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, r.Host
	}))
	defer app.Close()
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) { c.Backends = []Backend{{Name: "n1", URL: app.URL + "/app/"}} })
	r := httptest.NewRequest("GET", "http://front.example/a%2Fb/./c?q=1&r=%20", nil)
	if w := serveReq(b, r); w.Code != http.StatusOK {
		t.Fatalf("status %d, body %q", w.Code, w.Body)
	}
	if gotRaw != "/app/a%2Fb/./c" || gotPath != "/app/a/b/./c" || gotQuery != "q=1&r=%20" {
		t.Errorf("node saw path %q (escaped %q), query %q; want /app/a%%2Fb/./c unchanged and q=1&r=%%20", gotPath, gotRaw, gotQuery)
	}
	if want := app.Listener.Addr().String(); gotHost != want {
		t.Errorf("node saw Host %q; want its own address %q", gotHost, want)
	}
}

func TestBalancer_hopByHopHeaders(t *testing.T) {
	var got http.Header
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-App", "yes")
	}))
	defer app.Close()
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) { c.Backends = []Backend{{Name: "n1", URL: app.URL}} })
	r := httptest.NewRequest("GET", "http://front.example/", nil)
	r.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	r.Header.Set("Te", "gzip")
	r.Header.Set("X-Custom", "kept")
	w := serveReq(b, r)
	for _, h := range []string{"Proxy-Authorization", "Te"} {
		if v := got.Get(h); v != "" {
			t.Errorf("node got hop-by-hop header %s: %q", h, v)
		}
	}
	if got.Get("X-Custom") != "kept" || w.Header().Get("X-App") != "yes" {
		t.Errorf("end-to-end headers lost: request X-Custom %q, response X-App %q", got.Get("X-Custom"), w.Header().Get("X-App"))
	}
	if v := w.Header().Get("Keep-Alive"); v != "" {
		t.Errorf("client got the node's Keep-Alive header %q", v)
	}
}

// TestBalancer_hopByHopHeadersAnyCase: a node that writes its header
// names in lower case (as HTTP/2-era servers do over HTTP/1.1 too) has its
// hop-by-hop headers removed all the same: names are case-insensitive.
func TestBalancer_hopByHopHeadersAnyCase(t *testing.T) {
	node := rawNode(t, func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=5\r\n"+
			"proxy-authenticate: Basic\r\nupgrade: h2c\r\nx-app: yes\r\n\r\nok")
	})
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) { c.Backends = []Backend{{Name: "n1", URL: node}} })
	w := serveReq(b, httptest.NewRequest("GET", "http://front.example/", nil))
	if w.Code != 200 || w.Header().Get("X-App") != "yes" {
		t.Fatalf("status %d, X-App %q", w.Code, w.Header().Get("X-App"))
	}
	for _, h := range []string{"Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v := w.Header().Get(h); v != "" {
			t.Errorf("client got the node's hop-by-hop header %s: %q", h, v)
		}
	}
}

func TestFastServer_limits(t *testing.T) {
	if testEngine == "fast" {
		t.Skip("engine-independent; ran in the first pass")
	}
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 2<<10))
	}))
	defer big.Close()
	b, _, _, rec := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{{Name: "n1", URL: big.URL}}
		c.MaxBodyBytes = 1 << 10
	})
	srv, err := b.NewFastServer(FastConfig{MaxResponseBodyBytes: 1 << 10, MaxHeaderBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(FastListener(ln))
	defer srv.ShutdownWithContext(context.Background())
	url := "http://" + ln.Addr().String()

	resp, err := frontClient.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("response body over MaxResponseBodyBytes: status %d; want 502", resp.StatusCode)
	}
	if got := rec.count("RequestDone n1 error"); got != 1 {
		t.Errorf("requests{n1,error} = %v; want 1", got)
	}

	resp, err = frontClient.Post(url+"/", "text/plain", strings.NewReader(strings.Repeat("x", 2<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("request body over MaxBodyBytes: status %d; want 413", resp.StatusCode)
	}

	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("y", 8<<10))
	resp, err = frontClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers over MaxHeaderBytes: status %d; want 431", resp.StatusCode)
	}

	unlimited, _, _, _ := newTestBalancer(t, []string{"n1"}, func(c *Config) { c.MaxBodyBytes = -1 })
	if _, err := unlimited.NewFastServer(FastConfig{}); !errors.Is(err, ErrFastUnlimitedBody) {
		t.Errorf("NewFastServer with no body limit: err %v; want ErrFastUnlimitedBody", err)
	}
}

// FuzzFastServer_request sends arbitrary bytes as a request to the fast
// server in front of one node: it must never crash or hang, and whatever it
// answers must be a well-formed HTTP/1.1 response.
func FuzzFastServer_request(f *testing.F) {
	id := "Qv3WG7LwOJaF2Yoy-rXkkrbogb2sqXoqO51So59tK_o.n1"
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /cart HTTP/1.1\r\nHost: x\r\nCookie: session=" + id + "\r\n\r\n",
		"POST /cart HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nCookie: session=\"" + id + "\"\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
		"GET http://other.example/%zz?q HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nTe: trailers\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	b, err := New(Config{Backends: []Backend{startNode(f, "n1").backend()}, Health: HealthCheck{Interval: -1},
		MaxBodyBytes: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := b.NewFastServer(FastConfig{ReadTimeout: time.Second, BackendTimeout: time.Second, MaxHeaderBytes: 4 << 10})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(FastListener(ln))
	f.Cleanup(func() { srv.ShutdownWithContext(context.Background()); b.Close() })

	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(raw)
		c.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer and no close within 5s to %q (got %q)", raw, out)
		}
		if len(out) == 0 {
			return // closed without an answer: fine for garbage
		}
		if _, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil); err != nil {
			t.Fatalf("answer to %q is not an HTTP response: %v\n%q", raw, err, out)
		}
	})
}

// TestBalancer_refusedUpgradeNoTunnel: a node that answers an upgrade
// request without 101 (here a plain handler that ignores Upgrade and keeps
// the connection alive) must not leave the client's connection tunneled
// to it: the client's next request on that connection would reach the node
// unparsed, past the balancer's routing and its rewriting of the
// X-Forwarded-* headers ("WebSocket smuggling"). The balancer relays the
// refusal and ends the connection, or goes on proxying it as HTTP.
func TestBalancer_refusedUpgradeNoTunnel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "xff="+r.Header.Get("X-Forwarded-For")+"\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b, _, _, _ := newTestBalancer(t, nil, func(c *Config) {
		c.Backends = []Backend{{Name: "n1", URL: "http://" + ln.Addr().String()}}
	})
	c, err := net.Dial("tcp", strings.TrimPrefix(frontURL(t, b), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the refused upgrade: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "xff=127.0.0.1") {
		t.Fatalf("the refused upgrade: %d %q; want the node's 200 with the balancer's X-Forwarded-For", resp.StatusCode, body)
	}
	// The same connection, a forged X-Forwarded-For.
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		return // the balancer ended the connection: nothing reached the node
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "6.6.6.6") {
		t.Errorf("a request after a refused upgrade reached the node unparsed: it saw %q", body)
	}
}
