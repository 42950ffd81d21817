package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/store"
)

// barrierStore holds the first n Loads until all n have arrived, so that n
// concurrent requests are sure to read the same version of a session.
type barrierStore struct {
	store.Store
	n       int32
	arrived atomic.Int32
	all     chan struct{}
}

func newBarrierStore(inner store.Store, n int) *barrierStore {
	return &barrierStore{Store: inner, n: int32(n), all: make(chan struct{})}
}

func (b *barrierStore) Load(ctx context.Context, key string) (store.Record, error) {
	rec, err := b.Store.Load(ctx, key)
	switch a := b.arrived.Add(1); {
	case a == b.n:
		close(b.all)
	case a < b.n:
		<-b.all
	}
	return rec, err
}

// lastWriterWins turns a store's compare-and-set into a blind overwrite: the
// behaviour of stores and managers that lose updates.
type lastWriterWins struct{ store.Store }

func (l lastWriterWins) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	for {
		cur, err := l.Store.Load(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			rec.Version = 0
		case err != nil:
			return 0, err
		default:
			rec.Version = cur.Version
		}
		v, err := l.Store.Save(ctx, key, rec)
		if !errors.Is(err, store.ErrConflict) {
			return v, err
		}
	}
}

// lostKeys runs n concurrent requests of one session, each setting its own
// key, all reading the same version first, and returns how many keys are
// missing afterwards.
func lostKeys(t *testing.T, wrap func(store.Store) store.Store, n int) int {
	e := newEnv(t, testHandler(t), nil)
	tok := token(t, e.do("GET", "/set?k=init&v=1", ""))
	m, err := session.New(session.Config{Store: newBarrierStore(wrap(e.mem), n), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	racing := *e
	racing.h = m.Handler(testHandler(t))
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if resp := racing.do("GET", fmt.Sprintf("/set?k=k%d&v=%d", i, i), tok); resp.StatusCode != 200 {
				t.Errorf("request %d: status %d", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	lost := 0
	for i := range n {
		if body(t, e.do("GET", fmt.Sprintf("/get?k=k%d", i), tok)) != fmt.Sprint(i) {
			lost++
		}
	}
	return lost
}

// TestSession_noLostUpdates: 64 requests of one session that all read the
// same version and then set different keys: every key survives.
func TestSession_noLostUpdates(t *testing.T) {
	if lost := lostKeys(t, func(s store.Store) store.Store { return s }, 64); lost != 0 {
		t.Fatalf("%d of 64 concurrent updates lost; want 0", lost)
	}
}

// TestSession_noLostUpdates_detectsLastWriterWins shows that the test above
// can fail: with the compare-and-set turned into an overwrite, updates are
// lost.
func TestSession_noLostUpdates_detectsLastWriterWins(t *testing.T) {
	lost := lostKeys(t, func(s store.Store) store.Store { return lastWriterWins{s} }, 64)
	if lost == 0 {
		t.Fatal("a last-writer-wins store lost no updates; the check cannot detect lost updates")
	}
	t.Logf("last-writer-wins lost %d of 64 updates", lost)
}
