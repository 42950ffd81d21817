package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/cli"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

// TestServe_nearCache: two serve nodes on one Redis, each with a near
// cache. A session written on one is read on the other (once the
// invalidation has come, well under the cache's 1 s maximum age), a logout on one is
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
	// c1 acknowledged the last add; c2, which cached the cart when it
	// made the second add, sees the third once Redis's invalidation has
	// reached it: a stale read is possible only within that delay.
	added := time.Now()
	for {
		code, body := call(t, user, "GET", nodes[1].url+"/cart", "")
		if code == 200 && strings.Contains(body, `["i0","i1","i2"]`) {
			t.Logf("c1's add seen on c2 after %v", time.Since(added))
			break
		}
		if code != 200 || time.Since(added) > 500*time.Millisecond {
			t.Fatalf("GET /cart on c2 %v after c1's add: %d %s; want the 3 items", time.Since(added), code, body)
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

// TestServe_nearCacheFeeds runs two serve nodes with --near-cache on one
// shared store whose change feed store/nearcache follows (nats, postgres):
// a session read on node 2 (and so held in its near cache) and logged out
// on node 1 must be a 401 on node 2 within the change feed's delay. It
// logs the delays of 20 logouts, and checks that node 2 counts hits.
func TestServe_nearCacheFeeds(t *testing.T) {
	t.Run("nats", func(t *testing.T) {
		addr := testenv.TCPAddr(t, "SESSIONKIT_NATS_ADDR", "127.0.0.1:4222")
		checkNearCache(t, "nats", "--nats", "nats://"+addr)
	})
	t.Run("postgres", func(t *testing.T) {
		checkNearCache(t, "postgres", "--postgres", postgresURL(t))
	})
}

func checkNearCache(t *testing.T, strategy string, extra ...string) {
	var nodes []*server
	for _, name := range []string{"c1", "c2"} {
		args := append([]string{"serve", "--strategy", strategy, "--near-cache", "--addr", "127.0.0.1:0",
			"--insecure-cookie", "--node", name, "--log-level", "warn"}, extra...)
		nodes = append(nodes, startServe(t, nil, args...))
	}
	var delays []time.Duration
	for i := range 20 {
		c := &client{t: t}
		user := "near-" + rand.Text()[:10]
		if code, body := c.do("POST", nodes[0].url+"/login", `{"user":"`+user+`"}`); code != 200 {
			t.Fatalf("login on c1: %d %s", code, body)
		}
		if code, body := c.do("POST", nodes[0].url+"/cart", `{"item":"tea"}`); code != 200 {
			t.Fatalf("POST /cart on c1: %d %s", code, body)
		}
		// Read on c2 until it sees the item (the feed's delay), then once
		// more: its near cache now holds the session.
		deadline := time.Now().Add(2 * time.Second)
		for {
			code, body := c.do("GET", nodes[1].url+"/cart", "")
			if code == 200 && body == `{"user":"`+user+`","items":["tea"],"node":"c2"}` {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trial %d: GET /cart on c2 2s after the item was added on c1: %d %s", i, code, body)
			}
			time.Sleep(time.Millisecond)
		}
		if code, body := c.do("GET", nodes[1].url+"/cart", ""); code != 200 {
			t.Fatalf("trial %d: GET /cart on c2: %d %s", i, code, body)
		}
		cookie := c.cookie
		if code, body := c.do("POST", nodes[0].url+"/logout", ""); code != 200 {
			t.Fatalf("trial %d: logout on c1: %d %s", i, code, body)
		}
		loggedOut := time.Now()
		c.cookie = cookie // the old cookie, as a second tab or a thief would send it
		for {
			code, body := c.do("GET", nodes[1].url+"/cart", "")
			if code == 401 {
				delays = append(delays, time.Since(loggedOut))
				break
			}
			if time.Since(loggedOut) > 2*time.Second {
				t.Fatalf("trial %d: GET /cart on c2 2s after a logout on c1: %d %s; want 401", i, code, body)
			}
			time.Sleep(time.Millisecond)
		}
	}
	slices.Sort(delays)
	t.Logf("%s --near-cache: a logout on c1 answered 401 on c2 after p50 %v, max %v (20 logouts)",
		strategy, delays[len(delays)/2], delays[len(delays)-1])
	hits := `sessionkit_nearcache_hits_total{store="` + strategy + `"}`
	if got := scrape(t, nodes[1].url+"/metrics", "sessionkit_nearcache_")[hits]; got < 10 {
		t.Errorf("/metrics of c2: %s = %v; want at least 10 (a read of a cached session in each of 20 trials)", hits, got)
	}
	for _, n := range nodes {
		n.stop(t)
	}
}
