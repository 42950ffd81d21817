package session_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
)

// a request that loaded the session before a concurrent Renew/Login and
// saves after it loses its acknowledged change (the session was renewed,
// not destroyed).
func TestSession_saveAfterConcurrentRenewKept(t *testing.T) {
	loaded, renewed := make(chan struct{}), make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/slowset" {
			s.UserID()
			close(loaded)
			<-renewed
			s.Set("cart", "item")
			return
		}
		testHandler(t)(w, r)
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/login?user=alice", ""))
	var status int
	done := make(chan struct{})
	go func() { status = e.do("GET", "/slowset", tok).StatusCode; close(done) }()
	<-loaded
	newTok := token(t, e.do("GET", "/renew", tok))
	close(renewed)
	<-done
	got := body(t, e.do("GET", "/get?k=cart", newTok))
	if got != "item" {
		t.Fatalf("slow request answered %d but its change is gone after a concurrent Renew: cart=%q", status, got)
	}
}

// logout (Destroy) racing with a Renew/Login of the same session leaves
// the session alive under the new ID.
func TestSession_destroyRacingRenewEnds(t *testing.T) {
	loaded, renewed := make(chan struct{}), make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/slowlogout" {
			s.UserID()
			close(loaded)
			<-renewed
			if err := s.Destroy(); err != nil {
				t.Error(err)
			}
			return
		}
		testHandler(t)(w, r)
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/login?user=alice", ""))
	done := make(chan struct{})
	go func() { e.do("GET", "/slowlogout", tok); close(done) }()
	<-loaded
	newTok := token(t, e.do("GET", "/renew", tok))
	close(renewed)
	<-done
	if got := body(t, e.do("GET", "/whoami", newTok)); got != "" {
		t.Fatalf("after logout the session is still logged in as %q (records: %d)", got, e.mem.Stats().Entries)
	}
}

// a Touch computed from a stale copy overwrites the expiry another
// request just saved: RememberMe(true) is undone (expiry cut back to 30m).
func TestSession_staleTouchKeepsRememberMe(t *testing.T) {
	loaded, remembered := make(chan struct{}), make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/slowread" {
			s.UserID()
			close(loaded)
			<-remembered
			return
		}
		testHandler(t)(w, r)
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	e.clock.Advance(4 * time.Minute) // touch due (interval 3m)
	done := make(chan struct{})
	go func() { e.do("GET", "/slowread", tok); close(done) }()
	<-loaded
	c := sessionCookie(e.do("GET", "/remember", tok))
	t.Logf("remember-me cookie Max-Age=%d", c.MaxAge)
	close(remembered)
	<-done
	e.clock.Advance(2 * time.Hour) // well within the 7-day remember-me idle timeout
	if got := body(t, e.do("GET", "/get?k=a", tok)); got != "1" {
		t.Fatal("remember-me session expired after 2h: a stale touch cut its expiry back to the ordinary idle timeout")
	}
}

// Login after the response has started moves the session to an ID the
// client never receives: the client's token is dead and the user is logged out.
func TestSession_lateLoginRefused(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/latelogin" {
			w.Write([]byte("welcome"))
			s.Login("alice")
			return
		}
		testHandler(t)(w, r)
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	resp := e.do("GET", "/latelogin", tok)
	t.Logf("status %d, cookie %v, records %d", resp.StatusCode, sessionCookie(resp), e.mem.Stats().Entries)
	if got := body(t, e.do("GET", "/get?k=a", tok)); got != "1" {
		t.Fatalf("client's only token no longer loads; session orphaned under an ID never sent (a=%q)", got)
	}
}

// Login keeps the pre-login creation time, so a user who logs in late in
// an anonymous session's lifetime is logged out minutes later.
func TestSession_loginRestartsLifetime(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	for range 35 { // browse anonymously for ~11h40m
		e.clock.Advance(20 * time.Minute)
		e.do("GET", "/get?k=a", tok)
	}
	e.clock.Advance(19 * time.Minute)
	tok = token(t, e.do("GET", "/login?user=alice", tok))
	e.clock.Advance(2 * time.Minute)
	if got := body(t, e.do("GET", "/whoami", tok)); got != "alice" {
		t.Fatal("user logged out 2 minutes after Login: the absolute lifetime counts from the anonymous session's creation")
	}
}

// printing a Session with fmt leaks the bearer token.
func TestSession_fmtHidesToken(t *testing.T) {
	var printed string
	h := func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if r.URL.Path == "/set" {
			s.Set("a", "1")
			return
		}
		s.UserID()
		printed = fmt.Sprintf("%v", s)
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/set", ""))
	e.do("GET", "/print", tok)
	if strings.Contains(printed, tok[:43]) {
		t.Fatalf("fmt.Sprintf(%%v, session) contains the session token: ...%s...", printed[strings.Index(printed, tok[:43])-8:][:60])
	}
}

// a response that carries a new token has no Cache-Control, so a shared
// cache may store it (Session-Token header / Set-Cookie).
func TestSession_tokenResponseNotCacheable(t *testing.T) {
	for _, tr := range []session.Transport{session.Cookie{}, session.Header{}} {
		e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
			session.From(r).Set("a", "1")
			w.Header().Set("Cache-Control", "public, max-age=600")
		}, func(c *session.Config) { c.Transport = tr })
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "no-store") && !strings.Contains(cc, "private") {
			t.Errorf("%T: response carrying a new token has Cache-Control %q (Set-Cookie %v, Session-Token %v)", tr, cc,
				w.Header().Get("Set-Cookie") != "", w.Header().Get("Session-Token") != "")
		}
	}
}

// the error handler's response keeps the headers the handler set.
func TestManager_errorResponseDropsHandlerHeaders(t *testing.T) {
	m, _ := session.New(session.Config{Store: failingStore{}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "store down", http.StatusServiceUnavailable)
	}})
	w := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("a", 1)
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Location", "/account")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.WriteHeader(302)
	})).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	t.Logf("code %d headers %v", w.Code, w.Header())
	if w.Header().Get("Content-Encoding") != "" || w.Header().Get("Cache-Control") != "" {
		t.Fatalf("error response carries the handler's headers: %v", w.Header())
	}
}
