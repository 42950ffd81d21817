package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNew_config(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	tests := []struct {
		name string
		cfg  session.Config
	}{
		{"no store", session.Config{}},
		{"negative idle", session.Config{Store: e.mem, IdleTimeout: -1}},
		{"bad route", session.Config{Store: e.mem, Route: "a.b"}},
		{"host prefix with domain", session.Config{Store: e.mem, Transport: session.Cookie{Name: "__Host-s", Domain: "example.com"}}},
		{"host prefix insecure", session.Config{Store: e.mem, Transport: session.Cookie{Name: "__Host-s", Insecure: true}}},
		{"host prefix with a path", session.Config{Store: e.mem, Transport: session.Cookie{Name: "__Host-s", Path: "/app"}}},
		{"SameSite=None insecure", session.Config{Store: e.mem, Transport: session.Cookie{SameSite: http.SameSiteNoneMode, Insecure: true}}},
		{"bad cookie name", session.Config{Store: e.mem, Transport: session.Cookie{Name: "a;b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := session.New(tt.cfg)
			if err == nil || m != nil {
				t.Fatalf("got %v, %v; want an error", m, err)
			}
			if !strings.HasPrefix(err.Error(), "session: ") {
				t.Fatalf("error %q does not start with the package name", err)
			}
		})
	}
}

func TestManager_cookieDefaults(t *testing.T) {
	e := newEnv(t, testHandler(t), func(c *session.Config) { c.Route = "n1" })
	resp := e.do("GET", "/set?k=a&v=1", "")
	c := sessionCookie(resp)
	if c == nil {
		t.Fatal("no cookie")
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie %v; want HttpOnly Secure SameSite=Lax Path=/ host-only", c)
	}
	if c.MaxAge != 0 || !c.Expires.IsZero() {
		t.Fatalf("cookie %v is persistent; want a browser-session cookie", c)
	}
	id, err := sid.Parse(c.Value)
	if err != nil || id.Route() != "n1" {
		t.Fatalf("cookie value %q: %v; want a valid ID with route n1", c.Value, err)
	}
	if got := resp.Header.Get("Vary"); got != "Cookie" {
		t.Fatalf("Vary = %q; want Cookie", got)
	}

	e2 := newEnv(t, testHandler(t), func(c *session.Config) { c.Transport = session.Cookie{NoHostPrefix: true} })
	if c := sessionCookie(e2.do("GET", "/set?k=a&v=1", "")); c == nil || c.Name != "session" || !c.Secure {
		t.Fatalf("NoHostPrefix: got %v; want a Secure cookie named session", c)
	}
}

func TestManager_roundTrip(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	tok := token(t, e.do("GET", "/set?k=color&v=blue", ""))
	if got := body(t, e.do("GET", "/get?k=color", tok)); got != "blue" {
		t.Fatalf("got %q; want blue", got)
	}
	// A second value lands in the same session: no new cookie.
	resp := e.do("GET", "/set?k=size&v=L", tok)
	if c := sessionCookie(resp); c != nil {
		t.Fatalf("unexpected cookie %v for an existing session", c)
	}
	if got := body(t, e.do("GET", "/get?k=color", tok)); got != "blue" {
		t.Fatalf("got %q; want blue", got)
	}
}

func TestManager_storeCalls(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	tests := []struct {
		name                          string
		path                          string
		advance                       time.Duration
		loads, saves, touches, delets int64
	}{
		{"untouched session", "/nothing", 0, 0, 0, 0, 0},
		{"read only", "/get?k=a", 0, 1, 0, 0, 0},
		{"read only, touch not due", "/get?k=a", time.Minute, 1, 0, 0, 0},
		{"read only, touch due", "/get?k=a", 3 * time.Minute, 1, 0, 1, 0},
		{"write", "/set?k=a&v=2", 0, 1, 1, 0, 0},
		{"renew: create, then the old record becomes a tombstone", "/renew", 0, 1, 2, 0, 0},
	}
	for _, tt := range tests {
		e.clock.Advance(tt.advance)
		e.store.reset()
		resp := e.do("GET", tt.path, tok)
		got := [4]int64{e.store.loads.Load(), e.store.saves.Load(), e.store.touches.Load(), e.store.deletes.Load()}
		want := [4]int64{tt.loads, tt.saves, tt.touches, tt.delets}
		if got != want {
			t.Errorf("%s: loads, saves, touches, deletes = %v; want %v", tt.name, got, want)
		}
		if c := sessionCookie(resp); c != nil {
			tok = c.Value
		}
	}
	// Without a token, reading costs nothing either.
	e.store.reset()
	e.do("GET", "/get?k=a", "")
	if n := e.store.loads.Load() + e.store.saves.Load(); n != 0 {
		t.Fatalf("%d store calls for a request without a token; want 0", n)
	}
}

func TestSession_types(t *testing.T) {
	type point struct{ X, Y int }
	var tok string
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/set" {
			for k, v := range map[string]any{"s": "str", "i": 42, "i64": int64(-7), "b": true, "raw": []byte{0, 1},
				"p": point{1, 2}, "f": 1.5, "list": []string{"a", "b"}} {
				if err := s.Set(k, v); err != nil {
					t.Errorf("Set(%s): %v", k, err)
				}
			}
			if err := s.Set("bad", make(chan int)); err == nil {
				t.Error("Set(chan) succeeded; want an encoding error")
			}
			return
		}
		check := func(name string, got, want any) {
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: got %v; want %v", name, got, want)
			}
		}
		v1, _ := session.Value[string](s, "s")
		check("string", v1, "str")
		v2, _ := session.Value[int](s, "i")
		check("int", v2, 42)
		v3, _ := session.Value[int64](s, "i64")
		check("int64", v3, -7)
		v4, _ := session.Value[bool](s, "b")
		check("bool", v4, true)
		v5, _ := session.Value[[]byte](s, "raw")
		check("bytes", v5, []byte{0, 1})
		v6, _ := session.Value[point](s, "p")
		check("struct", v6, point{1, 2})
		v7, _ := session.Value[float64](s, "i") // int read as float64 through JSON
		check("int as float", v7, 42.0)
		v8, _ := session.Value[[]string](s, "list")
		check("list", v8, []string{"a", "b"})
		v9, _ := session.Value[any](s, "s")
		check("string as any", v9, "str")
		if v, ok := session.Value[int](s, "s"); ok || v != 0 {
			t.Errorf("Value[int] of a string = %v, %v; want 0, false", v, ok)
		}
		if _, err := s.Get("s", new(int)); err == nil {
			t.Error("Get of a string into *int: no error")
		}
		if _, ok := session.Value[string](s, "missing"); ok {
			t.Error("missing key reported present")
		}
		if !s.Has("p") || s.Has("missing") {
			t.Error("Has is wrong")
		}
		check("keys", s.Keys(), []string{"b", "f", "i", "i64", "list", "p", "raw", "s"})
		flash, ok := session.PopValue[string](s, "s")
		check("pop", flash, "str")
		if !ok || s.Has("s") {
			t.Error("Pop did not remove the value")
		}
		s.Delete("f")
		if s.Has("f") {
			t.Error("Delete did not remove the value")
		}
	}
	e := newEnv(t, h, nil)
	tok = token(t, e.do("GET", "/set", ""))
	e.do("GET", "/check", tok)
	// Pop and Delete were saved.
	h2 := e.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if s.Has("s") || s.Has("f") || !s.Has("p") {
			t.Errorf("after Pop and Delete, keys = %v", s.Keys())
		}
		s.Clear()
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
	h2.ServeHTTP(httptest.NewRecorder(), r)
	h3 := e.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if keys := session.From(r).Keys(); len(keys) != 0 {
			t.Errorf("after Clear, keys = %v; want none", keys)
		}
	}))
	h3.ServeHTTP(httptest.NewRecorder(), r)
}

func TestSession_renew(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	old := token(t, e.do("GET", "/set?k=a&v=1", ""))
	resp := e.do("GET", "/renew", old)
	renewed := token(t, resp)
	if renewed == old {
		t.Fatal("Renew kept the ID")
	}
	if got := body(t, e.do("GET", "/get?k=a", renewed)); got != "1" {
		t.Fatalf("renewed session lost its data: got %q; want 1", got)
	}
	if got := body(t, e.do("GET", "/get?k=a", old)); got != "" {
		t.Fatalf("old ID still loads: got %q", got)
	}
	// Writing with the old ID starts a new session; the renewed one keeps its data.
	e.do("GET", "/set?k=a&v=evil", old)
	if got := body(t, e.do("GET", "/get?k=a", renewed)); got != "1" {
		t.Fatalf("renewed session changed through the old ID: got %q; want 1", got)
	}
}

func TestSession_loginFixation(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	// An attacker plants a session ID, the victim logs in with it.
	planted := token(t, e.do("GET", "/set?k=x&v=1", ""))
	victim := token(t, e.do("GET", "/login?user=alice", planted))
	if victim == planted {
		t.Fatal("login kept the planted ID")
	}
	if got := body(t, e.do("GET", "/whoami", planted)); got != "" {
		t.Fatalf("planted ID is logged in as %q", got)
	}
	if got := body(t, e.do("GET", "/whoami", victim)); got != "alice" {
		t.Fatalf("got %q; want alice", got)
	}
}

func TestManager_userSessions(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	var toks []string
	for range 3 {
		toks = append(toks, token(t, e.do("GET", "/login?user=alice", "")))
	}
	bob := token(t, e.do("GET", "/login?user=bob", ""))
	ctx := context.Background()
	infos, err := e.m.UserSessions(ctx, "alice")
	if err != nil || len(infos) != 3 {
		t.Fatalf("UserSessions = %d, %v; want 3", len(infos), err)
	}
	for _, in := range infos {
		if in.Handle == "" || in.Created.IsZero() || !in.Expires.After(e.clock.Now()) {
			t.Fatalf("bad info %+v", in)
		}
		for _, tok := range toks {
			if strings.Contains(in.Handle, tok[:20]) {
				t.Fatal("handle reveals the session ID")
			}
		}
	}
	// Destroy one by handle, then the rest.
	if err := e.m.DestroyHandle(ctx, "bob", infos[0].Handle); !errors.Is(err, session.ErrUnknownHandle) {
		t.Fatalf("bob destroying alice's session: got %v; want ErrUnknownHandle", err)
	}
	if err := e.m.DestroyHandle(ctx, "alice", infos[0].Handle); err != nil {
		t.Fatal(err)
	}
	n, err := e.m.DestroyUser(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("DestroyUser = %d, %v; want 2", n, err)
	}
	for _, tok := range toks {
		if got := body(t, e.do("GET", "/whoami", tok)); got != "" {
			t.Fatalf("destroyed session still logged in as %q", got)
		}
	}
	if got := body(t, e.do("GET", "/whoami", bob)); got != "bob" {
		t.Fatalf("bob's session: got %q; want bob", got)
	}
}

func TestSession_destroy(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	tok := token(t, e.do("GET", "/login?user=alice", ""))
	resp := e.do("GET", "/destroy", tok)
	c := sessionCookie(resp)
	if c == nil || c.MaxAge != -1 || c.Value != "" {
		t.Fatalf("cookie %v; want a cleared cookie", c)
	}
	if got := resp.Header.Get("Clear-Site-Data"); got != `"cache"` {
		t.Fatalf("Clear-Site-Data = %q", got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Fatalf("Cache-Control = %q; want no-store", got)
	}
	if got := body(t, e.do("GET", "/whoami", tok)); got != "" {
		t.Fatalf("destroyed session still logged in as %q", got)
	}
	if s := e.mem.Stats(); s.Entries != 0 {
		t.Fatalf("%d records after destroy; want 0", s.Entries)
	}
}

func TestSession_destroyThenSet(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if err := s.Destroy(); err != nil {
			t.Error(err)
		}
		s.Set("flash", "logged out")
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/", ""))
	next := token(t, e.do("GET", "/", tok))
	if next == tok {
		t.Fatal("a session destroyed and refilled kept its ID")
	}
}

func TestSession_idleAndAbsoluteTimeout(t *testing.T) {
	e := newEnv(t, testHandler(t), func(c *session.Config) {
		c.IdleTimeout = 10 * time.Minute
		c.Lifetime = time.Hour
		c.TouchInterval = time.Minute
	})
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	// Active every 9 minutes: stays alive past 10 minutes, until 1 hour.
	for elapsed := 9 * time.Minute; elapsed < time.Hour; elapsed += 9 * time.Minute {
		e.clock.Advance(9 * time.Minute)
		if got := body(t, e.do("GET", "/get?k=a", tok)); got != "1" {
			t.Fatalf("at %v: session gone while active", elapsed)
		}
	}
	e.clock.Advance(9 * time.Minute) // 63 minutes: past the absolute lifetime
	if got := body(t, e.do("GET", "/get?k=a", tok)); got != "" {
		t.Fatal("session outlived its absolute lifetime")
	}

	tok = token(t, e.do("GET", "/set?k=a&v=1", ""))
	e.clock.Advance(10*time.Minute + time.Second)
	if got := body(t, e.do("GET", "/get?k=a", tok)); got != "" {
		t.Fatal("session outlived its idle timeout")
	}
}

func TestSession_rememberMe(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	c := sessionCookie(e.do("GET", "/remember", tok))
	if c == nil || c.MaxAge != int(session.DefaultRememberIdleTimeout/time.Second) {
		t.Fatalf("remember-me cookie %v; want Max-Age %v", c, session.DefaultRememberIdleTimeout)
	}
	// Idle for a day: an ordinary session would be gone.
	e.clock.Advance(24 * time.Hour)
	if got := body(t, e.do("GET", "/get?k=a", tok)); got != "1" {
		t.Fatal("remember-me session ended after a day")
	}
}

func TestSession_retag(t *testing.T) {
	e := newEnv(t, testHandler(t), func(c *session.Config) { c.Route = "n1" })
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	// The same store served by a node with another route.
	m2, _ := session.New(session.Config{Store: e.mem, Route: "n2", Now: e.clock.Now})
	r := httptest.NewRequest("GET", "/get?k=a", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
	w := httptest.NewRecorder()
	m2.Handler(testHandler(t)).ServeHTTP(w, r)
	if w.Body.String() != "1" {
		t.Fatalf("got %q; want 1", w.Body.String())
	}
	c := sessionCookie(w.Result())
	if c == nil || !strings.HasSuffix(c.Value, ".n2") || c.Value[:sid.RandomLen] != tok[:sid.RandomLen] {
		t.Fatalf("cookie %v; want the same ID tagged .n2", c)
	}
}

func TestManager_headerTransport(t *testing.T) {
	e := newEnv(t, testHandler(t), func(c *session.Config) { c.Transport = session.Header{} })
	resp := e.do("GET", "/set?k=a&v=1", "")
	tok := resp.Header.Get("Session-Token")
	if tok == "" || len(resp.Cookies()) != 0 {
		t.Fatalf("Session-Token %q, cookies %v; want a token header and no cookie", tok, resp.Cookies())
	}
	for _, auth := range []string{"Bearer " + tok, "bearer " + tok, "BEARER  " + tok} {
		r := httptest.NewRequest("GET", "/get?k=a", nil)
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Body.String() != "1" {
			t.Fatalf("Authorization %q: got %q; want 1", auth, w.Body.String())
		}
	}
	for _, auth := range []string{tok, "Basic " + tok, "Bearer"} {
		r := httptest.NewRequest("GET", "/get?k=a", nil)
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Body.String() != "" {
			t.Fatalf("Authorization %q accepted", auth)
		}
	}
}

func TestManager_badTokens(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	good := token(t, e.do("GET", "/set?k=a&v=1", ""))
	id, _ := sid.Parse(good)
	unknown, _ := sid.New("")
	tampered := []byte(good)
	tampered[5] ^= 1
	tests := map[string]string{
		"garbage":        "%%%garbage%%%",
		"oversized":      strings.Repeat("A", 10000),
		"unknown ID":     unknown.String(),
		"tampered":       string(tampered),
		"bad route":      id.String() + ".a b",
		"empty route":    id.String() + ".",
		"non-canonical":  good[:42] + "B",
		"truncated":      good[:20],
		"control chars":  "\x00\x01\x02",
		"key not the ID": id.Key(),
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			resp := e.do("GET", "/get?k=a", tok)
			if resp.StatusCode != 200 || body(t, resp) != "" {
				t.Fatalf("status %d; want 200 and an empty session", resp.StatusCode)
			}
			// Writing with a bad token makes a new session, never touches the old.
			nt := token(t, e.do("GET", "/set?k=a&v=2", tok))
			if nt == tok || nt == good {
				t.Fatalf("new token %q reuses a presented one", nt)
			}
		})
	}
	if got := body(t, e.do("GET", "/get?k=a", good)); got != "1" {
		t.Fatalf("the real session changed: got %q; want 1", got)
	}
}

// failingStore fails every call.
type failingStore struct{}

var errDown = errors.New("connection refused")

func (failingStore) Load(context.Context, string) (store.Record, error) {
	return store.Record{}, errDown
}
func (failingStore) Save(context.Context, string, store.Record) (uint64, error) {
	return 0, errDown
}
func (failingStore) Delete(context.Context, string, uint64) error { return errDown }
func (failingStore) Close() error                                 { return nil }

func TestManager_storeErrors(t *testing.T) {
	var handled []error
	cfg := session.Config{Store: failingStore{}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		handled = append(handled, err)
		http.Error(w, "store down", http.StatusServiceUnavailable)
	}}
	m, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := sid.New("")
	for _, path := range []string{"/get?k=a", "/set?k=a&v=1", "/destroy"} {
		handled = nil
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok.String()})
		w := httptest.NewRecorder()
		m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := session.From(r)
			switch path {
			case "/get?k=a":
				if _, err := s.Get("a", new(string)); !errors.Is(err, session.ErrStore) {
					t.Errorf("Get error = %v; want ErrStore", err)
				}
			case "/set?k=a&v=1":
				s.Set("a", "1")
			case "/destroy":
				if err := s.Destroy(); !errors.Is(err, session.ErrStore) {
					t.Errorf("Destroy error = %v; want ErrStore", err)
				}
			}
			w.Write([]byte("handler output"))
		})).ServeHTTP(w, r)
		if w.Code != 503 || strings.Contains(w.Body.String(), "handler output") {
			t.Fatalf("%s: got %d %q; want the error handler's 503 only", path, w.Code, w.Body.String())
		}
		if len(handled) != 1 || !errors.Is(handled[0], session.ErrStore) || !errors.Is(handled[0], errDown) {
			t.Fatalf("%s: error handler got %v; want one error wrapping ErrStore and the cause", path, handled)
		}
	}

	// A new session that cannot be created: the default handler answers 500.
	m, _ = session.New(session.Config{Store: failingStore{}})
	w := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("a", 1)
		w.WriteHeader(201)
	})).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || len(w.Result().Cookies()) != 0 {
		t.Fatalf("got %d, Retry-After %q, cookies %v; want 503, 1 and no cookie",
			w.Code, w.Header().Get("Retry-After"), w.Result().Cookies())
	}
}

func TestManager_failOpen(t *testing.T) {
	m, err := session.New(session.Config{Store: failingStore{}, FailOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := sid.New("")
	var degraded bool
	var destroyErr error
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		degraded = s.Degraded()
		if r.URL.Path == "/logout" {
			destroyErr = s.Destroy()
		}
		w.Write([]byte("page"))
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-session="+tok.String())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if !degraded || w.Code != 200 || w.Body.String() != "page" || len(w.Result().Cookies()) != 0 {
		t.Fatalf("degraded=%v, %d %q, cookies %v; want a degraded session, the page, and the cookie left alone",
			degraded, w.Code, w.Body.String(), w.Result().Cookies())
	}
	// A logout cannot pretend to work while the store is down.
	r = httptest.NewRequest("GET", "/logout", nil)
	r.Header.Set("Cookie", "__Host-session="+tok.String())
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if !errors.Is(destroyErr, session.ErrStore) || w.Code != 503 {
		t.Fatalf("logout while degraded: Destroy = %v, status %d; want ErrStore and 503", destroyErr, w.Code)
	}
}

func TestFrom_withoutMiddleware(t *testing.T) {
	s := session.From(httptest.NewRequest("GET", "/", nil))
	if !errors.Is(s.Err(), session.ErrNoManager) {
		t.Fatalf("Err() = %v; want ErrNoManager", s.Err())
	}
	s.Set("a", 1) // must not panic
	if _, err := s.Get("a", new(int)); !errors.Is(err, session.ErrNoManager) {
		t.Fatalf("Get error = %v; want ErrNoManager", err)
	}
	if err := s.Save(); !errors.Is(err, session.ErrNoManager) {
		t.Fatalf("Save error = %v; want ErrNoManager", err)
	}
}

func TestManager_informationalHeaderDoesNotCommit(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		s.Set("a", "after hints")
		w.Write([]byte("ok"))
	}
	e := newEnv(t, h, nil)
	// httptest.ResponseRecorder does not model 1xx responses; a server does.
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok := token(t, resp)
	var got string
	e.h = e.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = session.Value[string](session.From(r), "a")
	}))
	e.do("GET", "/", tok)
	if got != "after hints" {
		t.Fatalf("got %q; want the value set after 103 Early Hints", got)
	}
}

func TestSession_explicitSaveAndLateChanges(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/new" {
			if err := s.Set("a", "1"); err != nil {
				t.Error(err)
			}
			if err := s.Save(); err != nil {
				t.Errorf("Save: %v", err)
			}
			w.Write([]byte("body"))
			return
		}
		w.Write([]byte("body"))
		s.Set("late", "yes") // after the header: saved at the end
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/new", ""))
	e.do("GET", "/late", tok)
	var got string
	e.h = e.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = session.Value[string](session.From(r), "late")
	}))
	e.do("GET", "/", tok)
	if got != "yes" {
		t.Fatalf("late change: got %q; want yes", got)
	}
}

// TestSession_concurrentUpdate: 64 requests append to one list at once.
func TestSession_concurrentUpdate(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		item := r.URL.Query().Get("item")
		err := session.Update(session.From(r), "cart", func(items []string) []string { return append(items, item) })
		if err != nil {
			t.Error(err)
		}
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/?item=first", ""))
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() { e.do("GET", fmt.Sprintf("/?item=i%d", i), tok) })
	}
	wg.Wait()
	var cart []string
	e.h = e.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cart, _ = session.Value[[]string](session.From(r), "cart")
	}))
	e.do("GET", "/", tok)
	if len(cart) != 65 {
		t.Fatalf("cart has %d items; want 65: %v", len(cart), cart)
	}
}

// TestSession_destroyedWhileRunning: a request that loaded its session
// before a logout, and saves after it, does not bring the session back.
func TestSession_destroyedWhileRunning(t *testing.T) {
	loaded, logout := make(chan struct{}), make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		switch r.URL.Path {
		case "/slow":
			s.UserID() // loads
			close(loaded)
			<-logout
			s.Set("cart", "late item")
		default:
			testHandler(t)(w, r)
		}
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/login?user=alice", ""))
	done := make(chan struct{})
	go func() { e.do("GET", "/slow", tok); close(done) }()
	<-loaded
	e.do("GET", "/destroy", tok)
	close(logout)
	<-done
	if n := e.mem.Stats().Entries; n != 0 {
		t.Fatalf("%d records after logout; want 0 (the slow request resurrected the session)", n)
	}
	if got := body(t, e.do("GET", "/whoami", tok)); got != "" {
		t.Fatalf("session is back, logged in as %q", got)
	}
}

// TestSession_renewKeepsConcurrentChange: a change saved under the old ID
// while a login renews the session is carried to the new ID.
func TestSession_renewKeepsConcurrentChange(t *testing.T) {
	loaded, saved := make(chan struct{}), make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/slowlogin" {
			s.UserID()
			close(loaded)
			<-saved
			s.Login("alice")
			return
		}
		testHandler(t)(w, r)
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	var newTok string
	done := make(chan struct{})
	go func() { newTok = token(t, e.do("GET", "/slowlogin", tok)); close(done) }()
	<-loaded
	e.do("GET", "/set?k=b&v=2", tok)
	close(saved)
	<-done
	if got := body(t, e.do("GET", "/get?k=b", newTok)); got != "2" {
		t.Fatalf("change made during login: got %q; want 2", got)
	}
	if got := body(t, e.do("GET", "/whoami", newTok)); got != "alice" {
		t.Fatalf("got %q; want alice", got)
	}
	if got := body(t, e.do("GET", "/get?k=a", tok)); got != "" {
		t.Fatal("old ID still loads")
	}
}
