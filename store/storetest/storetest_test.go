package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// TestMapStore proves that the suite passes a correct store.
func TestMapStore(t *testing.T) {
	t.Parallel()
	Run(t, Options{New: func(t *testing.T, now func() time.Time) store.Store {
		return newMapStore(now)
	}})
}

// TestMapStorePeer runs the suite with a peer: a second handle on the same
// map, so that the concurrency tests spread over two stores and the
// Coherence test runs.
func TestMapStorePeer(t *testing.T) {
	t.Parallel()
	Run(t, Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			return newMapStore(now)
		},
		Peer: func(t *testing.T, s store.Store) store.Store {
			return mapPeer{s.(*mapStore)}
		},
		FeedResets: "never: the feed is in-process",
	})
}

// mapPeer is a second handle on a mapStore's data: closing it leaves the
// data to the first.
type mapPeer struct{ *mapStore }

func (mapPeer) Close() error { return nil }

// TestMapStoreServerClock runs the suite's real-time expiry path against a
// correct store that ignores the clock it is given.
func TestMapStoreServerClock(t *testing.T) {
	t.Parallel()
	Run(t, Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			return newMapStore(time.Now)
		},
		ServerClock: true,
	})
}

// TestBareStore proves that the optional tests skip for a store with none of
// the optional interfaces, and that the rest pass.
func TestBareStore(t *testing.T) {
	t.Parallel()
	Run(t, Options{New: func(t *testing.T, now func() time.Time) store.Store {
		return bareStore{newMapStore(now)}
	}})
}

// TestConcurrentEntriesDetectsLostUpdates proves that the concurrency check
// fails against a last-writer-wins store.
func TestConcurrentEntriesDetectsLostUpdates(t *testing.T) {
	t.Parallel()
	const n = 64
	s := newLWWStore(newMapStore(time.Now), n)
	defer s.Close()
	err := checkConcurrentEntries(t.Context(), []store.Store{s}, "k", time.Now().Add(time.Hour), n)
	if err == nil {
		t.Fatalf("checkConcurrentEntries on a last-writer-wins store: got nil; want an error reporting lost updates")
	}
	t.Logf("reported: %v", err)
}

// TestConcurrentCounterDetectsLostUpdates proves that the counter check
// fails against a last-writer-wins store.
func TestConcurrentCounterDetectsLostUpdates(t *testing.T) {
	t.Parallel()
	const n = 64
	s := newLWWStore(newMapStore(time.Now), n)
	defer s.Close()
	err := checkConcurrentCounter(t.Context(), []store.Store{s}, "k", time.Now().Add(time.Hour), n, 20)
	if err == nil {
		t.Fatalf("checkConcurrentCounter on a last-writer-wins store: got nil; want an error reporting lost updates")
	}
	t.Logf("reported: %v", err)
}

// TestConcurrentEntriesGivesUp proves that the check ends, with an error,
// against a store whose Save always conflicts.
func TestConcurrentEntriesGivesUp(t *testing.T) {
	t.Parallel()
	s := conflictStore{newMapStore(time.Now)}
	defer s.Close()
	err := checkConcurrentEntries(t.Context(), []store.Store{s}, "k", time.Now().Add(time.Hour), 64)
	if err == nil {
		t.Fatalf("checkConcurrentEntries on a store that always conflicts: got nil; want an error")
	}
	t.Logf("reported: %v", err)
}

// mapStore is a minimal correct store: one mutex over a map. Versions come
// from one counter, so a key never gets a version it had before. Events are
// delivered under the mutex, so none arrives after unsubscribe returns.
type mapStore struct {
	now func() time.Time

	mu      sync.Mutex
	recs    map[string]store.Record
	last    uint64
	closed  bool
	subs    map[int]func(store.Event)
	nextSub int
}

func newMapStore(now func() time.Time) *mapStore {
	return &mapStore{now: now, recs: make(map[string]store.Record), subs: make(map[int]func(store.Event))}
}

// begin checks the key and the store's state and locks the store.
func (s *mapStore) begin(ctx context.Context, key string) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	return s.lock(ctx)
}

func (s *mapStore) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// live returns the live record under key. Called with s.mu held.
func (s *mapStore) live(key string) (store.Record, bool) {
	r, ok := s.recs[key]
	if ok && !r.Expires.After(s.now()) {
		delete(s.recs, key)
		ok = false
	}
	return r, ok
}

func (s *mapStore) emit(op store.Op, key string, v uint64) {
	for _, fn := range s.subs {
		fn(store.Event{Op: op, Key: key, Version: v})
	}
}

func (s *mapStore) Load(ctx context.Context, key string) (store.Record, error) {
	if err := s.begin(ctx, key); err != nil {
		return store.Record{}, err
	}
	defer s.mu.Unlock()
	r, ok := s.live(key)
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	return r, nil
}

func (s *mapStore) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	if err := s.begin(ctx, key); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	cur, ok := s.live(key)
	if (rec.Version == 0 && ok) || (rec.Version != 0 && (!ok || cur.Version != rec.Version)) {
		return 0, store.ErrConflict
	}
	s.last++
	rec.Version = s.last
	s.recs[key] = rec
	s.emit(store.OpSave, key, rec.Version)
	return rec.Version, nil
}

func (s *mapStore) Delete(ctx context.Context, key string, version uint64) error {
	if err := s.begin(ctx, key); err != nil {
		return err
	}
	defer s.mu.Unlock()
	cur, ok := s.live(key)
	if version != 0 && (!ok || cur.Version != version) {
		return store.ErrConflict
	}
	if ok {
		delete(s.recs, key)
		s.emit(store.OpDelete, key, cur.Version)
	}
	return nil
}

func (s *mapStore) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	if err := s.begin(ctx, key); err != nil {
		return err
	}
	defer s.mu.Unlock()
	cur, ok := s.live(key)
	if !ok {
		return store.ErrNotFound
	}
	if version != 0 && version != cur.Version {
		return store.ErrConflict
	}
	cur.Expires = expires
	s.recs[key] = cur
	s.emit(store.OpTouch, key, cur.Version)
	return nil
}

func (s *mapStore) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []store.Entry
	for k := range s.recs {
		if r, ok := s.live(k); ok && r.UserID == userID {
			out = append(out, store.Entry{Key: k, Record: r})
		}
	}
	return out, nil
}

func (s *mapStore) DeleteUser(ctx context.Context, userID string) (int, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	n := 0
	for k := range s.recs {
		if r, ok := s.live(k); ok && r.UserID == userID {
			delete(s.recs, k)
			s.emit(store.OpDelete, k, r.Version)
			n++
		}
	}
	return n, nil
}

func (s *mapStore) Subscribe(fn func(store.Event)) (unsubscribe func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, id)
	}
}

func (s *mapStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// bareStore hides the optional interfaces of the store it wraps.
type bareStore struct{ s store.Store }

func (b bareStore) Load(ctx context.Context, key string) (store.Record, error) {
	return b.s.Load(ctx, key)
}

func (b bareStore) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	return b.s.Save(ctx, key, rec)
}

func (b bareStore) Delete(ctx context.Context, key string, version uint64) error {
	return b.s.Delete(ctx, key, version)
}

func (b bareStore) Close() error { return b.s.Close() }

// conflictStore is a broken store whose Save always conflicts.
type conflictStore struct{ inner *mapStore }

func (c conflictStore) Load(ctx context.Context, key string) (store.Record, error) {
	return c.inner.Load(ctx, key)
}

func (c conflictStore) Save(context.Context, string, store.Record) (uint64, error) {
	return 0, store.ErrConflict
}

func (c conflictStore) Delete(ctx context.Context, key string, version uint64) error {
	return c.inner.Delete(ctx, key, version)
}

func (c conflictStore) Close() error { return c.inner.Close() }

// lwwStore is a broken, last-writer-wins store: Save ignores the version and
// always overwrites. Its first n Loads wait for each other, so that the first
// round of n writers all read the same version and all but one update is
// lost for certain.
type lwwStore struct {
	inner *mapStore
	mu    sync.Mutex // serializes Save's read-modify-write of inner

	bmu     sync.Mutex
	waiting int
	n       int
	release chan struct{}
}

func newLWWStore(inner *mapStore, n int) *lwwStore {
	return &lwwStore{inner: inner, n: n, release: make(chan struct{})}
}

// barrier blocks the first n callers until all n have arrived.
func (s *lwwStore) barrier() error {
	s.bmu.Lock()
	s.waiting++
	w := s.waiting
	if w == s.n {
		close(s.release)
	}
	s.bmu.Unlock()
	if w > s.n {
		return nil
	}
	select {
	case <-s.release:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("lwwStore: barrier: only %d of %d loaders arrived", w, s.n)
	}
}

func (s *lwwStore) Load(ctx context.Context, key string) (store.Record, error) {
	r, err := s.inner.Load(ctx, key)
	if berr := s.barrier(); berr != nil {
		return store.Record{}, berr
	}
	return r, err
}

func (s *lwwStore) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.inner.Load(ctx, key)
	switch {
	case err == nil:
		rec.Version = cur.Version
	case errors.Is(err, store.ErrNotFound):
		rec.Version = 0
	default:
		return 0, err
	}
	return s.inner.Save(ctx, key, rec)
}

func (s *lwwStore) Delete(ctx context.Context, key string, version uint64) error {
	return s.inner.Delete(ctx, key, 0)
}

func (s *lwwStore) Close() error { return s.inner.Close() }
