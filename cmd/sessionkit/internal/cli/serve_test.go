package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/cli"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

var listeningRE = regexp.MustCompile(`(?m)^sessionkit serve: node (\S+) \(strategy (\S+)\) listening on (http://\S+)$`)

// server is a "sessionkit serve" running in the test's process.
type server struct {
	url, node string
	stderr    *syncBuffer
	cancel    context.CancelFunc
	done      chan int // receives Main's exit status
}

// startServe runs Main with args in a goroutine and waits for its
// "listening" line. The server is stopped at the end of the test if the
// test did not stop it.
func startServe(t *testing.T, e env, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- cli.Main(ctx, args, io.Discard, s.stderr, e.get) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(s.stderr.String()); m != nil {
			s.node, s.url = m[1], m[3]
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code // for the cleanup
			t.Fatalf("serve exited with %d before listening; stderr:\n%s", code, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not print its address; stderr:\n%s", s.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop cancels the server's context and checks that Main returns 0 within
// 5 seconds and says so.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code // for the cleanup
		if code != 0 {
			t.Errorf("serve exited with %d; want 0; stderr:\n%s", code, s.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("serve did not stop within 5s; stderr:\n%s", s.stderr)
	}
	if !strings.HasSuffix(s.stderr.String(), "sessionkit serve: stopped\n") {
		t.Errorf("stderr does not end with the stopped line:\n%s", s.stderr)
	}
}

func TestServe_routes(t *testing.T) { checkRoutes(t, "memory") }

// TestServe_redis and TestServe_postgres serve the same routes from the
// shared stores (the local servers, started by scripts/test).
func TestServe_redis(t *testing.T) {
	addr := testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
	checkRoutes(t, "redis", "--redis", "redis://"+addr+"/0?key_prefix=sktest"+rand.Text()[:8]+":")
}

func TestServe_postgres(t *testing.T) {
	checkRoutes(t, "postgres", "--postgres", postgresURL(t))
}

// postgresURL returns SESSIONKIT_POSTGRES_URL, or the local server's, once
// its address answers (testenv: skipped with the reason locally, a failure
// with CI set).
func postgresURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("SESSIONKIT_POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatalf("SESSIONKIT_POSTGRES_URL: %v", err)
	}
	t.Setenv("SESSIONKIT_TEST_POSTGRES_ADDR", u.Host)
	testenv.TCPAddr(t, "SESSIONKIT_TEST_POSTGRES_ADDR", "127.0.0.1:5432")
	return url
}

// checkRoutes runs serve with the strategy and walks every route of the
// reference app as one user, then a second.
func checkRoutes(t *testing.T, strategy string, extra ...string) {
	args := append([]string{"serve", "--strategy", strategy, "--addr", "127.0.0.1:0", "--insecure-cookie",
		"--node", "t1", "--log-level", "debug"}, extra...)
	srv := startServe(t, nil, args...)
	// Users unique to this run, so that shared stores hold no sessions of theirs.
	alice, bob := "alice-"+rand.Text()[:10], "bob-"+rand.Text()[:10]
	if srv.node != "t1" || !strings.HasPrefix(srv.url, "http://127.0.0.1:") || strings.HasSuffix(srv.url, ":0") {
		t.Fatalf("listening line names node %q at %q; want t1 at a real port of 127.0.0.1", srv.node, srv.url)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	for _, step := range []struct {
		method, path, body string
		status             int
		want               string // exact body, without the final newline; "" with whoami
	}{
		{"GET", "/healthz", "", 200, "ok"},
		{"GET", "/cart", "", 401, `{"error":"not logged in"}`},
		{"POST", "/login", `{"user":"` + alice + `"}`, 200, `{"user":"` + alice + `","node":"t1"}`},
		{"POST", "/cart", `{"item":"a"}`, 200, `{"user":"` + alice + `","items":["a"],"node":"t1"}`},
		{"POST", "/cart", `{"item":"b"}`, 200, `{"user":"` + alice + `","items":["a","b"],"node":"t1"}`},
		{"GET", "/cart", "", 200, `{"user":"` + alice + `","items":["a","b"],"node":"t1"}`},
		{"GET", "/whoami", "", 200, ""},
		{"POST", "/login", `{"user":`, 400, ""},
		{"GET", "/login", "", 405, `{"error":"method GET not allowed; use POST"}`},
		{"GET", "/nowhere", "", 404, `{"error":"not found"}`},
		{"POST", "/logout-all", "", 200, `{"revoked":1}`},
		{"GET", "/cart", "", 401, `{"error":"not logged in"}`},
		{"POST", "/login", `{"user":"` + bob + `"}`, 200, `{"user":"` + bob + `","node":"t1"}`},
		{"POST", "/logout", "", 200, `{}`},
		{"GET", "/whoami", "", 401, `{"error":"not logged in"}`},
	} {
		what := step.method + " " + step.path
		req, err := http.NewRequest(step.method, srv.url+step.path, strings.NewReader(step.body))
		if err != nil {
			t.Fatal(err)
		}
		if step.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body := strings.TrimSuffix(string(b), "\n")
		if resp.StatusCode != step.status {
			t.Errorf("%s: status %d; want %d (body %s)", what, resp.StatusCode, step.status, body)
		}
		if got := resp.Header.Get("X-Node"); got != "t1" {
			t.Errorf("%s: X-Node %q; want t1", what, got)
		}
		switch {
		case step.path == "/whoami" && step.status == 200:
			var who struct{ User, Node, Strategy, Created string }
			if err := json.Unmarshal(b, &who); err != nil {
				t.Errorf("whoami: %v (%s)", err, body)
			}
			created, err := time.Parse(time.RFC3339, who.Created)
			if who.User != alice || who.Node != "t1" || who.Strategy != strategy || err != nil ||
				time.Since(created) > time.Minute {
				t.Errorf("whoami: %s; want %s, t1, %s and a recent RFC 3339 time", body, alice, strategy)
			}
		case step.want != "" && body != step.want:
			t.Errorf("%s: body %s; want %s", what, body, step.want)
		case step.status >= 400 && !strings.HasPrefix(body, `{"error":"`):
			t.Errorf("%s: body %s; want a JSON error", what, body)
		}
		if step.path != "/healthz" && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q; want application/json", what, resp.Header.Get("Content-Type"))
		}
	}
	// The store's own metrics: the breaker of a shared store, or the
	// in-memory store's size.
	got := scrape(t, srv.url+"/metrics", "sessionkit_")
	want := `sessionkit_memstore_entries{store="memory"}`
	if strategy != "memory" {
		want = `sessionkit_breaker_state{store="` + strategy + `"}`
	}
	if v, ok := got[want]; !ok || v != 0 {
		t.Errorf("/metrics: %s = %v (present: %v); want 0", want, v, ok)
	}
	if got[`sessionkit_session_events_total{event="created"}`] != 2 {
		t.Errorf("/metrics: created = %v; want 2 (alice, bob)", got[`sessionkit_session_events_total{event="created"}`])
	}
	srv.stop(t)
}

func TestServe_envDefaults(t *testing.T) {
	e := env{"SESSIONKIT_NODE": "from-env", "SESSIONKIT_ADDR": "127.0.0.1:0", "SESSIONKIT_LOG_LEVEL": "error"}
	srv := startServe(t, e, "serve")
	if srv.node != "from-env" {
		t.Errorf("node %q; want from-env, from SESSIONKIT_NODE", srv.node)
	}
	srv.stop(t)

	// The command line wins over the environment.
	srv = startServe(t, e, "serve", "--node", "from-flag")
	if srv.node != "from-flag" {
		t.Errorf("node %q; want from-flag, from --node", srv.node)
	}
	resp, err := http.Get(srv.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Node"); got != "from-flag" {
		t.Errorf("X-Node %q; want from-flag", got)
	}
	srv.stop(t)
}

func TestServe_listenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, stdout, stderr := run(t, nil, "serve", "--addr", ln.Addr().String())
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	oneLine(t, stderr, "sessionkit serve: listen tcp "+ln.Addr().String(), "address already in use")
}

// TestServe_nats serves the routes from the local NATS (client mode) and
// from an embedded single-node NATS (the form three serve processes use,
// with --peers, to form a cluster).
func TestServe_nats(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		addr := testenv.TCPAddr(t, "SESSIONKIT_NATS_ADDR", "127.0.0.1:4222")
		checkRoutes(t, "nats", "--nats", "nats://"+addr)
	})
	t.Run("embedded", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		clusterAddr := ln.Addr().String()
		ln.Close()
		checkRoutes(t, "nats", "--cluster-addr", clusterAddr, "--data-dir", t.TempDir())
	})
}

// TestServe_olric serves the routes from an embedded single-member Olric
// cluster (the form three serve processes use, with --peers, to form a
// cluster), and fails cleanly when the member cannot start.
func TestServe_olric(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		var addrs []string
		for range 2 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addrs = append(addrs, ln.Addr().String())
			ln.Close() // free for the member; another socket may take it meanwhile
		}
		checkRoutes(t, "olric", "--cluster-addr", addrs[0], "--olric-addr", addrs[1])
	})
	t.Run("bad cluster address", func(t *testing.T) {
		code, _, stderr := run(t, nil, "serve", "--strategy", "olric", "--addr", "127.0.0.1:0", "--cluster-addr", "0.0.0.0:18001")
		if code != 1 {
			t.Errorf("exit %d; want 1", code)
		}
		oneLine(t, stderr, "sessionkit serve: olricstore: ", "reach")
	})
}

// A lifetime shorter than the idle timeout is allowed (sessions then end at
// their lifetime) but logged, since it is usually a mistake.
func TestServe_lifetimeShorterThanIdleTimeout(t *testing.T) {
	s := startServe(t, nil, "serve", "--addr", "127.0.0.1:0", "--lifetime", "1m", "--idle-timeout", "30m")
	if !strings.Contains(s.stderr.String(), "level=WARN msg=\"serve: --lifetime is shorter than --idle-timeout") {
		t.Errorf("no warning; stderr:\n%s", s.stderr)
	}
	s2 := startServe(t, nil, "serve", "--addr", "127.0.0.1:0", "--lifetime", "30m", "--idle-timeout", "30m")
	if strings.Contains(s2.stderr.String(), "shorter than --idle-timeout") {
		t.Errorf("a warning for equal durations; stderr:\n%s", s2.stderr)
	}
}
