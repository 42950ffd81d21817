package session_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sessionkit/sessionkit/session"
)

// FuzzManager_cookie serves requests with arbitrary Cookie and
// Authorization headers: no input may panic, fail the request, or reach
// another session.
func FuzzManager_cookie(f *testing.F) {
	e := newEnv(f, testHandler(f), nil)
	good := token(f, e.do("GET", "/set?k=a&v=secret", ""))
	f.Add("session=" + good)
	f.Add("session=" + good[:43] + ".n1; session=x")
	f.Add("session=\"" + good + "\"")
	f.Add("session=;;;=")
	f.Add("__Host-session=" + good)
	f.Add("session=x; __Host-session=" + good + "; __Host-session=y")
	f.Add("__Host-session=; session=" + good)
	f.Add("")
	hm, err := session.New(session.Config{Store: e.mem, Transport: session.Header{}})
	if err != nil {
		f.Fatal(err)
	}
	get := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := session.Value[string](session.From(r), "a")
		w.Write([]byte(v))
	})
	cookieH, headerH := e.m.Handler(get), hm.Handler(get)
	f.Fuzz(func(t *testing.T, header string) {
		for _, h := range []http.Handler{cookieH, headerH} {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["Cookie"] = []string{header}
			r.Header["Authorization"] = []string{"Bearer " + header}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("status %d for %q", w.Code, header)
			}
			if w.Body.String() == "secret" && !containsToken(header, good[:43]) {
				t.Fatalf("header %q reached the session", header)
			}
		}
	})
}

func containsToken(s, tok string) bool {
	for i := 0; i+len(tok) <= len(s); i++ {
		if s[i:i+len(tok)] == tok {
			return true
		}
	}
	return false
}
