package token_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/token"
)

// An API client: a five-minute access token (the session, in a bearer
// header) and a rotating refresh token to get the next one.
func TestAPI_accessAndRefresh(t *testing.T) {
	c := newClock()
	mem := newMem(t, c)
	ring := mustRing(t, mustKey(t, token.EdDSA, c.Now()))
	rev, err := token.NewRevocations(t.Context(), token.RevocationConfig{Store: mem, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rev.Close() })
	codec, _ := token.NewCodec(mustFormat(t, token.Config{Ring: ring, Now: c.Now}), rev)
	m, err := session.New(session.Config{Tokens: codec, Transport: session.Header{}, Now: c.Now,
		IdleTimeout: 5 * time.Minute, Lifetime: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	refresher, err := token.NewRefresher(token.RefreshConfig{Store: mem, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	answerRefresh := func(w http.ResponseWriter, refresh string) {
		json.NewEncoder(w).Encode(map[string]string{"refresh_token": refresh})
	}
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Login("alice")
		tok, err := refresher.Issue(r.Context(), "alice")
		if err != nil {
			http.Error(w, "error", 500)
			return
		}
		answerRefresh(w, tok)
	})
	mux.HandleFunc("POST /refresh", func(w http.ResponseWriter, r *http.Request) {
		user, next, err := refresher.Refresh(r.Context(), r.FormValue("refresh_token"))
		if err != nil {
			http.Error(w, "invalid refresh token", http.StatusUnauthorized)
			return
		}
		session.From(r).Login(user) // a new access token for the user
		answerRefresh(w, next)
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		user := session.From(r).UserID()
		if user == "" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(user))
	})
	h := m.Handler(mux)
	call := func(method, path, access, form string) (int, string, string) {
		req := httptest.NewRequest(method, "https://api.example"+path, strings.NewReader(form))
		if form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if access != "" {
			req.Header.Set("Authorization", "Bearer "+access)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body struct {
			Refresh string `json:"refresh_token"`
		}
		json.Unmarshal(rec.Body.Bytes(), &body)
		if body.Refresh == "" {
			body.Refresh = strings.TrimSpace(rec.Body.String())
		}
		return rec.Code, rec.Header().Get("Session-Token"), body.Refresh
	}

	code, access, refresh := call("POST", "/login", "", "")
	if code != 200 || access == "" || !strings.HasPrefix(refresh, "skr1_") {
		t.Fatalf("login: %d, access %q, refresh %q", code, access, refresh)
	}
	if code, _, body := call("GET", "/me", access, ""); code != 200 || body != "alice" {
		t.Fatalf("me: %d %q", code, body)
	}
	c.Advance(6 * time.Minute)
	if code, _, _ := call("GET", "/me", access, ""); code != 401 {
		t.Fatalf("me with an expired access token: %d; want 401", code)
	}
	code, access2, refresh2 := call("POST", "/refresh", "", "refresh_token="+refresh)
	if code != 200 || access2 == "" || refresh2 == refresh {
		t.Fatalf("refresh: %d, access %q, refresh %q", code, access2, refresh2)
	}
	if code, _, body := call("GET", "/me", access2, ""); code != 200 || body != "alice" {
		t.Fatalf("me with the new access token: %d %q", code, body)
	}
	// A thief replays the first refresh token a minute later: the family is
	// revoked, so the client's own new refresh token fails too.
	c.Advance(time.Minute)
	if code, _, _ := call("POST", "/refresh", "", "refresh_token="+refresh); code != 401 {
		t.Fatalf("replayed refresh token: %d; want 401", code)
	}
	if code, _, _ := call("POST", "/refresh", "", "refresh_token="+refresh2); code != 401 {
		t.Fatalf("the family's newest refresh token after the replay: %d; want 401", code)
	}
}
