package cli_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// TestServe_migrateFrom: a node on PostgreSQL with --migrate-from redis
// serves the sessions a Redis node made, with their carts, and a logout on
// it ends the session on the Redis node too.
func TestServe_migrateFrom(t *testing.T) {
	redis := "redis://" + testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379") + "/0?key_prefix=sktest" + rand.Text()[:8] + ":"
	pg := postgresURL(t)

	old := startServe(t, nil, "serve", "--strategy", "redis", "--redis", redis, "--addr", "127.0.0.1:0",
		"--insecure-cookie", "--node", "t1")
	alice, bob := newJarClient(t), newJarClient(t)
	for _, c := range []struct {
		client *http.Client
		user   string
	}{{alice, "alice"}, {bob, "bob"}} {
		if code, body := call(t, c.client, "POST", old.url+"/login", `{"user":"`+c.user+rand.Text()[:6]+`"}`); code != 200 {
			t.Fatalf("login on the Redis node: %d %s", code, body)
		}
		if code, body := call(t, c.client, "POST", old.url+"/cart", `{"item":"tea"}`); code != 200 {
			t.Fatalf("cart on the Redis node: %d %s", code, body)
		}
	}
	nu := startServe(t, nil, "serve", "--strategy", "postgres", "--postgres", pg, "--migrate-from", "redis",
		"--redis", redis, "--addr", "127.0.0.1:0", "--insecure-cookie", "--node", "t2")
	for name, c := range map[string]*http.Client{"alice": alice, "bob": bob} {
		code, body := call(t, c, "POST", nu.url+"/cart", `{"item":"milk"}`)
		if code != 200 || !strings.Contains(body, `["tea","milk"]`) {
			t.Errorf("%s's cart on the migrating node: %d %s; want tea and milk", name, code, body)
		}
	}
	// A copy of alice's cookie, kept past her logout (which clears hers).
	kept := newJarClient(t)
	ou, _ := url.Parse(old.url)
	kept.Jar.SetCookies(ou, alice.Jar.Cookies(ou))
	if code, body := call(t, alice, "POST", nu.url+"/logout", ""); code != 200 {
		t.Fatalf("logout on the migrating node: %d %s", code, body)
	}
	if code, _ := call(t, kept, "GET", old.url+"/cart", ""); code != 401 {
		t.Errorf("alice on the Redis node after logging out on the migrating node: %d; want 401", code)
	}
	got := scrape(t, nu.url+"/metrics", "sessionkit_migrate")
	if got["sessionkit_migrate_copied_total"] != 2 {
		t.Errorf("sessionkit_migrate_copied_total = %v; want 2", got["sessionkit_migrate_copied_total"])
	}
}

// TestServe_migrateFromTokens: a Redis node with --migrate-from token
// carries on the sessions of a token node's cookies: the cart is there, and
// the cookie becomes a session ID.
func TestServe_migrateFromTokens(t *testing.T) {
	redis := "redis://" + testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379") + "/0?key_prefix=sktest" + rand.Text()[:8] + ":"
	keys := t.TempDir() + "/keys.json"
	if code, _, errs := run(t, nil, "keys", "new", keys); code != 0 {
		t.Fatalf("keys new: %d %s", code, errs)
	}
	old := startServe(t, nil, "serve", "--strategy", "token", "--keys", keys, "--addr", "127.0.0.1:0",
		"--insecure-cookie", "--node", "t1")
	alice := newJarClient(t)
	call(t, alice, "POST", old.url+"/login", `{"user":"alice"}`)
	if code, body := call(t, alice, "POST", old.url+"/cart", `{"item":"tea"}`); code != 200 {
		t.Fatalf("cart on the token node: %d %s", code, body)
	}
	ou, _ := url.Parse(old.url)
	tokenCookie := alice.Jar.Cookies(ou)[0].Value
	nu := startServe(t, nil, "serve", "--strategy", "redis", "--redis", redis, "--migrate-from", "token",
		"--keys", keys, "--addr", "127.0.0.1:0", "--insecure-cookie", "--node", "t2")
	if code, body := call(t, alice, "POST", nu.url+"/cart", `{"item":"milk"}`); code != 200 || !strings.Contains(body, `["tea","milk"]`) {
		t.Errorf("the token's cart on the Redis node: %d %s; want tea and milk", code, body)
	}
	if c := alice.Jar.Cookies(ou)[0].Value; c == tokenCookie || len(c) > 60 {
		t.Errorf("the cookie after the takeover: %d bytes, changed %t; want a session ID", len(c), c != tokenCookie)
	}
	if code, body := call(t, alice, "GET", nu.url+"/cart", ""); code != 200 || !strings.Contains(body, `["tea","milk"]`) {
		t.Errorf("the cart with the new cookie: %d %s", code, body)
	}
}
