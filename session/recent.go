package session

import (
	"encoding/json"
	"net/http"
	"time"
)

// ReauthenticateBody is the JSON body of RequireRecentLogin's 401 answer,
// for a front end to act on: ask for the password (or a second factor)
// again, log in, and retry.
type ReauthenticateBody struct {
	Error          string `json:"error"`          // "recent login required"
	Reauthenticate bool   `json:"reauthenticate"` // always true
	MaxAgeSeconds  int64  `json:"max_age"`        // the age a login may have, in seconds
}

// RequireRecentLogin returns middleware for sensitive actions (changing a
// password or an e-mail address, deleting an account: OWASP ASVS 5.0
// V7.5.3): it lets a request through only if its session's user logged in
// (Session.Login) at most maxAge ago, and otherwise answers
//
//	401 {"error":"recent login required","reauthenticate":true,"max_age":300}
//
// with Cache-Control: no-store (see ReauthenticateBody). A session without
// a user gets the same answer. It must run inside Manager.Handler (a request
// without a session is answered 500 by the Manager's error handler with
// ErrNoManager); a session that failed to load is answered by the
// Manager's error handler. Logging in again on the same session (Login
// with the same user) satisfies it and keeps the session's content.
func (m *Manager) RequireRecentLogin(maxAge time.Duration) func(http.Handler) http.Handler {
	body, _ := json.Marshal(ReauthenticateBody{
		Error: "recent login required", Reauthenticate: true, MaxAgeSeconds: int64(maxAge / time.Second),
	})
	body = append(body, '\n')
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := From(r)
			if err := s.Err(); err != nil {
				m.handleError(w, r, err)
				return
			}
			if s.LoggedInWithin(maxAge) {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(body) //nolint:errcheck // the client is gone; nothing to do
		})
	}
}
