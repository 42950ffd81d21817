package ginsession_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/sessionkit/sessionkit/integrations/ginsession"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func init() { gin.SetMode(gin.TestMode) }

func newManager(t *testing.T, st store.Store) *session.Manager {
	t.Helper()
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newMemManager(t *testing.T) *session.Manager {
	t.Helper()
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newManager(t, st)
}

// failingStore fails every call, as a store that is down does.
type failingStore struct{}

var errDown = errors.New("failingstore: down")

func (failingStore) Load(context.Context, string) (store.Record, error) {
	return store.Record{}, errDown
}
func (failingStore) Save(context.Context, string, store.Record) (uint64, error) { return 0, errDown }
func (failingStore) Delete(context.Context, string, uint64) error               { return errDown }
func (failingStore) Close() error                                               { return nil }

// router has the session middleware and a few handlers that use it.
func router(m *session.Manager) *gin.Engine {
	r := gin.New()
	r.Use(ginsession.Middleware(m))
	r.POST("/login", func(c *gin.Context) {
		ginsession.From(c).Login(c.Query("user"))
		c.JSON(http.StatusOK, gin.H{"user": c.Query("user")})
	})
	r.POST("/set", func(c *gin.Context) {
		if err := ginsession.From(c).Set("color", c.Query("color")); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.JSON(http.StatusCreated, gin.H{"color": c.Query("color")})
	})
	r.POST("/set-status-only", func(c *gin.Context) {
		ginsession.From(c).Set("color", c.Query("color")) //nolint:errcheck // a string always encodes
		c.Status(http.StatusNoContent)
	})
	r.GET("/get", func(c *gin.Context) {
		s := ginsession.From(c)
		color, _ := session.Value[string](s, "color")
		c.String(http.StatusOK, "%s:%s", s.UserID(), color)
	})
	r.POST("/logout", func(c *gin.Context) {
		if err := ginsession.From(c).Destroy(); err != nil {
			return // the Manager answers
		}
		c.Status(http.StatusNoContent)
	})
	return r
}

func do(t *testing.T, h http.Handler, method, target, cookie string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sessionCookie returns the "name=value" of the response's session cookie,
// or "".
func sessionCookie(resp *http.Response) string {
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-session" && c.Value != "" {
			return c.Name + "=" + c.Value
		}
	}
	return ""
}

func TestMiddleware_login(t *testing.T) {
	h := router(newMemManager(t))
	resp := do(t, h, "POST", "/login?user=alice", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: got status %d; want 200", resp.StatusCode)
	}
	// httptest.ResponseRecorder keeps the header as it was when it was
	// written: the cookie proves the session was saved before that.
	cookie := sessionCookie(resp)
	if cookie == "" {
		t.Fatalf("login: got no session cookie; want one (Set-Cookie: %q)", resp.Header.Values("Set-Cookie"))
	}
	if got, want := body(t, resp), `{"user":"alice"}`; got != want {
		t.Errorf("login: got body %q; want %q", got, want)
	}

	resp = do(t, h, "GET", "/get", cookie)
	if got, want := body(t, resp), "alice:"; got != want {
		t.Errorf("get: got %q; want %q", got, want)
	}
}

func TestMiddleware_setThenJSON(t *testing.T) {
	h := router(newMemManager(t))
	resp := do(t, h, "POST", "/set?color=blue", "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("set: got status %d; want 201", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/json; charset=utf-8"; got != want {
		t.Errorf("set: got Content-Type %q; want %q", got, want)
	}
	cookie := sessionCookie(resp)
	if cookie == "" {
		t.Fatal("set: got no session cookie; want the new session's")
	}
	if got, want := body(t, do(t, h, "GET", "/get", cookie)), ":blue"; got != want {
		t.Errorf("get: got %q; want %q", got, want)
	}
}

// A handler that only sets a status leaves the header to gin, which writes
// it after the chain; the session is saved before.
func TestMiddleware_statusOnly(t *testing.T) {
	h := router(newMemManager(t))
	resp := do(t, h, "POST", "/set-status-only?color=red", "")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("got status %d; want 204", resp.StatusCode)
	}
	cookie := sessionCookie(resp)
	if cookie == "" {
		t.Fatal("got no session cookie; want one")
	}
	if got, want := body(t, do(t, h, "GET", "/get", cookie)), ":red"; got != want {
		t.Errorf("get: got %q; want %q", got, want)
	}
}

func TestMiddleware_logout(t *testing.T) {
	h := router(newMemManager(t))
	cookie := sessionCookie(do(t, h, "POST", "/login?user=alice", ""))
	if resp := do(t, h, "POST", "/logout", cookie); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: got status %d; want 204", resp.StatusCode)
	}
	if got, want := body(t, do(t, h, "GET", "/get", cookie)), ":"; got != want {
		t.Errorf("get after logout: got %q; want %q", got, want)
	}
}

func TestMiddleware_storeFailure(t *testing.T) {
	h := router(newManager(t, failingStore{}))
	for _, tc := range []struct {
		name, method, target string
	}{
		{"login then JSON", "POST", "/login?user=alice"},
		{"set then status only", "POST", "/set-status-only?color=red"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, h, tc.method, tc.target, "")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("got status %d; want 503", resp.StatusCode)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Error("got no Retry-After; want the Manager's")
			}
			if c := sessionCookie(resp); c != "" {
				t.Errorf("got cookie %q; want none", c)
			}
			if b := body(t, resp); strings.Contains(b, "alice") || !strings.Contains(b, "session store unavailable") {
				t.Errorf("got body %q; want the Manager's error text only", b)
			}
		})
	}
}

// Handlers before the middleware get their own Writer and Request back.
func TestMiddleware_restores(t *testing.T) {
	m := newMemManager(t)
	r := gin.New()
	var inner *http.Request
	r.Use(func(c *gin.Context) {
		w, req := c.Writer, c.Request
		c.Next()
		if c.Writer != w {
			t.Error("c.Writer not restored")
		}
		if c.Request != req {
			t.Error("c.Request not restored")
		}
		if c.Request == inner {
			t.Error("c.Request is still the inner request")
		}
		if got, want := c.Writer.Status(), http.StatusAccepted; got != want {
			t.Errorf("outer: got status %d; want %d", got, want)
		}
	})
	r.Use(ginsession.Middleware(m))
	r.GET("/", func(c *gin.Context) {
		inner = c.Request
		if err := ginsession.From(c).Err(); err != nil {
			t.Errorf("From: got Err %v; want nil", err)
		}
		c.String(http.StatusAccepted, "ok")
	})
	if resp := do(t, r, "GET", "/", ""); resp.StatusCode != http.StatusAccepted {
		t.Errorf("got status %d; want 202", resp.StatusCode)
	}
}

func TestFrom_withoutMiddleware(t *testing.T) {
	r := gin.New()
	var err error
	r.GET("/", func(c *gin.Context) { err = ginsession.From(c).Err() })
	do(t, r, "GET", "/", "")
	if !errors.Is(err, session.ErrNoManager) {
		t.Errorf("got Err %v; want session.ErrNoManager", err)
	}
}
