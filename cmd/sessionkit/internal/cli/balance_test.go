package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/cli"
)

var (
	balanceRE = regexp.MustCompile(`(?m)^sessionkit balance: listening on (http://\S+) \(nodes ([^)]*)\)$`)
	adminRE   = regexp.MustCompile(`(?m)^sessionkit balance: admin API and /metrics on (http://\S+)$`)
)

// balance is a "sessionkit balance" running in the test's process.
type balance struct {
	url, admin string
	stderr     *syncBuffer
	cancel     context.CancelFunc
	done       chan int
}

func startBalance(t *testing.T, e env, args ...string) *balance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &balance{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { b.done <- cli.Main(ctx, append([]string{"balance"}, args...), io.Discard, b.stderr, e.get) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			t.Error("balance did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := b.stderr.String()
		if m := balanceRE.FindStringSubmatch(out); m != nil && (!strings.Contains(strings.Join(args, " "), "--admin") || adminRE.MatchString(out)) {
			b.url = m[1]
			if a := adminRE.FindStringSubmatch(out); a != nil {
				b.admin = a[1]
			}
			return b
		}
		select {
		case code := <-b.done:
			b.done <- code
			t.Fatalf("balance exited with %d before listening; stderr:\n%s", code, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("balance did not print its address; stderr:\n%s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBalance_sticky runs three serve nodes and a balancer in front of
// them, logs users in through the balancer and checks that each stays on
// the node that holds their session.
func TestBalance_sticky(t *testing.T) {
	var backends []string
	for _, n := range []string{"n1", "n2", "n3"} {
		s := startServe(t, nil, "serve", "--node", n, "--addr", "127.0.0.1:0", "--insecure-cookie")
		backends = append(backends, "--backend", n+"="+s.url)
	}
	for _, engine := range []string{"fast", "net/http"} {
		t.Run("engine="+engine, func(t *testing.T) {
			testSticky(t, append(backends, "--engine", engine))
		})
	}
}

// userPoster returns a function that POSTs JSON to base as one user, with
// a cookie jar of its own, and returns the response, its body read.
func userPoster(t *testing.T, base string) func(path, body string) *http.Response {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	return func(path, body string) *http.Response {
		resp, err := c.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
}

func testSticky(t *testing.T, backends []string) {
	b := startBalance(t, nil, append(backends, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")...)

	homes := map[string]int{}
	for i := range 12 {
		post := userPoster(t, b.url)
		resp := post("/login", `{"user":"u`+string(rune('a'+i))+`"}`)
		home := resp.Header.Get("X-Node")
		homes[home]++
		for range 3 {
			resp := post("/cart", `{"item":"x"}`)
			if resp.StatusCode != 200 || resp.Header.Get("X-Node") != home {
				t.Fatalf("user logged in on %s: POST /cart got %d from %s", home, resp.StatusCode, resp.Header.Get("X-Node"))
			}
		}
	}
	if len(homes) < 2 {
		t.Errorf("12 users all landed on %v; want them spread", homes)
	}

	resp, err := http.Get(b.admin + "/nodes")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []struct {
		Name, State string
		Sessions    int
	}
	err = json.NewDecoder(resp.Body).Decode(&nodes)
	resp.Body.Close()
	if err != nil || len(nodes) != 3 || nodes[0].State != "active" {
		t.Fatalf("GET /nodes: %v %+v", err, nodes)
	}
	m := scrape(t, b.admin+"/metrics", "sessionkit_balancer_")
	if got := m[`sessionkit_balancer_affinity_total{result="hit"}`]; got != 36 {
		t.Errorf("affinity hits = %v; want 36 (3 per user)", got)
	}
	if got := m[`sessionkit_balancer_node_up{node="n2"}`]; got != 1 {
		t.Errorf("node_up{n2} = %v; want 1", got)
	}
	var requests, durations, sessions float64
	for _, n := range []string{"n1", "n2", "n3"} {
		requests += m[`sessionkit_balancer_requests_total{class="2xx",node="`+n+`"}`]
		durations += m[`sessionkit_balancer_request_duration_seconds_count{node="`+n+`"}`]
		sessions += m[`sessionkit_balancer_node_sessions{node="`+n+`"}`]
		if got := m[`sessionkit_balancer_node_state{node="`+n+`",state="active"}`]; got != 1 {
			t.Errorf("node_state{%s,active} = %v; want 1", n, got)
		}
		if got, ok := m[`sessionkit_balancer_node_inflight{node="`+n+`"}`]; !ok || got != 0 {
			t.Errorf("node_inflight{%s} = %v (present %v); want 0", n, got, ok)
		}
	}
	// 12 logins and 36 carts. Each login's ID is new to the balancer, the
	// next three requests carry it: 12 sessions.
	if requests != 48 || durations != 48 || sessions != 12 {
		t.Errorf("requests{2xx} %v, duration samples %v, node_sessions %v over the nodes; want 48, 48, 12",
			requests, durations, sessions)
	}
}

// TestBalance_affinityKeyFile: balancers given the same --affinity-key-file
// accept each other's affinity cookies; one with its own random key does
// not.
func TestBalance_affinityKeyFile(t *testing.T) {
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(node.Close)
	key := filepath.Join(t.TempDir(), "affinity.key")
	os.WriteFile(key, []byte(strings.Repeat("k", 32)), 0o600)
	args := []string{"--listen", "127.0.0.1:0", "--backend", "n1=" + node.URL, "--affinity-cookie", "aff"}
	b1 := startBalance(t, nil, append(args, "--affinity-key-file", key)...)
	b2 := startBalance(t, nil, append(args, "--affinity-key-file", key)...)
	b3 := startBalance(t, nil, args...)
	get := func(url, cookie string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url+"/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	cookies := get(b1.url, "").Cookies()
	if len(cookies) != 1 || cookies[0].Name != "aff" {
		t.Fatalf("first request: cookies %v; want the affinity cookie", cookies)
	}
	c := "aff=" + cookies[0].Value
	if got := get(b2.url, c).Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("a balancer with the same key set %v; want it to accept the cookie", got)
	}
	if got := get(b3.url, c).Header.Values("Set-Cookie"); len(got) != 1 {
		t.Errorf("a balancer with its own key set %v; want it to refuse the cookie and set its own", got)
	}
}

// TestBalance_adminMethods: on the admin listener, a known path with a
// method it does not support, /metrics included, is answered 405 with the
// methods it supports in Allow; an unknown path is 404.
func TestBalance_adminMethods(t *testing.T) {
	b := startBalance(t, nil, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend", "n1=http://127.0.0.1:1")
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"PUT", "/nodes", 405, "GET, HEAD, POST"},
		{"GET", "/nodes/n1/drain", 405, "POST"},
		{"PUT", "/metrics", 405, "GET, HEAD"},
		{"POST", "/metrics", 405, "GET, HEAD"},
		{"GET", "/metrics", 200, ""},
		{"GET", "/nope", 404, ""},
	} {
		req, _ := http.NewRequest(tc.method, b.admin+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.code, tc.allow)
		}
		if tc.code == 405 && !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s: body %q; want a JSON error", tc.method, tc.path, body)
		}
	}
}

func TestBalance_badCommandLine(t *testing.T) {
	dir := t.TempDir()
	shortKey, emptyKey := filepath.Join(dir, "short.key"), filepath.Join(dir, "empty.key")
	os.WriteFile(shortKey, []byte("abc"), 0o600)
	os.WriteFile(emptyKey, nil, 0o600)
	for _, tc := range []struct {
		name  string
		env   env
		args  []string
		parts []string
	}{
		{"no backend", nil, nil, []string{"no backend"}},
		{"bad backend", nil, []string{"--backend", "n1"}, []string{"want NAME=URL"}},
		{"bad node name", nil, []string{"--backend", "a.b=http://x"}, []string{`node name "a.b"`}},
		{"bad url", nil, []string{"--backend", "n1=ftp://x"}, []string{"ftp://x", "want http(s)"}},
		{"duplicate", nil, []string{"--backend", "n1=http://a", "--backend", "n1=http://b"}, []string{`two backends are named "n1"`}},
		{"bad listen", nil, []string{"--backend", "n1=http://a", "--listen", "x"}, []string{`invalid --listen "x"`}},
		{"bad admin", nil, []string{"--backend", "n1=http://a", "--admin", "x"}, []string{`invalid --admin "x"`}},
		{"bad load factor", nil, []string{"--backend", "n1=http://a", "--load-factor", "0.5"},
			[]string{`invalid --load-factor "0.5": want 0 (no bound) or at least 1`}},
		{"bad env load factor", env{"SESSIONKIT_LOAD_FACTOR": "0.5"}, []string{"--backend", "n1=http://a"},
			[]string{`invalid SESSIONKIT_LOAD_FACTOR "0.5"`, "at least 1"}},
		{"bad cookie", nil, []string{"--backend", "n1=http://a", "--cookie", "a;b"}, []string{`invalid --cookie "a;b"`, "cookie name"}},
		{"bad affinity cookie", nil, []string{"--backend", "n1=http://a", "--affinity-cookie", "a b"},
			[]string{`invalid --affinity-cookie "a b"`, "cookie name"}},
		{"same cookie names", nil, []string{"--backend", "n1=http://a", "--cookie", "sid", "--affinity-cookie", "sid"},
			[]string{`invalid --affinity-cookie "sid"`, "--cookie"}},
		{"bad health path", nil, []string{"--backend", "n1=http://a", "--health-path", "healthz"},
			[]string{`invalid --health-path "healthz"`, "start with '/'"}},
		{"short key", nil, []string{"--backend", "n1=http://a", "--affinity-cookie", "aff", "--affinity-key-file", shortKey, "--listen", "127.0.0.1:0"},
			[]string{`invalid --affinity-key-file "` + shortKey + `"`, "3 bytes", "at least 32"}},
		{"empty key", nil, []string{"--backend", "n1=http://a", "--affinity-cookie", "aff", "--affinity-key-file", emptyKey, "--listen", "127.0.0.1:0"},
			[]string{`invalid --affinity-key-file "` + emptyKey + `"`, "0 bytes", "at least 32"}},
		{"missing key", nil, []string{"--backend", "n1=http://a", "--affinity-cookie", "aff", "--affinity-key-file", filepath.Join(dir, "none"), "--listen", "127.0.0.1:0"},
			[]string{"invalid --affinity-key-file", "no such file"}},
		{"endless key", nil, []string{"--backend", "n1=http://a", "--affinity-cookie", "aff", "--affinity-key-file", "/dev/zero", "--listen", "127.0.0.1:0"},
			[]string{`invalid --affinity-key-file "/dev/zero"`, "larger than 4096 bytes"}},
		{"key without affinity cookie", nil, []string{"--backend", "n1=http://a", "--affinity-key-file", shortKey, "--listen", "127.0.0.1:0"},
			[]string{"--affinity-key-file is used only with --affinity-cookie"}},
		{"bad interval", nil, []string{"--backend", "n1=http://a", "--health-interval", "0s"}, []string{"--health-interval", "positive"}},
		{"bad max body", nil, []string{"--backend", "n1=http://a", "--max-body", "0"}, []string{"--max-body"}},
		{"unlimited body, fast", nil, []string{"--backend", "n1=http://a", "--max-body", "-1"}, []string{"--max-body", "--engine net/http"}},
		{"bad engine", nil, []string{"--backend", "n1=http://a", "--engine", "nginx"}, []string{"--engine", "want fast or net/http"}},
		{"bad idle timeout", nil, []string{"--backend", "n1=http://a", "--backend-idle-timeout", "-1s"}, []string{"--backend-idle-timeout", "positive"}},
		{"bad rise", nil, []string{"--backend", "n1=http://a", "--health-rise", "0"}, []string{"--health-rise", "positive"}},
		{"bad response limit", nil, []string{"--backend", "n1=http://a", "--max-response-body", "-5"}, []string{"--max-response-body"}},
		{"bad env float", env{"SESSIONKIT_LOAD_FACTOR": "lots"}, []string{"--backend", "n1=http://a"}, []string{"SESSIONKIT_LOAD_FACTOR", "want a number"}},
		{"bad env backend", env{"SESSIONKIT_BACKEND": "n1"}, nil, []string{"SESSIONKIT_BACKEND", "want NAME=URL"}},
		{"missing config", nil, []string{"--config", "/nonexistent/x.json"}, []string{"--config", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Cancelled: a command line wrongly accepted starts a balancer
			// that stops at once, instead of one that runs forever.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var stdout, stderr syncBuffer
			code := cli.Main(ctx, append([]string{"balance"}, tc.args...), &stdout, &stderr, tc.env.get)
			if code != 2 || stdout.String() != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout.String())
			}
			oneLine(t, stderr.String(), "sessionkit balance: ", tc.parts...)
			for _, field := range []string{"LoadFactor", "SessionCookie", "Affinity.", "Health.", "balancer:"} {
				if strings.Contains(stderr.String(), field) {
					t.Errorf("stderr %q names the Go setting %q, not the flag", stderr.String(), field)
				}
			}
		})
	}
}

func TestBalance_help(t *testing.T) {
	code, stdout, stderr := run(t, nil, "balance", "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"Usage: sessionkit balance [flags]", "--backend NAME=URL", "SESSIONKIT_BACKEND",
		"--listen HOST:PORT", "--admin HOST:PORT", "(default none;", "--cookie NAME", "(default __Host-session;",
		"--config FILE", "--shared-sessions", "--affinity-cookie NAME", "GET /nodes", "/metrics"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help does not mention %q", want)
		}
	}
	code, stdout, _ = run(t, nil, "--help")
	if code != 0 || !strings.Contains(stdout, "balance ") {
		t.Errorf("sessionkit --help does not list balance:\n%s", stdout)
	}
}

func TestBalance_configFile(t *testing.T) {
	s := startServe(t, nil, "serve", "--node", "n1", "--addr", "127.0.0.1:0")
	dir := t.TempDir()
	file := filepath.Join(dir, "balance.json")
	os.WriteFile(file, []byte(`{"listen":"127.0.0.1:0","backend":[{"name":"n1","url":"`+s.url+`"}],
		"health_interval":"5s","shared-sessions":true,"load_factor":1.5}`), 0o600)
	b := startBalance(t, nil, "--config", file)
	resp, err := http.Get(b.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Node") != "n1" {
		t.Errorf("GET /healthz through the balancer: %d from %q", resp.StatusCode, resp.Header.Get("X-Node"))
	}

	for body, part := range map[string]string{
		`{"nope":1}`:                 `unknown setting "nope"`,
		`{"health_interval":"soon"}`: `invalid "health_interval" "soon"`,
		`[1]`:                        "not a JSON object but an array",
		`"x"`:                        "not a JSON object but a string",
		`{"listen":`:                 "not a JSON object: unexpected EOF",
		`{"backend":"n1=http://x"}`:  `want [{"name"`,
		`{"listen":{"a":1}}`:         "want a string, number or boolean",
		`{"config":"other.json"}`:    `unknown setting "config"`,
		`{"backend":[{"name":"n 1","url":"http://x"}]}`: `backend name "n 1"`,
	} {
		os.WriteFile(file, []byte(body), 0o600)
		code, _, stderr := run(t, nil, "balance", "--config", file)
		if code != 2 {
			t.Errorf("config %s: exit %d; want 2", body, code)
		}
		oneLine(t, stderr, "sessionkit balance: ", part)
		if strings.Contains(stderr, "Go ") || strings.Contains(stderr, "json.") {
			t.Errorf("config %s: %q names Go types", body, stderr)
		}
	}
}

// TestBalance_limitsAndShutdown checks the listener's header limit, then
// that cancelling the command's context stops it gracefully with status 0.
func TestBalance_limitsAndShutdown(t *testing.T) {
	s := startServe(t, nil, "serve", "--node", "n1", "--addr", "127.0.0.1:0")
	b := startBalance(t, nil, "--listen", "127.0.0.1:0", "--backend", "n1="+s.url, "--max-body", "16")

	req, _ := http.NewRequest("GET", b.url+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 128<<10))
	resp, err := http.DefaultClient.Do(req)
	switch {
	case err != nil && !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "broken pipe"):
		t.Fatal(err)
	case err != nil:
		// The balancer answered 431 and closed the connection while the
		// client was still sending: the client sees a reset. Refused either way.
	default:
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("128 KiB header: status %d; want 431", resp.StatusCode)
		}
	}
	resp, err = http.Post(b.url+"/login", "application/json", strings.NewReader(`{"user":"a-rather-long-name"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("X-Node") != "" {
		t.Errorf("body over --max-body: status %d from node %q; want 413 from the balancer", resp.StatusCode, resp.Header.Get("X-Node"))
	}

	b.cancel()
	select {
	case code := <-b.done:
		b.done <- code
		if code != 0 || !strings.HasSuffix(b.stderr.String(), "sessionkit balance: stopped\n") {
			t.Errorf("after cancel: exit %d, stderr:\n%s", code, b.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("balance did not stop within 10s")
	}
}

// TestBalance_routeTagMismatch: serve nodes started as node1, node2 and
// node3 behind backends named x1, x2 and x3. The balancer logs the
// mismatch once per node, with the fix, counts it in
// route_tag_mismatch_total{node}, and routes each tag to the node seen to
// mint it, so that users keep their session.
func TestBalance_routeTagMismatch(t *testing.T) {
	var backends []string
	for i := 1; i <= 3; i++ {
		s := startServe(t, nil, "serve", "--node", fmt.Sprintf("node%d", i), "--addr", "127.0.0.1:0", "--insecure-cookie")
		backends = append(backends, "--backend", fmt.Sprintf("x%d=%s", i, s.url))
	}
	for _, engine := range []string{"fast", "net/http"} {
		t.Run("engine="+engine, func(t *testing.T) {
			b := startBalance(t, nil, append(backends, "--engine", engine, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")...)
			logins := map[string]int{}
			for i := range 10 {
				post := userPoster(t, b.url)
				home := post("/login", fmt.Sprintf(`{"user":"u%d"}`, i)).Header.Get("X-Node")
				logins[home]++
				if resp := post("/cart", `{"item":"tea"}`); resp.StatusCode != 200 || resp.Header.Get("X-Node") != home {
					t.Errorf("user %d of %s: POST /cart answered %d by %s", i, home, resp.StatusCode, resp.Header.Get("X-Node"))
				}
			}
			m := scrape(t, b.admin+"/metrics", "sessionkit_balancer_route_tag_mismatch_total")
			log := b.stderr.String()
			for home, n := range logins {
				node := "x" + strings.TrimPrefix(home, "node")
				if got := m[`sessionkit_balancer_route_tag_mismatch_total{node="`+node+`"}`]; got != float64(n) {
					t.Errorf("route_tag_mismatch_total{%s} = %v; want %d (its logins)", node, got, n)
				}
				if got := strings.Count(log, "route tag mismatch: node "+node+" tags its session IDs "+home+", which names no backend"); got != 1 {
					t.Errorf("%d log lines on %s tagging its IDs %s; want 1; log:\n%s", got, node, home, log)
				}
			}
		})
	}
}
