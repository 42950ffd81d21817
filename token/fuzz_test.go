package token_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

// FuzzSealedOpen: no input crashes or hangs Open; whatever it accepts
// seals back to a token it accepts with the same claims.
func FuzzSealedOpen(f *testing.F) {
	c := newClock()
	sf, _ := newFormat(f, token.XC20P, c)
	f.Add(mustSeal(f, sf, claims(f, c.Now())))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := sf.Open(tok)
		if err != nil {
			if !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := sf.Open(mustSeal(t, sf, got))
		if err != nil || !sameClaims(got, again) {
			t.Fatalf("accepted claims do not round-trip: %v", err)
		}
	})
}

// FuzzJWTOpen: no input crashes or hangs Open, for each JWT algorithm.
func FuzzJWTOpen(f *testing.F) {
	c := newClock()
	formats := map[token.Alg]token.Format{}
	for _, alg := range []token.Alg{token.EdDSA, token.ES256, token.HS256} {
		jf, _ := newFormat(f, alg, c)
		formats[alg] = jf
		f.Add(mustSeal(f, jf, claims(f, c.Now())))
	}
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, jf := range formats {
			if _, err := jf.Open(tok); err != nil && !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		}
	})
}

// FuzzParseRing: no key-ring file crashes ParseRing; whatever it accepts
// marshals back to a file it accepts, and has a JWKS.
func FuzzParseRing(f *testing.F) {
	c := newClock()
	r := mustRing(f, mustKey(f, token.XC20P, c.Now()))
	for _, alg := range token.Algs()[1:] {
		r, _ = r.Rotate(alg, c.Now(), 1)
	}
	data, _ := r.Marshal()
	f.Add(data)
	// Keys published ahead: one pending, one superseded before it signed.
	r, _ = r.RotateAt("", c.Now(), c.Now().Add(time.Minute), time.Hour)
	r, _ = r.RotateAt("", c.Now(), c.Now().Add(10*time.Second), time.Hour)
	data, _ = r.Marshal()
	f.Add(data)
	f.Add([]byte(`{"sessionkit_key_ring":1,"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := token.ParseRing(data)
		if err != nil {
			return
		}
		// At most one key is current at any instant: each key that
		// signs is the current one when its period starts.
		for _, k := range r.Keys() {
			if k.Retired.IsZero() || k.Retired.After(k.Created) {
				if got := r.CurrentAt(k.Created); got != k {
					t.Fatalf("CurrentAt(%v) = %v; want key %s, whose period starts then", k.Created, got, k.ID)
				}
			}
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := token.ParseRing(out); err != nil {
			t.Fatalf("a parsed ring does not parse back: %v", err)
		}
		if _, err := r.JWKS(); err != nil {
			t.Fatalf("a parsed ring has no JWKS: %v", err)
		}
	})
}

// FuzzRefresherRefresh: no refresh token crashes Refresh, and none but
// an issued one is accepted.
func FuzzRefresherRefresh(f *testing.F) {
	f.Add("skr1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c := newClock()
		r, err := token.NewRefresher(token.RefreshConfig{Store: newMem(t, c), Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Refresh(t.Context(), tok); !errors.Is(err, token.ErrInvalid) {
			t.Fatalf("Refresh(%q): got %v; want ErrInvalid", tok, err)
		}
	})
}
