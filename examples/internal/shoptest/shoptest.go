// Package shoptest is the test every example app passes: the same
// requests, the same answers, whatever the router.
package shoptest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// Run checks an example app, made by newApp on a fresh Manager over
// memstore, as a browser would use it: the cart needs a login, keeps two
// items, and neither it nor a copy of the old cookie works after logout.
func Run(t *testing.T, newApp func(*session.Manager) http.Handler) {
	t.Helper()
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, h: newApp(m)}

	c.do("GET", "/cart", "", http.StatusUnauthorized)
	c.do("POST", "/cart", `{"item":"apple"}`, http.StatusUnauthorized)
	c.do("POST", "/login", `{"user":"alice"}`, http.StatusOK)
	loggedIn := c.cookie
	c.do("POST", "/cart", `{"item":"apple"}`, http.StatusNoContent)
	c.do("POST", "/cart", `{"item":"pear"}`, http.StatusNoContent)
	if got, want := c.do("GET", "/cart", "", http.StatusOK), `{"user":"alice","cart":["apple","pear"]}`; got != want {
		t.Errorf("GET /cart: got %s; want %s", got, want)
	}
	c.do("POST", "/logout", "", http.StatusNoContent)
	c.do("GET", "/cart", "", http.StatusUnauthorized)

	c.cookie = loggedIn // a copy of the old cookie is worthless too
	c.do("GET", "/cart", "", http.StatusUnauthorized)
}

// client drives the handler through httptest, keeping the session cookie
// as a browser would.
type client struct {
	t      *testing.T
	h      http.Handler
	cookie string // "__Host-session=..." or ""
}

// do sends a request, checks its status and returns its body without the
// trailing newline.
func (c *client) do(method, path, body string, wantStatus int) string {
	c.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	resp := rec.Result()
	for _, ck := range resp.Cookies() {
		if ck.Name != "__Host-session" {
			continue
		}
		c.cookie = ""
		if ck.MaxAge >= 0 && ck.Value != "" {
			c.cookie = ck.Name + "=" + ck.Value
		}
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		c.t.Fatalf("%s %s: got status %d (%s); want %d", method, path, resp.StatusCode, b, wantStatus)
	}
	return strings.TrimSuffix(string(b), "\n")
}
