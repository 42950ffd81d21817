package session_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/session"
)

func TestNew_nilCookiePointer(t *testing.T) {
	e := newEnv(t, testHandler(t), nil)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("New panicked: %v", r)
		}
	}()
	var c *session.Cookie
	session.New(session.Config{Store: e.mem, Transport: c})
}

func TestSession_rememberOffResendsCookie(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/forget" {
			session.From(r).RememberMe(false)
			return
		}
		testHandler(t)(w, r)
	}
	e := newEnv(t, h, nil)
	tok := token(t, e.do("GET", "/set?k=a&v=1", ""))
	e.do("GET", "/remember", tok)
	if c := sessionCookie(e.do("GET", "/forget", tok)); c == nil {
		t.Fatal("RememberMe(false) sends no cookie: the browser keeps the persistent (Max-Age=7d) cookie")
	}
}

func TestManager_failOpenRefusesWrites(t *testing.T) {
	m, _ := session.New(session.Config{Store: failingStore{}, FailOpen: true})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-session="+strings.Repeat("A", 43))
	w := httptest.NewRecorder()
	var setErr error
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		s.Login("alice")
		setErr = s.Set("cart", "item")
		w.Write([]byte("logged in, item added"))
	})).ServeHTTP(w, r)
	if w.Code == 200 && setErr == nil {
		t.Fatalf("store down, FailOpen: Login+Set acknowledged (%d %q, Set err %v) but nothing was saved", w.Code, w.Body.String(), setErr)
	}
}
