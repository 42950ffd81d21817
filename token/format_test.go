package token_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/token"
)

func sameClaims(a, b token.Claims) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.AuthTime.Equal(b.AuthTime) &&
		a.Issued.Equal(b.Issued) && a.Expires.Equal(b.Expires) && bytes.Equal(a.Data, b.Data)
}

func TestFormat_roundTrip(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			f, _ := newFormat(t, alg, c)
			in := claims(t, c.Now())
			got, err := f.Open(mustSeal(t, f, in))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !sameClaims(got, in) {
				t.Errorf("got %+v; want %+v", got, in)
			}
			// Two seals of the same claims differ (sealed: random nonce),
			// or at least both open.
			if _, err := f.Open(mustSeal(t, f, in)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFormat_expiry(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			f, _ := newFormat(t, alg, c)
			in := claims(t, c.Now())
			tok := mustSeal(t, f, in)
			c.Advance(in.Expires.Sub(c.Now()) + token.DefaultLeeway - time.Second)
			if _, err := f.Open(tok); err != nil {
				t.Fatalf("within the leeway: %v", err)
			}
			c.Advance(time.Second)
			if _, err := f.Open(tok); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("after exp + leeway: got %v; want ErrInvalid", err)
			}
		})
	}
}

func TestFormat_issuedInFuture(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			f, _ := newFormat(t, alg, c)
			in := claims(t, c.Now().Add(time.Minute))
			if _, err := f.Open(mustSeal(t, f, in)); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("iat a minute ahead: got %v; want ErrInvalid", err)
			}
			in = claims(t, c.Now().Add(token.DefaultLeeway-time.Second))
			if _, err := f.Open(mustSeal(t, f, in)); err != nil {
				t.Fatalf("iat within the leeway: %v", err)
			}
		})
	}
}

func TestFormat_lifetimeCapped(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			r := mustRing(t, mustKey(t, alg, c.Now()))
			f := mustFormat(t, token.Config{Ring: r, Now: c.Now, MaxLifetime: time.Hour})
			in := claims(t, c.Now())
			in.Expires = in.Issued.Add(time.Hour + time.Second)
			if _, err := f.Open(mustSeal(t, f, in)); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("got %v; want ErrInvalid", err)
			}
			in.Expires = in.Issued
			if _, err := f.Open(mustSeal(t, f, in)); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("exp == iat: got %v; want ErrInvalid", err)
			}
		})
	}
}

// Purposes: a token of one purpose is never accepted as another, with the
// same key.
func TestFormat_purposeBound(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			r := mustRing(t, mustKey(t, alg, c.Now()))
			session := mustFormat(t, token.Config{Ring: r, Now: c.Now})
			refresh := mustFormat(t, token.Config{Ring: r, Now: c.Now, Purpose: "refresh"})
			if _, err := session.Open(mustSeal(t, refresh, claims(t, c.Now()))); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("refresh token as session: got %v; want ErrInvalid", err)
			}
			if _, err := refresh.Open(mustSeal(t, session, claims(t, c.Now()))); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("session token as refresh: got %v; want ErrInvalid", err)
			}
		})
	}
}

// Formats never accept each other's tokens, nor keys of another ring.
func TestFormat_crossRejected(t *testing.T) {
	c := newClock()
	formats := map[token.Alg]token.Format{}
	for _, alg := range token.Algs() {
		formats[alg], _ = newFormat(t, alg, c)
	}
	for from, ff := range formats {
		tok := mustSeal(t, ff, claims(t, c.Now()))
		for to, ft := range formats {
			if from == to {
				continue
			}
			if _, err := ft.Open(tok); !errors.Is(err, token.ErrInvalid) {
				t.Errorf("%s token opened by %s: got %v; want ErrInvalid", from, to, err)
			}
		}
		other, _ := newFormat(t, from, c) // same algorithm, another key
		if _, err := other.Open(tok); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s token opened with another ring: got %v; want ErrInvalid", from, err)
		}
	}
}

// Every single-bit change of a token is rejected.
func TestFormat_tamper(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			f, _ := newFormat(t, alg, c)
			tok := mustSeal(t, f, claims(t, c.Now()))
			for i := 0; i < len(tok); i++ {
				for _, repl := range []byte{'A', 'B', '_', '.'} {
					if tok[i] == repl {
						continue
					}
					bad := tok[:i] + string(repl) + tok[i+1:]
					if got, err := f.Open(bad); err == nil {
						// Base64 may leave a last character's low bits
						// unused; the strict decoder must refuse them.
						t.Fatalf("tampered at %d (%q -> %q): accepted %+v", i, tok[i], repl, got)
					}
				}
			}
		})
	}
}

func TestSealed_sizeLimit(t *testing.T) {
	c := newClock()
	r := mustRing(t, mustKey(t, token.XC20P, c.Now()))
	f := mustFormat(t, token.Config{Ring: r, Now: c.Now, MaxLen: 200})
	in := claims(t, c.Now())
	in.Data = bytes.Repeat([]byte("x"), 200)
	if _, err := f.Seal(in); err == nil || !strings.Contains(err.Error(), "200") {
		t.Fatalf("Seal of an oversized token: got %v; want an error naming the limit", err)
	}
	if _, err := f.Open(strings.Repeat("A", 201)); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("Open of an oversized token: got %v; want ErrInvalid", err)
	}
}

func TestSealed_versionAndKeyBytes(t *testing.T) {
	c := newClock()
	f, r := newFormat(t, token.XC20P, c)
	raw, err := base64.RawURLEncoding.DecodeString(mustSeal(t, f, claims(t, c.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != 1 {
		t.Errorf("version byte %d; want 1", raw[0])
	}
	kid := r.Current().ID
	if got := fmtHex(raw[1:9]); got != kid {
		t.Errorf("kid bytes %s; want %s", got, kid)
	}
	for _, v := range []byte{0, 2, 255} {
		bad := append([]byte{v}, raw[1:]...)
		if _, err := f.Open(base64.RawURLEncoding.EncodeToString(bad)); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("version %d: got %v; want ErrInvalid", v, err)
		}
	}
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func TestConfig_invalid(t *testing.T) {
	c := newClock()
	sealedRing := mustRing(t, mustKey(t, token.XC20P, c.Now()))
	jwtRing := mustRing(t, mustKey(t, token.EdDSA, c.Now()))
	tests := []struct {
		name string
		cfg  token.Config
		jwt  bool
	}{
		{"no ring", token.Config{}, false},
		{"negative leeway", token.Config{Ring: sealedRing, Leeway: -time.Second}, false},
		{"leeway over 60s", token.Config{Ring: sealedRing, Leeway: 61 * time.Second}, false},
		{"bad purpose", token.Config{Ring: sealedRing, Purpose: "a/b"}, false},
		{"sealed over a JWT ring", token.Config{Ring: jwtRing}, false},
		{"JWT over a sealed ring", token.Config{Ring: sealedRing}, true},
		{"empty ring", token.Config{Ring: mustRing(t)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.jwt {
				_, err = token.NewJWT(tt.cfg)
			} else {
				_, err = token.NewSealed(tt.cfg)
			}
			if err == nil {
				t.Fatal("got nil; want an error")
			}
		})
	}
	if _, err := token.NewSealed(token.Config{Ring: sealedRing, Leeway: 60 * time.Second}); err != nil {
		t.Errorf("leeway of exactly 60s: %v", err)
	}
}

// The family travels in the token; a token without one (no renewal since
// the login) reads as its own family.
func TestFormat_family(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			f, _ := newFormat(t, alg, c)
			in := claims(t, c.Now())
			got, err := f.Open(mustSeal(t, f, in))
			if err != nil || got.Family != in.ID {
				t.Fatalf("no family: got %q, %v; want the ID", got.Family, err)
			}
			in.Family = claims(t, c.Now()).ID
			got, err = f.Open(mustSeal(t, f, in))
			if err != nil || got.Family != in.Family {
				t.Fatalf("family: got %q, %v; want %q", got.Family, err, in.Family)
			}
		})
	}
}

// auth_time keeps milliseconds in every format, so that RevokeUser tells
// a login just after its cutoff from a session just before.
func TestFormat_authTimeMillis(t *testing.T) {
	for _, alg := range token.Algs() {
		c := newClock()
		f, _ := newFormat(t, alg, c)
		in := claims(t, c.Now())
		in.AuthTime = c.Now().Add(-1234567 * time.Millisecond)
		got, err := f.Open(mustSeal(t, f, in))
		if err != nil || !got.AuthTime.Equal(in.AuthTime) {
			t.Errorf("%s: auth time %v, %v; want %v", alg, got.AuthTime, err, in.AuthTime)
		}
	}
}

// TestLineBreaks: base64 decoders skip CR and LF, so a token with line
// breaks in it (or made of nothing else) must be refused, not decoded as
// another spelling of a valid token, nor crash the parser.
func TestLineBreaks(t *testing.T) {
	for _, alg := range []token.Alg{token.XC20P, token.HS256, token.EdDSA} {
		c := newClock()
		f, _ := newFormat(t, alg, c)
		tok := mustSeal(t, f, claims(t, c.Now()))
		if _, err := f.Open(tok); err != nil {
			t.Fatalf("%v: Open of a fresh token: %v", alg, err)
		}
		for _, bad := range []string{
			tok[:len(tok)-4] + "\n" + tok[len(tok)-4:],
			tok[:10] + "\r\n" + tok[10:],
			strings.Repeat("\n", len(tok)),
		} {
			if _, err := f.Open(bad); !errors.Is(err, token.ErrInvalid) {
				t.Errorf("%v: Open(token with line breaks): got %v; want %v", alg, err, token.ErrInvalid)
			}
		}
	}
}

// The size limit is exact: a token of MaxLen bytes is made, one of a byte
// more is refused with an error naming its size and the limit.
func TestFormat_sizeLimitExact(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			r := mustRing(t, mustKey(t, alg, c.Now()))
			in := claims(t, c.Now())
			size := len(mustSeal(t, mustFormat(t, token.Config{Ring: r, Now: c.Now}), in))
			if tok, err := mustFormat(t, token.Config{Ring: r, Now: c.Now, MaxLen: size}).Seal(in); err != nil || len(tok) != size {
				t.Fatalf("MaxLen %d: a token of %d bytes, %v; want %d bytes", size, len(tok), err, size)
			}
			_, err := mustFormat(t, token.Config{Ring: r, Now: c.Now, MaxLen: size - 1}).Seal(in)
			var se *session.TokenSizeError
			if !errors.As(err, &se) || se.Size != size || se.Limit != size-1 {
				t.Fatalf("MaxLen %d: got %v; want a *session.TokenSizeError of %d over %d", size-1, err, size, size-1)
			}
		})
	}
}
