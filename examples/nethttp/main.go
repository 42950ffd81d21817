// Command nethttp is a small shop on net/http's ServeMux: log in, add items
// to a cart kept in the session, read the cart, log out. The mux is wrapped
// by the session Manager's middleware. See ../README.md.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		log.Fatal(err)
	}
}

func run(addr string) error {
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := session.New(session.Config{Store: st})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: newHandler(m), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("nethttp example listening on http://%s", addr)
	return srv.ListenAndServe()
}

// newHandler returns the application: a ServeMux wrapped by m.Handler, so
// that every handler can call session.From.
func newHandler(m *session.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ User string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.User == "" {
			http.Error(w, `want {"user": "..."}`, http.StatusBadRequest)
			return
		}
		session.From(r).Login(in.User) // new session ID: no session fixation
		writeJSON(w, http.StatusOK, map[string]string{"user": in.User})
	})
	mux.HandleFunc("POST /cart", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		if s.UserID() == "" {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		var in struct{ Item string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Item == "" {
			http.Error(w, `want {"item": "..."}`, http.StatusBadRequest)
			return
		}
		// Update, not Value then Set: two concurrent requests both add
		// their item.
		err := session.Update(s, "cart", func(cart []string) []string { return append(cart, in.Item) })
		if err != nil {
			http.Error(w, "cannot update the cart", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r)
		user := s.UserID()
		if user == "" {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		cart, _ := session.Value[[]string](s, "cart")
		if cart == nil {
			cart = []string{}
		}
		writeJSON(w, http.StatusOK, cartResponse{User: user, Cart: cart})
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := session.From(r).Destroy(); err != nil {
			return // the Manager answers with its error response
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return m.Handler(mux)
}

type cartResponse struct {
	User string   `json:"user"`
	Cart []string `json:"cart"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}
