package memstore

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Defaults and limits of Config.
const (
	DefaultShards          = 64
	MaxShards              = 4096
	DefaultMaxEntries      = 1_000_000
	DefaultCleanupInterval = time.Minute
)

// sweepBatch is the most records the sweep removes under one shard lock.
const sweepBatch = 128

// ErrTooLarge is returned by Save for a record whose size
// (len(key)+len(Data)+len(UserID)) exceeds Config.MaxBytes. It wraps
// store.ErrTooLarge.
var ErrTooLarge = fmt.Errorf("memstore: record larger than MaxBytes: %w", store.ErrTooLarge)

var (
	errClosed       = fmt.Errorf("memstore: %w", store.ErrClosed)
	errZeroExpires  = errors.New("memstore: record has a zero Expires")
	errTouchExpires = errors.New("memstore: Touch with a zero expiry")
)

var (
	_ store.Store     = (*Store)(nil)
	_ store.Toucher   = (*Store)(nil)
	_ store.UserIndex = (*Store)(nil)
	_ store.Notifier  = (*Store)(nil)
)

// Config configures a Store. The zero value is ready to use: every zero field
// means its documented default.
type Config struct {
	// Shards is the number of lock shards, rounded up to a power of two.
	// Zero means 64; it must not be negative nor above 4096.
	Shards int

	// MaxEntries bounds the number of stored records. Zero means 1_000_000;
	// a negative value means no bound.
	MaxEntries int

	// MaxBytes bounds the sum of len(key)+len(Data)+len(UserID) over all
	// records. Zero or negative means no byte bound.
	MaxBytes int64

	// CleanupInterval is how often expired records are swept. Zero means one
	// minute; a negative value disables the background sweep (expired
	// records are still invisible, and are removed when a write meets them
	// or when room is needed).
	CleanupInterval time.Duration

	// Now is the clock that decides expiry. Nil means time.Now.
	Now func() time.Time
}

// Stats are the store's counters. Entries and Bytes describe the records
// held, including expired ones not yet removed; Evictions and Expirations
// count removals since New.
type Stats struct {
	Entries     uint64
	Bytes       uint64 // sum of len(key)+len(Data)+len(UserID)
	Evictions   uint64
	Expirations uint64
}

// Store is an in-process, sharded session store. Create it with New.
type Store struct {
	shards     []shard
	mask       uint64
	seed       maphash.Seed
	now        func() time.Time
	maxEntries int64 // > 0, or 0 for no bound
	maxBytes   int64 // > 0, or 0 for no bound

	// Admission counters, kept only for bounded dimensions. They count the
	// records stored plus slots reserved by Saves in progress.
	live  atomic.Int64
	bytes atomic.Int64

	evictions   atomic.Uint64
	expirations atomic.Uint64

	subMu sync.Mutex
	subs  atomic.Pointer[[]*subscriber]

	closed atomic.Bool
	stop   chan struct{}
	done   chan struct{} // closed when the sweep goroutine has ended
}

type subscriber struct{ fn func(store.Event) }

type shard struct {
	mu    sync.RWMutex
	m     map[string]*entry
	h     expHeap
	users map[string]map[string]struct{}
	ver   uint64       // last version issued in this shard
	count atomic.Int64 // len(m), written under mu, read by Stats
	size  atomic.Int64 // sum of entry sizes, written under mu
	_     [64]byte     // keep neighbouring shards off this cache line
}

type entry struct {
	key     string
	data    []byte
	user    string
	expires time.Time // without monotonic reading
	version uint64
	size    int64
	index   int // position in the shard heap
}

// New returns a Store configured by cfg and starts its background sweep
// unless cfg.CleanupInterval is negative. It fails only on an invalid
// cfg.Shards.
func New(cfg Config) (*Store, error) {
	if cfg.Shards < 0 {
		return nil, fmt.Errorf("memstore: Shards is %d, must not be negative", cfg.Shards)
	}
	if cfg.Shards > MaxShards {
		return nil, fmt.Errorf("memstore: Shards is %d, more than the maximum %d", cfg.Shards, MaxShards)
	}
	n := cfg.Shards
	if n == 0 {
		n = DefaultShards
	}
	p := 1
	for p < n {
		p <<= 1
	}
	s := &Store{
		shards: make([]shard, p),
		mask:   uint64(p - 1),
		seed:   maphash.MakeSeed(),
		now:    cfg.Now,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch {
	case cfg.MaxEntries == 0:
		s.maxEntries = DefaultMaxEntries
	case cfg.MaxEntries > 0:
		s.maxEntries = int64(cfg.MaxEntries)
	}
	if cfg.MaxBytes > 0 {
		s.maxBytes = cfg.MaxBytes
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*entry)
		s.shards[i].users = make(map[string]map[string]struct{})
	}
	interval := cfg.CleanupInterval
	if interval == 0 {
		interval = DefaultCleanupInterval
	}
	if interval > 0 {
		go s.run(interval)
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Store) shardFor(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)&s.mask]
}

// check validates key, then the store's and the context's state.
func (s *Store) check(ctx context.Context, key string) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	return s.checkState(ctx)
}

func (s *Store) checkState(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// Load returns the record stored under key, or store.ErrNotFound if there is
// none or it has expired. It does not allocate. The returned Data is the
// stored slice, shared with other callers: treat it as read-only.
func (s *Store) Load(ctx context.Context, key string) (store.Record, error) {
	if err := s.check(ctx, key); err != nil {
		return store.Record{}, err
	}
	sh := s.shardFor(key)
	sh.mu.RLock()
	e := sh.m[key]
	if e == nil {
		sh.mu.RUnlock()
		return store.Record{}, store.ErrNotFound
	}
	rec := store.Record{Data: e.data, Version: e.version, Expires: e.expires, UserID: e.user}
	sh.mu.RUnlock()
	// The clock is read outside the lock, and only on a hit.
	if !rec.Expires.After(s.now()) {
		return store.Record{}, store.ErrNotFound
	}
	return rec, nil
}

// Save writes rec under key if the stored version equals rec.Version (0: no
// live record), and returns the new version; otherwise it returns
// store.ErrConflict. rec.Expires must be set. Save copies rec.Data. Saving a
// new key into a full store evicts the soonest-to-expire record (see the
// package documentation); a record larger than MaxBytes is rejected with
// ErrTooLarge.
func (s *Store) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	if err := s.check(ctx, key); err != nil {
		return 0, err
	}
	if rec.Expires.IsZero() {
		return 0, errZeroExpires
	}
	size := int64(len(key) + len(rec.Data) + len(rec.UserID))
	if s.maxBytes > 0 && size > s.maxBytes {
		return 0, fmt.Errorf("%w: %d bytes, MaxBytes is %d", ErrTooLarge, size, s.maxBytes)
	}
	var data []byte
	if len(rec.Data) > 0 {
		data = append(make([]byte, 0, len(rec.Data)), rec.Data...)
	}
	expires := rec.Expires.Round(0)

	sh := s.shardFor(key)
	var b batch
	b.init(s)
	for {
		now := s.now()
		sh.mu.Lock()
		e := sh.m[key]
		if e != nil && !e.expires.After(now) {
			s.dropLocked(sh, e, store.OpExpire, &b)
			e = nil
		}
		var cur uint64
		if e != nil {
			cur = e.version
		}
		if rec.Version != cur {
			sh.mu.Unlock()
			b.finish(s)
			return 0, store.ErrConflict
		}
		dE, dB := int64(1), size
		if e != nil {
			dE, dB = 0, size-e.size
		}
		if !s.admitLocked(sh, e, dE, dB, now, &b) {
			// No room can be made in this shard: free some elsewhere,
			// keeping it reserved, and try again.
			sh.mu.Unlock()
			b.flush(s)
			if !s.evictOther(sh, &b) {
				// Every byte is held by other Saves in progress. Give
				// back what this one holds, so that two of them cannot
				// wait for each other, and let them finish.
				b.release(s)
				runtime.Gosched()
			}
			if err := s.checkState(ctx); err != nil {
				b.finish(s)
				return 0, err
			}
			continue
		}
		b.r.n -= dE
		b.r.b -= dB
		sh.ver++
		v := sh.ver
		if e == nil {
			e = &entry{key: strings.Clone(key), version: v}
			e.set(data, rec.UserID, expires, size)
			sh.insert(e)
		} else {
			sh.update(e, data, rec.UserID, expires, size, v)
		}
		sh.mu.Unlock()
		b.add(store.Event{Op: store.OpSave, Key: e.key, Version: v})
		b.finish(s)
		return v, nil
	}
}

// admitLocked makes room for dE more records and dB more bytes in b.r,
// reserving free capacity or removing records of sh other than self (expired
// ones first, then the soonest to expire). It reports false if sh has no
// record left to remove.
func (s *Store) admitLocked(sh *shard, self *entry, dE, dB int64, now time.Time, b *batch) bool {
	for !s.reserve(&b.r, dE, dB) {
		v := sh.h.minExcept(self)
		if v == nil {
			return false
		}
		op := store.OpEvict
		if !v.expires.After(now) {
			op = store.OpExpire
		}
		s.dropLocked(sh, v, op, b)
	}
	return true
}

// evictOther removes the soonest-to-expire record of a shard other than
// skip, locking one shard at a time, and keeps its room in b.r. It reports
// whether it found one.
func (s *Store) evictOther(skip *shard, b *batch) bool {
	start := 0
	for i := range s.shards {
		if &s.shards[i] == skip {
			start = i + 1
			break
		}
	}
	for j := range s.shards {
		sh := &s.shards[(start+j)&int(s.mask)]
		if sh == skip {
			continue
		}
		now := s.now()
		sh.mu.Lock()
		if v := sh.h.minExcept(nil); v != nil {
			op := store.OpEvict
			if !v.expires.After(now) {
				op = store.OpExpire
			}
			s.dropLocked(sh, v, op, b)
			sh.mu.Unlock()
			b.flush(s)
			return true
		}
		sh.mu.Unlock()
	}
	return false
}

// Delete removes the record under key. With version 0 it is unconditional
// and an absent key is not an error; with version > 0 it returns
// store.ErrConflict unless that version is the one stored.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := s.check(ctx, key); err != nil {
		return err
	}
	now := s.now()
	sh := s.shardFor(key)
	var b batch
	b.init(s)
	sh.mu.Lock()
	e := sh.m[key]
	if e != nil && !e.expires.After(now) {
		s.dropLocked(sh, e, store.OpExpire, &b)
		e = nil
	}
	var err error
	switch {
	case e == nil:
		if version != 0 {
			err = store.ErrConflict
		}
	case version != 0 && version != e.version:
		err = store.ErrConflict
	default:
		s.dropLocked(sh, e, store.OpDelete, &b)
	}
	sh.mu.Unlock()
	b.finish(s)
	return err
}

// Touch sets the expiry of the live record under key without changing its
// version or data. It returns store.ErrNotFound if there is none.
func (s *Store) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	if err := s.check(ctx, key); err != nil {
		return err
	}
	if expires.IsZero() {
		return errTouchExpires
	}
	expires = expires.Round(0)
	now := s.now()
	sh := s.shardFor(key)
	var b batch
	b.init(s)
	sh.mu.Lock()
	e := sh.m[key]
	if e != nil && !e.expires.After(now) {
		s.dropLocked(sh, e, store.OpExpire, &b)
		e = nil
	}
	var err error
	switch {
	case e == nil:
		err = store.ErrNotFound
	case version != 0 && version != e.version:
		err = store.ErrConflict
	default:
		e.expires = expires
		heap.Fix(&sh.h, e.index)
		b.add(store.Event{Op: store.OpTouch, Key: e.key, Version: e.version})
	}
	sh.mu.Unlock()
	b.finish(s)
	return err
}

// ListUser returns copies of the live records bound to userID. Their Data
// is shared with the store: treat it as read-only. The empty userID binds
// nothing and has no records.
func (s *Store) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	if err := s.checkState(ctx); err != nil {
		return nil, err
	}
	if userID == "" {
		return nil, nil
	}
	var out []store.Entry
	for i := range s.shards {
		sh := &s.shards[i]
		now := s.now()
		sh.mu.RLock()
		for k := range sh.users[userID] {
			e := sh.m[k]
			if e == nil || !e.expires.After(now) {
				continue
			}
			out = append(out, store.Entry{Key: e.key, Record: store.Record{
				Data: e.data, Version: e.version, Expires: e.expires, UserID: e.user,
			}})
		}
		sh.mu.RUnlock()
	}
	return out, nil
}

// DeleteUser deletes every record bound to userID, reporting an OpDelete
// event for each live one, and returns how many live records it deleted.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	if err := s.checkState(ctx); err != nil {
		return 0, err
	}
	if userID == "" {
		return 0, nil
	}
	n := 0
	var b batch
	b.init(s)
	for i := range s.shards {
		sh := &s.shards[i]
		now := s.now()
		sh.mu.Lock()
		for k := range sh.users[userID] {
			e := sh.m[k]
			if e.expires.After(now) {
				s.dropLocked(sh, e, store.OpDelete, &b)
				n++
			} else {
				s.dropLocked(sh, e, store.OpExpire, &b)
			}
		}
		sh.mu.Unlock()
		b.flush(s)
	}
	b.finish(s)
	return n, nil
}

// Subscribe calls fn for every change until the returned function is
// called. Events are exact (see the package documentation). fn runs in the
// goroutine that made the change, after the store's locks are released; it
// must not block and must not call the store. After Close, Subscribe
// registers nothing.
func (s *Store) Subscribe(fn func(store.Event)) (unsubscribe func()) {
	if fn == nil || s.closed.Load() {
		return func() {}
	}
	sub := &subscriber{fn: fn}
	s.subMu.Lock()
	var cur []*subscriber
	if p := s.subs.Load(); p != nil {
		cur = *p
	}
	next := make([]*subscriber, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, sub)
	s.subs.Store(&next)
	s.subMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.subMu.Lock()
			defer s.subMu.Unlock()
			p := s.subs.Load()
			if p == nil {
				return
			}
			next := make([]*subscriber, 0, len(*p))
			for _, x := range *p {
				if x != sub {
					next = append(next, x)
				}
			}
			if len(next) == 0 {
				s.subs.Store(nil)
			} else {
				s.subs.Store(&next)
			}
		})
	}
}

// Stats returns the store's counters. It is safe to call concurrently with
// every other method, also after Close.
func (s *Store) Stats() Stats {
	var n, b int64
	for i := range s.shards {
		n += s.shards[i].count.Load()
		b += s.shards[i].size.Load()
	}
	return Stats{
		Entries:     uint64(max(n, 0)),
		Bytes:       uint64(max(b, 0)),
		Evictions:   s.evictions.Load(),
		Expirations: s.expirations.Load(),
	}
}

// Close stops the background sweep, waits for it to end and drops every
// record. Later calls, and every other method, return an error wrapping
// store.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return errClosed
	}
	close(s.stop)
	<-s.done
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.unaccount(sh.count.Load(), sh.size.Load())
		clear(sh.m)
		clear(sh.h)
		sh.h = sh.h[:0:0]
		clear(sh.users)
		sh.count.Store(0)
		sh.size.Store(0)
		sh.mu.Unlock()
	}
	return nil
}

func (s *Store) run(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep removes expired records, one shard and at most sweepBatch records
// per lock, and returns how many it removed. It stops early once the store
// is closed.
func (s *Store) sweep() int {
	total := 0
	var b batch
	b.init(s)
	for i := range s.shards {
		sh := &s.shards[i]
		for {
			if s.closed.Load() {
				b.finish(s)
				return total
			}
			now := s.now()
			k := 0
			sh.mu.Lock()
			for k < sweepBatch && len(sh.h) > 0 && !sh.h[0].expires.After(now) {
				s.dropLocked(sh, sh.h[0], store.OpExpire, &b)
				k++
			}
			sh.mu.Unlock()
			b.release(s)
			b.flush(s)
			total += k
			if k < sweepBatch {
				break
			}
		}
	}
	b.finish(s)
	return total
}

// dropLocked removes e from sh, whose lock the caller holds, as a change of
// kind op: it counts it, queues its event in b and keeps its room in b.r.
func (s *Store) dropLocked(sh *shard, e *entry, op store.Op, b *batch) {
	sh.remove(e)
	b.r.n++
	b.r.b += e.size
	switch op {
	case store.OpExpire:
		s.expirations.Add(1)
	case store.OpEvict:
		s.evictions.Add(1)
	}
	b.add(store.Event{Op: op, Key: e.key, Version: e.version})
}

// reserve grows r to cover dE records and dB bytes within the bounds, and
// reports whether it does.
func (s *Store) reserve(r *reservation, dE, dB int64) bool {
	ok := true
	if s.maxEntries > 0 && r.n < dE {
		if tryAdd(&s.live, dE-r.n, s.maxEntries) {
			r.n = dE
		} else {
			ok = false
		}
	}
	if s.maxBytes > 0 && r.b < dB {
		if tryAdd(&s.bytes, dB-r.b, s.maxBytes) {
			r.b = dB
		} else {
			ok = false
		}
	}
	return ok
}

func tryAdd(c *atomic.Int64, d, limit int64) bool {
	for {
		v := c.Load()
		if v+d > limit {
			return false
		}
		if c.CompareAndSwap(v, v+d) {
			return true
		}
	}
}

// unaccount returns n records and nb bytes to the admission counters.
func (s *Store) unaccount(n, nb int64) {
	if s.maxEntries > 0 && n != 0 {
		s.live.Add(-n)
	}
	if s.maxBytes > 0 && nb != 0 {
		s.bytes.Add(-nb)
	}
}

// reservation is room held in the admission counters by one operation: records
// it removed or capacity it reserved, not yet used by a record.
type reservation struct{ n, b int64 }

// batch carries one operation's reservation and its queued events.
type batch struct {
	r       reservation
	collect bool
	evs     []store.Event
}

func (b *batch) init(s *Store) {
	b.collect = s.subs.Load() != nil
}

func (b *batch) add(ev store.Event) {
	if b.collect {
		b.evs = append(b.evs, ev)
	}
}

// release returns the reservation to the admission counters.
func (b *batch) release(s *Store) {
	s.unaccount(b.r.n, b.r.b)
	b.r = reservation{}
}

// flush delivers the queued events; the caller holds no lock.
func (b *batch) flush(s *Store) {
	if len(b.evs) == 0 {
		return
	}
	if p := s.subs.Load(); p != nil {
		for _, ev := range b.evs {
			for _, sub := range *p {
				sub.fn(ev)
			}
		}
	}
	clear(b.evs)
	b.evs = b.evs[:0]
}

func (b *batch) finish(s *Store) {
	b.release(s)
	b.flush(s)
}

func (e *entry) set(data []byte, user string, expires time.Time, size int64) {
	e.data = data
	e.user = strings.Clone(user)
	e.expires = expires
	e.size = size
}

func (sh *shard) insert(e *entry) {
	sh.m[e.key] = e
	heap.Push(&sh.h, e)
	sh.index(e)
	sh.count.Add(1)
	sh.size.Add(e.size)
}

func (sh *shard) update(e *entry, data []byte, user string, expires time.Time, size int64, v uint64) {
	if user != e.user {
		sh.unindex(e)
		e.user = strings.Clone(user)
		sh.index(e)
	}
	e.data = data
	e.version = v
	sh.size.Add(size - e.size)
	e.size = size
	moved := !expires.Equal(e.expires)
	e.expires = expires
	if moved {
		heap.Fix(&sh.h, e.index)
	}
}

func (sh *shard) remove(e *entry) {
	delete(sh.m, e.key)
	heap.Remove(&sh.h, e.index)
	sh.unindex(e)
	sh.count.Add(-1)
	sh.size.Add(-e.size)
}

func (sh *shard) index(e *entry) {
	if e.user == "" {
		return
	}
	set := sh.users[e.user]
	if set == nil {
		set = make(map[string]struct{})
		sh.users[e.user] = set
	}
	set[e.key] = struct{}{}
}

func (sh *shard) unindex(e *entry) {
	if e.user == "" {
		return
	}
	set := sh.users[e.user]
	delete(set, e.key)
	if len(set) == 0 {
		delete(sh.users, e.user)
	}
}

// expHeap is a min-heap of entries by Expires.
type expHeap []*entry

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expHeap) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil
	e.index = -1
	*h = old[:n]
	return e
}

// minExcept returns the entry that expires soonest other than self, or nil.
func (h expHeap) minExcept(self *entry) *entry {
	if len(h) == 0 {
		return nil
	}
	if h[0] != self {
		return h[0]
	}
	switch len(h) {
	case 1:
		return nil
	case 2:
		return h[1]
	}
	if h[2].expires.Before(h[1].expires) {
		return h[2]
	}
	return h[1]
}

// ScanKeys calls fn with the key of every live record, in no order, until
// fn returns false. Records saved or deleted meanwhile may or may not be
// seen. It holds one shard's read lock at a time, and not while fn runs.
func (s *Store) ScanKeys(ctx context.Context, fn func(key string) bool) error {
	if s.closed.Load() {
		return errClosed
	}
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := &s.shards[i]
		now := s.now()
		sh.mu.RLock()
		keys := make([]string, 0, len(sh.m))
		for k, e := range sh.m {
			if e.expires.After(now) {
				keys = append(keys, k)
			}
		}
		sh.mu.RUnlock()
		for _, k := range keys {
			if !fn(k) {
				return nil
			}
		}
	}
	return nil
}
