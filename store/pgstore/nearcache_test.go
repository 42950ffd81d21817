package pgstore

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/nearcache"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// TestNearCache runs the conformance suite on stores with Config.Notify
// behind a near cache (store/nearcache): two nodes, each a store with its
// own pool and its own cache on the same table. The concurrency tests must
// lose no update, and a delete on one node must be a not-found on the
// other within the feed's delay (Coherence/Logout logs the delays of 200
// trials).
func TestNearCache(t *testing.T) {
	pool := testPool(t, nil)
	var inner sync.Map // the near-cached store -> the *Store it wraps
	near := func(t *testing.T, cfg Config) store.Store {
		s, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		w, err := nearcache.Wrap(s, nearcache.Config{Now: cfg.Now})
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		inner.Store(w, s)
		return w // Run closes it, and so s, before the table is dropped
	}
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			return near(t, Config{Pool: pool, Table: newTable(t, pool), Now: now, Notify: true})
		},
		Peer: func(t *testing.T, w store.Store) store.Store {
			v, _ := inner.Load(w)
			s := v.(*Store)
			return near(t, Config{Pool: testPool(t, nil), Table: strings.Trim(s.table, `"`), Now: s.now, Notify: true})
		},
		Writers:    32, // as TestConformance
		FeedResets: "when its listening connection breaks or fails a ping, and again once it listens again",
	})
}

// TestNearCache_flushOnReconnect: when the store's listening connection is
// ended from the server, the near cache over it is flushed, and a change
// made meanwhile is seen at once.
func TestNearCache_flushOnReconnect(t *testing.T) {
	pool := testPool(t, nil)
	s := newStore(t, pool, Config{Notify: true, CleanupInterval: -1})
	w, err := nearcache.Wrap(s, nearcache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := w.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Load(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Entries != 1 {
		t.Fatalf("Stats after Save and Load: got %d entries; want 1", st.Entries)
	}
	if n := terminateListener(t, pool, s.channel); n != 1 {
		t.Fatalf("listening connections ended: got %d; want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Flushes < 2 { // one when the connection broke, one when it listens again
		if time.Now().After(deadline) {
			t.Fatalf("Stats 5s after the listening connection was ended: got %+v; want 2 flushes", w.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := w.Stats(); st.Entries != 0 {
		t.Errorf("Stats after the flushes: got %d entries; want 0", st.Entries)
	}
}
