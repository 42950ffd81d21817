package token_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

// The JWKS has the public keys of EdDSA and ES256 keys, current and
// retired, and nothing of secret keys or private halves; a JWT verifies
// with it by the RFCs and the standard library alone (verifyWithJWKS), as
// another service would. (cmd/sessionkit's TestServe_jwksInterop verifies
// serve's JWTs with go-jose.)
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
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	algs := map[any]bool{}
	for _, k := range raw.Keys {
		if kty := k["kty"]; kty != "OKP" && kty != "EC" {
			t.Errorf("key %v has kty %v; want a public key, OKP or EC", k["kid"], kty)
		}
		for _, private := range []string{"d", "k", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v has the private member %q", k["kid"], private)
			}
		}
		algs[k["alg"]] = true
	}
	if len(raw.Keys) != 2 || !algs["EdDSA"] || !algs["ES256"] {
		t.Errorf("keys %v; want the EdDSA and the ES256 key", algs)
	}
	// Another service verifies our JWT with the JWKS alone.
	f := mustFormat(t, token.Config{Ring: r, Now: c.Now})
	if err := verifyWithJWKS(body, mustSeal(t, f, claims(t, c.Now()))); err != nil {
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
	r, want := pinnedJWKS(t)
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

// TestJWKS_verifies: a JWT of each public key of the fixed ring of
// TestJWKS_sameAsGoJose (P-256 keys whose x or y starts with a zero byte
// among them) verifies with the pinned JWKS by verifyWithJWKS; with
// another payload it does not.
func TestJWKS_verifies(t *testing.T) {
	r, set := pinnedJWKS(t)
	n := 0
	for _, k := range r.Keys() {
		if !k.Public() {
			continue
		}
		n++
		signer := *k // the key signing for ever from its Created on
		signer.Retired = time.Time{}
		now := func() time.Time { return signer.Created }
		tok := mustSeal(t, mustFormat(t, token.Config{Ring: mustRing(t, &signer), Now: now}), claims(t, now()))
		if err := verifyWithJWKS(set, tok); err != nil {
			t.Errorf("key %s (%s): %v", k.ID, k.Alg, err)
		}
		parts := strings.Split(tok, ".")
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`))
		if err := verifyWithJWKS(set, strings.Join(parts, ".")); err == nil {
			t.Errorf("key %s (%s): a changed payload verifies", k.ID, k.Alg)
		}
	}
	if n != 5 {
		t.Errorf("%d public keys in the ring; want 5", n)
	}
}

// verifyWithJWKS checks the signature of the compact JWS tok with the key
// of the JWKS set that its header's "kid" names, as RFC 7515, 7517, 7518
// and 8037 say, with the standard library alone.
func verifyWithJWKS(set []byte, tok string) error {
	var s struct {
		Keys []struct{ Kty, Crv, Kid, Alg, Use, X, Y string }
	}
	if err := json.Unmarshal(set, &s); err != nil {
		return err
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	b64 := base64.RawURLEncoding.DecodeString
	h, err := b64(parts[0])
	if err != nil {
		return err
	}
	var hdr struct{ Alg, Kid string }
	if err := json.Unmarshal(h, &hdr); err != nil {
		return err
	}
	sig, err := b64(parts[2])
	if err != nil {
		return err
	}
	input := []byte(parts[0] + "." + parts[1])
	for _, k := range s.Keys {
		if k.Kid != hdr.Kid {
			continue
		}
		if k.Alg != hdr.Alg || k.Use != "sig" {
			return fmt.Errorf("the JWT's alg %q; the key's %q, use %q", hdr.Alg, k.Alg, k.Use)
		}
		x, errX := b64(k.X)
		y, errY := b64(k.Y)
		if err := errors.Join(errX, errY); err != nil {
			return err
		}
		switch {
		case k.Kty == "OKP" && k.Crv == "Ed25519" && k.Alg == "EdDSA" && len(x) == ed25519.PublicKeySize:
			if !ed25519.Verify(ed25519.PublicKey(x), input, sig) {
				return errors.New("bad Ed25519 signature")
			}
		case k.Kty == "EC" && k.Crv == "P-256" && k.Alg == "ES256" && len(x) == 32 && len(y) == 32 && len(sig) == 64:
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				return err
			}
			sum := sha256.Sum256(input)
			if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				return errors.New("bad ES256 signature")
			}
		default:
			return fmt.Errorf("key %s: kty %q, crv %q, alg %q, x of %d bytes, y of %d, signature of %d",
				k.Kid, k.Kty, k.Crv, k.Alg, len(x), len(y), len(sig))
		}
		return nil
	}
	return fmt.Errorf("no key %q in the JWKS", hdr.Kid)
}

// pinnedJWKS returns the ring of testdata/jwks-ring.json and its JWKS as
// sessionkit wrote it with go-jose v4 (testdata/jwks-gojose-v4.json).
func pinnedJWKS(t *testing.T) (*token.Ring, []byte) {
	t.Helper()
	data, err := os.ReadFile("testdata/jwks-ring.json")
	if err != nil {
		t.Fatal(err)
	}
	set, err := os.ReadFile("testdata/jwks-gojose-v4.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := token.ParseRing(data)
	if err != nil {
		t.Fatal(err)
	}
	return r, set
}
