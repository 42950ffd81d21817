package session_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// A login that binds the session to a user, a cart that survives concurrent
// requests, and a logout.
func Example() {
	st, _ := memstore.New(memstore.Config{})
	defer st.Close()
	m, _ := session.New(session.Config{Store: st, Route: "n1"})

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Login(r.FormValue("user")) // new ID: no session fixation
	})
	mux.HandleFunc("POST /cart", func(w http.ResponseWriter, r *http.Request) {
		item := r.FormValue("item")
		session.Update(session.From(r), "cart", func(items []string) []string { return append(items, item) })
	})
	mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		cart, _ := session.Value[[]string](s, "cart")
		fmt.Fprintf(w, "%s: %v", s.UserID(), cart)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	var cookie string
	do := func(method, path string) string {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		for _, c := range resp.Cookies() {
			cookie = c.Name + "=" + c.Value
		}
		var b [256]byte
		n, _ := resp.Body.Read(b[:])
		return string(b[:n])
	}
	do("POST", "/login?user=alice")
	do("POST", "/cart?item=apple")
	do("POST", "/cart?item=pear")
	fmt.Println(do("GET", "/cart"))
	do("POST", "/logout")
	fmt.Println(do("GET", "/cart"))
	// Output:
	// alice: [apple pear]
	// : []
}

// A "your devices" page with at most two sessions per user: a third login
// ends the least recently used session.
func ExampleManager_UserSessions() {
	st, _ := memstore.New(memstore.Config{})
	defer st.Close()
	// A clock that moves a minute per reading, as if each login came a
	// while after the one before.
	start, minutes := time.Now(), 0
	now := func() time.Time { minutes++; return start.Add(time.Duration(minutes) * time.Minute) }
	m, _ := session.New(session.Config{Store: st, MaxSessionsPerUser: 2, Now: now})

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Login("alice")
	})
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		infos, _ := m.UserSessions(r.Context(), session.From(r).UserID())
		for _, d := range infos {
			fmt.Fprintf(w, "%s current=%t\n", d.Client, d.Current)
		}
	})
	h := m.Handler(mux)
	login := func(ua string) *http.Cookie {
		r := httptest.NewRequest("POST", "/login", nil)
		r.Header.Set("User-Agent", ua)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Result().Cookies()[0]
	}
	login("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	login("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	phone := login("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")

	r := httptest.NewRequest("GET", "/devices", nil)
	r.AddCookie(phone)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Print(w.Body)
	// Output:
	// Safari on iOS current=true
	// Firefox on Linux current=false
}
