package token

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionkit/sessionkit/session"
)

// JWT is the signed token format: compact JWS (RFC 7515) JWTs (RFC 7519)
// signed with the ring's current EdDSA, ES256 or HS256 key, for services
// that verify sessionkit's tokens themselves (with the public keys of
// JWKSHandler). github.com/golang-jwt/jwt/v5 makes and checks the
// signatures and parses the JWS: this package parses no JWS itself. It
// writes the payload and joins the token's segments around golang-jwt's
// signature (the bytes golang-jwt's Token.SignedString would write), and
// reads the payload strictly with its own decoder. The claims are
// readable by anyone holding the token: use Sealed for browsers' cookies.
//
// A token is accepted only if all of these hold: it is at most
// Config.MaxLen bytes with exactly two dots, no line breaks and canonical
// base64url segments; its header is exactly the one this format writes
// for its key, {"alg":"<alg>","kid":"<kid>","typ":"<purpose>+jwt"} in
// that order and spelling (so any other header, such as an embedded
// "jwk", "x5c", "jku", "x5u", "crit", "b64" or "nonce", and any duplicate,
// rejects it rather than being trusted or ignored); its "kid" names a key
// of the ring and its "alg" is that key's algorithm (so "none" in any
// spelling, and an EdDSA or ES256 public key used as an HS256 secret, are
// rejected); the signature verifies; the payload is a JSON object with no
// duplicate, unknown or mistyped claims (names in their exact case);
// "iss" and "aud" equal Config.Issuer and Config.Audience; "jti",
// "auth_time" and integer "iat" and "exp" are present; and the times pass
// the checks of Config (leeway, "nbf", lifetime, retired keys). Safe for
// concurrent use; immutable.
type JWT struct {
	cfg    Config
	keys   map[string]*jwtKey // by kid
	parser *jwt.Parser
}

// jwtKey is a key of the ring with what golang-jwt needs to use it.
type jwtKey struct {
	k      *Key
	method jwt.SigningMethod
	sign   any    // the private key or secret
	verify any    // the public key or secret
	sigLen int    // the length of its signatures
	hdr    string // the header of its tokens, as their first segment
}

var _ Format = (*JWT)(nil)

// NewJWT returns the JWT format over cfg.Ring's EdDSA, ES256 and HS256
// keys.
func NewJWT(cfg Config) (*JWT, error) {
	c, err := cfg.withDefaults(false)
	if err != nil {
		return nil, err
	}
	j := &JWT{cfg: c, keys: map[string]*jwtKey{}}
	var algs []string
	for _, k := range ringKeys(c.Ring, false) {
		jk := &jwtKey{k: k, sign: k.priv, verify: k.pub, sigLen: 64}
		switch k.Alg {
		case EdDSA:
			jk.method = jwt.SigningMethodEdDSA
		case ES256:
			jk.method = jwt.SigningMethodES256
		case HS256:
			jk.method = jwt.SigningMethodHS256
			jk.sign, jk.verify, jk.sigLen = k.secret, k.secret, 32
		default:
			return nil, fmt.Errorf("token: key %s: %s is not a JWT algorithm", k.ID, k.Alg)
		}
		// The header as golang-jwt writes it, with encoding/json.
		hdr, err := json.Marshal(map[string]any{"alg": string(k.Alg), "kid": k.ID, "typ": c.Purpose + "+jwt"})
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		jk.hdr = base64.RawURLEncoding.EncodeToString(hdr)
		j.keys[k.ID] = jk
		if !slices.Contains(algs, string(k.Alg)) {
			algs = append(algs, string(k.Alg))
		}
	}
	j.parser = jwt.NewParser(jwt.WithValidMethods(algs), jwt.WithStrictDecoding(),
		// Open checks the claims itself, with Config's clock and rules.
		jwt.WithoutClaimsValidation())
	return j, nil
}

// Seal returns the signed JWT of c. "iat" and "exp" are whole seconds
// (exp rounded down, so it ends up to a second early); "auth_time" keeps
// milliseconds. golang-jwt signs; the token is the key's header, the
// payload and the signature, each in base64url, joined by dots: the
// bytes golang-jwt's Token.SignedString writes (TestJWT_sameAsGolangJWT),
// without its encoding of a header map per token.
func (j *JWT) Seal(c Claims) (string, error) {
	if len(c.ID) > maxClaimString || len(c.UserID) > maxClaimString || len(c.Family) > maxClaimString {
		return "", fmt.Errorf("token: ID, family or user longer than %d bytes", maxClaimString)
	}
	// JSON replaces invalid UTF-8, so the token would name another user
	// or session than c (and RevokeUser of c.UserID would miss it).
	if !utf8.ValidString(c.ID) || !utf8.ValidString(c.UserID) || !utf8.ValidString(c.Family) {
		return "", errors.New("token: ID, family or user is not valid UTF-8, which a JWT cannot carry")
	}
	var k *jwtKey
	if key := signingKey(&j.cfg, &c); key != nil {
		k = j.keys[key.ID]
	}
	if k == nil {
		return "", fmt.Errorf("token: the key ring has no JWT key current at %v", c.Issued)
	}
	payload := appendPayload(make([]byte, 0, payloadLen(j.cfg.Issuer, j.cfg.Audience, &c)), j.cfg.Issuer, j.cfg.Audience, &c)
	n := len(k.hdr) + 1 + b64.EncodedLen(len(payload)) + 1 + b64.EncodedLen(k.sigLen)
	if n > j.cfg.MaxLen {
		return "", &session.TokenSizeError{Size: n, Limit: j.cfg.MaxLen}
	}
	buf := make([]byte, 0, n)
	buf = append(append(buf, k.hdr...), '.')
	buf = b64.AppendEncode(buf, payload)
	sig, err := k.method.Sign(string(buf), k.sign)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	if len(sig) != k.sigLen {
		return "", fmt.Errorf("token: signing: a signature of %d bytes, not %d", len(sig), k.sigLen)
	}
	if k.k.Alg == ES256 {
		lowS(sig)
	}
	buf = b64.AppendEncode(append(buf, '.'), sig)
	return string(buf), nil
}

// Open verifies a JWT and returns its claims.
func (j *JWT) Open(tok string) (Claims, error) {
	if len(tok) > j.cfg.MaxLen {
		return Claims{}, invalid("longer than the limit")
	}
	dots := 0
	for i := 0; i < len(tok); i++ {
		switch tok[i] {
		case '.':
			dots++
		case '\r', '\n':
			// Base64 decoders skip CR and LF, even strict ones, which
			// would let one token be spelled many ways.
			return Claims{}, invalid("line breaks")
		}
	}
	if dots != 2 {
		return Claims{}, invalid("not a compact JWS")
	}
	var in jwtIn
	var k *Key
	_, err := j.parser.ParseWithClaims(tok, &in, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		jk, ok := j.keys[kid]
		switch {
		case !ok:
			return nil, invalid("unknown key")
		case t.Method != jk.method:
			return nil, invalid("algorithm is not the key's")
		case tok[:strings.IndexByte(tok, '.')] != jk.hdr:
			return nil, invalid("header is not the key's")
		case jk.k.Alg == ES256 && !canonicalES256(t.Signature):
			return nil, invalid("ECDSA signature not in its one canonical form (r and s in range, s in the lower half)")
		}
		k = jk.k
		return jk.verify, nil
	})
	if err != nil {
		return Claims{}, &InvalidError{Reason: "not a valid JWS of this ring", Err: err}
	}
	switch {
	case in.seen&hasIss == 0 || string(in.iss) != j.cfg.Issuer:
		return Claims{}, invalid("wrong issuer")
	case in.seen&hasAud == 0 || string(in.aud) != j.cfg.Audience:
		return Claims{}, invalid("wrong audience")
	case len(in.jti) == 0 || len(in.jti) > maxClaimString || len(in.sub) > maxClaimString || len(in.sid) > maxClaimString:
		return Claims{}, invalid("no jti, or a claim over the length limit")
	case in.seen&hasExp == 0:
		return Claims{}, invalid("no exp")
	case in.seen&hasIat == 0:
		return Claims{}, invalid("no iat")
	case in.seen&hasAuthTime == 0:
		return Claims{}, invalid("no auth_time")
	}
	// One string allocation holds the ID, user and family.
	var sb strings.Builder
	sb.Grow(len(in.jti) + len(in.sub) + len(in.sid))
	sb.Write(in.jti)
	sb.Write(in.sub)
	sb.Write(in.sid)
	all := sb.String()
	c := Claims{ID: all[:len(in.jti)], UserID: all[len(in.jti) : len(in.jti)+len(in.sub)],
		Issued: time.Unix(in.iat, 0), Expires: time.Unix(in.exp, 0), AuthTime: time.UnixMilli(in.authMS), Data: in.data}
	c.Family = c.ID
	if in.seen&hasSid != 0 {
		c.Family = all[len(in.jti)+len(in.sub):]
	}
	var nbf time.Time
	if in.seen&hasNbf != 0 {
		nbf = time.Unix(in.nbf, 0)
	}
	if err := checkTimes(&j.cfg, k, c.Issued, c.Expires, nbf); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// ECDSA signatures are malleable: if (r, s) signs a message, so does
// (r, n-s), where n is the order of the curve's group. A JWT verifier that
// takes both accepts two spellings of one token, which a revocation list
// or replay cache keyed by the token's bytes (another service's, if not
// sessionkit's) can miss. So ES256 tokens are sealed with s in the lower
// half (s <= n/2, the "low-s" rule of Bitcoin's BIP 62 and of libsecp256k1)
// and only that form is opened. r and s are fixed-width 32-byte big-endian
// numbers in a JWS (RFC 7518 section 3.4), so no other spelling remains.
var (
	p256N     = elliptic.P256().Params().N
	p256NHalf = new(big.Int).Rsh(p256N, 1)
	// The same as 32-byte big-endian numbers, to check a signature
	// without allocating.
	p256NBytes     = p256N.FillBytes(make([]byte, 32))
	p256NHalfBytes = p256NHalf.FillBytes(make([]byte, 32))
)

// canonicalES256 reports whether sig is r||s with 0 < r < n and
// 0 < s <= n/2.
func canonicalES256(sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	r, s := sig[:32], sig[32:]
	return !allZero(r) && bytes.Compare(r, p256NBytes) < 0 && !allZero(s) && bytes.Compare(s, p256NHalfBytes) <= 0
}

// lowS rewrites the s of an ES256 signature r||s to n-s when it is in the
// upper half; both sign the same message.
func lowS(sig []byte) {
	s := new(big.Int).SetBytes(sig[32:])
	if s.Cmp(p256NHalf) > 0 {
		s.Sub(p256N, s).FillBytes(sig[32:])
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
