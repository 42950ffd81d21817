package token

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/go-jose/go-jose/v4"
)

// JWKS returns the JSON Web Key Set (RFC 7517) of the ring's public keys:
// the EdDSA and ES256 keys, current, retired and not signing yet (see
// Ring.RotateAt), with their "kid", "alg" and "use":"sig". Secret keys (XC20P, HS256) and private halves never
// appear in it.
func (r *Ring) JWKS() ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range r.keys {
		if !k.Public() {
			continue
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"})
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
