package token_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/token"
)

// Two instances of an app share one key ring and one revocation store:
// a session made on one is read on the other, with no session stored
// anywhere, and a logout on one is honoured by the other after its next
// refresh of the revocation list.
func Example() {
	ctx := context.Background()
	key, _ := token.NewKey(token.XC20P, time.Now()) // in production: token.ReadRingFile
	ring, _ := token.NewRing(key)
	shared, _ := memstore.New(memstore.Config{}) // in production: Redis, shared by the instances
	defer shared.Close()

	newInstance := func() (http.Handler, *token.Revocations) {
		format, _ := token.NewSealed(token.Config{Ring: ring})
		rev, _ := token.NewRevocations(ctx, token.RevocationConfig{Store: shared})
		codec, _ := token.NewCodec(format, rev)
		m, _ := session.New(session.Config{Tokens: codec})
		mux := http.NewServeMux()
		mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
			s := session.From(r)
			s.Login("alice")
			s.Set("cart", []string{"tea"})
		})
		mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
			cart, _ := session.Value[[]string](session.From(r), "cart")
			fmt.Fprintf(w, "user=%q cart=%v", session.From(r).UserID(), cart)
		})
		mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
			session.From(r).Destroy()
		})
		return m.Handler(mux), rev
	}
	a, revA := newInstance()
	defer revA.Close()
	b, revB := newInstance()
	defer revB.Close()

	call := func(h http.Handler, method, path string, cookie *http.Cookie) (string, *http.Cookie) {
		req := httptest.NewRequest(method, "https://shop.example"+path, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		for _, c := range rec.Result().Cookies() {
			return string(body), c
		}
		return string(body), cookie
	}

	_, cookie := call(a, "POST", "/login", nil)
	cart, _ := call(b, "GET", "/cart", cookie)
	fmt.Println("on b:", cart)

	call(a, "POST", "/logout", cookie)
	cart, _ = call(a, "GET", "/cart", cookie)
	fmt.Println("on a after the logout:", cart)
	cart, _ = call(b, "GET", "/cart", cookie)
	fmt.Println("on b before its refresh:", cart)
	revB.Refresh(ctx) // what b's refresh loop does every 2 seconds
	cart, _ = call(b, "GET", "/cart", cookie)
	fmt.Println("on b after its refresh:", cart)
	// Output:
	// on b: user="alice" cart=[tea]
	// on a after the logout: user="" cart=[]
	// on b before its refresh: user="alice" cart=[tea]
	// on b after its refresh: user="" cart=[]
}
