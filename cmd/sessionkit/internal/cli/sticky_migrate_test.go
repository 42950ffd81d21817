package cli_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// TestBalance_stickyMemoryToRedis is the rolling move of docs/migration.md
// from sticky in-memory sessions to a shared store: behind `sessionkit
// balance`, two memory nodes hold users' sessions; two Redis nodes are
// added and the memory nodes drained. Every user of a memory node keeps
// their node and their cart (no session lost); every new user lands on a
// Redis node.
func TestBalance_stickyMemoryToRedis(t *testing.T) {
	redis := "redis://" + testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379") + "/0?key_prefix=sktest" + rand.Text()[:8] + ":"
	var backends []string
	for _, n := range []string{"n1", "n2"} {
		s := startServe(t, nil, "serve", "--node", n, "--addr", "127.0.0.1:0", "--insecure-cookie")
		backends = append(backends, "--backend", n+"="+s.url)
	}
	b := startBalance(t, nil, append([]string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, backends...)...)

	const users = 12
	old := make([]func(path, body string) *http.Response, users)
	home := make([]string, users)
	for u := range old {
		old[u] = userPoster(t, b.url)
		resp := old[u]("/login", fmt.Sprintf(`{"user":"old%d"}`, u))
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		home[u] = resp.Header.Get("X-Node")
		old[u]("/cart", `{"item":"a"}`)
	}
	admin := userPoster(t, b.admin)
	for _, n := range []string{"n3", "n4"} {
		s := startServe(t, nil, "serve", "--strategy", "redis", "--redis", redis, "--node", n, "--addr", "127.0.0.1:0", "--insecure-cookie")
		if code := admin("/nodes", `{"name":"`+n+`","url":"`+s.url+`"}`).StatusCode; code/100 != 2 {
			t.Fatalf("adding %s: %d", n, code)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		if code := admin("/nodes/"+n+"/drain", `{"timeout":"1h"}`).StatusCode; code/100 != 2 {
			t.Fatalf("draining %s: %d", n, code)
		}
	}
	for u, user := range old {
		resp := user("/cart", `{"item":"b"}`)
		code, node := resp.StatusCode, resp.Header.Get("X-Node")
		if code != 200 || node != home[u] {
			t.Errorf("old user %d (on %s) while %s drains: %d from %s; want 200 from its node", u, home[u], home[u], code, node)
		}
	}
	for u := range users {
		resp := userPoster(t, b.url)("/login", fmt.Sprintf(`{"user":"new%d"}`, u))
		if code, node := resp.StatusCode, resp.Header.Get("X-Node"); code != 200 || (node != "n3" && node != "n4") {
			t.Errorf("new user %d: %d on %s; want a Redis node", u, code, node)
		}
	}
}
