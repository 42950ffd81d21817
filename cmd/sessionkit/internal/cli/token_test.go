package cli_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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
	// By default the new key is published now and signs 10s later.
	oneLine(t, out, "sessionkit keys rotate: wrote", "(EdDSA) published, signs from", "(in 10s)",
		"when "+first.Current().ID+" is retired")
	r, err := token.ReadRingFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Keys()) != 2 || r.Current().Alg != token.EdDSA {
		t.Errorf("after rotate: %d keys, current %s; want 2, EdDSA", len(r.Keys()), r.Current().Alg)
	}
	pendingKey := r.Current()
	if now := time.Now(); r.CurrentAt(now).ID != first.Current().ID ||
		pendingKey.Created.Before(now.Add(9*time.Second)) || pendingKey.Created.After(now.Add(11*time.Second)) {
		t.Errorf("after rotate: the key signing now is %s, the new one signs from %v; want %s, and about 10s from now",
			r.CurrentAt(now).ID, pendingKey.Created, first.Current().ID)
	}
	// Again before that activation, at once: the pending key never signs.
	code, out, errs = run(t, nil, "keys", "rotate", "--activate-in", "0", path)
	if code != 0 {
		t.Fatalf("keys rotate --activate-in 0: %d %s", code, errs)
	}
	oneLine(t, out, "sessionkit keys rotate: wrote", "(EdDSA) signs from now", "retired "+first.Current().ID)
	if r, err = token.ReadRingFile(path); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); len(r.Keys()) != 3 || r.CurrentAt(now).ID != r.Current().ID ||
		r.CurrentAt(now.Add(time.Minute)).ID != r.Current().ID {
		t.Errorf("after rotate --activate-in 0: %d keys, signing now %s; want 3, the newest key %s",
			len(r.Keys()), r.CurrentAt(now).ID, r.Current().ID)
	}
	for _, bad := range [][]string{
		{"keys"}, {"keys", "nope"}, {"keys", "new"}, {"keys", "new", "a", "b"},
		{"keys", "new", "--alg", "none", path + "2"}, {"keys", "rotate", "--keep", "-1h", path},
		{"keys", "rotate", "--activate-in", "-1s", path}, {"keys", "rotate", "--activate-in", "soon", path},
		{"keys", "new", "--activate-in", "1s", path + "2"},
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
			path, _ := newRingFile(t, format)
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

// waitLog waits until s's stderr holds more than n lines containing
// text, and returns how many it holds.
func waitLog(t *testing.T, s *server, text string, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := strings.Count(s.stderr.String(), text); got > n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not log %q; stderr:\n%s", s.node, text, s.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sealedWith reports whether tok opens with a ring of key alone.
func sealedWith(t *testing.T, key *token.Key, tok string) bool {
	t.Helper()
	r, err := token.NewRing(key)
	if err != nil {
		t.Fatal(err)
	}
	var f token.Format
	if key.Alg == token.XC20P {
		f, err = token.NewSealed(token.Config{Ring: r})
	} else {
		f, err = token.NewJWT(token.Config{Ring: r})
	}
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Open(tok)
	return err == nil
}

// A serve node takes up a key ring rotated by 'sessionkit keys rotate'
// without a restart: on SIGHUP, and by re-reading the file every
// --keys-reload. It then accepts the new key's tokens, issues its own with
// the new key, and still accepts the tokens of the old one; a file that
// cannot be used is logged and the ring in use kept.
func TestServe_tokenKeysReload(t *testing.T) {
	// hup sends SIGHUP to the process (every token node in it re-reads its
	// file) and waits until s has re-read it.
	hup := func(t *testing.T, s *server) {
		t.Helper()
		const done = "SIGHUP: key ring re-read"
		n := strings.Count(s.stderr.String(), done)
		p, err := os.FindProcess(os.Getpid())
		if err == nil {
			err = p.Signal(syscall.SIGHUP)
		}
		if err != nil {
			t.Skipf("cannot send SIGHUP on %s: %v", runtime.GOOS, err)
		}
		waitLog(t, s, done, n)
	}
	for _, format := range []string{"sealed", "jwt"} {
		t.Run(format, func(t *testing.T) {
			path, first := newRingFile(t, format)
			args := []string{"serve", "--strategy", "token", "--token-format", format, "--keys", path,
				"--addr", "127.0.0.1:0", "--insecure-cookie"}
			// n1 re-reads the file only on SIGHUP.
			n1 := startServe(t, nil, append(args, "--node", "n1", "--keys-reload", "0")...)
			alice := &client{t: t}
			if code, body := alice.do("POST", n1.url+"/login", `{"user":"alice"}`); code != 200 {
				t.Fatalf("login: %d %s", code, body)
			}
			oldKeyCookie := alice.cookie

			// Rotations at once: this test is about taking up a new file.
			if code, _, errs := run(t, nil, "keys", "rotate", "--activate-in", "0", path); code != 0 {
				t.Fatal(errs)
			}
			rotated, err := token.ReadRingFile(path)
			if err != nil {
				t.Fatal(err)
			}
			newKey := rotated.Current()
			// n2 starts on the rotated ring and re-reads it every 50ms.
			n2 := startServe(t, nil, append(args, "--node", "n2", "--keys-reload", "50ms")...)
			bob := &client{t: t}
			if code, body := bob.do("POST", n2.url+"/login", `{"user":"bob"}`); code != 200 {
				t.Fatalf("login on n2: %d %s", code, body)
			}
			if !sealedWith(t, newKey, bob.cookie) {
				t.Fatal("n2, started on the rotated ring, does not use its new key")
			}
			// The control: n1 has not re-read the file yet.
			if code, _ := (&client{t: t, cookie: bob.cookie}).do("GET", n1.url+"/cart", ""); code != 401 {
				t.Fatalf("n1 before SIGHUP, a token of the new key: %d; want 401", code)
			}

			hup(t, n1)
			reloads := strings.Count(n1.stderr.String(), "key ring reloaded")
			if reloads != 1 {
				t.Fatalf("n1 reloaded %d times after SIGHUP; want once; stderr:\n%s", reloads, n1.stderr)
			}
			if code, body := (&client{t: t, cookie: bob.cookie}).do("GET", n1.url+"/cart", ""); code != 200 ||
				!strings.Contains(body, `"user":"bob"`) {
				t.Errorf("n1 after SIGHUP, a token of the new key: %d %s; want bob's cart", code, body)
			}
			if code, body := (&client{t: t, cookie: oldKeyCookie}).do("GET", n1.url+"/cart", ""); code != 200 {
				t.Errorf("n1 after SIGHUP, a token of the retired key: %d %s; want 200", code, body)
			}
			if code, body := alice.do("POST", n1.url+"/cart", `{"item":"a"}`); code != 200 {
				t.Fatalf("add to cart on n1: %d %s", code, body)
			}
			if !sealedWith(t, newKey, alice.cookie) || sealedWith(t, first.Current(), alice.cookie) {
				t.Error("n1 after SIGHUP does not seal new tokens with the new key")
			}
			if format == "jwt" {
				resp, err := http.Get(n1.url + "/.well-known/jwks.json")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(body), newKey.ID) || !strings.Contains(string(body), first.Current().ID) {
					t.Errorf("n1's JWKS after SIGHUP: %s; want both keys", body)
				}
			}
			// A second SIGHUP with the file unchanged switches nothing.
			hup(t, n1)
			if got := strings.Count(n1.stderr.String(), "key ring reloaded"); got != reloads {
				t.Errorf("an unchanged file was reloaded (%d reloads; want %d)", got, reloads)
			}

			// n2 takes up the next rotation by itself.
			n2reloads := strings.Count(n2.stderr.String(), "key ring reloaded")
			if code, _, errs := run(t, nil, "keys", "rotate", "--activate-in", "0", path); code != 0 {
				t.Fatal(errs)
			}
			third, err := token.ReadRingFile(path)
			if err != nil {
				t.Fatal(err)
			}
			waitLog(t, n2, "key ring reloaded", n2reloads)
			if code, body := bob.do("POST", n2.url+"/cart", `{"item":"b"}`); code != 200 {
				t.Fatalf("add to cart on n2: %d %s", code, body)
			}
			if !sealedWith(t, third.Current(), bob.cookie) {
				t.Error("n2 does not seal with the key of the second rotation")
			}

			// A file that cannot be used is logged once and ignored.
			if err := os.WriteFile(path, []byte(`{"sessionkit_key_ring": 1, "keys": [`), 0o600); err != nil {
				t.Fatal(err)
			}
			waitLog(t, n2, "cannot be used; keeping the one in use", 0)
			if code, body := bob.do("GET", n2.url+"/cart", ""); code != 200 || !strings.Contains(body, `["b"]`) {
				t.Errorf("n2 with a broken ring file: %d %s; want bob's cart", code, body)
			}
			hup(t, n2) // one more read of the broken file, at least
			if got := strings.Count(n2.stderr.String(), "cannot be used"); got != 1 {
				t.Errorf("the broken file was logged %d times; want once", got)
			}
			n1.stop(t)
			n2.stop(t)
		})
	}
}

// A rotation on a running pair of nodes with 'keys rotate --activate-in':
// the nodes take up the file and publish the new key while both still
// sign with the old one, then switch to the new key at its activation, by
// themselves; meanwhile no request of a user going back and forth between
// the nodes fails. The activation is a real 2 s away: the nodes run on
// the real clock.
func TestServe_tokenTwoPhaseRotation(t *testing.T) {
	for _, format := range []string{"sealed", "jwt"} {
		t.Run(format, func(t *testing.T) {
			path, first := newRingFile(t, format)
			oldKey := first.Current()
			args := []string{"serve", "--strategy", "token", "--token-format", format, "--keys", path,
				"--addr", "127.0.0.1:0", "--insecure-cookie", "--keys-reload", "100ms"}
			n1 := startServe(t, nil, append(args, "--node", "n1")...)
			n2 := startServe(t, nil, append(args, "--node", "n2")...)
			nodes := []*server{n1, n2}
			alice := &client{t: t}
			if code, body := alice.do("POST", n1.url+"/login", `{"user":"alice"}`); code != 200 {
				t.Fatalf("login: %d %s", code, body)
			}
			before := alice.cookie
			reloads := []int{strings.Count(n1.stderr.String(), "key ring reloaded"), strings.Count(n2.stderr.String(), "key ring reloaded")}

			code, out, errs := run(t, nil, "keys", "rotate", "--activate-in", "2s", path)
			if code != 0 {
				t.Fatal(errs)
			}
			oneLine(t, out, "sessionkit keys rotate:", "signs from", "(in 2s)")
			rotated, err := token.ReadRingFile(path)
			if err != nil {
				t.Fatal(err)
			}
			newKey := rotated.Current()
			activation := newKey.Created
			if d := time.Until(activation); d < time.Second || d > 3*time.Second {
				t.Fatalf("the new key signs from %v, %v from now; want about 2s", activation, d)
			}

			// Back and forth until a second after the activation: every
			// request works, and each new token is the old key's if it
			// was made before the activation, the new key's if after.
			bob := &client{t: t}
			var items, sawOld, sawNew int
			for i := 0; time.Now().Before(activation.Add(time.Second)); i++ {
				n := nodes[i%2]
				start := time.Now()
				if i == 0 {
					if code, body := bob.do("POST", n.url+"/login", `{"user":"bob"}`); code != 200 {
						t.Fatalf("bob's login on %s during the rotation: %d %s", n.node, code, body)
					}
				}
				for _, c := range []*client{alice, bob} {
					if code, body := c.do("POST", n.url+"/cart", `{"item":"x"}`); code != 200 {
						t.Fatalf("%v after the rotation, on %s: %d %s", time.Since(start), n.node, code, body)
					}
				}
				items++
				end := time.Now()
				switch {
				case end.Before(activation):
					if !sealedWith(t, oldKey, bob.cookie) {
						t.Fatalf("on %s %v before the activation, a token not made with the old key", n.node, activation.Sub(end))
					}
					sawOld++
				case !start.Before(activation):
					if !sealedWith(t, newKey, bob.cookie) {
						t.Fatalf("on %s %v after the activation, a token not made with the new key", n.node, start.Sub(activation))
					}
					sawNew++
				}
				time.Sleep(20 * time.Millisecond)
			}
			if sawOld == 0 || sawNew == 0 {
				t.Fatalf("%d tokens checked before the activation and %d after; want some of each", sawOld, sawNew)
			}
			if code, body := bob.do("GET", n1.url+"/cart", ""); code != 200 || strings.Count(body, `"x"`) != items {
				t.Errorf("bob's cart: %d %s; want %d items", code, body, items)
			}
			for i, n := range nodes {
				// Each node re-read the file once and logged the switch.
				if got := strings.Count(n.stderr.String(), "key ring reloaded"); got != reloads[i]+1 {
					t.Errorf("%s reloaded the ring %d times; want once", n.node, got-reloads[i])
				}
				waitLog(t, n, "signing key switched", 0)
				if !strings.Contains(n.stderr.String(), newKey.ID) {
					t.Errorf("%s's log does not name the new key", n.node)
				}
				// The old key's token from before the rotation still works.
				if code, body := (&client{t: t, cookie: before}).do("GET", n.url+"/cart", ""); code != 200 {
					t.Errorf("on %s after the activation, the old key's token: %d %s", n.node, code, body)
				}
				if format == "jwt" {
					if kid := jwtKid(t, bob.cookie); kid != newKey.ID {
						t.Errorf("after the activation, a JWT with kid %q; want %s", kid, newKey.ID)
					}
				}
			}
			n1.stop(t)
			n2.stop(t)
		})
	}
}

// jwtKid returns the "kid" of a JWT's header.
func jwtKid(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// newRingFile writes a new key ring for format (sealed or jwt) with
// 'keys new' and returns its path and the ring.
func newRingFile(t *testing.T, format string) (string, *token.Ring) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ring.json")
	alg := "XC20P"
	if format == "jwt" {
		alg = "EdDSA"
	}
	if code, _, errs := run(t, nil, "keys", "new", "--alg", alg, path); code != 0 {
		t.Fatal(errs)
	}
	r, err := token.ReadRingFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, r
}
