package natsstore_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
)

// TestFailover writes sessions through the stores of a 3-node cluster with
// Replicas 3, deletes one, shuts one node down and checks that the other
// two serve every acknowledged session, and not the deleted one, within a
// bounded window.
func TestFailover(t *testing.T) {
	t.Parallel() // overlaps TestConformanceExternal, after TestConformanceCluster
	const (
		sessions = 10000
		writers  = 32
		window   = 20 * time.Second // the bound the test enforces
	)
	nodes, cfgs := startCluster(t)
	stores := make([]*natsstore.Store, len(nodes))
	for i, n := range nodes {
		stores[i] = newBucketStoreNamed(t, n.ClientURL(), "failover", 3)
		t.Cleanup(func() { stores[i].Close() })
	}
	ctx := t.Context()
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	key := func(i int) string { return fmt.Sprintf("session/%05d", i) }
	data := func(i int) []byte { return fmt.Appendf(nil, "data of session %d", i) }

	versions := make([]uint64, sessions)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= sessions {
					return
				}
				v, err := stores[(w+i)%3].Save(ctx, key(i), store.Record{Data: data(i), Expires: expires, UserID: "u"})
				if err != nil {
					errs <- fmt.Errorf("Save(%q): %w", key(i), err)
					return
				}
				versions[i] = v
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("wrote %d sessions with %d writers through 3 nodes in %v (%.0f/s)", sessions, writers, took.Round(time.Millisecond), sessions/took.Seconds())

	// Delete one session through the node about to fail.
	const deleted = 7
	if err := stores[2].Delete(ctx, key(deleted), versions[deleted]); err != nil {
		t.Fatalf("Delete(%q): %v", key(deleted), err)
	}

	down := time.Now()
	nodes[2].Shutdown()

	// readAll waits until every session but the deleted one loads, with
	// its data, through the stores in via.
	readAll := func(stage string, since time.Time, via []*natsstore.Store) {
		t.Helper()
		pending := make(map[int]bool, sessions)
		for i := range sessions {
			if i != deleted {
				pending[i] = true
			}
		}
		deadline := since.Add(window)
		var lastErr error
		for len(pending) > 0 {
			for i := range pending {
				rec, err := via[i%len(via)].Load(ctx, key(i))
				switch {
				case err != nil:
					lastErr = err
					continue
				case rec.Version != versions[i] || string(rec.Data) != string(data(i)):
					t.Fatalf("%s: Load(%q): got version %d data %q; want %d %q", stage, key(i), rec.Version, rec.Data,
						versions[i], data(i))
				}
				delete(pending, i)
			}
			if len(pending) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d sessions still unreadable after %v; last error: %v", stage, len(pending), window, lastErr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: all %d sessions readable within %v", stage, sessions-1, time.Since(since).Round(time.Millisecond))
	}
	readAll("one of 3 nodes down", down, stores[:2])

	for _, s := range stores[:2] {
		if _, err := s.Load(ctx, key(deleted)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Load(%q) of the session deleted before failover: got err %v; want %v", key(deleted), err, store.ErrNotFound)
		}
	}
	// Writes continue on the majority.
	v, err := stores[0].Save(ctx, key(1), store.Record{Data: []byte("after"), Version: versions[1], Expires: expires})
	if err != nil {
		t.Fatalf("Save after failover: %v", err)
	}
	if rec, err := stores[1].Load(ctx, key(1)); err != nil || rec.Version != v {
		// A replica may lag the leader for a moment; the CAS is exact.
		t.Logf("Load right after Save on the other node: version %d, err %v (want %d)", rec.Version, err, v)
	}
	versions[1] = v
	data1 := data
	data = func(i int) []byte {
		if i == 1 {
			return []byte("after")
		}
		return data1(i)
	}

	// Bring the failed node back with its disk, let it catch up, then lose
	// another node: still nothing lost.
	back, err := natsstore.StartNode(cfgs[2])
	if err != nil {
		t.Fatalf("restarting the failed node: %v", err)
	}
	t.Cleanup(back.Shutdown)
	restarted := newBucketStoreNamed(t, back.ClientURL(), "failover", 3)
	t.Cleanup(func() { restarted.Close() })
	readAll("failed node back", time.Now(), []*natsstore.Store{restarted})
	down = time.Now()
	nodes[0].Shutdown()
	readAll("another node down after the first came back", down, []*natsstore.Store{stores[1], restarted})
	for _, s := range []*natsstore.Store{stores[1], restarted} {
		if _, err := s.Load(ctx, key(deleted)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Load(%q) after the second failure: got err %v; want %v", key(deleted), err, store.ErrNotFound)
		}
	}
}
