package token_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
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
	// Expiry changes no generation: the list is read again, and the
	// expired entries dropped, at the latest on the 30th refresh.
	for range 30 {
		a.fire()
	}
	if s, u := a.rev.Len(); s != 0 || u != 1 {
		t.Errorf("after the session's token expired: Len() = %d, %d; want 0, 1", s, u)
	}
	c.Advance(24 * time.Hour)
	for range 30 {
		a.fire()
	}
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

// listCounter counts the full reads of the list that reach a real store.
type listCounter struct {
	*memstore.Store
	lists atomic.Int64
}

func (l *listCounter) ListUser(ctx context.Context, user string) ([]store.Entry, error) {
	l.lists.Add(1)
	return l.Store.ListUser(ctx, user)
}

// A refresh reads the whole list only when some instance revoked
// something since the last read (or every 30th time); otherwise it costs
// one record read.
func TestRevocations_refreshSkipsUnchangedList(t *testing.T) {
	c := newClock()
	mem := &listCounter{Store: newMem(t, c)}
	newNode := func() *revNode {
		n := &revNode{tick: make(chan time.Time)}
		var err error
		n.rev, err = token.NewRevocations(t.Context(), token.RevocationConfig{Store: mem, Now: c.Now,
			NewTicker: func(time.Duration) (<-chan time.Time, func()) { return n.tick, func() {} }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.rev.Close() })
		return n
	}
	a, b := newNode(), newNode()
	start := mem.lists.Load() // one read each at start
	for range 10 {
		if err := b.rev.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := mem.lists.Load() - start; got != 0 {
		t.Fatalf("10 refreshes with nothing revoked read the list %d times; want 0", got)
	}
	cl := claims(t, c.Now())
	if err := a.rev.Revoke(t.Context(), cl); err != nil {
		t.Fatal(err)
	}
	if err := b.rev.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !b.rev.Revoked(cl) || mem.lists.Load()-start != 1 {
		t.Fatalf("after a revocation elsewhere: revoked %v, %d list reads; want true, 1", b.rev.Revoked(cl), mem.lists.Load()-start)
	}
	if err := a.rev.RevokeUser(t.Context(), "alice", c.Now()); err != nil {
		t.Fatal(err)
	}
	b.rev.Refresh(t.Context())
	if mem.lists.Load()-start != 2 {
		t.Fatalf("a user's revocation did not make the next refresh read the list")
	}
	for range 29 {
		b.rev.Refresh(t.Context())
	}
	if got := mem.lists.Load() - start; got != 2 {
		t.Errorf("29 more refreshes read the list %d times in all; want still 2", got)
	}
	b.rev.Refresh(t.Context())
	if got := mem.lists.Load() - start; got != 3 {
		t.Errorf("the 30th refresh since the last read: %d list reads in all; want 3 (one forced)", got)
	}
}
