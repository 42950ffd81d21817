package bench

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionkit/sessionkit/token"
)

// BenchmarkJWSLibraries: what each JOSE library costs by itself for an
// HS256 round trip: sign a given payload (the reference app's session
// with its 10-item cart, as sessionkit's JWT format writes it) into a
// compact JWS with the header {"alg","kid","typ"}, then parse it with the
// algorithm pinned and verify it, getting the payload back; no claims are
// encoded, decoded or checked. go-jose v4's cost alone was above
// golang-jwt's whole round trip with claims (BenchmarkTokenRoundTrip),
// which is why sessionkit's JWT format is built on golang-jwt.
func BenchmarkJWSLibraries(b *testing.B) {
	f := newTokenFormat(b, token.HS256)
	tok, err := f.Seal(benchClaims(b))
	if err != nil {
		b.Fatal(err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	const kid, typ = "0123456789abcdef", "session+jwt"

	b.Run("lib=go-jose", func(b *testing.B) {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key},
			(&jose.SignerOptions{}).WithType(typ).WithHeader("kid", kid))
		if err != nil {
			b.Fatal(err)
		}
		algs := []jose.SignatureAlgorithm{jose.HS256}
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			jws, err := signer.Sign(payload)
			if err != nil {
				b.Fatal(err)
			}
			s, err := jws.CompactSerialize()
			if err != nil {
				b.Fatal(err)
			}
			parsed, err := jose.ParseSignedCompact(s, algs)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := parsed.Verify(key); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
	b.Run("lib=golang-jwt", func(b *testing.B) {
		p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation())
		keyFunc := func(*jwt.Token) (any, error) { return key, nil }
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			t := jwt.NewWithClaims(jwt.SigningMethodHS256, &rawPayload{b: payload})
			t.Header["kid"], t.Header["typ"] = kid, typ
			s, err := t.SignedString(key)
			if err != nil {
				b.Fatal(err)
			}
			var got rawPayload
			if _, err := p.ParseWithClaims(s, &got, keyFunc); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
}

// rawPayload is a JWT payload passed through golang-jwt as it is.
type rawPayload struct{ b []byte }

func (r *rawPayload) MarshalJSON() ([]byte, error)               { return r.b, nil }
func (r *rawPayload) UnmarshalJSON(b []byte) error               { r.b = append(r.b[:0], b...); return nil }
func (*rawPayload) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (*rawPayload) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (*rawPayload) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (*rawPayload) GetIssuer() (string, error)                   { return "", nil }
func (*rawPayload) GetSubject() (string, error)                  { return "", nil }
func (*rawPayload) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }
