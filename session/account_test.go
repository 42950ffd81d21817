package session_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/accounttest"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

const (
	firefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// accountEnv serves the account routes of a small app over a memstore.
type accountEnv struct {
	*env
	lastErr error
}

func newAccountEnv(t *testing.T, edit func(*session.Config)) *accountEnv {
	a := &accountEnv{}
	a.env = newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		m := a.env.m
		switch r.URL.Path {
		case "/login":
			s.Login(r.URL.Query().Get("user"))
			a.lastErr = s.Save()
		case "/sessions":
			infos, err := m.UserSessions(r.Context(), s.UserID())
			if err != nil {
				t.Errorf("UserSessions: %v", err)
			}
			json.NewEncoder(w).Encode(infos)
		case "/revoke":
			a.lastErr = m.DestroyHandle(r.Context(), s.UserID(), r.URL.Query().Get("h"))
		case "/others":
			n, err := s.DestroyOthers()
			a.lastErr = err
			json.NewEncoder(w).Encode(n)
		case "/whoami":
			w.Write([]byte(s.UserID()))
		case "/handle":
			w.Write([]byte(s.Handle()))
		}
	}, edit)
	return a
}

// login logs user in from a client with the User-Agent ua and returns its
// token.
func (a *accountEnv) login(user, ua string) string {
	a.t.Helper()
	r := httptest.NewRequest("POST", "/login?user="+user, nil)
	r.Header.Set("User-Agent", ua)
	r.RemoteAddr = "203.0.113.77:5555"
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		a.t.Fatalf("login of %s: status %d %s", user, w.Code, w.Body)
	}
	return token(a.t, w.Result())
}

func (a *accountEnv) sessions(tok string) []session.Info {
	a.t.Helper()
	var infos []session.Info
	if err := json.NewDecoder(a.do("GET", "/sessions", tok).Body).Decode(&infos); err != nil {
		a.t.Fatal(err)
	}
	return infos
}

func (a *accountEnv) whoami(tok string) string {
	a.t.Helper()
	b, err := io.ReadAll(a.do("GET", "/whoami", tok).Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return string(b)
}

func TestUserSessions_metadata(t *testing.T) {
	a := newAccountEnv(t, func(c *session.Config) { c.ClientIP = session.ClientIPTruncated })
	laptop := a.login("alice", firefoxLinux)
	a.clock.Advance(time.Minute)
	phone := a.login("alice", safariIPhone)
	a.login("bob", firefoxLinux)

	infos := a.sessions(laptop)
	if len(infos) != 2 {
		t.Fatalf("alice's sessions: %+v; want 2", infos)
	}
	// The most recently used first: the phone.
	p, l := infos[0], infos[1]
	if p.Client != "Safari on iOS" || l.Client != "Firefox on Linux" {
		t.Errorf("clients %q, %q; want Safari on iOS, Firefox on Linux", p.Client, l.Client)
	}
	if !l.Current || p.Current {
		t.Errorf("current: phone %t, laptop %t; want only the laptop (the request's own)", p.Current, l.Current)
	}
	if l.IP != "203.0.113.0/24" {
		t.Errorf("IP %q; want the truncated 203.0.113.0/24", l.IP)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if !l.Created.Equal(start) || !l.Authenticated.Equal(start) || !p.Authenticated.Equal(start.Add(time.Minute)) {
		t.Errorf("created %v, authenticated %v / %v; want the login times", l.Created, l.Authenticated, p.Authenticated)
	}
	if !p.LastSeen.Equal(start.Add(time.Minute)) {
		t.Errorf("phone last seen %v; want its login", p.LastSeen)
	}
	for _, in := range infos {
		if len(in.Handle) != 16 || strings.Contains(laptop+phone, in.Handle) {
			t.Errorf("handle %q: want 16 characters that are no part of a token", in.Handle)
		}
	}
	// Last seen moves when the expiry is extended (no write of its own).
	a.clock.Advance(10 * time.Minute)
	a.do("GET", "/whoami", laptop)
	infos = a.sessions(phone)
	if infos[0].Client != "Firefox on Linux" || !infos[0].LastSeen.Equal(start.Add(11*time.Minute)) {
		t.Errorf("after the laptop's request 10 min later: first %q last seen %v; want the laptop at %v",
			infos[0].Client, infos[0].LastSeen, start.Add(11*time.Minute))
	}
}

func TestUserSessions_noIPByDefault(t *testing.T) {
	a := newAccountEnv(t, nil)
	tok := a.login("alice", firefoxLinux)
	if in := a.sessions(tok); len(in) != 1 || in[0].IP != "" {
		t.Errorf("sessions %+v; want one, with no IP", in)
	}
}

func TestDestroyHandle(t *testing.T) {
	a := newAccountEnv(t, nil)
	laptop := a.login("alice", firefoxLinux)
	phone := a.login("alice", safariIPhone)
	bob := a.login("bob", firefoxLinux)
	bobHandle := a.sessions(bob)[0].Handle

	for _, h := range []string{bobHandle, "nope", strings.Repeat("A", 16), ""} {
		a.do("POST", "/revoke?h="+h, laptop)
		if !errors.Is(a.lastErr, session.ErrUnknownHandle) {
			t.Errorf("DestroyHandle(%q) by alice: %v; want ErrUnknownHandle", h, a.lastErr)
		}
	}
	if a.whoami(bob) != "bob" || len(a.sessions(laptop)) != 2 {
		t.Fatal("a refused DestroyHandle changed something")
	}
	var phoneHandle string
	for _, in := range a.sessions(laptop) {
		if !in.Current {
			phoneHandle = in.Handle
		}
	}
	a.do("POST", "/revoke?h="+phoneHandle, laptop)
	if a.lastErr != nil {
		t.Fatalf("DestroyHandle of alice's phone: %v", a.lastErr)
	}
	if got := a.whoami(phone); got != "" {
		t.Errorf("the revoked phone is still %q", got)
	}
	if a.whoami(laptop) != "alice" {
		t.Error("the laptop lost its session")
	}
	a.do("POST", "/revoke?h="+phoneHandle, laptop)
	if !errors.Is(a.lastErr, session.ErrUnknownHandle) {
		t.Errorf("revoking the same handle again: %v; want ErrUnknownHandle", a.lastErr)
	}
}

func TestDestroyOthers(t *testing.T) {
	a := newAccountEnv(t, nil)
	laptop := a.login("alice", firefoxLinux)
	phone := a.login("alice", safariIPhone)
	tablet := a.login("alice", safariIPhone)
	bob := a.login("bob", firefoxLinux)
	var n int
	json.NewDecoder(a.do("POST", "/others", laptop).Body).Decode(&n)
	if a.lastErr != nil || n != 2 {
		t.Fatalf("DestroyOthers: %d, %v; want 2", n, a.lastErr)
	}
	if a.whoami(phone) != "" || a.whoami(tablet) != "" {
		t.Error("another device of alice is still logged in")
	}
	if a.whoami(laptop) != "alice" || a.whoami(bob) != "bob" {
		t.Error("the current session, or another user's, was ended")
	}
	json.NewDecoder(a.do("POST", "/others", laptop).Body).Decode(&n)
	if n != 0 {
		t.Errorf("DestroyOthers again: %d; want 0", n)
	}
}

func TestLimit_evictsLeastRecent(t *testing.T) {
	a := newAccountEnv(t, func(c *session.Config) { c.MaxSessionsPerUser = 2 })
	first := a.login("alice", firefoxLinux)
	a.clock.Advance(time.Minute)
	second := a.login("alice", safariIPhone)
	a.clock.Advance(10 * time.Minute)
	a.do("GET", "/whoami", first) // the first is now the more recently used
	a.clock.Advance(time.Minute)
	third := a.login("alice", firefoxLinux)
	if a.whoami(second) != "" {
		t.Error("the least recently used session survived a login over the limit")
	}
	if a.whoami(first) != "alice" || a.whoami(third) != "alice" {
		t.Error("a recently used session, or the new one, was ended")
	}
	// Logging in again on a session of the user does not count twice.
	r := httptest.NewRequest("POST", "/login?user=alice", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-session", Value: third})
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	if w.Code != 200 || a.whoami(first) != "alice" {
		t.Errorf("re-login of a session of the user: status %d, first still logged in %t", w.Code, a.whoami(first) == "alice")
	}
}

func TestLimit_refusesNew(t *testing.T) {
	a := newAccountEnv(t, func(c *session.Config) {
		c.MaxSessionsPerUser = 2
		c.SessionLimit = session.RefuseNew
	})
	first := a.login("alice", firefoxLinux)
	second := a.login("alice", safariIPhone)
	r := httptest.NewRequest("POST", "/login?user=alice", nil)
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	if w.Code != http.StatusConflict || !errors.Is(a.lastErr, session.ErrTooManySessions) {
		t.Errorf("third login: status %d, err %v; want 409 and ErrTooManySessions", w.Code, a.lastErr)
	}
	if c := sessionCookie(w.Result()); c != nil {
		t.Errorf("the refused login set a cookie %q", c.Name)
	}
	if a.whoami(first) != "alice" || a.whoami(second) != "alice" {
		t.Error("a refused login ended another session")
	}
}

func TestLimit_config(t *testing.T) {
	mem, _ := memstore.New(memstore.Config{})
	defer mem.Close()
	for _, c := range []session.Config{
		{Store: mem, MaxSessionsPerUser: -1},
		{Store: mem, MaxSessionsPerUser: 2, SessionLimit: 7},
		{Store: laxStore{mem}, MaxSessionsPerUser: 2}, // no per-user index
		{Store: mem, ClientIP: 9},
	} {
		if _, err := session.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestLimit_concurrentLogins(t *testing.T) {
	mem, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	accounttest.ConcurrentLogins(t, mem)
}

func TestRequireRecentLogin(t *testing.T) {
	a := newAccountEnv(t, nil)
	sensitive := a.m.Handler(a.m.RequireRecentLogin(5 * time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("changed"))
	})))
	call := func(tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/password", nil)
		if tok != "" {
			r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
		}
		w := httptest.NewRecorder()
		sensitive.ServeHTTP(w, r)
		return w
	}
	tok := a.login("alice", firefoxLinux)
	if w := call(tok); w.Code != 200 || w.Body.String() != "changed" {
		t.Fatalf("right after login: %d %s", w.Code, w.Body)
	}
	a.clock.Advance(5*time.Minute + time.Millisecond)
	for _, tk := range []string{tok, ""} {
		w := call(tk)
		var body session.ReauthenticateBody
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 401 || !body.Reauthenticate ||
			body.MaxAgeSeconds != 300 || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("login too old (token %t): %d %s, %v; want 401 with reauthenticate", tk != "", w.Code, w.Body, err)
		}
	}
	// Logging in again on the same session satisfies it.
	r := httptest.NewRequest("POST", "/login?user=alice", nil)
	r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, r)
	if w := call(token(t, w.Result())); w.Code != 200 {
		t.Errorf("after logging in again: %d %s", w.Code, w.Body)
	}
}

// RecordFormat 1 writes what the previous release reads (no metadata);
// the sessions still work, without metadata on the devices page.
func TestRecordFormat1(t *testing.T) {
	a := newAccountEnv(t, func(c *session.Config) { c.RecordFormat = 1 })
	tok := a.login("alice", firefoxLinux)
	entries, err := a.mem.ListUser(t.Context(), "alice")
	if err != nil || len(entries) != 1 {
		t.Fatalf("alice's records: %v, %v", entries, err)
	}
	if d := entries[0].Record.Data; len(d) == 0 || d[0] != 1 {
		t.Errorf("record written in format %v; want 1", d[:min(1, len(d))])
	}
	if in := a.sessions(tok); len(in) != 1 || in[0].Client != "" || a.whoami(tok) != "alice" {
		t.Errorf("format 1 session: %+v, user %q; want alice, no client label", in, a.whoami(tok))
	}
	if _, err := session.New(session.Config{Store: a.mem, RecordFormat: 2}); err == nil {
		t.Error("RecordFormat 2 accepted")
	}
}

// The default error handler answers a session larger than the store holds
// with 413 (sending it again will not help), not 503.
func TestErrorHandler_tooLarge(t *testing.T) {
	mem, err := memstore.New(memstore.Config{MaxBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	m, err := session.New(session.Config{Store: mem})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("big", strings.Repeat("x", 500))
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", nil))
	if w.Code != http.StatusRequestEntityTooLarge || w.Header().Get("Retry-After") != "" {
		t.Errorf("a session over the store's limit: %d, Retry-After %q; want 413 without Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}
