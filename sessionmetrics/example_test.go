package sessionmetrics_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/sessionmetrics"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// A Manager over an in-memory store, its metrics served at /metrics next
// to the app: a login, a cart write, a cart read and a logout, then the
// counters that moved.
func Example() {
	reg := prometheus.NewRegistry()
	sm, err := sessionmetrics.New(reg, sessionmetrics.Options{})
	if err != nil {
		panic(err)
	}
	st, _ := memstore.New(memstore.Config{})
	defer st.Close()
	sm.WatchMemstore("memory", st)
	m, _ := session.New(session.Config{Store: st, Observer: sm})

	app := http.NewServeMux()
	app.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Login(r.FormValue("user"))
	})
	app.HandleFunc("POST /cart", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Set("cart", r.FormValue("item"))
	})
	app.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		v, _ := session.Value[string](session.From(r), "cart")
		fmt.Fprint(w, v)
	})
	app.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session.From(r).Destroy()
	})
	mux := http.NewServeMux() // /metrics outside the session middleware: scrapes cost no store call
	mux.Handle("/", m.Handler(app))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var cookie string
	do := func(method, path string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		for _, c := range resp.Cookies() {
			cookie = c.Name + "=" + c.Value
		}
		return resp
	}
	for _, step := range []string{"POST /login?user=alice", "POST /cart?item=apple", "GET /cart", "POST /logout"} {
		method, path, _ := strings.Cut(step, " ")
		do(method, path).Body.Close()
	}

	// The samples of sessionkit_ that are not zero, histograms aside.
	resp := do("GET", "/metrics")
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "sessionkit_") && !strings.HasSuffix(line, " 0") &&
			!strings.Contains(line, "_duration_seconds") {
			fmt.Println(line)
		}
	}
	// Output:
	// sessionkit_session_events_total{event="created"} 1
	// sessionkit_session_events_total{event="destroyed"} 1
	// sessionkit_store_calls_total{op="delete",result="ok"} 1
	// sessionkit_store_calls_total{op="load",result="ok"} 3
	// sessionkit_store_calls_total{op="save",result="ok"} 2
}
