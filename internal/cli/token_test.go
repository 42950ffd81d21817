package cli_test

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/token"
)

func TestKeys_newAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring.json")
	code, out, errs := run(t, nil, "keys", "new", path)
	if code != 0 {
		t.Fatalf("keys new: %d %s", code, errs)
	}
	oneLine(t, out, "sessionkit keys new: wrote "+path, "(XC20P)")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ring file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	first, err := token.ReadRingFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, nil, "keys", "new", path); code != 1 {
		t.Errorf("keys new over an existing file: %d; want 1", code)
	} else {
		oneLine(t, errs, "sessionkit keys new:", "already exists")
	}
	code, out, errs = run(t, env{"SESSIONKIT_ALG": "EdDSA"}, "keys", "rotate", path)
	if code != 0 {
		t.Fatalf("keys rotate: %d %s", code, errs)
	}
	oneLine(t, out, "sessionkit keys rotate: wrote", "(EdDSA)", "retired "+first.Current().ID)
	r, err := token.ReadRingFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Keys()) != 2 || r.Current().Alg != token.EdDSA {
		t.Errorf("after rotate: %d keys, current %s; want 2, EdDSA", len(r.Keys()), r.Current().Alg)
	}
	for _, bad := range [][]string{
		{"keys"}, {"keys", "nope"}, {"keys", "new"}, {"keys", "new", "a", "b"},
		{"keys", "new", "--alg", "none", path + "2"}, {"keys", "rotate", "--keep", "-1h", path},
	} {
		code, _, errs := run(t, nil, bad...)
		if code != 2 {
			t.Errorf("%v: exit %d; want 2", bad, code)
		}
		oneLine(t, errs, "sessionkit keys")
	}
	if code, _, errs := run(t, nil, "keys", "rotate", filepath.Join(t.TempDir(), "missing.json")); code != 1 {
		t.Errorf("rotate of a missing file: %d; want 1 (%s)", code, errs)
	}
}

func TestServe_tokenNeedsKeys(t *testing.T) {
	code, _, errs := run(t, nil, "serve", "--strategy", "token")
	if code != 2 {
		t.Fatalf("exit %d; want 2", code)
	}
	oneLine(t, errs, "sessionkit serve:", "--keys", "sessionkit keys new")
	path := filepath.Join(t.TempDir(), "ring.json")
	run(t, nil, "keys", "new", path)
	code, _, errs = run(t, nil, "serve", "--strategy", "token", "--keys", path, "--token-format", "jwt", "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errs, "XC20P") {
		t.Errorf("a sealed ring with --token-format jwt: exit %d, %q; want 1 and a message naming the key's algorithm", code, errs)
	}
}

// client is one browser: a cookie copied by hand, so that the test can
// replay an old one.
type client struct {
	t      *testing.T
	cookie string
}

func (c *client) do(method, url, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		req.Header.Set("Cookie", "session="+c.cookie)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == "session" {
			c.cookie = ck.Value
		}
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// Two serve nodes on one key ring and one Redis for revocations: a cart
// built across both, a logout on one honoured by the other within the
// documented delay (--revocation-refresh plus one store call), and the
// JWT format's JWKS.
func TestServe_tokenTwoNodes(t *testing.T) {
	addr := testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
	prefix := "sktest" + rand.Text()[:8] + ":"
	redisURL := "redis://" + addr + "/0?key_prefix=" + prefix
	t.Cleanup(func() { deleteRedisKeys(t, addr, prefix) })
	for _, format := range []string{"sealed", "jwt"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ring.json")
			alg := "XC20P"
			if format == "jwt" {
				alg = "EdDSA"
			}
			if code, _, errs := run(t, nil, "keys", "new", "--alg", alg, path); code != 0 {
				t.Fatal(errs)
			}
			const refresh = 200 * time.Millisecond
			e := env{"SESSIONKIT_KEYS": path, "SESSIONKIT_REDIS": redisURL, "SESSIONKIT_REVOCATIONS": "redis"}
			var nodes []*server
			for _, name := range []string{"n1", "n2"} {
				nodes = append(nodes, startServe(t, e, "serve", "--strategy", "token", "--token-format", format,
					"--node", name, "--addr", "127.0.0.1:0", "--insecure-cookie", "--revocation-refresh", refresh.String()))
			}
			n1, n2 := nodes[0].url, nodes[1].url
			user := "alice-" + rand.Text()[:8]
			c := &client{t: t}
			if code, body := c.do("POST", n1+"/login", `{"user":"`+user+`"}`); code != 200 {
				t.Fatalf("login: %d %s", code, body)
			}
			c.do("POST", n2+"/cart", `{"item":"a"}`)
			c.do("POST", n1+"/cart", `{"item":"b"}`)
			code, body := c.do("GET", n2+"/cart", "")
			if want := `{"user":"` + user + `","items":["a","b"],"node":"n2"}`; code != 200 || body != want {
				t.Fatalf("cart on n2: %d %s; want %s", code, body, want)
			}
			old := &client{t: t, cookie: c.cookie}
			if code, body := c.do("POST", n1+"/logout", ""); code != 200 {
				t.Fatalf("logout on n1: %d %s", code, body)
			}
			start := time.Now()
			if code, _ := old.do("GET", n1+"/cart", ""); code != 401 {
				t.Errorf("the logged-out token on n1: %d; want 401 at once", code)
			}
			// Poll n2 until it refuses the old token; the bound is the
			// refresh interval plus one store call (a generous second).
			bound := refresh + time.Second
			var delay time.Duration
			for {
				code, _ := old.do("GET", n2+"/cart", "")
				delay = time.Since(start)
				if code == 401 {
					break
				}
				if delay > 10*bound {
					t.Fatalf("n2 still accepts the logged-out token after %v", delay)
				}
				time.Sleep(refresh / 20)
			}
			t.Logf("logout on n1 honoured by n2 after %v (refresh interval %v)", delay, refresh)
			if delay > bound {
				t.Errorf("propagation took %v; want at most %v", delay, bound)
			}
			// Log out everywhere on n2: both of bob's sessions end, on n2
			// at once and on n1 after its refresh; a login afterwards works.
			bob := "bob-" + rand.Text()[:8]
			phone, laptop := &client{t: t}, &client{t: t}
			phone.do("POST", n1+"/login", `{"user":"`+bob+`"}`)
			laptop.do("POST", n2+"/login", `{"user":"`+bob+`"}`)
			oldPhone := &client{t: t, cookie: phone.cookie}
			time.Sleep(5 * time.Millisecond) // real clocks: the cutoff must fall after both logins (ms)
			if code, body := laptop.do("POST", n2+"/logout-all", ""); code != 200 || body != `{"revoked":"all"}` {
				t.Fatalf("logout-all: %d %s", code, body)
			}
			if code, _ := oldPhone.do("GET", n2+"/cart", ""); code != 401 {
				t.Errorf("bob's phone on n2 after logout-all there: %d; want 401", code)
			}
			deadline := time.Now().Add(bound)
			for {
				code, _ := oldPhone.do("GET", n1+"/cart", "")
				if code == 401 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("n1 still accepts bob's phone %v after logout-all on n2", bound)
				}
				time.Sleep(refresh / 20)
			}
			again := &client{t: t}
			again.do("POST", n1+"/login", `{"user":"`+bob+`"}`)
			if code, body := again.do("GET", n2+"/cart", ""); code != 200 {
				t.Errorf("bob logging in again after logout-all: %d %s; want 200", code, body)
			}
			if format == "jwt" {
				resp, err := http.Get(n2 + "/.well-known/jwks.json")
				if err != nil {
					t.Fatal(err)
				}
				var set struct {
					Keys []struct{ Kid, Alg, Kty string }
				}
				json.NewDecoder(resp.Body).Decode(&set)
				resp.Body.Close()
				if len(set.Keys) != 1 || set.Keys[0].Alg != "EdDSA" || set.Keys[0].Kty != "OKP" {
					t.Errorf("JWKS %+v; want the one EdDSA key", set)
				}
			}
			for _, n := range nodes {
				n.stop(t)
			}
		})
	}
}

// deleteRedisKeys deletes the keys the test's nodes left in the shared
// Redis (revocation records live as long as a session could).
func deleteRedisKeys(t *testing.T, addr, prefix string) {
	cli := testenv.Command(t, "redis-cli")
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command(cli, "-h", host, "-p", port, "--scan", "--pattern", prefix+"*").Output()
	if err != nil {
		t.Errorf("redis-cli --scan: %v", err)
		return
	}
	keys := strings.Fields(string(out))
	if len(keys) == 0 {
		return
	}
	args := append([]string{"-h", host, "-p", port, "del"}, keys...)
	if err := exec.Command(cli, args...).Run(); err != nil {
		t.Errorf("redis-cli del: %v", err)
	}
}
