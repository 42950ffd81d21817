package balancer_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/sessionkit/sessionkit/balancer"
	"github.com/sessionkit/sessionkit/session/sid"
)

// Two nodes behind a Balancer: a session ID tagged "n2" (as sessionkit's
// session.Manager mints them on a node configured with Route "n2") is
// always sent to n2.
func Example() {
	node := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello from "+name)
		}))
	}
	n1, n2 := node("n1"), node("n2")
	defer n1.Close()
	defer n2.Close()

	b, err := balancer.New(balancer.Config{
		Backends: []balancer.Backend{{Name: "n1", URL: n1.URL}, {Name: "n2", URL: n2.URL}},
	})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	front := httptest.NewServer(b)
	defer front.Close()

	id, _ := sid.New("n2")
	for range 3 {
		req, _ := http.NewRequest("GET", front.URL+"/", nil)
		req.AddCookie(&http.Cookie{Name: "__Host-session", Value: id.String()})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// hello from n2
	// hello from n2
	// hello from n2
}
