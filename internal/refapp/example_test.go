package refapp_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"

	"github.com/sessionkit/sessionkit/internal/refapp"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// A node of the reference app over an in-process store, used by a client
// with a cookie jar.
func Example() {
	st, err := memstore.New(memstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	m, err := session.New(session.Config{
		Store:        st,
		Route:        "n1",
		ErrorHandler: refapp.ErrorHandler,
		// Go's cookie jar sends Secure cookies only over https.
		Transport: session.Cookie{Insecure: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	app, err := refapp.New(refapp.Config{Node: "n1", Strategy: "memory", Manager: m})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(app)
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	post := func(path, body string) {
		resp, err := client.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("POST %s %d %s", path, resp.StatusCode, b)
	}
	post("/login", `{"user":"alice"}`)
	post("/cart", `{"item":"tea"}`)
	post("/cart", `{"item":"milk"}`)
	post("/logout", ``)
	post("/cart", `{"item":"sugar"}`)
	// Output:
	// POST /login 200 {"user":"alice","node":"n1"}
	// POST /cart 200 {"user":"alice","items":["tea"],"node":"n1"}
	// POST /cart 200 {"user":"alice","items":["tea","milk"],"node":"n1"}
	// POST /logout 200 {}
	// POST /cart 401 {"error":"not logged in"}
}
