package session_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

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
