package token

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sessionkit/sessionkit/session"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
)

// JWT is the signed token format: compact JWS (RFC 7515) JWTs (RFC 7519)
// signed with the ring's current EdDSA, ES256 or HS256 key, for services
// that verify sessionkit's tokens themselves (with the public keys of
// JWKSHandler). Signing and verifying go through github.com/go-jose/go-jose/v4;
// this package parses no JWS itself. The claims are readable by anyone
// holding the token: use Sealed for browsers' cookies.
//
// A token is accepted only if all of these hold: it is at most
// Config.MaxLen bytes with exactly two dots; its header has only "alg",
// "kid" and "typ" (so embedded "jwk", "x5c", "jku", "x5u", "crit" and
// "b64" headers reject it rather than being trusted or ignored); its "kid"
// names a key of the ring and its "alg" is that key's algorithm (so "none"
// in any spelling, and an EdDSA or ES256 public key used as an HS256
// secret, are rejected); its "typ" is "<purpose>+jwt"; the signature
// verifies; the payload is a JSON object with no duplicate, unknown or
// mistyped claims; "iss" and "aud" equal Config.Issuer and Config.Audience;
// "jti", integer "iat" and "exp" are present; and the times pass the
// checks of Config (leeway, "nbf", lifetime, retired keys). Safe for
// concurrent use; immutable.
type JWT struct {
	cfg     Config
	typ     string
	signer  jose.Signer
	cur     *Key
	allowed []jose.SignatureAlgorithm
}

var _ Format = (*JWT)(nil)

// NewJWT returns the JWT format over cfg.Ring's EdDSA, ES256 and HS256
// keys.
func NewJWT(cfg Config) (*JWT, error) {
	c, err := cfg.withDefaults(false)
	if err != nil {
		return nil, err
	}
	j := &JWT{cfg: c, typ: c.Purpose + "+jwt", cur: c.Ring.Current()}
	seen := map[Alg]bool{}
	for _, k := range ringKeys(c.Ring, false) {
		if !seen[k.Alg] {
			seen[k.Alg] = true
			j.allowed = append(j.allowed, jose.SignatureAlgorithm(k.Alg))
		}
	}
	key := any(j.cur.priv)
	if j.cur.Alg == HS256 {
		key = j.cur.secret
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(j.typ)).WithHeader(jose.HeaderKey("kid"), j.cur.ID)
	j.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(j.cur.Alg), Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return j, nil
}

// jwtClaims is the payload sessionkit writes.
type jwtClaims struct {
	Issuer   string      `json:"iss"`
	Audience string      `json:"aud"`
	Subject  string      `json:"sub,omitempty"`
	ID       string      `json:"jti"`
	Family   string      `json:"sid,omitempty"` // OpenID Connect's session ID claim: stable across renewals; omitted if jti
	IssuedAt int64       `json:"iat"`
	Expires  int64       `json:"exp"`
	AuthTime json.Number `json:"auth_time"`    // seconds with milliseconds: a NumericDate may have a fraction
	Data     []byte      `json:"sk,omitempty"` // the session's content, base64 (std, padded: encoding/json's form)
}

// jwtIn is the payload as read: each claim records how often it
// appeared, so that missing and duplicate claims are told apart.
type jwtIn struct {
	Issuer    claim[string]  `json:"iss"`
	Audience  claim[string]  `json:"aud"`
	Subject   claim[string]  `json:"sub"`
	ID        claim[string]  `json:"jti"`
	Family    claim[string]  `json:"sid"`
	IssuedAt  claim[int64]   `json:"iat"`
	Expires   claim[int64]   `json:"exp"`
	NotBefore claim[int64]   `json:"nbf"`
	AuthTime  claim[float64] `json:"auth_time"`
	Data      claim[[]byte]  `json:"sk"`
}

// claim is one claim of jwtIn. encoding/json calls UnmarshalJSON once per
// occurrence of the name in any letter case ("exp", "EXP"), so a second
// call is a duplicate: two parsers of one token could read different
// values, and it is rejected.
type claim[T any] struct {
	v   T
	set bool
}

var errDuplicate = errors.New("duplicate claim")

func (c *claim[T]) UnmarshalJSON(b []byte) error {
	if c.set {
		return errDuplicate
	}
	c.set = true
	if string(b) == "null" {
		return errors.New("null claim")
	}
	// Fast paths for the common forms; b is valid JSON (the decoder has
	// checked it), so an unescaped string is its bytes between the quotes.
	unescaped := len(b) >= 2 && b[0] == '"' && bytes.IndexByte(b, '\\') < 0
	switch p := any(&c.v).(type) {
	case *int64:
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return errors.New("claim is not an integer")
		}
		*p = n
		return nil
	case *float64:
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil || b[0] == '"' || math.Abs(f) > 1e12 {
			return errors.New("claim is not a time in seconds")
		}
		*p = f
		return nil
	case *string:
		if unescaped && utf8.Valid(b) {
			*p = string(b[1 : len(b)-1])
			return nil
		}
	case *[]byte:
		if unescaped {
			dst := make([]byte, base64.StdEncoding.DecodedLen(len(b)-2))
			n, err := base64.StdEncoding.Strict().Decode(dst, b[1:len(b)-1])
			*p = dst[:n]
			return err
		}
	}
	return json.Unmarshal(b, &c.v)
}

// authTime writes t as a NumericDate with milliseconds, so that a login
// just after a RevokeUser cutoff is told apart from a session just before.
func authTime(t time.Time) json.Number {
	ms := t.UnixMilli()
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return json.Number(fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000))
}

// Seal returns the signed JWT of c. "iat" and "exp" are whole seconds
// (exp rounded down, so it ends up to a second early); "auth_time" keeps
// milliseconds.
func (j *JWT) Seal(c Claims) (string, error) {
	if len(c.ID) > maxClaimString || len(c.UserID) > maxClaimString || len(c.Family) > maxClaimString {
		return "", fmt.Errorf("token: ID, family or user longer than %d bytes", maxClaimString)
	}
	family := c.Family
	if family == c.ID {
		family = ""
	}
	payload, err := json.Marshal(jwtClaims{
		Issuer: j.cfg.Issuer, Audience: j.cfg.Audience, Subject: c.UserID, ID: c.ID, Family: family,
		IssuedAt: c.Issued.Unix(), Expires: c.Expires.Unix(), AuthTime: authTime(c.AuthTime), Data: c.Data,
	})
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	jws, err := j.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	if len(tok) > j.cfg.MaxLen {
		return "", &session.TokenSizeError{Size: len(tok), Limit: j.cfg.MaxLen}
	}
	return tok, nil
}

// Open verifies a JWT and returns its claims.
func (j *JWT) Open(tok string) (Claims, error) {
	if len(tok) > j.cfg.MaxLen {
		return Claims{}, invalid("longer than the limit")
	}
	if strings.Count(tok, ".") != 2 {
		return Claims{}, invalid("not a compact JWS")
	}
	// Base64 decoders skip CR and LF, which would let one token be
	// spelled many ways.
	if strings.ContainsAny(tok, "\r\n") {
		return Claims{}, invalid("line breaks")
	}
	// The signature segment must be canonical base64url: go-jose ignores
	// a last character's unused bits, which would let one token be
	// rewritten into others that verify.
	var sigBuf [128]byte
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	if b64.DecodedLen(len(sig)) > len(sigBuf) {
		return Claims{}, invalid("signature too long")
	}
	if _, err := b64strict.Decode(sigBuf[:], []byte(sig)); err != nil {
		return Claims{}, invalid("signature not canonical base64url")
	}
	jws, err := jose.ParseSignedCompact(tok, j.allowed)
	if err != nil {
		return Claims{}, &InvalidError{Reason: "unparsable or disallowed algorithm", Err: err}
	}
	if len(jws.Signatures) != 1 {
		return Claims{}, invalid("not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	k, ok := j.cfg.Ring.Lookup(h.KeyID)
	switch {
	case !ok || k.Alg.sealed():
		return Claims{}, invalid("unknown key")
	case h.Algorithm != string(k.Alg):
		return Claims{}, invalid("algorithm is not the key's")
	case h.JSONWebKey != nil || h.Nonce != "":
		return Claims{}, invalid("embedded key or nonce in the header")
	}
	if _, err := h.Certificates(x509.VerifyOptions{}); !errors.Is(err, jose.ErrMissingX5cHeader) {
		return Claims{}, invalid("x5c header")
	}
	for name, v := range h.ExtraHeaders {
		if name != jose.HeaderType {
			return Claims{}, invalid("unexpected header " + string(name))
		}
		if s, _ := v.(string); s != j.typ {
			return Claims{}, invalid("wrong typ")
		}
	}
	if _, ok := h.ExtraHeaders[jose.HeaderType]; !ok {
		return Claims{}, invalid("no typ")
	}
	verifyKey := k.pub
	if k.Alg == HS256 {
		verifyKey = k.secret
	}
	payload, err := jws.Verify(verifyKey)
	if err != nil {
		return Claims{}, &InvalidError{Reason: "signature", Err: err}
	}
	var in jwtIn
	if err := decodeStrict(payload, &in); err != nil {
		return Claims{}, &InvalidError{Reason: "claims", Err: err}
	}
	switch {
	case !in.Issuer.set || in.Issuer.v != j.cfg.Issuer:
		return Claims{}, invalid("wrong issuer")
	case !in.Audience.set || in.Audience.v != j.cfg.Audience:
		return Claims{}, invalid("wrong audience")
	case in.ID.v == "" || len(in.ID.v) > maxClaimString || len(in.Subject.v) > maxClaimString ||
		len(in.Family.v) > maxClaimString:
		return Claims{}, invalid("no jti")
	case !in.Expires.set:
		return Claims{}, invalid("no exp")
	case !in.IssuedAt.set:
		return Claims{}, invalid("no iat")
	case !in.AuthTime.set:
		return Claims{}, invalid("no auth_time")
	}
	if !in.Family.set {
		in.Family.v = in.ID.v
	}
	c := Claims{ID: in.ID.v, Family: in.Family.v, UserID: in.Subject.v, Issued: time.Unix(in.IssuedAt.v, 0),
		Expires: time.Unix(in.Expires.v, 0), AuthTime: time.UnixMilli(int64(math.Round(in.AuthTime.v * 1000))), Data: in.Data.v}
	var nbf time.Time
	if in.NotBefore.set {
		nbf = time.Unix(in.NotBefore.v, 0)
	}
	if err := checkTimes(&j.cfg, k, c.Issued, c.Expires, nbf); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// decodeStrict decodes a JSON object into v in one pass, rejecting
// unknown names and trailing data (duplicates are caught by claim).
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return errors.New("data after the JSON object")
	}
	return nil
}
