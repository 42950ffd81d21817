package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/cli"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

// TestServe_nearCache: two serve nodes on one Redis, each with a near
// cache. A session written on one is read on the other, a logout on one is
// a 401 on the other at once (within the invalidation's delay, well under
// the cache's 1 s maximum age), and /metrics counts the cache's hits.
func TestServe_nearCache(t *testing.T) {
	addr := testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
	redis := "redis://" + addr + "/0?key_prefix=sktest" + rand.Text()[:8] + ":"
	var nodes []*server
	for _, name := range []string{"c1", "c2"} {
		nodes = append(nodes, startServe(t, nil, "serve", "--strategy", "redis", "--redis", redis, "--near-cache",
			"--addr", "127.0.0.1:0", "--insecure-cookie", "--node", name))
	}
	user := newJarClient(t)
	if code, body := call(t, user, "POST", nodes[0].url+"/login", `{"user":"nc-`+rand.Text()[:8]+`"}`); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	for i := range 3 {
		if code, body := call(t, user, "POST", nodes[i%2].url+"/cart", `{"item":"i`+strconv.Itoa(i)+`"}`); code != 200 {
			t.Fatalf("add item %d: %d %s", i, code, body)
		}
	}
	for range 5 {
		if code, body := call(t, user, "GET", nodes[1].url+"/cart", ""); code != 200 || !strings.Contains(body, `["i0","i1","i2"]`) {
			t.Fatalf("GET /cart on c2: %d %s; want the 3 items", code, body)
		}
	}
	// Keep the cookie: the jar drops it at the logout, an attacker who
	// copied it would not.
	u, _ := url.Parse(nodes[1].url)
	stolen := &http.Client{Jar: must(cookiejar.New(nil)), Timeout: 5 * time.Second}
	stolen.Jar.SetCookies(u, user.Jar.Cookies(u))
	if code, _ := call(t, stolen, "GET", nodes[1].url+"/cart", ""); code != 200 {
		t.Fatalf("the copied cookie before the logout: %d", code)
	}
	if code, body := call(t, user, "POST", nodes[0].url+"/logout", ""); code != 200 {
		t.Fatalf("logout on c1: %d %s", code, body)
	}
	acked := time.Now()
	for {
		code, _ := call(t, stolen, "GET", nodes[1].url+"/cart", "")
		if code == 401 {
			t.Logf("logout on c1 honoured on c2 after %v", time.Since(acked))
			break
		}
		// Well under the cache's maximum age (1 s), which alone would
		// end it without the invalidation.
		if time.Since(acked) > 500*time.Millisecond {
			t.Fatalf("c2 still serves the session %v after the logout on c1", time.Since(acked))
		}
	}
	_, metrics := call(t, user, "GET", nodes[1].url+"/metrics", "")
	hits := 0.0
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, `sessionkit_nearcache_hits_total{store="redis"} `); ok {
			hits, _ = strconv.ParseFloat(v, 64)
		}
	}
	if hits < 3 {
		t.Errorf("sessionkit_nearcache_hits_total on c2 = %v; want at least 3 (5 reads of a cached session)", hits)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestServe_nearCacheRefused: a strategy whose store cannot report its
// changes refuses --near-cache with exit status 2 and one line.
func TestServe_nearCacheRefused(t *testing.T) {
	for _, strategy := range []string{"memory", "memcached"} {
		var stderr bytes.Buffer
		code := cli.Main(context.Background(), []string{"serve", "--strategy", strategy, "--near-cache", "--addr", "127.0.0.1:0"},
			io.Discard, &stderr, func(string) string { return "" })
		if code != 2 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "--near-cache") {
			t.Errorf("serve --strategy %s --near-cache: exit %d, stderr %q; want 2 and one line about --near-cache", strategy, code, stderr.String())
		}
	}
}
