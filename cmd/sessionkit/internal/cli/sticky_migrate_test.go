package cli_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	old := make([]*http.Client, users)
	home := make([]string, users)
	for u := range old {
		old[u] = newJarClient(t)
		if code, node := post(t, old[u], b.url+"/login", fmt.Sprintf(`{"user":"old%d"}`, u)); code != 200 {
			t.Fatalf("login: %d", code)
		} else {
			home[u] = node
		}
		post(t, old[u], b.url+"/cart", `{"item":"a"}`)
	}
	for _, n := range []string{"n3", "n4"} {
		s := startServe(t, nil, "serve", "--strategy", "redis", "--redis", redis, "--node", n, "--addr", "127.0.0.1:0", "--insecure-cookie")
		if code, _ := post(t, http.DefaultClient, b.admin+"/nodes", `{"name":"`+n+`","url":"`+s.url+`"}`); code/100 != 2 {
			t.Fatalf("adding %s: %d", n, code)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		if code, _ := post(t, http.DefaultClient, b.admin+"/nodes/"+n+"/drain", `{"timeout":"1h"}`); code/100 != 2 {
			t.Fatalf("draining %s: %d", n, code)
		}
	}
	for u, c := range old {
		code, node := post(t, c, b.url+"/cart", `{"item":"b"}`)
		if code != 200 || node != home[u] {
			t.Errorf("old user %d (on %s) while %s drains: %d from %s; want 200 from its node", u, home[u], home[u], code, node)
		}
	}
	for u := range users {
		c := newJarClient(t)
		if code, node := post(t, c, b.url+"/login", fmt.Sprintf(`{"user":"new%d"}`, u)); code != 200 || (node != "n3" && node != "n4") {
			t.Errorf("new user %d: %d on %s; want a Redis node", u, code, node)
		}
	}
}

// post sends a JSON body and returns the status and the X-Node.
func post(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Node")
}
