package token_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

// onlyKey returns a format over a ring of a copy of k alone, never
// retired: it opens exactly the tokens k made.
func onlyKey(t *testing.T, k *token.Key, now func() time.Time) token.Format {
	t.Helper()
	c := *k
	c.Retired = time.Time{}
	return mustFormat(t, token.Config{Ring: mustRing(t, &c), Now: now})
}

// madeBy reports whether tok was sealed or signed by k.
func madeBy(t *testing.T, k *token.Key, tok string, now func() time.Time) bool {
	t.Helper()
	_, err := onlyKey(t, k, now).Open(tok)
	return err == nil
}

// The two phases of a rotation on a cluster: a key published ahead of
// its activation (RotateAt) verifies at once on the instances that have
// the new ring, while every instance, with the new ring or not, still
// signs with the old key; at the activation, the same Format signs with
// the new key by itself; the old key's tokens issued before its
// retirement keep opening, and those issued after it (plus leeway) are
// refused.
func TestRotateAt_twoNodes(t *testing.T) {
	for _, alg := range token.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			r1 := mustRing(t, mustKey(t, alg, c.Now()))
			old := r1.Current()
			c.Advance(time.Hour)
			activate := c.Now().Add(10 * time.Second)
			r2, err := r1.RotateAt("", c.Now(), activate, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			nk := r2.Current()
			stale := mustFormat(t, token.Config{Ring: r1, Now: c.Now})          // has not re-read the ring yet
			fresh := mustFormat(t, token.Config{Ring: r2, Now: c.Now})          // has
			behind := func() time.Time { return c.Now().Add(-3 * time.Second) } // a clock 3 s slow
			slow := mustFormat(t, token.Config{Ring: r2, Now: behind})

			// Before the activation: both sign with the old key and open
			// each other's tokens.
			c.Advance(5 * time.Second)
			freshTok := mustSeal(t, fresh, claims(t, c.Now()))
			staleTok := mustSeal(t, stale, claims(t, c.Now()))
			if !madeBy(t, old, freshTok, c.Now) {
				t.Fatal("before the activation, a node with the new ring does not sign with the old key")
			}
			for name, tok := range map[string]string{"fresh": freshTok, "stale": staleTok} {
				for fname, f := range map[string]token.Format{"fresh": fresh, "stale": stale} {
					if _, err := f.Open(tok); err != nil {
						t.Errorf("before the activation, %s node's token on the %s node: %v", name, fname, err)
					}
				}
			}
			// A node already on the new ring opens the new key's tokens
			// before their activation: here made by a node whose clock is
			// 3 s ahead of the slow node's, past the activation for it but
			// not for the slow node (within the leeway).
			c.Advance(4 * time.Second) // activate-1s; the slow node is at activate-4s
			if !behind().Before(activate) {
				t.Fatal("test setup: the slow node's clock is past the activation")
			}
			ahead := claims(t, activate) // a node 1 s ahead, at the activation
			aheadTok := mustSeal(t, fresh, ahead)
			if !madeBy(t, nk, aheadTok, c.Now) {
				t.Fatal("a token issued after the activation is not the new key's")
			}
			if _, err := slow.Open(aheadTok); err != nil {
				t.Errorf("a node 4 s before the activation (its clock), the new key's token: %v", err)
			}
			slowTok := mustSeal(t, slow, claims(t, behind()))
			if !madeBy(t, old, slowTok, c.Now) {
				t.Error("the slow node, before the activation by its clock, does not sign with the old key")
			}

			// After the activation: the same Format signs with the new key.
			c.Advance(2 * time.Second) // activate+1s
			newTok := mustSeal(t, fresh, claims(t, c.Now()))
			if !madeBy(t, nk, newTok, c.Now) || madeBy(t, old, newTok, c.Now) {
				t.Fatal("after the activation, the Format built before it does not sign with the new key")
			}
			for name, tok := range map[string]string{"fresh": freshTok, "stale": staleTok, "new": newTok, "slow": slowTok} {
				if _, err := fresh.Open(tok); err != nil {
					t.Errorf("after the activation, the %s token: %v", name, err)
				}
			}
			// The old key's tokens issued after its retirement: within the
			// leeway (a node slightly behind) accepted, later refused.
			lagging := mustSeal(t, stale, claims(t, activate.Add(3*time.Second)))
			if _, err := fresh.Open(lagging); err != nil {
				t.Errorf("the old key's token issued 3 s after its retirement (leeway 5 s): %v", err)
			}
			late := mustSeal(t, stale, claims(t, activate.Add(token.DefaultLeeway+time.Second)))
			if _, err := fresh.Open(late); !errors.Is(err, token.ErrInvalid) {
				t.Errorf("the old key's token issued after its retirement plus leeway: got %v; want ErrInvalid", err)
			}
		})
	}
}

// A Format refuses a ring whose key published ahead is of the other kind:
// it could not sign from its activation on.
func TestRotateAt_otherKind(t *testing.T) {
	c := newClock()
	r, err := mustRing(t, mustKey(t, token.XC20P, c.Now())).RotateAt(token.EdDSA, c.Now(), c.Now().Add(time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := token.NewSealed(token.Config{Ring: r, Now: c.Now}); err == nil {
		t.Error("NewSealed with an EdDSA key to sign from the activation: got nil; want an error")
	}
	if _, err := token.NewJWT(token.Config{Ring: r, Now: c.Now}); err == nil {
		t.Error("NewJWT with an XC20P key signing now: got nil; want an error")
	}
}
