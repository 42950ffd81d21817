package refapp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// epoch is the fake clock's time: sessions created by the tests report it.
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedNow() time.Time { return epoch }

// newStore returns a memstore on the fake clock, closed at the end of t.
func newStore(t testing.TB) *memstore.Store {
	t.Helper()
	st, err := memstore.New(memstore.Config{Now: fixedNow, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// node is one instance of the reference app.
type node struct {
	name string
	h    http.Handler
}

// newNode returns the app named name over st, with its Manager's Route set
// to name. edit, if not nil, may change the session.Config.
func newNode(t testing.TB, st store.Store, name string, edit func(*session.Config)) node {
	t.Helper()
	cfg := session.Config{
		Store:        st,
		Route:        name,
		ErrorHandler: refapp.ErrorHandler,
		Now:          fixedNow,
	}
	if edit != nil {
		edit(&cfg)
	}
	m, err := session.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := refapp.New(refapp.Config{Node: name, Strategy: "memory", Manager: m})
	if err != nil {
		t.Fatal(err)
	}
	return node{name: name, h: h}
}

// client is a user agent that keeps the "__Host-session" cookie by hand, so that
// tests can look at it and replace it. Safe for concurrent use.
type client struct {
	t  testing.TB
	mu sync.Mutex
	// token is the session cookie's value, "" for none.
	token string
}

func newClient(t testing.TB) *client { return &client{t: t} }

func (c *client) setToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = tok
}

func (c *client) getToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// do sends a request to n and returns the response. A non-empty body is
// sent as application/json. It checks that the answer carries n's X-Node.
func (c *client) do(n node, method, path, body string) *httptest.ResponseRecorder {
	c.t.Helper()
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	if tok := c.getToken(); tok != "" {
		req.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
	}
	rec := httptest.NewRecorder()
	n.h.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Node"); got != n.name {
		c.t.Errorf("%s %s: X-Node = %q; want %q", method, path, got, n.name)
	}
	for _, ck := range rec.Result().Cookies() {
		if ck.Name != "__Host-session" {
			continue
		}
		if ck.MaxAge < 0 || ck.Value == "" {
			c.setToken("")
		} else {
			c.setToken(ck.Value)
		}
	}
	return rec
}

// expect checks a response's status and exact body (without its final
// newline) and, for JSON, its Content-Type.
func expect(t testing.TB, what string, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("%s: status %d; want %d (body %q)", what, rec.Code, status, rec.Body.String())
	}
	if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != body {
		t.Errorf("%s: body %s; want %s", what, got, body)
	}
	if strings.HasPrefix(body, "{") {
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q; want application/json", what, ct)
		}
	}
}

// login logs c in as user on n and fails the test if that does not work.
func (c *client) login(n node, user string) {
	c.t.Helper()
	rec := c.do(n, "POST", "/login", `{"user":"`+user+`"}`)
	expect(c.t, "login "+user, rec, 200, `{"user":"`+user+`","node":"`+n.name+`"}`)
}

// failingStore is a store whose backend is down.
type failingStore struct{}

var errDown = errors.New("backend down at 10.0.0.7:6379")

func (failingStore) Load(context.Context, string) (store.Record, error) {
	return store.Record{}, errDown
}
func (failingStore) Save(context.Context, string, store.Record) (uint64, error) { return 0, errDown }
func (failingStore) Delete(context.Context, string, uint64) error               { return errDown }
func (failingStore) Close() error                                               { return nil }

var _ store.Store = failingStore{}
