package memcachedstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memcachedstore"
)

// TestOneServerDown kills one of three servers: the records on the other
// two keep working; those on the dead one fail, after Failures calls
// without waiting (its breaker is open: store.ErrUnavailable); once it is
// back the store writes to it again by itself. The dead server's share is
// lost (Memcached keeps nothing on disk), and only that share. The
// breakers run on a fake clock, so that the circuit opens and stays open
// however slow the machine, until the test moves the clock.
func TestOneServerDown(t *testing.T) {
	t.Parallel()
	var srvs []*server
	var addrs []string
	for range 3 {
		s := startMemcached(t)
		srvs, addrs = append(srvs, s), append(addrs, s.addr)
	}
	const openFor = 2 * time.Second
	clock := testclock.New(time.Now())
	// Timeout is far above what a dead server costs (a refused
	// connection), and far from what a loaded machine takes on a live one.
	const timeout = 2 * time.Second
	s := newStore(t, memcachedstore.Config{Servers: addrs, Timeout: timeout,
		Breaker: breaker.Config{Failures: 2, OpenFor: openFor, Now: clock.Now}})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	const n = 300
	for i := range n {
		if _, err := s.Save(ctx, fmt.Sprintf("k%d", i), store.Record{Data: []byte("x"), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	srvs[1].kill()

	var ok, failed, unavailable int
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		_, err := s.Load(ctx, fmt.Sprintf("k%d", i))
		slowest = max(slowest, time.Since(start))
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
			t.Fatalf("Load(k%d) with a server down: got %v; want success or an outage error", i, err)
		case errors.Is(err, store.ErrUnavailable):
			unavailable++
		default:
			failed++
		}
	}
	t.Logf("with 1 of 3 servers down: %d loads ok, %d failed, %d refused by the open breaker; slowest %v", ok, failed, unavailable, slowest)
	if lost := n - ok; lost < n/5 || lost > n/2 {
		t.Errorf("%d of %d records unreachable with 1 of 3 servers down; want about a third", lost, n)
	}
	if failed > 2 {
		t.Errorf("%d calls reached the dead server; want at most Failures (2) before its breaker opens", failed)
	}
	if slowest > timeout/2 {
		t.Errorf("slowest load %v; want failures that do not wait for the timeout (%v)", slowest, timeout)
	}

	srvs[1].start(t)
	clock.Advance(openFor) // each open breaker lets a probe through
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("k%d", i)
		_, err := s.Load(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			// The restarted server's share is gone: a new session works.
			if _, err := s.Save(ctx, key, store.Record{Data: []byte("y"), Expires: exp}); err != nil {
				t.Fatalf("Save(%s) after the restart: %v", key, err)
			}
			continue
		}
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("Load(%s) still failing 5s after the server came back: %v", key, err)
			}
			clock.Advance(openFor) // the breaker opened again: let the next probe through
			time.Sleep(50 * time.Millisecond)
			i--
		}
	}
}
