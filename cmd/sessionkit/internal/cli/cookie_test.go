package cli_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// serve's session cookie is __Host-session by default (OWASP ASVS 5.0
// V3.3.1): Secure, host-only, Path=/. --cookie-host-prefix=false names it
// session; --insecure-cookie drops Secure and the prefix with it.
func TestServe_cookieName(t *testing.T) {
	for _, tt := range []struct {
		flags []string
		want  string // the Set-Cookie header up to the value, and from after it
		attrs string
	}{
		{nil, "__Host-session=", "; Path=/; HttpOnly; Secure; SameSite=Lax"},
		{[]string{"--cookie-host-prefix=false"}, "session=", "; Path=/; HttpOnly; Secure; SameSite=Lax"},
		{[]string{"--insecure-cookie"}, "session=", "; Path=/; HttpOnly; SameSite=Lax"},
	} {
		srv := startServe(t, nil, append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.flags...)...)
		resp, err := http.Post(srv.url+"/login", "application/json", strings.NewReader(`{"user":"alice"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header.Get("Set-Cookie")
		if !strings.HasPrefix(h, tt.want) || !strings.HasSuffix(h, tt.attrs) {
			t.Errorf("serve %v: Set-Cookie %q; want %s<token>%s", tt.flags, h, tt.want, tt.attrs)
		}
		srv.stop(t)
	}
}

// A browser keeps a user's session through serve's default __Host-session
// cookie over plain HTTP on localhost and 127.0.0.1 (browsers treat both as
// secure contexts): headless Chromium loads a page that logs in, adds to
// the cart and reads it back with fetch, and every request after the login
// carries the cookie.
func TestServe_hostPrefixInChromium(t *testing.T) {
	chromium := testenv.Command(t, "chromium")
	if chromium == "" {
		return
	}
	srv := startServe(t, nil, "serve", "--addr", "127.0.0.1:0", "--node", "n1")
	target, err := neturl.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	// The page and the app on one origin, as behind a front proxy; the
	// proxy records the Cookie header of each request the browser makes.
	var mu sync.Mutex
	var seen []string
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(cartPage))
	})
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" Cookie: "+r.Header.Get("Cookie"))
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewUnstartedServer(mux)
	front.Listener.Close()
	front.Listener = ln
	front.Start()
	defer front.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	for _, host := range []string{"127.0.0.1", "localhost"} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom",
			"http://"+host+":"+strconv.Itoa(port)+"/").Output()
		cancel()
		if err != nil {
			t.Fatalf("chromium on %s: %v", host, err)
		}
		dom := string(out)
		if !strings.Contains(dom, `{"user":"alice","items":["tea"],"node":"n1"}`) {
			t.Errorf("%s: the page's cart read is missing; DOM:\n%s", host, dom)
		}
		mu.Lock()
		reqs := append([]string(nil), seen...)
		mu.Unlock()
		if len(reqs) != 3 {
			t.Fatalf("%s: the browser made %d requests to the app; want 3: %q", host, len(reqs), reqs)
		}
		if strings.Contains(reqs[0], "session=") {
			t.Errorf("%s: the login already carried a cookie: %q", host, reqs[0])
		}
		for _, r := range reqs[1:] {
			if !strings.Contains(r, "Cookie: __Host-session=") || strings.Contains(r, "; session=") {
				t.Errorf("%s: %q; want it to carry the __Host-session cookie alone", host, r)
			}
		}
	}
}

// cartPage logs in as alice, adds tea to the cart, reads the cart back and
// writes the answer into the page.
const cartPage = `<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {
  const post = (path, body) => fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  try {
    await post('/login', {user: 'alice'});
    await post('/cart', {item: 'tea'});
    const cart = await (await fetch('/cart')).text();
    document.getElementById('out').textContent = cart.trim();
  } catch (e) {
    document.getElementById('out').textContent = 'error: ' + e;
  }
})();
</script></body></html>`
