package nearcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// ErrNoFeed is returned, wrapped with the reason, by Wrap for a store that
// cannot tell about its changes: not a store.Notifier, or one whose change
// feed its configuration turned off. A near cache over such a store would
// serve deleted sessions for as long as it holds them, so there is none.
var ErrNoFeed = errors.New("nearcache: the store has no change feed")

// Store is a store with a near cache in front of it, as Wrap returns it.
// Its dynamic value also implements exactly those of store.Toucher and
// store.UserIndex that the wrapped store implements, so give it to the
// session Manager as it is.
type Store interface {
	store.Store
	// Subscribe passes through to the wrapped store's change feed.
	store.Notifier
	// Stats returns the cache's counters (see Cache.Stats).
	Stats() Stats
	// NearCacheStats returns Stats and true, for
	// sessionmetrics.WatchNearCache.
	Reporter
}

// Wrap returns s behind a near cache configured by c: Load answers from
// this process's memory when it can, and the cache follows s's change feed
// (store.Notifier), so that a change made anywhere, by any process using
// the same data, drops the cached copy. It refuses, with an error wrapping
// ErrNoFeed, a store that is not a store.Notifier or whose Subscribe
// returns nil (its feed is turned off), and returns the errors of New for
// an invalid c.
//
// What the cache does, per operation of the returned store:
//   - Load: a copy younger than c.MaxAge and not expired is returned
//     without asking s; otherwise s is asked and what it returns is cached,
//     unless a change to the key was reported (or the feed was reset) since
//     the request was sent (see Cache.Begin and Cache.Insert). A missing
//     record is not cached.
//   - Save: the key's copy is dropped before the write is sent; a
//     successful write caches the saved record with its new version, a
//     failed one (a conflict, an outage) drops the key again. A stale copy
//     thus costs a conflict, after which the caller's reload reads s: never
//     a lost update, since s compares versions.
//   - Delete and DeleteUser drop the keys they delete before and after the
//     call (DeleteUser lists the user's records first, one more call to s).
//   - Touch moves the cached copy's expiry once s has moved the record's.
//   - ListUser passes through; its records are not cached.
//
// A store that implements store.LiveFeed (natsstore) is asked on every
// Load and before every insert whether its feed is live: while it is not,
// Load neither answers from the cache nor caches what s returns (such
// Loads are counted in Stats.Bypassed), and a Save caches nothing, so that
// a feed that stalled or broke costs store reads, not stale ones.
//
// Events of the feed: an OpSave of the version cached, or of the version
// this store's own Save wrote, keeps the copy (a Save's own event may come
// before or after the Save returns: either way its result stays cached);
// every other OpSave, and every OpTouch, OpDelete, OpExpire and OpEvict,
// drops the key's copy; OpReset drops everything. A
// copy can thus be stale for the feed's delay (the time from a change to
// its event), at most c.MaxAge if the feed is lost without an OpReset
// (for a store.LiveFeed, at most the time it takes to notice the loss).
// The store measures that delay on its own Saves, from the Save's return
// to its event (0 when the event came first; Cache.ObserveDelay, reported
// in Stats.Delay): the time another node's copy may stay stale after a
// write acknowledged here.
//
// The returned store is safe for concurrent use. Close unsubscribes from
// the feed and closes s; on an error, s is left open, the caller's.
//
// The result is built as store.Intercept builds its own, of anonymous
// structs that embed the optional interfaces s has; Intercept itself does
// not fit, as its interceptor sees neither the key nor the record, and a
// cache must answer without calling s.
func Wrap(s store.Store, c Config) (Store, error) {
	n, ok := s.(store.Notifier)
	if !ok {
		return nil, fmt.Errorf("%w: %T does not report its changes (it is no store.Notifier)", ErrNoFeed, s)
	}
	cache, err := New(c)
	if err != nil {
		return nil, err
	}
	w := &cached{inner: s, feed: n, cache: cache, own: make(map[string]write), flights: make(map[string]*flight)}
	w.live = func() bool { return true }
	if l, ok := s.(store.LiveFeed); ok {
		w.live = l.FeedLive
	}
	w.index, _ = s.(store.UserIndex)
	unsub := n.Subscribe(w.event)
	if unsub == nil {
		return nil, fmt.Errorf("%w: %T's change feed is turned off by its configuration (pgstore: set Config.Notify)", ErrNoFeed, s)
	}
	w.unsub = unsub
	t, isT := s.(store.Toucher)
	_, isU := s.(store.UserIndex)
	wt, wu := cachedToucher{w, t}, cachedIndex{w}
	switch {
	case isT && isU:
		return struct {
			Store
			store.Toucher
			store.UserIndex
		}{w, wt, wu}, nil
	case isT:
		return struct {
			Store
			store.Toucher
		}{w, wt}, nil
	case isU:
		return struct {
			Store
			store.UserIndex
		}{w, wu}, nil
	}
	return w, nil
}

// cached is the store Wrap returns, without its optional interfaces.
type cached struct {
	inner store.Store
	feed  store.Notifier
	index store.UserIndex // nil if inner has none
	cache *Cache
	live  func() bool // the store's FeedLive, or always true
	unsub func()
	// bypassed counts the Loads sent to the store because the feed was
	// not live.
	bypassed atomic.Uint64
	closed   atomic.Bool
	once     sync.Once

	// own and flights let a Save keep its result cached although its own
	// event may come before or after Save returns (see event). ownMu
	// guards both, and is held while an event is handled.
	ownMu sync.Mutex
	// own holds, per key, the version of this store's last successful
	// Save whose event has not come yet, and when the Save returned.
	own map[string]write
	// flights holds the keys that this store's Saves are writing.
	flights map[string]*flight
}

// maxOwn bounds cached.own, which holds an entry per key saved until the
// key's next event.
const maxOwn = 1 << 16

// write is a version this store wrote, and when its Save returned.
type write struct {
	v   uint64
	ack time.Time
}

// flight is the Saves of one key in progress, and the events of the key
// reported meanwhile: each OpSave's version with a token taken right after
// the event dropped the key, under which the Save of that version may
// cache its result (nothing that committed before the event can be read
// after it). A feed may report one key's changes out of order (memstore
// does, when two goroutines change it): so the token of version v is used
// only if no other event of the key came meanwhile but OpSaves of lower
// versions (versions grow in every store with a feed here).
type flight struct {
	n     int
	seen  map[uint64]Token
	other bool   // an event other than an OpSave came
	top   uint64 // the highest version of an OpSave that came
}

// takeOff records a Save of key in progress.
func (w *cached) takeOff(key string) {
	w.ownMu.Lock()
	defer w.ownMu.Unlock()
	f := w.flights[key]
	if f == nil {
		f = &flight{seen: make(map[uint64]Token)}
		w.flights[key] = f
	}
	f.n++
}

// land ends a Save of key that wrote version v (0: failed) and returns
// the token under which to cache its result: t, or, if v's event came
// while the Save was in flight, the token taken then. If it has not come,
// it will find v in own.
func (w *cached) land(key string, v uint64, t Token) Token {
	w.ownMu.Lock()
	defer w.ownMu.Unlock()
	f := w.flights[key]
	if f.n--; f.n == 0 {
		delete(w.flights, key)
	}
	if v == 0 {
		return t
	}
	if tv, ok := f.seen[v]; ok {
		w.cache.ObserveDelay(0) // the event came before the answer
		if !f.other && f.top == v {
			return tv
		}
		return t
	}
	if len(w.own) >= maxOwn {
		// Events stopped coming without an OpReset: forgetting costs
		// only the next event's keeping of a copy.
		clear(w.own)
	}
	w.own[key] = write{v, time.Now()}
	return t
}

func (w *cached) Load(ctx context.Context, key string) (store.Record, error) {
	if !w.live() {
		w.bypassed.Add(1)
		return w.inner.Load(ctx, key)
	}
	if !w.closed.Load() {
		if rec, ok := w.cache.Get(key); ok {
			return rec, nil
		}
	}
	t := w.cache.Begin(key)
	rec, err := w.inner.Load(ctx, key)
	// A feed that went down since Begin flushed the cache (an OpReset),
	// which refuses the insert; one that is down now may not have yet.
	if err == nil && w.live() {
		w.cache.Insert(key, rec, t)
	}
	return rec, err
}

func (w *cached) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	w.cache.Invalidate(key)
	t := w.cache.Begin(key)
	w.takeOff(key)
	v, err := w.inner.Save(ctx, key, rec)
	if err != nil {
		w.land(key, 0, t)
		w.cache.Invalidate(key)
		return v, err
	}
	t = w.land(key, v, t)
	rec.Version = v
	if w.live() {
		w.cache.Insert(key, rec, t)
	}
	return v, nil
}

func (w *cached) Delete(ctx context.Context, key string, version uint64) error {
	w.cache.Invalidate(key)
	err := w.inner.Delete(ctx, key, version)
	w.cache.Invalidate(key)
	return err
}

// Subscribe implements store.Notifier: it subscribes fn to the wrapped
// store's feed.
func (w *cached) Subscribe(fn func(store.Event)) (unsubscribe func()) {
	return w.feed.Subscribe(fn)
}

func (w *cached) Stats() Stats {
	st := w.cache.Stats()
	st.Bypassed = w.bypassed.Load()
	return st
}

func (w *cached) NearCacheStats() (Stats, bool) { return w.Stats(), true }

// Close unsubscribes from the feed, drops the cache and closes the wrapped
// store. A second Close calls the wrapped store's Close again, which
// returns what it returns.
func (w *cached) Close() error {
	w.once.Do(func() {
		w.closed.Store(true)
		w.unsub()
		w.cache.Flush()
	})
	return w.inner.Close()
}

// event follows the feed. An event of a key drops the key's copy, unless
// it is the OpSave of this store's own last write, whose Save cached (or
// will cache) exactly that version. An OpSave that comes while this store
// is saving the key leaves a token for that Save (see flight).
func (w *cached) event(ev store.Event) {
	if ev.Op == store.OpReset {
		w.ownMu.Lock()
		clear(w.own)
		w.ownMu.Unlock()
		w.cache.Flush()
		return
	}
	if ev.Key == "" {
		return
	}
	w.ownMu.Lock()
	defer w.ownMu.Unlock()
	mine, ok := w.own[ev.Key]
	delete(w.own, ev.Key)
	if ok && ev.Op == store.OpSave && ev.Version == mine.v {
		w.cache.ObserveDelay(time.Since(mine.ack))
		return
	}
	if rec, ok := w.cache.Peek(ev.Key); ok && ev.Op == store.OpSave && ev.Version == rec.Version {
		return // the copy is of that very version (read after it was written)
	}
	w.cache.Invalidate(ev.Key)
	if f := w.flights[ev.Key]; f != nil {
		if ev.Op != store.OpSave {
			f.other = true
			return
		}
		f.seen[ev.Version] = w.cache.Begin(ev.Key)
		f.top = max(f.top, ev.Version)
	}
}

type cachedToucher struct {
	w *cached
	t store.Toucher
}

func (c cachedToucher) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	t := c.w.cache.Begin(key)
	err := c.t.Touch(ctx, key, version, expires)
	if err != nil || version == 0 || !c.w.cache.Touch(key, version, expires, t) {
		c.w.cache.Invalidate(key)
	}
	return err
}

type cachedIndex struct{ w *cached }

func (c cachedIndex) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	return c.w.index.ListUser(ctx, userID)
}

// DeleteUser lists the user's records, drops their copies, deletes them
// and drops the copies again. A record bound to the user after the list
// is dropped by its event.
func (c cachedIndex) DeleteUser(ctx context.Context, userID string) (int, error) {
	es, err := c.w.index.ListUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	for _, e := range es {
		c.w.cache.Invalidate(e.Key)
	}
	n, err := c.w.index.DeleteUser(ctx, userID)
	for _, e := range es {
		c.w.cache.Invalidate(e.Key)
	}
	return n, err
}
