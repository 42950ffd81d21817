package breaker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// clock is the tests' fake clock.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) }

var errDown = errors.New("connection refused")

func newBreaker(t *testing.T, c *clock, changes *[]string) *breaker.Breaker {
	t.Helper()
	var mu sync.Mutex
	b, err := breaker.New(breaker.Config{Failures: 3, OpenFor: 5 * time.Second, Now: c.Now,
		OnStateChange: func(from, to breaker.State) {
			mu.Lock()
			defer mu.Unlock()
			*changes = append(*changes, from.String()+">"+to.String())
		}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBreaker_opensProbesAndCloses(t *testing.T) {
	c := newClock()
	var changes []string
	b := newBreaker(t, c, &changes)
	ctx := context.Background()
	calls := 0
	fail := func(context.Context) error { calls++; return errDown }
	ok := func(context.Context) error { calls++; return nil }

	for i := range 3 {
		if err := b.Do(ctx, fail); !errors.Is(err, errDown) {
			t.Fatalf("call %d: got %v; want the store's error", i, err)
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v after 3 failures; want open", b.State())
	}
	calls = 0
	err := b.Do(ctx, ok)
	var oe *breaker.OpenError
	if !errors.As(err, &oe) || !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, errDown) || calls != 0 {
		t.Fatalf("open circuit: got %v after %d calls; want an OpenError wrapping ErrUnavailable and the cause, no call", err, calls)
	}
	if oe.RetryAfter() != 5*time.Second {
		t.Fatalf("RetryAfter = %v; want 5s", oe.RetryAfter())
	}

	c.Advance(5 * time.Second) // half-open: one probe, which fails
	if err := b.Do(ctx, fail); !errors.Is(err, errDown) || calls != 1 {
		t.Fatalf("probe: got %v, %d calls", err, calls)
	}
	if b.State() != breaker.Open {
		t.Fatalf("state %v after a failed probe; want open", b.State())
	}
	c.Advance(5 * time.Second) // the next probe succeeds
	if err := b.Do(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if b.State() != breaker.Closed {
		t.Fatalf("state %v after a good probe; want closed", b.State())
	}
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if len(changes) != len(want) {
		t.Fatalf("state changes %v; want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("state changes %v; want %v", changes, want)
		}
	}
}

func TestBreaker_oneProbeAtATime(t *testing.T) {
	c := newClock()
	var changes []string
	b := newBreaker(t, c, &changes)
	for range 3 {
		b.Do(context.Background(), func(context.Context) error { return errDown })
	}
	c.Advance(time.Minute)
	inProbe, release := make(chan struct{}), make(chan struct{})
	go b.Do(context.Background(), func(context.Context) error { close(inProbe); <-release; return nil })
	<-inProbe
	if err := b.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("second call during the probe: got %v; want ErrUnavailable", err)
	}
	close(release)
}

func TestBreaker_whatCountsAsFailure(t *testing.T) {
	c := newClock()
	var changes []string
	b := newBreaker(t, c, &changes)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range []error{store.ErrNotFound, store.ErrConflict, store.ErrInvalidKey, context.Canceled} {
		for range 5 {
			ctx := context.Background()
			if err == context.Canceled {
				ctx = canceled
			}
			b.Do(ctx, func(context.Context) error { return err })
		}
		if b.State() != breaker.Closed {
			t.Fatalf("%v opened the circuit", err)
		}
	}
	// Two failures, a success, two failures: never 3 in a row.
	for _, e := range []error{errDown, errDown, nil, errDown, errDown} {
		b.Do(context.Background(), func(context.Context) error { return e })
	}
	if b.State() != breaker.Closed {
		t.Fatal("non-consecutive failures opened the circuit")
	}
}

func TestBreaker_timeout(t *testing.T) {
	b, _ := breaker.New(breaker.Config{Timeout: 20 * time.Millisecond, Failures: 1})
	start := time.Now()
	err := b.Do(context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("got %v after %v; want a deadline error soon", err, time.Since(start))
	}
	if b.State() != breaker.Open {
		t.Fatalf("a timeout did not count as a failure: state %v", b.State())
	}
}

func TestWrap_keepsCapabilities(t *testing.T) {
	b, _ := breaker.New(breaker.Config{})
	mem, _ := memstore.New(memstore.Config{})
	defer mem.Close()
	w := breaker.Wrap(mem, b)
	if _, ok := w.(store.Toucher); !ok {
		t.Error("lost Toucher")
	}
	if _, ok := w.(store.UserIndex); !ok {
		t.Error("lost UserIndex")
	}
	if _, ok := w.(store.Notifier); !ok {
		t.Error("lost Notifier")
	}
	bare := breaker.Wrap(struct{ store.Store }{mem}, b)
	if _, ok := bare.(store.Toucher); ok {
		t.Error("a store without Touch gained Toucher")
	}
	if _, ok := bare.(store.UserIndex); ok {
		t.Error("a store without an index gained UserIndex")
	}
}

// TestWrap_conformance: a wrapped store still keeps the whole contract.
func TestWrap_conformance(t *testing.T) {
	storetest.Run(t, storetest.Options{New: func(t *testing.T, now func() time.Time) store.Store {
		mem, err := memstore.New(memstore.Config{Now: now, CleanupInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := breaker.New(breaker.Config{})
		return breaker.Wrap(mem, b)
	}})
}
