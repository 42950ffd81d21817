package token_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/token"
)

// revNode is one instance's revocation list with a ticker the test fires.
type revNode struct {
	rev  *token.Revocations
	tick chan time.Time
}

func newRevNode(t *testing.T, mem *memstore.Store, c *clock) *revNode {
	t.Helper()
	n := &revNode{tick: make(chan time.Time)}
	var err error
	n.rev, err = token.NewRevocations(t.Context(), token.RevocationConfig{
		Store: mem, Now: c.Now, MaxLifetime: 24 * time.Hour,
		NewTicker: func(time.Duration) (<-chan time.Time, func()) { return n.tick, func() {} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.rev.Close() })
	return n
}

// fire delivers one tick and returns once the refresh it started is over:
// the loop takes the second tick only after finishing the first.
func (n *revNode) fire() {
	n.tick <- time.Time{}
	n.tick <- time.Time{}
}

func newMem(t testing.TB, c *clock) *memstore.Store {
	t.Helper()
	mem, err := memstore.New(memstore.Config{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	return mem
}

// The propagation delay is one refresh: before it, the other instance
// still accepts; after it, it refuses. The instance that revoked refuses
// at once.
func TestRevocations_propagationIsOneRefresh(t *testing.T) {
	c := newClock()
	mem := newMem(t, c)
	a, b := newRevNode(t, mem, c), newRevNode(t, mem, c)
	cl := claims(t, c.Now())
	if err := a.rev.Revoke(t.Context(), cl); err != nil {
		t.Fatal(err)
	}
	if !a.rev.Revoked(cl) {
		t.Fatal("the revoking instance does not see its own revocation")
	}
	if b.rev.Revoked(cl) {
		t.Fatal("the other instance saw the revocation before refreshing: the test cannot tell the delay")
	}
	b.fire()
	if !b.rev.Revoked(cl) {
		t.Fatal("the other instance does not see the revocation after one refresh")
	}
	other := claims(t, c.Now())
	if a.rev.Revoked(other) || b.rev.Revoked(other) {
		t.Fatal("another session is revoked too")
	}
}

func TestRevocations_user(t *testing.T) {
	c := newClock()
	mem := newMem(t, c)
	a, b := newRevNode(t, mem, c), newRevNode(t, mem, c)
	before := claims(t, c.Now()) // AuthTime a minute ago
	c.Advance(time.Second)
	if err := a.rev.RevokeUser(t.Context(), "alice", c.Now()); err != nil {
		t.Fatal(err)
	}
	// An earlier cutoff does not move it back.
	if err := b.rev.RevokeUser(t.Context(), "alice", c.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	a.fire()
	b.fire()
	c.Advance(time.Second)
	after := claims(t, c.Now())
	after.AuthTime = c.Now()
	bob := before
	bob.UserID = "bob"
	for name, n := range map[string]*revNode{"a": a, "b": b} {
		if !n.rev.Revoked(before) {
			t.Errorf("%s: alice's session from before the cutoff is not revoked", name)
		}
		if n.rev.Revoked(after) {
			t.Errorf("%s: alice's session from after the cutoff is revoked", name)
		}
		if n.rev.Revoked(bob) {
			t.Errorf("%s: bob's session is revoked", name)
		}
	}
}

// Revocations leave the store once the tokens they concern have expired.
func TestRevocations_expire(t *testing.T) {
	c := newClock()
	mem := newMem(t, c)
	a := newRevNode(t, mem, c)
	cl := claims(t, c.Now()) // expires in 30 minutes
	if err := a.rev.Revoke(t.Context(), cl); err != nil {
		t.Fatal(err)
	}
	if err := a.rev.RevokeUser(t.Context(), "alice", c.Now()); err != nil {
		t.Fatal(err)
	}
	a.fire()
	if s, u := a.rev.Len(); s != 1 || u != 1 {
		t.Fatalf("Len() = %d, %d; want 1, 1", s, u)
	}
	c.Advance(31*time.Minute + token.MaxLeeway)
	a.fire()
	if s, u := a.rev.Len(); s != 0 || u != 1 {
		t.Errorf("after the session's token expired: Len() = %d, %d; want 0, 1", s, u)
	}
	c.Advance(24 * time.Hour)
	a.fire()
	if s, u := a.rev.Len(); s != 0 || u != 0 {
		t.Errorf("after the longest lifetime: Len() = %d, %d; want 0, 0", s, u)
	}
}

// A failed refresh keeps the last copy.
func TestRevocations_storeDownKeepsCopy(t *testing.T) {
	c := newClock()
	mem := newMem(t, c)
	a := newRevNode(t, mem, c)
	cl := claims(t, c.Now())
	if err := a.rev.Revoke(t.Context(), cl); err != nil {
		t.Fatal(err)
	}
	mem.Close()
	if err := a.rev.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh over a closed store: got nil; want an error")
	}
	a.fire()
	if !a.rev.Revoked(cl) {
		t.Fatal("the revocation was lost when the store failed")
	}
	if err := a.rev.Revoke(t.Context(), claims(t, c.Now())); err == nil {
		t.Fatal("Revoke over a closed store: got nil; want an error")
	}
}

func TestRevocations_needsUserIndex(t *testing.T) {
	if _, err := token.NewRevocations(t.Context(), token.RevocationConfig{}); err == nil {
		t.Error("no store: got nil; want an error")
	}
}
