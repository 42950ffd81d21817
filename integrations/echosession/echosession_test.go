package echosession_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/sessionkit/sessionkit/integrations/echosession"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

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
func router(m *session.Manager) *echo.Echo {
	e := echo.New()
	e.Use(echosession.Middleware(m))
	e.POST("/login", func(c echo.Context) error {
		echosession.From(c).Login(c.QueryParam("user"))
		return c.JSON(http.StatusOK, map[string]string{"user": c.QueryParam("user")})
	})
	e.POST("/set", func(c echo.Context) error {
		if err := echosession.From(c).Set("color", c.QueryParam("color")); err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, map[string]string{"color": c.QueryParam("color")})
	})
	e.POST("/set-then-error", func(c echo.Context) error {
		if err := echosession.From(c).Set("color", c.QueryParam("color")); err != nil {
			return err
		}
		return echo.NewHTTPError(http.StatusTeapot, "short and stout")
	})
	e.POST("/set-nothing-written", func(c echo.Context) error {
		return echosession.From(c).Set("color", c.QueryParam("color"))
	})
	e.GET("/get", func(c echo.Context) error {
		s := echosession.From(c)
		color, _ := session.Value[string](s, "color")
		return c.String(http.StatusOK, s.UserID()+":"+color)
	})
	e.POST("/logout", func(c echo.Context) error {
		if err := echosession.From(c).Destroy(); err != nil {
			return nil // the Manager answers
		}
		return c.NoContent(http.StatusNoContent)
	})
	return e
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
	if got, want := body(t, resp), `{"user":"alice"}`+"\n"; got != want {
		t.Errorf("login: got body %q; want %q", got, want)
	}

	resp = do(t, h, "GET", "/get", cookie)
	if got, want := body(t, resp), "alice:"; got != want {
		t.Errorf("get: got %q; want %q", got, want)
	}
}

func TestMiddleware_setThenWrite(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		status       int
	}{
		{"JSON", "/set?color=blue", http.StatusCreated},
		{"returned error", "/set-then-error?color=blue", http.StatusTeapot},
		{"nothing written", "/set-nothing-written?color=blue", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := router(newMemManager(t))
			resp := do(t, h, "POST", tc.target, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("got status %d; want %d", resp.StatusCode, tc.status)
			}
			cookie := sessionCookie(resp)
			if cookie == "" {
				t.Fatal("got no session cookie; want the new session's")
			}
			if got, want := body(t, do(t, h, "GET", "/get", cookie)), ":blue"; got != want {
				t.Errorf("get: got %q; want %q", got, want)
			}
		})
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
		name, target string
	}{
		{"login then JSON", "/login?user=alice"},
		{"set then error", "/set-then-error?color=red"},
		{"set, nothing written", "/set-nothing-written?color=red"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, h, "POST", tc.target, "")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("got status %d; want 503", resp.StatusCode)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Error("got no Retry-After; want the Manager's")
			}
			if c := sessionCookie(resp); c != "" {
				t.Errorf("got cookie %q; want none", c)
			}
			if b := body(t, resp); b != "session store unavailable, please retry\n" {
				t.Errorf("got body %q; want the Manager's error text only", b)
			}
		})
	}
}

// Middleware before this one gets its own request and response back, and
// its response records what was sent.
func TestMiddleware_restores(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     func(t *testing.T) *session.Manager
		status int
	}{
		{"ok", newMemManager, http.StatusAccepted},
		{"store failure", func(t *testing.T) *session.Manager { return newManager(t, failingStore{}) }, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := echo.New()
			before := 0
			e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c echo.Context) error {
					res, req := c.Response(), c.Request()
					res.Before(func() { before++ })
					err := next(c)
					if c.Response() != res {
						t.Error("c.Response() not restored")
					}
					if c.Request() != req {
						t.Error("c.Request() not restored")
					}
					if got := res.Status; got != tc.status {
						t.Errorf("outer: got status %d; want %d", got, tc.status)
					}
					if !res.Committed {
						t.Error("outer: response not committed")
					}
					return err
				}
			})
			e.Use(echosession.Middleware(tc.st(t)))
			e.GET("/", func(c echo.Context) error {
				echosession.From(c).Set("k", "v") //nolint:errcheck // a string always encodes
				return c.String(http.StatusAccepted, "ok")
			})
			if resp := do(t, e, "GET", "/", ""); resp.StatusCode != tc.status {
				t.Errorf("got status %d; want %d", resp.StatusCode, tc.status)
			}
			if before != 1 {
				t.Errorf("outer Before hook ran %d times; want 1", before)
			}
		})
	}
}

func TestFrom_withoutMiddleware(t *testing.T) {
	e := echo.New()
	var err error
	e.GET("/", func(c echo.Context) error {
		err = echosession.From(c).Err()
		return nil
	})
	do(t, e, "GET", "/", "")
	if !errors.Is(err, session.ErrNoManager) {
		t.Errorf("got Err %v; want session.ErrNoManager", err)
	}
}
