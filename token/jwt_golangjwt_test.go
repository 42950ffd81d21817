package token_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/token"
)

// refClaims is the JWT payload as a plain golang-jwt user would declare
// it, encoded by encoding/json.
type refClaims struct {
	Issuer   string      `json:"iss"`
	Audience string      `json:"aud"`
	Subject  string      `json:"sub,omitempty"`
	ID       string      `json:"jti"`
	Family   string      `json:"sid,omitempty"`
	IssuedAt int64       `json:"iat"`
	Expires  int64       `json:"exp"`
	AuthTime json.Number `json:"auth_time"`
	Data     []byte      `json:"sk,omitempty"`
}

func (refClaims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (refClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (refClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (refClaims) GetIssuer() (string, error)                   { return "", nil }
func (refClaims) GetSubject() (string, error)                  { return "", nil }
func (refClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// golangJWTToken returns the token golang-jwt's Token.SignedString makes
// of c with the ring's current key, which must be EdDSA or HS256 (whose
// signatures are deterministic).
func golangJWTToken(t testing.TB, r *token.Ring, c token.Claims) string {
	t.Helper()
	cur := r.Current()
	priv, secret := material(t, r)
	method, key := jwt.SigningMethod(jwt.SigningMethodHS256), any(secret)
	if cur.Alg == token.EdDSA {
		method, key = jwt.SigningMethodEdDSA, priv
	}
	family := c.Family
	if family == c.ID {
		family = ""
	}
	ms := c.AuthTime.UnixMilli()
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	tok := &jwt.Token{
		Header: map[string]any{"alg": string(cur.Alg), "kid": cur.ID, "typ": "session+jwt"},
		Claims: refClaims{Issuer: "sessionkit", Audience: "sessionkit", Subject: c.UserID, ID: c.ID, Family: family,
			IssuedAt: c.Issued.Unix(), Expires: c.Expires.Unix(),
			AuthTime: json.Number(fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)), Data: c.Data},
		Method: method,
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWT_sameAsGolangJWT: Seal writes the very bytes golang-jwt's
// Token.SignedString writes for the same header and claims, strings that
// encoding/json escapes included; and golang-jwt's own parser verifies
// every algorithm's tokens.
func TestJWT_sameAsGolangJWT(t *testing.T) {
	c := newClock()
	base := claims(t, c.Now())
	tests := []struct {
		name string
		edit func(*token.Claims)
	}{
		{"typical", func(*token.Claims) {}},
		{"family", func(cl *token.Claims) { cl.Family = "another-family" }},
		{"no user, no data", func(cl *token.Claims) { cl.UserID, cl.Data = "", nil }},
		{"user needing escapes", func(cl *token.Claims) { cl.UserID = "a<b>&\"c\\d\x00\x1f\x7f é\u2028\u2029\U0001F600" }},
		{"auth time before 1970", func(cl *token.Claims) { cl.AuthTime = time.UnixMilli(-1234567) }},
		{"auth time whole second", func(cl *token.Claims) { cl.AuthTime = c.Now().Truncate(time.Second) }},
		{"binary data", func(cl *token.Claims) { cl.Data = bytes.Repeat([]byte{0xff, 0, '"', '\\'}, 50) }},
	}
	for _, alg := range []token.Alg{token.HS256, token.EdDSA, token.ES256} {
		f, r := newFormat(t, alg, c)
		cur := r.Current()
		priv, secret := material(t, r)
		verifyKey := any(secret)
		if cur.Public() {
			verifyKey = priv.(crypto.Signer).Public()
		}
		for _, tt := range tests {
			t.Run(string(alg)+"/"+tt.name, func(t *testing.T) {
				in := base
				tt.edit(&in)
				tok := mustSeal(t, f, in)
				if alg != token.ES256 {
					if want := golangJWTToken(t, r, in); tok != want {
						t.Fatalf("got  %s\nwant %s", tok, want)
					}
				}
				var got refClaims
				p := jwt.NewParser(jwt.WithValidMethods([]string{string(alg)}), jwt.WithStrictDecoding())
				if _, err := p.ParseWithClaims(tok, &got, func(*jwt.Token) (any, error) { return verifyKey, nil }); err != nil {
					t.Fatalf("golang-jwt rejects the token: %v", err)
				}
				if got.Subject != in.UserID || !bytes.Equal(got.Data, in.Data) {
					t.Errorf("golang-jwt reads sub %q, sk %x; want %q, %x", got.Subject, got.Data, in.UserID, in.Data)
				}
				if _, err := f.Open(tok); err != nil {
					t.Errorf("Open: %v", err)
				}
			})
		}
	}
}

// TestJWT_invalidUTF8Refused: a JWT cannot carry invalid UTF-8 (JSON
// decoders replace it), so Seal refuses to write a token whose user or
// session it would change.
func TestJWT_invalidUTF8Refused(t *testing.T) {
	c := newClock()
	f, _ := newFormat(t, token.HS256, c)
	for _, edit := range []func(*token.Claims){
		func(cl *token.Claims) { cl.UserID = "bob\xff" },
		func(cl *token.Claims) { cl.ID = "\xc3(" },
		func(cl *token.Claims) { cl.Family = "\xed\xa0\x80" }, // a surrogate half
	} {
		in := claims(t, c.Now())
		edit(&in)
		if tok, err := f.Seal(in); err == nil {
			t.Errorf("Seal(%+v) = %q; want an error", in, tok)
		}
	}
}

// FuzzJWTSeal: for any claims, Seal writes what golang-jwt writes, and
// Open reads back what was sealed.
func FuzzJWTSeal(f *testing.F) {
	f.Add("alice", "id", "", []byte("data"), int64(0))
	f.Add("a<\"\\\u2028\xff", "\x00", "fam", []byte{}, int64(-1500))
	c := newClock()
	jf, r := newFormat(f, token.HS256, c)
	f.Fuzz(func(t *testing.T, user, id, family string, data []byte, authDelta int64) {
		in := claims(t, c.Now())
		in.UserID, in.ID, in.Family, in.Data = user, id, family, data
		in.AuthTime = in.AuthTime.Add(time.Duration(authDelta%1e12) * time.Millisecond)
		tok, err := jf.Seal(in)
		var tooBig *session.TokenSizeError
		switch {
		case len(user) > 1024 || len(id) > 1024 || len(family) > 1024,
			!utf8.ValidString(user) || !utf8.ValidString(id) || !utf8.ValidString(family):
			if err == nil {
				t.Fatal("Seal accepted a claim over 1024 bytes or of invalid UTF-8")
			}
			return
		case errors.As(err, &tooBig):
			if len(golangJWTToken(t, r, in)) <= token.DefaultMaxLen {
				t.Fatalf("Seal: %v, for a token of %d bytes", err, len(golangJWTToken(t, r, in)))
			}
			return
		case err != nil:
			t.Fatalf("Seal: %v", err)
		}
		if want := golangJWTToken(t, r, in); tok != want {
			t.Fatalf("got  %s\nwant %s", tok, want)
		}
		got, err := jf.Open(tok)
		if id == "" {
			if !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("a token without jti: got %v; want ErrInvalid", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		wantFamily := family
		if family == "" {
			wantFamily = id
		}
		if got.UserID != user || got.ID != id || got.Family != wantFamily || !bytes.Equal(got.Data, data) ||
			!got.AuthTime.Equal(in.AuthTime) {
			t.Fatalf("got %+v; want %+v", got, in)
		}
	})
}

// FuzzJWTClaims: any payload, signed with the ring's key, is either
// rejected or read as encoding/json reads it: the strict claims decoder
// never disagrees with the standard one about what a claim says.
func FuzzJWTClaims(f *testing.F) {
	c := newClock()
	jf, r := newFormat(f, token.HS256, c)
	_, secret := material(f, r)
	now := c.Now().Unix()
	hdr := `{"alg":"HS256","kid":"` + r.Current().ID + `","typ":"session+jwt"}`
	f.Add(fmt.Sprintf(`{"iss":"sessionkit","aud":"sessionkit","sub":"alice","jti":"x","iat":%d,"exp":%d,"auth_time":%d.5,"sk":"AQI="}`, now, now+60, now))
	f.Add(fmt.Sprintf(` { "iss" : "session\u006bit" , "aud":"sessionkit","sub":"\ud83d\ude00\\\"","jti":"x","sid":"y","iat":%d,"exp":%d,"nbf":0,"auth_time":-0.0e1} `, now, now+60))
	f.Add(`{"exp":1,"exp":2}`)
	f.Fuzz(func(t *testing.T, payload string) {
		tok := craft(hdr, payload, func(in []byte) []byte { return sign(t, "HS256", nil, secret, in) })
		got, err := jf.Open(tok)
		if err != nil {
			if !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if !json.Valid([]byte(payload)) {
			t.Fatalf("accepted invalid JSON %q", payload)
		}
		var ref struct {
			Sub      string   `json:"sub"`
			Jti      string   `json:"jti"`
			Sid      *string  `json:"sid"`
			Iat      int64    `json:"iat"`
			Exp      int64    `json:"exp"`
			AuthTime *float64 `json:"auth_time"`
			Data     []byte   `json:"sk"`
		}
		if err := json.Unmarshal([]byte(payload), &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json rejects: %v", payload, err)
		}
		family := ref.Jti
		if ref.Sid != nil {
			family = *ref.Sid
		}
		if got.UserID != ref.Sub || got.ID != ref.Jti || got.Family != family || got.Issued.Unix() != ref.Iat ||
			got.Expires.Unix() != ref.Exp || ref.AuthTime == nil || !bytes.Equal(got.Data, ref.Data) ||
			!utf8.ValidString(got.UserID) {
			t.Fatalf("%q: got %+v; encoding/json reads %+v", payload, got, ref)
		}
	})
}
