package balancer

import (
	"io"
	"net"
	"net/http"
	"testing"
)

// hangUpNode returns a backend that reads each request (its whole body
// when readBody is set) and closes the connection without answering.
// Health checks pass.
func hangUpNode(t testing.TB, name string, readBody bool) Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			io.WriteString(w, "ok\n")
			return
		}
		if readBody {
			io.ReadAll(r.Body)
		}
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return Backend{Name: name, URL: "http://" + ln.Addr().String()}
}
