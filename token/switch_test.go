package token_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

// A Switch set to a rotated ring while tokens are sealed and opened:
// every token opens, those sealed after the Set are the new key's, and
// tokens of the old key keep opening.
func TestSwitch_rotation(t *testing.T) {
	for _, alg := range []token.Alg{token.XC20P, token.HS256} {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			r1 := mustRing(t, mustKey(t, alg, c.Now()))
			r2, err := r1.Rotate("", c.Now(), 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			f1 := mustFormat(t, token.Config{Ring: r1, Now: c.Now})
			f2 := mustFormat(t, token.Config{Ring: r2, Now: c.Now})
			onlyNew := mustFormat(t, token.Config{Ring: mustRing(t, r2.Current()), Now: c.Now})
			sw, err := token.NewSwitch(f1)
			if err != nil {
				t.Fatal(err)
			}
			oldTok := mustSeal(t, sw, claims(t, c.Now()))
			if _, err := onlyNew.Open(oldTok); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("before Set, a token of the new key: %v", err)
			}

			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for range 200 {
						tok, err := sw.Seal(claims(t, c.Now()))
						if err != nil {
							t.Error(err)
							return
						}
						// Sealed by f1 or f2: f2 opens both keys' tokens.
						if _, err := f2.Open(tok); err != nil {
							t.Errorf("a token sealed during Sets: %v", err)
							return
						}
						// f1 opens only its own.
						if _, err := sw.Open(tok); err != nil && !errors.Is(err, token.ErrInvalid) {
							t.Errorf("Open during Sets: %v", err)
							return
						}
					}
				})
			}
			wg.Go(func() {
				for i := range 100 {
					if i%2 == 0 {
						sw.Set(f2)
					} else {
						sw.Set(f1)
					}
				}
			})
			wg.Wait()

			if err := sw.Set(f2); err != nil {
				t.Fatal(err)
			}
			if sw.Format() != f2 {
				t.Fatal("Format is not the one Set")
			}
			newTok := mustSeal(t, sw, claims(t, c.Now()))
			if _, err := onlyNew.Open(newTok); err != nil {
				t.Errorf("after Set, a token not sealed with the new key: %v", err)
			}
			if _, err := sw.Open(oldTok); err != nil {
				t.Errorf("after Set, a token of the retired key: %v", err)
			}
			if err := sw.Set(nil); err == nil || sw.Format() != f2 {
				t.Errorf("Set(nil) = %v, and changed the Format", err)
			}
			if _, err := token.NewSwitch(nil); err == nil {
				t.Error("NewSwitch(nil) = nil error")
			}
		})
	}
}
