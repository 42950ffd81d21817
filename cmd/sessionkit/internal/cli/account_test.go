package cli_test

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// TestServe_userLimit: two serve nodes on one Redis with
// --max-user-sessions 1: a login on one node ends the user's session made on
// the other; with the refuse policy, the second login is answered 409.
func TestServe_userLimit(t *testing.T) {
	addr := testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
	redis := "redis://" + addr + "/0?key_prefix=sktest" + rand.Text()[:8] + ":"
	for _, policy := range []string{"evict", "refuse"} {
		t.Run(policy, func(t *testing.T) {
			var nodes []*server
			for _, name := range []string{"t1", "t2"} {
				nodes = append(nodes, startServe(t, nil, "serve", "--strategy", "redis", "--redis", redis,
					"--addr", "127.0.0.1:0", "--insecure-cookie", "--node", name,
					"--max-user-sessions", "1", "--max-user-sessions-policy", policy))
			}
			user := `{"user":"lim-` + rand.Text()[:10] + `"}`
			laptop, phone := newJarClient(t), newJarClient(t)
			if code, body := call(t, laptop, "POST", nodes[0].url+"/login", user); code != 200 {
				t.Fatalf("first login: %d %s", code, body)
			}
			code, body := call(t, phone, "POST", nodes[1].url+"/login", user)
			switch policy {
			case "evict":
				if code != 200 {
					t.Fatalf("second login: %d %s", code, body)
				}
				if code, _ := call(t, laptop, "GET", nodes[1].url+"/cart", ""); code != 401 {
					t.Errorf("the first session after the second login: %d; want 401", code)
				}
				code, body = call(t, phone, "GET", nodes[0].url+"/sessions", "")
				if code != 200 || strings.Count(body, `"handle"`) != 1 || !strings.Contains(body, `"current":true`) {
					t.Errorf("GET /sessions: %d %s; want the one current session", code, body)
				}
			case "refuse":
				want := `{"error":"too many sessions for this user: log out on another device first"}`
				if code != 409 || body != want {
					t.Errorf("second login: %d %s; want 409 %s", code, body, want)
				}
				if code, _ := call(t, laptop, "GET", nodes[1].url+"/cart", ""); code != 200 {
					t.Errorf("the first session after the refused login: %d; want 200", code)
				}
			}
		})
	}
}

func newJarClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 5 * time.Second}
}

// call sends one request and returns the status and the body without its
// final newline.
func call(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSuffix(string(b), "\n")
}
