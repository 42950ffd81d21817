package natsstore_test

import (
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/nearcache"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// TestNearCache runs the conformance suite on stores behind a near cache
// (store/nearcache) kept coherent by the store's change feed: two nodes,
// each a store with its own cache on the same bucket. The concurrency
// tests must lose no update, and a delete on one node must be a not-found
// on the other within the feed's delay (Coherence/Logout logs the delays
// of 200 trials).
func TestNearCache(t *testing.T) {
	addr := testenv.TCPAddr(t, "SESSIONKIT_NATS_ADDR", "127.0.0.1:4222")
	url := "nats://" + addr
	var p peers
	near := func(t *testing.T, s store.Store, now func() time.Time) store.Store {
		w, err := nearcache.Wrap(s, nearcache.Config{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		p.alias(w, s)
		return w
	}
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			return near(t, p.store(t, url, 1, now), now)
		},
		Peer: func(t *testing.T, s store.Store) store.Store {
			return near(t, p.peer(t, s, url, 1), p.clock(s))
		},
		FeedResets: feedResets,
	})
}
