package token_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessionkit/sessionkit/token"
)

// The JWKS has the public keys of EdDSA and ES256 keys, current and
// retired, and nothing of secret keys or private halves; a JWT verifies
// with it through go-jose alone, as another service would.
func TestJWKSHandler(t *testing.T) {
	c := newClock()
	r := mustRing(t, mustKey(t, token.XC20P, c.Now()))
	var err error
	for _, alg := range []token.Alg{token.HS256, token.ES256, token.EdDSA} {
		if r, err = r.Rotate(alg, c.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	h, err := token.JWKSHandler(r)
	if err != nil {
		t.Fatal(err)
	}
	res := httptest.NewRecorder()
	h.ServeHTTP(res, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	body, _ := io.ReadAll(res.Result().Body)
	if res.Code != 200 || res.Header().Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("got %d %q", res.Code, res.Header().Get("Content-Type"))
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	algs := map[string]bool{}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("key %s is not public", k.KeyID)
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
	// Another service verifies our JWT with the JWKS and go-jose alone.
	f := mustFormat(t, token.Config{Ring: r, Now: c.Now})
	tok := mustSeal(t, f, claims(t, c.Now()))
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(&set); err != nil {
		t.Errorf("verifying with the JWKS: %v", err)
	}
	res = httptest.NewRecorder()
	h.ServeHTTP(res, httptest.NewRequest("POST", "/", strings.NewReader("")))
	if res.Code != 405 {
		t.Errorf("POST: %d; want 405", res.Code)
	}
}

// TestJWKS_sameAsGoJose: the JWKS of a fixed ring is, byte for byte, what
// sessionkit wrote with go-jose v4 (testdata/jwks-gojose-v4.json, of the
// ring in testdata/jwks-ring.json: every algorithm, retired keys, a key
// published ahead and one superseded before it signed, and P-256 keys
// whose x and y have a leading zero byte), so that a JWKS consumer sees
// no change; a ring without public keys has an empty set.
func TestJWKS_sameAsGoJose(t *testing.T) {
	data, err := os.ReadFile("testdata/jwks-ring.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/jwks-gojose-v4.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := token.ParseRing(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("JWKS:\n%s\nwant:\n%s", got, want)
	}
	c := newClock()
	secret, err := mustRing(t, mustKey(t, token.XC20P, c.Now())).Rotate(token.HS256, c.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := secret.JWKS(); err != nil || string(got) != `{"keys":[]}` {
		t.Errorf("JWKS of secret keys only: %s, %v; want {\"keys\":[]}", got, err)
	}
}
