package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/token"
)

// TestKeysExport_nodeVerifies: another service written in JavaScript
// verifies serve's session JWTs with the jose library of npm and nothing
// but what `keys export` gives it (testdata/jwtverify, installed by
// scripts/test with npm ci): the public keys for EdDSA and ES256, the
// secret for HS256 when asked with --hs256-secret. Without the secret an
// HS256 token does not verify, and a changed token never does.
func TestKeysExport_nodeVerifies(t *testing.T) {
	node := testenv.Command(t, "node")
	dir, err := filepath.Abs("testdata/jwtverify")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose")); err != nil {
		testenv.Missing(t, "the jose npm package is not installed: run npm ci in "+dir+" (scripts/test does)")
	}
	verify := func(jwks, tok string) (string, bool) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(file, []byte(jwks), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(node, "verify.mjs", file, tok)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if _, exit := err.(*exec.ExitError); err != nil && !exit {
			t.Fatalf("node: %v", err)
		}
		return strings.TrimSpace(string(out)), err == nil
	}
	for _, alg := range []token.Alg{token.EdDSA, token.ES256, token.HS256} {
		t.Run(string(alg), func(t *testing.T) {
			path, _ := newRingFile(t, "sealed")
			if code, _, errs := run(t, nil, "keys", "rotate", "--alg", string(alg), "--activate-in", "0", path); code != 0 {
				t.Fatal(errs)
			}
			srv := startServe(t, nil, "serve", "--strategy", "token", "--token-format", "jwt", "--keys", path,
				"--addr", "127.0.0.1:0", "--insecure-cookie")
			c := &client{t: t}
			if code, body := c.do("POST", srv.url+"/login", `{"user":"alice"}`); code != 200 {
				t.Fatalf("login: %d %s", code, body)
			}
			srv.stop(t)

			code, public, errs := run(t, nil, "keys", "export", path)
			if code != 0 {
				t.Fatalf("keys export: %d %s", code, errs)
			}
			code, withSecret, errs2 := run(t, nil, "keys", "export", "--hs256-secret", path)
			if code != 0 {
				t.Fatalf("keys export --hs256-secret: %d %s", code, errs2)
			}
			tampered := c.cookie[:len(c.cookie)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(c.cookie, "AA")]

			if alg == token.HS256 {
				if strings.Contains(public, `"oct"`) || !strings.Contains(errs, "--hs256-secret") {
					t.Errorf("keys export without --hs256-secret: stdout %s, stderr %q; want no secret and a note", public, errs)
				}
				if !strings.Contains(errs2, "warning") || !strings.Contains(withSecret, `"kty":"oct"`) {
					t.Errorf("keys export --hs256-secret: stdout %s, stderr %q; want the secret and a warning", withSecret, errs2)
				}
				if out, ok := verify(public, c.cookie); ok {
					t.Errorf("an HS256 token verified without the secret: %s", out)
				}
			} else if public != withSecret || errs != "" {
				t.Errorf("keys export of a ring without HS256 keys: --hs256-secret changed the output, or a note %q", errs)
			}
			if out, ok := verify(withSecret, c.cookie); !ok || out != "ok "+string(alg)+" sub=alice" {
				t.Errorf("jose on Node.js: %q; want the %s token verified for alice", out, alg)
			}
			if out, ok := verify(withSecret, tampered); ok {
				t.Errorf("jose verified a changed token: %s", out)
			}
		})
	}
}
