// Package bench measures sessionkit beside its peers in one run. See
// README.md for the command and the latest figures.
package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alexedwards/scs/v2"
	scsmem "github.com/alexedwards/scs/v2/memstore"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// A stack is one session library set up behind net/http with an in-memory
// store, and the two handlers measured on it.
type stack struct {
	name      string
	readWrite http.Handler // reads "user", writes "visits"
	readOnly  http.Handler // reads "user"
	login     http.Handler // creates the session: sets "user"
}

func bare() stack {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("alice")) })
	return stack{name: "bare", readWrite: h, readOnly: h, login: h}
}

func sessionkit(b *testing.B) stack {
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	visits := 0
	return stack{
		name: "sessionkit",
		readWrite: m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := session.From(r)
			user, _ := session.Value[string](s, "user")
			visits++
			s.Set("visits", visits)
			w.Write([]byte(user))
		})),
		readOnly: m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, _ := session.Value[string](session.From(r), "user")
			w.Write([]byte(user))
		})),
		login: m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			session.From(r).Set("user", "alice")
		})),
	}
}

func scsStack(b *testing.B) stack {
	sm := scs.New()
	sm.Store = scsmem.New()
	visits := 0
	return stack{
		name: "scs",
		readWrite: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user := sm.GetString(r.Context(), "user")
			visits++
			sm.Put(r.Context(), "visits", visits)
			w.Write([]byte(user))
		})),
		readOnly: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(sm.GetString(r.Context(), "user")))
		})),
		login: sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sm.Put(r.Context(), "user", "alice")
		})),
	}
}

func stacks(b *testing.B) []stack { return []stack{bare(), sessionkit(b), scsStack(b)} }

// loginCookie creates a session and returns its cookie ("" for bare).
func loginCookie(b *testing.B, s stack) string {
	w := httptest.NewRecorder()
	s.login.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if s.name == "bare" {
		return ""
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		b.Fatalf("%s: login set %d cookies; want 1", s.name, len(cs))
	}
	return cs[0].Name + "=" + cs[0].Value
}

func run(b *testing.B, h http.Handler, cookie string) {
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/", nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 || w.Body.String() != "alice" {
			b.Fatalf("got %d %q; want 200 alice", w.Code, w.Body.String())
		}
	}
}

// BenchmarkReadWrite: a request that reads one value and writes another.
func BenchmarkReadWrite(b *testing.B) {
	for _, s := range stacks(b) {
		cookie := loginCookie(b, s)
		b.Run("impl="+s.name, func(b *testing.B) { run(b, s.readWrite, cookie) })
	}
}

// BenchmarkReadOnly: a request that reads one value.
func BenchmarkReadOnly(b *testing.B) {
	for _, s := range stacks(b) {
		cookie := loginCookie(b, s)
		b.Run("impl="+s.name, func(b *testing.B) { run(b, s.readOnly, cookie) })
	}
}
