package cli_test

import (
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/sessionkit/sessionkit/token"
)

// Another service verifies sessionkit's JWTs as it would in production:
// it fetches the JWKS a `serve --strategy token --token-format jwt`
// publishes and checks a login's session token with go-jose alone. The
// set has the public halves of the EdDSA and ES256 keys, current or not,
// and nothing of the ring's secret keys (XC20P, HS256) or private halves.
func TestServe_jwksInterop(t *testing.T) {
	for _, alg := range []token.Alg{token.EdDSA, token.ES256} {
		t.Run(string(alg), func(t *testing.T) {
			// A ring of every algorithm, alg signing: XC20P, then HS256,
			// then the other public algorithm, then alg.
			path, _ := newRingFile(t, "sealed")
			other := map[token.Alg]token.Alg{token.EdDSA: token.ES256, token.ES256: token.EdDSA}[alg]
			for _, next := range []token.Alg{token.HS256, other, alg} {
				if code, _, errs := run(t, nil, "keys", "rotate", "--alg", string(next), "--activate-in", "0", path); code != 0 {
					t.Fatal(errs)
				}
			}
			ring, err := token.ReadRingFile(path)
			if err != nil {
				t.Fatal(err)
			}
			srv := startServe(t, nil, "serve", "--strategy", "token", "--token-format", "jwt", "--keys", path,
				"--addr", "127.0.0.1:0", "--insecure-cookie")

			resp, err := http.Get(srv.url + "/.well-known/jwks.json")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
				t.Fatalf("GET the JWKS: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatalf("go-jose does not read the JWKS: %v\n%s", err, body)
			}
			algs := map[string]bool{}
			for _, k := range set.Keys {
				if !k.IsPublic() || !k.Valid() {
					t.Errorf("key %s is not a valid public key", k.KeyID)
				}
				if rk, ok := ring.Lookup(k.KeyID); !ok || string(rk.Alg) != k.Algorithm || k.Use != "sig" {
					t.Errorf("key %s (%s, use %q) is not a public key of the ring", k.KeyID, k.Algorithm, k.Use)
				}
				algs[k.Algorithm] = true
			}
			if len(set.Keys) != 2 || !algs["EdDSA"] || !algs["ES256"] {
				t.Errorf("keys %v; want the EdDSA and the ES256 key", algs)
			}
			var raw struct {
				Keys []map[string]any `json:"keys"`
			}
			json.Unmarshal(body, &raw)
			for _, k := range raw.Keys {
				for _, private := range []string{"d", "k", "p", "q", "dp", "dq", "qi"} {
					if _, ok := k[private]; ok {
						t.Errorf("key %v has the private member %q", k["kid"], private)
					}
				}
			}

			// The session JWT of a login verifies with the JWKS and
			// go-jose alone, with the claims another service checks.
			user := "alice"
			c := &client{t: t}
			if code, body := c.do("POST", srv.url+"/login", `{"user":"`+user+`"}`); code != 200 {
				t.Fatalf("login: %d %s", code, body)
			}
			jws, err := jose.ParseSignedCompact(c.cookie, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			if kid := jws.Signatures[0].Header.KeyID; kid != ring.Current().ID {
				t.Errorf("the JWT's kid %q; want the signing key %s", kid, ring.Current().ID)
			}
			payload, err := jws.Verify(&set)
			if err != nil {
				t.Fatalf("verifying with the JWKS: %v", err)
			}
			var claims josejwt.Claims
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			if err := claims.Validate(josejwt.Expected{Issuer: "sessionkit", AnyAudience: josejwt.Audience{"sessionkit"},
				Subject: user, Time: time.Now()}); err != nil {
				t.Errorf("claims %+v: %v", claims, err)
			}
			// The control: a changed payload does not verify.
			parts := strings.Split(c.cookie, ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), user, "mallory", 1)))
			if forged, err := jose.ParseSignedCompact(strings.Join(parts, "."), []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}); err == nil {
				if _, err := forged.Verify(&set); err == nil {
					t.Error("a token with a changed payload verifies with the JWKS")
				}
			}

			if alg == token.ES256 {
				// The other spelling of the same ECDSA signature, (r, n-s):
				// go-jose takes it, sessionkit answers 401.
				highS := flipS(t, c.cookie)
				if forged, err := jose.ParseSignedCompact(highS, []jose.SignatureAlgorithm{jose.ES256}); err != nil {
					t.Fatal(err)
				} else if _, err := forged.Verify(&set); err != nil {
					t.Logf("go-jose refuses the high-s spelling too: %v", err)
				}
				if code, body := (&client{t: t, cookie: highS}).do("GET", srv.url+"/cart", ""); code != 401 {
					t.Errorf("GET /cart with the high-s spelling of the session's token: %d %s; want 401", code, body)
				}
				if code, body := (&client{t: t, cookie: c.cookie}).do("GET", srv.url+"/cart", ""); code != 200 {
					t.Errorf("GET /cart with the token as sealed: %d %s; want 200", code, body)
				}
			}

			if code, _ := c.do("POST", srv.url+"/.well-known/jwks.json", ""); code != 405 {
				t.Errorf("POST to the JWKS: %d; want 405", code)
			}
			srv.stop(t)
		})
	}
}

// flipS returns the ES256 JWT tok with its signature's s replaced by n-s:
// a second valid signature of the same header and payload.
func flipS(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("not an ES256 signature: %v", err)
	}
	n := elliptic.P256().Params().N
	new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:])).FillBytes(sig[32:])
	parts[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(parts, ".")
}
