// Package accounttest checks the per-user session limit
// (session.Config.MaxSessionsPerUser) on a real store, as several app
// instances share it: each store's tests call ConcurrentLogins with their
// own store. It uses the real clock (the limit's lock expires by it).
package accounttest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
)

// Logins is how many logins of one user ConcurrentLogins starts at once;
// Limit is the limit it sets.
const (
	Logins = 32
	Limit  = 3
)

// ConcurrentLogins logs one user in Logins times at once through one
// Manager per store of stores (as many app instances, each with its own
// client of the shared store), with a limit
// of Limit sessions per user, under each policy. It fails t unless:
//
//   - evict: every login succeeds, at most Limit of the user's sessions are
//     live afterwards (ListUser), each of those still works, and every other
//     one answers as no session (no user) on its next request;
//   - refuse: exactly Limit logins succeed, the others fail with
//     session.ErrTooManySessions (409), and the Limit that succeeded are
//     the user's live sessions.
//
// The stores must implement store.UserIndex.
func ConcurrentLogins(t *testing.T, stores ...store.Store) {
	nodes := len(stores)
	for _, policy := range []session.LimitPolicy{session.EvictLeastRecent, session.RefuseNew} {
		t.Run(policy.String(), func(t *testing.T) {
			user := "limit-" + rand.Text()
			handlers := make([]http.Handler, nodes)
			for i := range handlers {
				m, err := session.New(session.Config{Store: stores[i], MaxSessionsPerUser: Limit, SessionLimit: policy})
				if err != nil {
					t.Fatal(err)
				}
				handlers[i] = m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					s := session.From(r)
					if r.URL.Path == "/login" {
						s.Login(user)
						if err := s.Save(); err != nil {
							if errors.Is(err, session.ErrTooManySessions) {
								w.WriteHeader(http.StatusConflict)
								return
							}
							t.Errorf("login: %v", err)
						}
						return
					}
					fmt.Fprint(w, s.UserID())
				}))
			}
			tokens := make([]string, Logins)
			codes := make([]int, Logins)
			var wg sync.WaitGroup
			for i := range Logins {
				wg.Go(func() {
					w := httptest.NewRecorder()
					handlers[i%nodes].ServeHTTP(w, httptest.NewRequest("POST", "/login", nil))
					codes[i] = w.Code
					for _, c := range w.Result().Cookies() {
						if c.Value != "" {
							tokens[i] = c.Value
						}
					}
				})
			}
			wg.Wait()

			ok := 0
			for i, code := range codes {
				switch {
				case code == http.StatusOK && tokens[i] != "":
					ok++
				case code == http.StatusConflict && policy == session.RefuseNew:
				default:
					t.Errorf("login %d: status %d, token %t", i, code, tokens[i] != "")
				}
			}
			entries, err := stores[0].(store.UserIndex).ListUser(t.Context(), user)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) > Limit {
				t.Errorf("%d live sessions of the user after %d concurrent logins on %d nodes; want at most %d",
					len(entries), Logins, nodes, Limit)
			}
			if policy == session.RefuseNew && ok != Limit {
				t.Errorf("%d logins succeeded; want exactly %d (the others refused)", ok, Limit)
			}
			// Every session the limit ended has no user on its next request;
			// every one it kept still has.
			live := 0
			for i, tok := range tokens {
				if tok == "" {
					continue
				}
				r := httptest.NewRequest("GET", "/whoami", nil)
				r.AddCookie(&http.Cookie{Name: "__Host-session", Value: tok})
				w := httptest.NewRecorder()
				handlers[(i+1)%nodes].ServeHTTP(w, r)
				if w.Body.String() == user {
					live++
				}
			}
			if live != len(entries) || (live == 0 && ok > 0) {
				t.Errorf("%d tokens still logged in, %d sessions listed; want the same, and at least one", live, len(entries))
			}
			t.Logf("%s: %d logins at once on %d nodes: %d succeeded, %d sessions live", policy, Logins, nodes, ok, live)
		})
	}
}
