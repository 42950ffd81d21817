package nearcache_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/nearcache"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// feedControl is a store.Notifier in front of a memstore whose events it
// can drop silently (a feed lost without a word) or complete with an
// OpReset of its own.
type feedControl struct {
	store.Store
	n    store.Notifier
	drop atomic.Bool

	mu   sync.Mutex
	subs []func(store.Event)
}

func (f *feedControl) Subscribe(fn func(store.Event)) func() {
	f.mu.Lock()
	f.subs = append(f.subs, fn)
	f.mu.Unlock()
	return f.n.Subscribe(func(ev store.Event) {
		if !f.drop.Load() {
			fn(ev)
		}
	})
}

// reset reports an OpReset to every subscriber.
func (f *feedControl) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.subs {
		fn(store.Event{Op: store.OpReset})
	}
}

// memPeer is a second node's handle on a memstore: closing it leaves the
// store to the first.
type memPeer struct{ *memstore.Store }

func (memPeer) Close() error { return nil }

func newMem(t *testing.T, now func() time.Time) *memstore.Store {
	t.Helper()
	m, err := memstore.New(memstore.Config{Now: now, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func wrap(t *testing.T, s store.Store, c nearcache.Config) nearcache.Store {
	t.Helper()
	w, err := nearcache.Wrap(s, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestWrap_conformance: two nodes, each with its own near cache, over one
// memstore keep the whole contract, the concurrency tests spread over both
// (no lost update) and a change through one seen through the other.
func TestWrap_conformance(t *testing.T) {
	type made struct {
		m   *memstore.Store
		now func() time.Time
	}
	var stores sync.Map // store.Store -> made
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			m, err := memstore.New(memstore.Config{Now: now, CleanupInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			w, err := nearcache.Wrap(m, nearcache.Config{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			stores.Store(w, made{m, now})
			return w // Run closes it, and so m
		},
		Peer: func(t *testing.T, s store.Store) store.Store {
			v, _ := stores.Load(s)
			return wrap(t, memPeer{v.(made).m}, nearcache.Config{Now: v.(made).now})
		},
		FeedResets: "never: memstore's feed is in-process",
	})
}

// TestWrap_capabilities: the wrapped store has exactly the optional
// interfaces of the store it wraps.
func TestWrap_capabilities(t *testing.T) {
	m := newMem(t, nil)
	w := wrap(t, memPeer{m}, nearcache.Config{})
	if _, ok := w.(store.Toucher); !ok {
		t.Error("a memstore behind a near cache: no store.Toucher; want one")
	}
	if _, ok := w.(store.UserIndex); !ok {
		t.Error("a memstore behind a near cache: no store.UserIndex; want one")
	}
	n := wrap(t, notifierOnly{memPeer{m}}, nearcache.Config{})
	if _, ok := n.(store.Toucher); ok {
		t.Error("a store without Touch behind a near cache: a store.Toucher; want none")
	}
	if _, ok := n.(store.UserIndex); ok {
		t.Error("a store without an index behind a near cache: a store.UserIndex; want none")
	}
}

// notifierOnly hides every optional interface but store.Notifier.
type notifierOnly struct{ m memPeer }

func (o notifierOnly) Load(ctx context.Context, key string) (store.Record, error) {
	return o.m.Load(ctx, key)
}
func (o notifierOnly) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	return o.m.Save(ctx, key, rec)
}
func (o notifierOnly) Delete(ctx context.Context, key string, v uint64) error {
	return o.m.Delete(ctx, key, v)
}
func (o notifierOnly) Subscribe(fn func(store.Event)) func() { return o.m.Subscribe(fn) }
func (o notifierOnly) Close() error                          { return nil }

// feedOff is a Notifier whose feed is turned off: Subscribe returns nil.
type feedOff struct{ store.Store }

func (feedOff) Subscribe(func(store.Event)) func() { return nil }

func TestWrap_refusesStoreWithoutFeed(t *testing.T) {
	m := newMem(t, nil)
	for _, c := range []struct {
		name string
		s    store.Store
	}{
		{"not a Notifier", struct{ store.Store }{m}},
		{"feed turned off", feedOff{m}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := nearcache.Wrap(c.s, nearcache.Config{})
			if !errors.Is(err, nearcache.ErrNoFeed) || w != nil {
				t.Fatalf("Wrap: got %v, %v; want nil and an error wrapping ErrNoFeed", w, err)
			}
			if !strings.HasPrefix(err.Error(), "nearcache: ") {
				t.Errorf("Wrap's error %q: want it to start with %q", err, "nearcache: ")
			}
		})
	}
}

// TestWrap_hits: a Load after a Load, and after this node's own Save, is
// answered from memory.
func TestWrap_hits(t *testing.T) {
	w := wrap(t, memPeer{newMem(t, nil)}, nearcache.Config{})
	ctx := t.Context()
	rec := store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}
	v, err := w.Save(ctx, "k", rec)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := w.Load(ctx, "k")
		if err != nil || got.Version != v || string(got.Data) != "x" {
			t.Fatalf("Load: got %+v, %v; want version %d", got, err, v)
		}
	}
	if st := w.Stats(); st.Hits != 3 || st.Misses != 0 {
		t.Errorf("Stats after Save and 3 Loads: got %d hits, %d misses; want 3, 0 (the Save's own event keeps its copy)", st.Hits, st.Misses)
	}
}

// twoNodes returns two near-cached nodes over one memstore whose feed to
// the second, b, is controlled by f; both caches run on clk.
func twoNodes(t *testing.T, clk *testclock.Clock) (a, b nearcache.Store, f *feedControl) {
	m := newMem(t, nil)
	a = wrap(t, memPeer{m}, nearcache.Config{Now: clk.Now})
	f = &feedControl{Store: memPeer{m}, n: m}
	b = wrap(t, struct {
		store.Store
		store.Notifier
	}{memPeer{m}, f}, nearcache.Config{Now: clk.Now})
	return a, b, f
}

// TestWrap_maxAge: with b's feed silently lost, a logout on a is served
// as live by b until MaxAge (default 1 s) after b read it, and not after.
func TestWrap_maxAge(t *testing.T) {
	clk := testclock.New(time.Now())
	a, b, f := twoNodes(t, clk)
	ctx := t.Context()
	v, err := a.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	f.drop.Store(true)
	if err := a.Delete(ctx, "k", v); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second - time.Millisecond)
	if got, err := b.Load(ctx, "k"); err != nil || got.Version != v {
		t.Errorf("b.Load within MaxAge of its read, feed lost: got %+v, %v; want the stale copy (what MaxAge bounds)", got, err)
	}
	clk.Advance(time.Millisecond)
	if _, err := b.Load(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("b.Load MaxAge after its read, feed lost: got err %v; want ErrNotFound", err)
	}
}

// TestWrap_flushOnReset: an OpReset drops everything b holds, so a change
// whose event was lost is seen at once.
func TestWrap_flushOnReset(t *testing.T) {
	clk := testclock.New(time.Now())
	a, b, f := twoNodes(t, clk)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	v, err := a.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Save(ctx, "other", store.Record{Data: []byte("y"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"k", "other"} {
		if _, err := b.Load(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	f.drop.Store(true)
	v2, err := a.Save(ctx, "k", store.Record{Data: []byte("z"), Version: v, Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Load(ctx, "k"); got.Version != v {
		t.Fatalf("b.Load with its feed dropping events: got version %d; want the stale %d (the test's premise)", got.Version, v)
	}
	f.drop.Store(false)
	f.reset()
	st := b.Stats()
	if st.Flushes != 1 || st.Entries != 0 {
		t.Errorf("b's Stats after an OpReset: got %d flushes, %d entries; want 1, 0", st.Flushes, st.Entries)
	}
	if got, err := b.Load(ctx, "k"); err != nil || got.Version != v2 {
		t.Errorf("b.Load after an OpReset: got version %d, err %v; want %d", got.Version, err, v2)
	}
}

// liveControl is feedControl that also implements store.LiveFeed, with
// the answer the test sets.
type liveControl struct {
	*feedControl
	down atomic.Bool
}

func (l *liveControl) FeedLive() bool { return !l.down.Load() }

// TestWrap_liveFeed: over a store.LiveFeed, b serves nothing from its
// cache and caches nothing while the feed is not live, even a copy it
// holds from before (which a feed that stalled without a word would keep
// for MaxAge), and caches again once the feed is live.
func TestWrap_liveFeed(t *testing.T) {
	clk := testclock.New(time.Now())
	m := newMem(t, nil)
	a := wrap(t, memPeer{m}, nearcache.Config{Now: clk.Now})
	l := &liveControl{feedControl: &feedControl{Store: memPeer{m}, n: m}}
	b := wrap(t, struct {
		store.Store
		store.Notifier
		store.LiveFeed
	}{memPeer{m}, l, l}, nearcache.Config{Now: clk.Now})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	v, err := a.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "k"); err != nil || b.Stats().Hits != 1 {
		t.Fatalf("b.Load twice with a live feed: err %v, stats %+v; want a hit (the test's premise)", err, b.Stats())
	}
	// The feed stalls: events stop, and the store says so (no OpReset yet).
	l.drop.Store(true)
	l.down.Store(true)
	if err := a.Delete(ctx, "k", v); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("b.Load of a deleted record with the feed not live: got err %v; want ErrNotFound (the cache is bypassed)", err)
	}
	v2, err := b.Save(ctx, "k", store.Record{Data: []byte("y"), Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Entries != 0 || st.Bypassed != 2 {
		t.Errorf("b's Stats after a Save and Loads with the feed not live: %d entries, %d bypassed; want 0, 2", st.Entries, st.Bypassed)
	}
	// A change b's stalled feed never reports; then the feed is back.
	v3, err := a.Save(ctx, "k", store.Record{Data: []byte("z"), Version: v2, Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	l.drop.Store(false)
	l.down.Store(false)
	l.reset()
	for range 2 {
		if got, err := b.Load(ctx, "k"); err != nil || got.Version != v3 {
			t.Errorf("b.Load with the feed live again: got version %d, err %v; want %d", got.Version, err, v3)
		}
	}
	if st := b.Stats(); st.Hits != 2 || st.Entries != 1 {
		t.Errorf("b's Stats with the feed live again: %d hits, %d entries; want 2 (one before the stall, one after), 1", st.Hits, st.Entries)
	}
}
