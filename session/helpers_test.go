package session_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// clock is the tests' fake clock.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) }

// countingStore counts the calls that reach a store.
type countingStore struct {
	store.Store
	loads, saves, deletes, touches atomic.Int64
}

func (c *countingStore) Load(ctx context.Context, key string) (store.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, key)
}

func (c *countingStore) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	c.saves.Add(1)
	return c.Store.Save(ctx, key, rec)
}

func (c *countingStore) Delete(ctx context.Context, key string, version uint64) error {
	c.deletes.Add(1)
	return c.Store.Delete(ctx, key, version)
}

func (c *countingStore) Touch(ctx context.Context, key string, version uint64, exp time.Time) error {
	c.touches.Add(1)
	return c.Store.(store.Toucher).Touch(ctx, key, version, exp)
}

func (c *countingStore) ListUser(ctx context.Context, user string) ([]store.Entry, error) {
	return c.Store.(store.UserIndex).ListUser(ctx, user)
}

func (c *countingStore) DeleteUser(ctx context.Context, user string) (int, error) {
	return c.Store.(store.UserIndex).DeleteUser(ctx, user)
}

func (c *countingStore) reset() {
	c.loads.Store(0)
	c.saves.Store(0)
	c.deletes.Store(0)
	c.touches.Store(0)
}

type env struct {
	t     testing.TB
	clock *clock
	mem   *memstore.Store
	store *countingStore
	m     *session.Manager
	h     http.Handler
}

// newEnv returns a Manager over a memstore with a fake clock, serving
// handler. edit may change the Config before New.
func newEnv(t testing.TB, handler http.HandlerFunc, edit func(*session.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: newClock()}
	mem, err := memstore.New(memstore.Config{Now: e.clock.Now, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	e.mem = mem
	e.store = &countingStore{Store: mem}
	cfg := session.Config{Store: e.store, Now: e.clock.Now}
	if edit != nil {
		edit(&cfg)
	}
	e.m, err = session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h = e.m.Handler(handler)
	return e
}

// do serves one request carrying token (as the "session" cookie, if not
// empty) and returns the response.
func (e *env) do(method, path, token string) *http.Response {
	e.t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Add("Cookie", "__Host-session="+token) // raw, as a browser sends it
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Result()
}

// sessionCookie returns the session cookie a response sets, or nil.
func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "session" || strings.HasPrefix(c.Name, "__Host-") {
			return c
		}
	}
	return nil
}

// token returns the session token a response sets, failing if none.
func token(t testing.TB, resp *http.Response) string {
	t.Helper()
	c := sessionCookie(resp)
	if c == nil || c.Value == "" {
		t.Fatalf("response sets no session cookie; headers %v", resp.Header)
	}
	return c.Value
}

// handlers maps paths to small handlers used across tests.
func testHandler(t testing.TB) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		q := r.URL.Query()
		switch r.URL.Path {
		case "/set":
			if err := s.Set(q.Get("k"), q.Get("v")); err != nil {
				t.Errorf("Set: %v", err)
			}
		case "/get":
			v, _ := session.Value[string](s, q.Get("k"))
			w.Write([]byte(v))
		case "/login":
			s.Login(q.Get("user"))
		case "/renew":
			s.Renew()
		case "/destroy":
			if err := s.Destroy(); err != nil {
				t.Errorf("Destroy: %v", err)
			}
		case "/remember":
			s.RememberMe(true)
		case "/whoami":
			w.Write([]byte(s.UserID()))
		case "/nothing":
		}
	}
}
