package balancer

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/sessionkit/sessionkit/session/sid"
)

// cookieValue returns the value of the first cookie called name in the
// request's Cookie headers, without parsing the others (http.Request.Cookie
// allocates for all of them). Surrounding double quotes are removed. It
// never panics, whatever the headers hold.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			return unquote(v), true
		}
	}
	return "", false
}

// unquote removes the double quotes around a cookie value, if any.
func unquote(v string) string {
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// parseRouted splits a session ID's text form "<random>.<route>" into its
// random part and route tag. It is strict: the random part must be exactly
// sid.RandomLen base64url characters and the route a valid, non-empty route
// tag (sid.CheckRoute), or ok is false. It does not decode the random part:
// the balancer needs only a stable key, and the app validates the ID.
func parseRouted(v string) (random, route string, ok bool) {
	if len(v) < sid.RandomLen+2 || len(v) > sid.MaxLen || v[sid.RandomLen] != '.' {
		return "", "", false
	}
	random, route = v[:sid.RandomLen], v[sid.RandomLen+1:]
	if !isBase64URL(random) || sid.CheckRoute(route) != nil {
		return "", "", false
	}
	return random, route, true
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

var b64 = base64.RawURLEncoding

// Sizes of the affinity cookie's parts, in base64url characters.
const (
	affKeyBytes = 16
	affKeyLen   = 22 // affKeyBytes in base64url
	nodeIDBytes = 9
	nodeIDLen   = 12 // nodeIDBytes in base64url
	affMACBytes = 16
	affMACLen   = 22
	affLen      = affKeyLen + 1 + nodeIDLen + 1 + affMACLen
)

// signer makes and checks affinity cookies and opaque node ids.
type signer struct{ key []byte }

// nodeID returns the opaque id of a node name: a truncated HMAC, so the
// cookie names no node and guessing one needs the key.
func (s signer) nodeID(name string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("sessionkit balancer node\x00"))
	m.Write([]byte(name))
	return b64.EncodeToString(m.Sum(nil)[:nodeIDBytes])
}

func (s signer) mac(keyAndID string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("sessionkit balancer affinity\x00"))
	m.Write([]byte(keyAndID))
	return m.Sum(nil)[:affMACBytes]
}

// newKey returns a fresh random affinity key in base64url.
func newKey() string {
	var b [affKeyBytes]byte
	rand.Read(b[:]) // never fails
	return b64.EncodeToString(b[:])
}

// sign returns the cookie value for key (base64url) and a node id.
func (s signer) sign(key, nodeID string) string {
	kid := key + "." + nodeID
	return kid + "." + b64.EncodeToString(s.mac(kid))
}

// verify checks a cookie value and returns its key and node id. The MAC is
// compared in constant time. It never panics.
func (s signer) verify(v string) (key, nodeID string, ok bool) {
	if len(v) != affLen || v[affKeyLen] != '.' || v[affKeyLen+1+nodeIDLen] != '.' {
		return "", "", false
	}
	kid := v[:affKeyLen+1+nodeIDLen]
	var got [affMACBytes + 2]byte
	// Strict: a MAC whose last character has stray low bits would decode
	// to the same bytes, so one cookie would have several valid spellings.
	n, err := b64.Strict().Decode(got[:], []byte(v[len(kid)+1:]))
	if err != nil || n != affMACBytes {
		return "", "", false
	}
	if !hmac.Equal(got[:n], s.mac(kid)) {
		return "", "", false
	}
	return kid[:affKeyLen], kid[affKeyLen+1:], true
}

// hashKey is the 64-bit FNV-1a hash of an affinity key. It must be the
// same in every balancer instance and release: rendezvous hashing depends
// on it.
func hashKey(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// score is the rendezvous weight of a node (by its name's hash) for a key.
// splitmix64's finalizer mixes the pair so that every bit of both counts.
func score(key, node uint64) uint64 {
	z := key ^ (node * 0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
