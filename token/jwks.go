package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// jwk is a public key of the JWKS: an Ed25519 key (RFC 8037 section 2:
// "kty" "OKP", "crv" "Ed25519", "x" the public key) or a P-256 key (RFC
// 7518 section 6.2.1: "kty" "EC", "crv" "P-256", "x" and "y" the
// coordinates, each the curve's full 32 bytes), in base64url without
// padding, with the members in the order go-jose v4 wrote them, which
// sessionkit used before (testdata/jwks-gojose-v4.json).
type jwk struct {
	Use string `json:"use"`
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Crv string `json:"crv,omitempty"`
	Alg string `json:"alg"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	K   string `json:"k,omitempty"`
}

// JWKS returns the JSON Web Key Set (RFC 7517) of the ring's public keys:
// the EdDSA and ES256 keys, current, retired and not signing yet (see
// Ring.RotateAt), with their "kid", "alg" and "use":"sig", oldest first.
// Secret keys (XC20P, HS256) and private halves never appear in it.
func (r *Ring) JWKS() ([]byte, error) { return r.jwks(false) }

// JWKSWithSecrets returns the JWKS of Ring.JWKS plus the ring's HS256
// secrets, as symmetric JWKs (RFC 7518 section 6.4: "kty" "oct", "k" the
// secret in base64url), for another service that must verify HS256 JWTs.
// Whoever holds the output can mint sessions of every user: give it only
// to a service trusted as much as the nodes, over a private channel, and
// never publish it. XC20P keys (the sealed format is sessionkit's own) and
// private halves never appear.
func (r *Ring) JWKSWithSecrets() ([]byte, error) { return r.jwks(true) }

func (r *Ring) jwks(secrets bool) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	b64 := base64.RawURLEncoding.EncodeToString
	for _, k := range r.keys {
		j := jwk{Use: "sig", Kid: k.ID, Alg: string(k.Alg)}
		switch pub := k.pub.(type) {
		case ed25519.PublicKey:
			j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(pub)
		case *ecdsa.PublicKey:
			// The uncompressed point: 0x04, then x and y, each
			// zero-padded to the curve's size.
			p, err := pub.Bytes()
			if err != nil {
				return nil, fmt.Errorf("token: key %s: %w", k.ID, err)
			}
			n := (len(p) - 1) / 2
			j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(p[1:1+n]), b64(p[1+n:])
		default:
			if !secrets || k.Alg != HS256 {
				continue // a secret key
			}
			j.Kty, j.K = "oct", b64(k.secret)
		}
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}

// JWKSHandler returns an http.Handler that answers GET and HEAD with the
// ring's JWKS (see Ring.JWKS), cacheable for five minutes, and other
// methods with 405. It serves r's keys: after a rotation, serve a handler
// of the new ring (sessionkit serve swaps it when it takes up a new ring
// file); other services may keep the old set for the five minutes it is
// cacheable, and would refuse the new key's tokens meanwhile: publish the
// new key at least that long before it signs (Ring.RotateAt). Safe for
// concurrent use.
func JWKSHandler(r *Ring) (http.Handler, error) {
	body, err := r.JWKS()
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", "application/jwk-set+json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("X-Content-Type-Options", "nosniff")
		if req.Method == http.MethodHead {
			return
		}
		w.Write(body) //nolint:errcheck // the client is gone
	}), nil
}
