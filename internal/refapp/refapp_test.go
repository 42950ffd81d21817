package refapp_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
)

func TestApp_routes(t *testing.T) {
	n := newNode(t, newStore(t), "n1", nil)
	c := newClient(t)

	rec := c.do(n, "POST", "/login", `{"user":"alice"}`)
	expect(t, "login", rec, 200, `{"user":"alice","node":"n1"}`)
	var sessionCookie *http.Cookie
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "__Host-session" {
			sessionCookie = ck
		}
	}
	if sessionCookie == nil || !sessionCookie.Secure || !sessionCookie.HttpOnly {
		t.Errorf("login: session cookie %v; want a Secure, HttpOnly cookie", sessionCookie)
	}
	if got := sid.RouteOf(c.getToken()); got != "n1" {
		t.Errorf("login: route tag of the session ID is %q; want n1", got)
	}

	expect(t, "empty cart", c.do(n, "GET", "/cart", ""), 200, `{"user":"alice","items":[],"node":"n1"}`)
	expect(t, "add a", c.do(n, "POST", "/cart", `{"item":"a"}`), 200, `{"user":"alice","items":["a"],"node":"n1"}`)
	expect(t, "add b", c.do(n, "POST", "/cart", `{"item":"b"}`), 200, `{"user":"alice","items":["a","b"],"node":"n1"}`)
	expect(t, "cart", c.do(n, "GET", "/cart", ""), 200, `{"user":"alice","items":["a","b"],"node":"n1"}`)
	expect(t, "whoami", c.do(n, "GET", "/whoami", ""), 200,
		`{"user":"alice","node":"n1","strategy":"memory","created":"2030-01-02T03:04:05Z"}`)

	rec = c.do(n, "GET", "/healthz", "")
	expect(t, "healthz", rec, 200, "ok")
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("healthz: Content-Type %q; want text/plain", ct)
	}

	expect(t, "logout-all", c.do(n, "POST", "/logout-all", ""), 200, `{"revoked":1}`)
	if tok := c.getToken(); tok != "" {
		t.Errorf("logout-all left the session cookie set")
	}
	expect(t, "cart after logout-all", c.do(n, "GET", "/cart", ""), 401, `{"error":"not logged in"}`)

	c.login(n, "alice")
	rec = c.do(n, "POST", "/logout", "")
	expect(t, "logout", rec, 200, `{}`)
	if tok := c.getToken(); tok != "" {
		t.Errorf("logout left the session cookie set")
	}
	expect(t, "cart after logout", c.do(n, "GET", "/cart", ""), 401, `{"error":"not logged in"}`)
	expect(t, "logout again", c.do(n, "POST", "/logout", ""), 200, `{}`)
	if rec := c.do(n, "HEAD", "/healthz", ""); rec.Code != 200 {
		t.Errorf("HEAD /healthz: status %d; want 200", rec.Code)
	}
}

// TestApp_httpServer runs the app behind a real server with a cookie jar,
// as a browser would use it (with Insecure cookies: Go's jar keeps Secure
// cookies away from plain http).
func TestApp_httpServer(t *testing.T) {
	n := newNode(t, newStore(t), "n1", func(c *session.Config) { c.Transport = session.Cookie{Insecure: true} })
	srv := httptest.NewServer(n.h)
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar}
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-Node"); got != "n1" {
			t.Errorf("%s %s: X-Node %q; want n1", method, path, got)
		}
		return resp.StatusCode, strings.TrimSuffix(string(b), "\n")
	}
	for _, step := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/cart", "", 401, `{"error":"not logged in"}`},
		{"POST", "/login", `{"user":"bob"}`, 200, `{"user":"bob","node":"n1"}`},
		{"POST", "/cart", `{"item":"tea"}`, 200, `{"user":"bob","items":["tea"],"node":"n1"}`},
		{"GET", "/cart", "", 200, `{"user":"bob","items":["tea"],"node":"n1"}`},
		{"POST", "/logout", "", 200, `{}`},
		{"GET", "/cart", "", 401, `{"error":"not logged in"}`},
	} {
		status, body := do(step.method, step.path, step.body)
		if status != step.status || body != step.want {
			t.Errorf("%s %s: %d %s; want %d %s", step.method, step.path, status, body, step.status, step.want)
		}
	}
}

func TestApp_notLoggedIn(t *testing.T) {
	st := newStore(t)
	n := newNode(t, st, "n1", nil)

	// A session without a user: another handler of the same store made it.
	m, err := session.New(session.Config{Store: st, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	anon := node{name: "", h: m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("visits", 1)
	}))}
	withoutUser := newClient(t)
	withoutUser.do(anon, "GET", "/", "")
	if withoutUser.getToken() == "" {
		t.Fatal("the anonymous handler set no session cookie")
	}
	unknownID, _ := sid.New("n1")

	for _, tok := range []struct{ name, token string }{
		{"no session", ""},
		{"session without user", withoutUser.getToken()},
		{"unknown session ID", unknownID.String()},
		{"garbage token", "not-a-session-id"},
	} {
		for _, rt := range []struct{ method, path, body string }{
			{"GET", "/cart", ""},
			{"POST", "/cart", `{"item":"x"}`},
			{"GET", "/whoami", ""},
			{"POST", "/logout-all", ""},
		} {
			c := newClient(t)
			c.setToken(tok.token)
			expect(t, tok.name+": "+rt.method+" "+rt.path, c.do(n, rt.method, rt.path, rt.body),
				401, `{"error":"not logged in"}`)
		}
		c := newClient(t)
		c.setToken(tok.token)
		expect(t, tok.name+": POST /logout", c.do(n, "POST", "/logout", ""), 200, `{}`)
	}
}

func TestApp_badRequests(t *testing.T) {
	n := newNode(t, newStore(t), "n1", nil)
	long := strings.Repeat("x", 300)
	cases := []struct {
		name, body string
		status     int
		wantInMsg  string
	}{
		{"bad JSON", `{"user":`, 400, "malformed JSON"},
		{"bad JSON syntax", `{"user" "alice"}`, 400, "malformed JSON at byte"},
		{"not JSON", `user=alice`, 400, "malformed JSON"},
		{"empty body", ``, 400, "request body is empty"},
		{"array body", `["alice"]`, 400, "must be a JSON object"},
		{"string body", `"alice"`, 400, "must be a JSON object"},
		{"missing field", `{}`, 400, `missing field \"user\"`},
		{"unknown field", `{"user":"alice","admin":true}`, 400, `unknown field \"admin\"`},
		{"duplicate field", `{"user":"alice","user":"mallory"}`, 400, `duplicate field \"user\"`},
		{"empty user", `{"user":""}`, 400, `field \"user\" is empty`},
		{"300-byte user", `{"user":"` + long + `"}`, 400, "300 bytes long; at most 256"},
		{"control char", `{"user":"al\u0007ice"}`, 400, "control character"},
		{"raw DEL", "{\"user\":\"al\x7fice\"}", 400, "control character"},
		{"C1 control", `{"user":"al` + "\u0085" + `ice"}`, 400, "control character"},
		{"number", `{"user":42}`, 400, `field \"user\" must be a string, not a number`},
		{"null", `{"user":null}`, 400, "not null"},
		{"object", `{"user":{"name":"alice"}}`, 400, "not an object"},
		{"bool", `{"user":true}`, 400, "not a boolean"},
		{"trailing data", `{"user":"alice"} {"user":"bob"}`, 400, "unexpected data after the JSON object"},
		{"trailing garbage", `{"user":"alice"}x`, 400, "unexpected data after the JSON object"},
		{"invalid UTF-8", "{\"user\":\"al\xffice\"}", 400, "not valid UTF-8"},
		{"too large", `{"user":"` + strings.Repeat("a", refapp.MaxBodyBytes) + `"}`, 413, "larger than 65536 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/login", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			n.h.ServeHTTP(rec, req)
			checkError(t, rec, tc.status, tc.wantInMsg)
			if rec.Header().Get("X-Node") != "n1" {
				t.Errorf("X-Node missing")
			}
			if len(rec.Result().Cookies()) != 0 {
				t.Errorf("a rejected login set a cookie: %v", rec.Result().Cookies())
			}
		})
	}

	t.Run("form content type", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"user":"alice"}`))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		n.h.ServeHTTP(rec, req)
		checkError(t, rec, 415, "application/json")
	})
	t.Run("no content type", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"user":"alice"}`))
		rec := httptest.NewRecorder()
		n.h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("status %d; want 200", rec.Code)
		}
	})

	// The same rules for cart items.
	c := newClient(t)
	c.login(n, "alice")
	for _, tc := range []struct{ body, wantInMsg string }{
		{`{"item":""}`, `field \"item\" is empty`},
		{`{"item":7}`, "must be a string"},
		{`{"user":"x"}`, `unknown field \"user\"`},
		{`{"item":"` + long + `"}`, "at most 256"},
		{`{"item":"a\nb"}`, "control character"},
	} {
		checkError(t, c.do(n, "POST", "/cart", tc.body), 400, tc.wantInMsg)
	}
	expect(t, "cart unchanged", c.do(n, "GET", "/cart", ""), 200, `{"user":"alice","items":[],"node":"n1"}`)
}

// checkError checks a JSON error answer.
func checkError(t testing.TB, rec *httptest.ResponseRecorder, status int, wantInMsg string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status %d; want %d (body %s)", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q; want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body) != 1 || body["error"] == "" {
		t.Fatalf("body %s; want {\"error\":\"...\"}", rec.Body.String())
	}
	raw := rec.Body.String()
	if !strings.Contains(raw, wantInMsg) {
		t.Errorf("error %s; want it to mention %s", raw, wantInMsg)
	}
}

func TestApp_methodsAndPaths(t *testing.T) {
	n := newNode(t, newStore(t), "n1", nil)
	c := newClient(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/login", 405, "POST"},
		{"PUT", "/cart", 405, "GET, HEAD, POST"},
		{"DELETE", "/cart", 405, "GET, HEAD, POST"},
		{"POST", "/whoami", 405, "GET, HEAD"},
		{"GET", "/logout", 405, "POST"},
		{"GET", "/logout-all", 405, "POST"},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"OPTIONS", "/login", 405, "POST"},
		{"GET", "/", 404, ""},
		{"GET", "/nope", 404, ""},
		{"POST", "/cart/x", 404, ""},
		{"GET", "/login/", 404, ""},
	} {
		rec := c.do(n, tc.method, tc.path, "")
		what := tc.method + " " + tc.path
		if rec.Code != tc.status {
			t.Errorf("%s: status %d; want %d", what, rec.Code, tc.status)
		}
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s: Allow %q; want %q", what, got, tc.allow)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q; want application/json", what, ct)
		}
		var body struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
			t.Errorf("%s: body %q; want a JSON error", what, rec.Body.String())
		}
	}
}

func TestApp_crossOriginRejected(t *testing.T) {
	n := newNode(t, newStore(t), "n1", nil)
	req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"user":"mallory"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	n.h.ServeHTTP(rec, req)
	checkError(t, rec, 403, "cross-origin")
	if rec.Header().Get("X-Node") != "n1" || len(rec.Result().Cookies()) != 0 {
		t.Errorf("403: X-Node %q, cookies %v", rec.Header().Get("X-Node"), rec.Result().Cookies())
	}
}

func TestLogin_renewsID(t *testing.T) {
	n := newNode(t, newStore(t), "n1", nil)
	c := newClient(t)
	c.login(n, "alice")
	first := c.getToken()
	c.do(n, "POST", "/cart", `{"item":"a"}`)
	c.login(n, "alice")
	second := c.getToken()
	if first == "" || second == "" || first == second {
		t.Fatalf("login did not renew the session ID (before %t, after %t, equal %t)",
			first != "", second != "", first == second)
	}
	expect(t, "cart kept across re-login", c.do(n, "GET", "/cart", ""), 200, `{"user":"alice","items":["a"],"node":"n1"}`)

	old := newClient(t)
	old.setToken(first)
	expect(t, "old ID", old.do(n, "GET", "/cart", ""), 401, `{"error":"not logged in"}`)
}

func TestLogin_otherUserEmptiesSession(t *testing.T) {
	n := newNode(t, newStore(t), "n1", nil)
	c := newClient(t)
	c.login(n, "alice")
	c.do(n, "POST", "/cart", `{"item":"secret"}`)
	c.login(n, "bob")
	expect(t, "bob's cart", c.do(n, "GET", "/cart", ""), 200, `{"user":"bob","items":[],"node":"n1"}`)
}

func TestCart_concurrentAdds(t *testing.T) {
	n := newNode(t, newStore(t), "n1", nil)
	c := newClient(t)
	c.login(n, "alice")
	c.do(n, "POST", "/cart", `{"item":"first"}`)
	c.do(n, "POST", "/cart", `{"item":"second"}`)
	token := c.getToken()

	const workers = 32
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			// Each request sends the same token and leaves the shared
			// client alone: the token does not change on an add.
			wc := newClient(t)
			wc.setToken(token)
			rec := wc.do(n, "POST", "/cart", fmt.Sprintf(`{"item":"item-%d"}`, i))
			if rec.Code != 200 {
				t.Errorf("add item-%d: status %d, body %s", i, rec.Code, rec.Body.String())
			}
		})
	}
	wg.Wait()

	rec := c.do(n, "GET", "/cart", "")
	var cart struct {
		User  string
		Items []string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &cart); err != nil {
		t.Fatalf("cart: %v (%s)", err, rec.Body.String())
	}
	if len(cart.Items) != workers+2 || cart.Items[0] != "first" || cart.Items[1] != "second" {
		t.Fatalf("cart has %d items %v; want first, second and %d more", len(cart.Items), cart.Items, workers)
	}
	got := slices.Sorted(slices.Values(cart.Items[2:]))
	for i := range workers {
		want := fmt.Sprintf("item-%d", i)
		if _, found := slices.BinarySearch(got, want); !found {
			t.Errorf("cart lost %s", want)
		}
	}
}

func TestLogoutAll_acrossNodes(t *testing.T) {
	st := newStore(t)
	n1 := newNode(t, st, "n1", nil)
	n2 := newNode(t, st, "n2", nil)

	a1, a2, a3, b := newClient(t), newClient(t), newClient(t), newClient(t)
	a1.login(n1, "alice")
	a2.login(n2, "alice")
	a3.login(n1, "alice")
	b.login(n2, "bob")
	b.do(n2, "POST", "/cart", `{"item":"bobs"}`)

	// Any node serves any session: they share the store.
	expect(t, "alice's n1 session on n2", a1.do(n2, "GET", "/cart", ""), 200, `{"user":"alice","items":[],"node":"n2"}`)

	expect(t, "logout-all", a2.do(n1, "POST", "/logout-all", ""), 200, `{"revoked":3}`)
	for i, c := range []*client{a1, a2, a3} {
		for _, n := range []node{n1, n2} {
			expect(t, fmt.Sprintf("alice's session %d on %s", i+1, n.name), c.do(n, "GET", "/cart", ""),
				401, `{"error":"not logged in"}`)
		}
	}
	expect(t, "bob's session", b.do(n1, "GET", "/cart", ""), 200, `{"user":"bob","items":["bobs"],"node":"n1"}`)
}

func TestApp_storeFailure(t *testing.T) {
	n := newNode(t, failingStore{}, "n1", nil)
	id, _ := sid.New("n1")
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/cart", ""},
		{"POST", "/cart", `{"item":"x"}`},
		{"GET", "/whoami", ""},
		{"POST", "/logout", ""},
		{"POST", "/logout-all", ""},
		{"POST", "/login", `{"user":"alice"}`},
	} {
		for _, tok := range []string{id.String(), ""} {
			if tok == "" && rt.path != "/login" {
				continue // without a token nothing is loaded
			}
			c := newClient(t)
			c.setToken(tok)
			rec := c.do(n, rt.method, rt.path, rt.body)
			expect(t, rt.method+" "+rt.path, rec, 503, `{"error":"session store unavailable"}`)
			if strings.Contains(rec.Body.String(), "10.0.0.7") {
				t.Errorf("%s %s: the store's error text reached the client", rt.method, rt.path)
			}
		}
	}
	// The health check does not touch the store.
	expect(t, "healthz", newClient(t).do(n, "GET", "/healthz", ""), 200, "ok")
}

func TestErrorHandler(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		body       string
		retryAfter string
	}{
		{"store", fmt.Errorf("%w: load: %w", session.ErrStore, errDown), 503, `{"error":"session store unavailable"}`, "1"},
		{"circuit open", fmt.Errorf("%w: load: %w", session.ErrStore, retryIn(7*time.Second)), 503, `{"error":"session store unavailable"}`, "7"},
		{"conflict", fmt.Errorf("%w: gave up", session.ErrTooManyConflicts), 503, `{"error":"session changed concurrently, retry"}`, "1"},
		{"token too large", fmt.Errorf("session: save: %w", &session.TokenSizeError{Size: 4132, Limit: 4096}), 413,
			`{"error":"session too large for its token (4132 bytes, over the limit of 4096): keep less in it"}`, ""},
		{"other", errors.New("boom 10.0.0.7"), 500, `{"error":"internal error"}`, ""},
		{"no manager", session.ErrNoManager, 500, `{"error":"internal error"}`, ""},
	} {
		rec := httptest.NewRecorder()
		refapp.ErrorHandler(rec, httptest.NewRequest("GET", "/cart", nil), tc.err)
		expect(t, tc.name, rec, tc.status, tc.body)
		if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
			t.Errorf("%s: Retry-After %q; want %q", tc.name, got, tc.retryAfter)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: no Cache-Control: no-store", tc.name)
		}
	}
}

// retryIn is an error like an open circuit breaker's.
type retryIn time.Duration

func (r retryIn) Error() string             { return "circuit open" }
func (r retryIn) RetryAfter() time.Duration { return time.Duration(r) }

func TestNew_invalidConfig(t *testing.T) {
	m, err := session.New(session.Config{Store: newStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  refapp.Config
	}{
		{"no node", refapp.Config{Strategy: "memory", Manager: m}},
		{"bad node", refapp.Config{Node: "n 1", Strategy: "memory", Manager: m}},
		{"header injection", refapp.Config{Node: "n1\r\nX-Evil: 1", Strategy: "memory", Manager: m}},
		{"no strategy", refapp.Config{Node: "n1", Manager: m}},
		{"control in strategy", refapp.Config{Node: "n1", Strategy: "mem\nory", Manager: m}},
		{"no manager", refapp.Config{Node: "n1", Strategy: "memory"}},
	} {
		h, err := refapp.New(tc.cfg)
		if err == nil || h != nil {
			t.Errorf("%s: New = %v, %v; want an error", tc.name, h, err)
		} else if !strings.HasPrefix(err.Error(), "refapp: ") {
			t.Errorf("%s: error %q does not start with \"refapp: \"", tc.name, err)
		}
	}
}
