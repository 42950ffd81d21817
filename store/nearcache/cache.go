package nearcache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Defaults of Config's zero fields.
const (
	DefaultMaxEntries = 100_000
	DefaultMaxBytes   = 64 << 20
	DefaultMaxAge     = time.Second

	// EntryOverhead is what an entry costs beyond its key, user ID and
	// data, as MaxBytes counts it.
	EntryOverhead = 96
)

// Limits of Config.MaxAge.
const (
	MinMaxAge = time.Millisecond
	MaxMaxAge = time.Minute
)

// Config configures a Cache. The zero value is valid: every zero field
// takes its default.
type Config struct {
	// MaxEntries bounds the records held. 0 means DefaultMaxEntries
	// (100,000); negative is an error.
	MaxEntries int
	// MaxBytes bounds their size: key + user ID + data + EntryOverhead per
	// entry. 0 means DefaultMaxBytes (64 MiB); negative is an error.
	MaxBytes int64
	// MaxEntryBytes: a larger record (counted as MaxBytes counts it) is
	// never cached. 0 means MaxBytes/1024; negative is an error.
	MaxEntryBytes int
	// MaxAge bounds how long an entry is served after the store read or
	// write that produced it was sent, so that a change feed that dies
	// silently cannot keep a logged-out session alive for longer. 0 means
	// DefaultMaxAge (1 s); otherwise MinMaxAge (1 ms) to MaxMaxAge (1 min).
	MaxAge time.Duration
	// Now is the clock; default time.Now. It decides MaxAge and whether a
	// record has expired.
	Now func() time.Time
}

// ErrConfig is wrapped by the errors New returns for an invalid Config.
var ErrConfig = errors.New("nearcache: invalid config")

// Cache is a bounded, sharded cache of store records whose owner keeps
// it coherent: the owner calls Invalidate for every change its store's
// feed reports and for every change it makes itself, and Flush when the
// feed breaks. Reads and inserts are guarded so that a value read before
// a change can never be inserted after the change was reported (see Begin
// and Insert). A Cache is safe for concurrent use.
type Cache struct {
	shards   []shard
	seed     maphash.Seed
	now      func() time.Time
	maxAge   time.Duration
	maxEntry int64

	// stripes[h] counts the invalidations of the keys that hash to h;
	// epoch counts the flushes. A Token holds both as they were.
	stripes [numStripes]atomic.Uint64
	epoch   atomic.Uint64

	flushes atomic.Uint64

	delayMu sync.Mutex
	delays  [delayWindow]time.Duration
	ndelay  int // delays recorded, in all
	maxDel  time.Duration
}

const (
	numStripes  = 4096
	stripeMask  = numStripes - 1
	delayWindow = 256
)

type shard struct {
	mu         sync.RWMutex
	m          map[string]*entry
	ring       []*entry // the CLOCK: every entry once, in insertion order
	hand       int
	bytes      int64
	maxEntries int
	maxBytes   int64

	hits, misses, invalidations, evictions, rejected, skipped atomic.Uint64
	_                                                         [64]byte // keep the next shard's counters off this cache line
}

type entry struct {
	key   string
	rec   store.Record
	born  time.Time
	size  int64
	index int         // in ring
	ref   atomic.Bool // read since the hand last passed
}

// Token is what Begin captured: the state of a key's guard before a read
// or write of it was sent. Its zero value is never valid for Insert.
type Token struct {
	epoch, seq uint64
	born       time.Time
	valid      bool
}

// New returns a Cache configured by c, or an error wrapping ErrConfig.
func New(c Config) (*Cache, error) {
	if c.MaxEntries < 0 || c.MaxBytes < 0 || c.MaxEntryBytes < 0 {
		return nil, fmt.Errorf("%w: MaxEntries, MaxBytes and MaxEntryBytes must not be negative", ErrConfig)
	}
	if c.MaxAge != 0 && (c.MaxAge < MinMaxAge || c.MaxAge > MaxMaxAge) {
		return nil, fmt.Errorf("%w: MaxAge %v is outside %v..%v", ErrConfig, c.MaxAge, MinMaxAge, MaxMaxAge)
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = int(max(c.MaxBytes/1024, 1))
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	// 32 shards when each can hold a useful share; one when the bounds
	// are small, so that they hold exactly.
	n := 32
	if c.MaxEntries < n*64 || c.MaxBytes < int64(n)*64*EntryOverhead {
		n = 1
	}
	x := &Cache{shards: make([]shard, n), seed: maphash.MakeSeed(), now: c.Now,
		maxAge: c.MaxAge, maxEntry: int64(c.MaxEntryBytes)}
	for i := range x.shards {
		s := &x.shards[i]
		s.m = make(map[string]*entry)
		s.maxEntries = c.MaxEntries / n
		s.maxBytes = c.MaxBytes / int64(n)
	}
	return x, nil
}

// locate returns key's shard and stripe.
func (c *Cache) locate(key string) (*shard, *atomic.Uint64) {
	h := maphash.String(c.seed, key)
	return &c.shards[(h>>12)&(uint64(len(c.shards))-1)], &c.stripes[h&stripeMask]
}

// Get returns key's record if it is cached, younger than MaxAge and not
// expired. The record's Data is shared: treat it as read-only, as
// store.Record says of a loaded record.
func (c *Cache) Get(key string) (store.Record, bool) {
	s, _ := c.locate(key)
	s.mu.RLock()
	e := s.m[key]
	var rec store.Record
	ok := false
	if e != nil {
		now := c.now()
		if now.Sub(e.born) < c.maxAge && now.Before(e.rec.Expires) {
			rec, ok = e.rec, true
			if !e.ref.Load() {
				e.ref.Store(true)
			}
		}
	}
	s.mu.RUnlock()
	if ok {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
	return rec, ok
}

// Peek returns key's cached record as Get does, without counting a hit
// or a miss and without marking it recently used: for an owner that
// re-inserts a record it changed (a touch).
func (c *Cache) Peek(key string) (store.Record, bool) {
	s, _ := c.locate(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.m[key]; e != nil {
		if now := c.now(); now.Sub(e.born) < c.maxAge && now.Before(e.rec.Expires) {
			return e.rec, true
		}
	}
	return store.Record{}, false
}

// Begin captures key's guard. Call it before sending the read or write
// whose result may be inserted (for a write, after the Invalidate that
// announces it): Insert then refuses that result if key was invalidated,
// or the cache flushed, after Begin. The token also dates the entry: its
// MaxAge counts from Begin.
func (c *Cache) Begin(key string) Token {
	_, stripe := c.locate(key)
	return Token{epoch: c.epoch.Load(), seq: stripe.Load(), born: c.now(), valid: true}
}

// Insert caches rec under key, unless key was invalidated or the cache
// flushed since t was taken, a newer version of key is cached, or rec is
// larger than MaxEntryBytes; it reports whether rec was cached. A refused
// insert evicts key, so that an older value never stays. Insert may evict
// other entries (least recently used first, by CLOCK) to stay within the
// bounds. The cache keeps rec.Data: the caller must not modify it.
func (c *Cache) Insert(key string, rec store.Record, t Token) bool {
	s, stripe := c.locate(key)
	size := int64(len(key)+len(rec.UserID)+len(rec.Data)) + EntryOverhead
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m[key]
	switch {
	case !t.valid || c.epoch.Load() != t.epoch || stripe.Load() != t.seq,
		old != nil && old.rec.Version > rec.Version:
		s.rejected.Add(1)
		s.remove(old)
		return false
	case size > c.maxEntry || size > s.maxBytes || s.maxEntries == 0:
		s.skipped.Add(1)
		s.remove(old)
		return false
	}
	s.remove(old)
	for len(s.ring) >= s.maxEntries || s.bytes+size > s.maxBytes {
		s.evictOne()
	}
	e := &entry{key: key, rec: rec, born: t.born, size: size, index: len(s.ring)}
	s.ring = append(s.ring, e)
	s.m[key] = e
	s.bytes += size
	return true
}

// Touch moves the expiry of key's cached record to expires, if the
// cached record is version and nothing invalidated key since t; otherwise
// it evicts key. It reports whether the entry was kept. The entry's
// MaxAge then counts from t.
func (c *Cache) Touch(key string, version uint64, expires time.Time, t Token) bool {
	s, stripe := c.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil {
		return false
	}
	if !t.valid || c.epoch.Load() != t.epoch || stripe.Load() != t.seq || e.rec.Version != version {
		s.rejected.Add(1)
		s.remove(e)
		return false
	}
	e.rec.Expires = expires
	e.born = t.born
	return true
}

// Invalidate evicts key and refuses every insert of it whose token was
// taken before: call it for each change the feed reports, and before
// sending a change of one's own (and again when its outcome is unknown).
func (c *Cache) Invalidate(key string) {
	s, stripe := c.locate(key)
	stripe.Add(1)
	s.invalidations.Add(1)
	s.mu.Lock()
	s.remove(s.m[key])
	s.mu.Unlock()
}

// Flush evicts everything and refuses every insert whose token was taken
// before: call it when the change feed breaks or may have missed changes.
func (c *Cache) Flush() {
	c.epoch.Add(1)
	c.flushes.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		clear(s.ring)
		s.ring = s.ring[:0]
		s.hand, s.bytes = 0, 0
		s.mu.Unlock()
	}
}

// ObserveDelay records one measured invalidation delay: the time from a
// change acknowledged by the store to its invalidation here. Stats
// reports the last, the largest and the median and 99th percentile of the
// last 256.
func (c *Cache) ObserveDelay(d time.Duration) {
	c.delayMu.Lock()
	c.delays[c.ndelay%delayWindow] = d
	c.ndelay++
	c.maxDel = max(c.maxDel, d)
	c.delayMu.Unlock()
}

// Reporter is implemented by stores that have a near cache (redisstore
// with Config.NearCache, and Wrap's Store): ok is false when this one has
// none. sessionmetrics.WatchNearCache exports what it reports.
type Reporter interface {
	NearCacheStats() (st Stats, ok bool)
}

// Stats are a Cache's counters since New, and its present size.
type Stats struct {
	Hits          uint64 // Gets that returned a record
	Misses        uint64 // Gets that did not
	Invalidations uint64 // Invalidate calls
	Flushes       uint64 // Flush calls
	Evictions     uint64 // entries dropped to stay within the bounds
	Rejected      uint64 // inserts and touches refused by the guard
	Skipped       uint64 // inserts of records too large to cache
	Bypassed      uint64 // Loads sent to the store because its feed was not live (Wrap over a store.LiveFeed)
	Entries       int    // entries held now
	Bytes         int64  // their size, as MaxBytes counts it
	Delay         Delay  // the invalidation delays observed
}

// Delay summarizes observed invalidation delays. Count is how many were
// observed; P50 and P99 are over the last 256.
type Delay struct {
	Count     int
	Last, Max time.Duration
	P50, P99  time.Duration
}

// Stats returns the cache's counters. It is safe to call at any time.
func (c *Cache) Stats() Stats {
	st := Stats{Flushes: c.flushes.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Invalidations += s.invalidations.Load()
		st.Evictions += s.evictions.Load()
		st.Rejected += s.rejected.Load()
		st.Skipped += s.skipped.Load()
		s.mu.RLock()
		st.Entries += len(s.ring)
		st.Bytes += s.bytes
		s.mu.RUnlock()
	}
	c.delayMu.Lock()
	defer c.delayMu.Unlock()
	n := min(c.ndelay, delayWindow)
	st.Delay.Count, st.Delay.Max = c.ndelay, c.maxDel
	if n > 0 {
		st.Delay.Last = c.delays[(c.ndelay-1)%delayWindow]
		d := slices.Clone(c.delays[:n])
		slices.Sort(d)
		st.Delay.P50, st.Delay.P99 = d[(n-1)*50/100], d[(n-1)*99/100]
	}
	return st
}

// remove drops e, if not nil, from s; s.mu is held.
func (s *shard) remove(e *entry) {
	if e == nil {
		return
	}
	last := len(s.ring) - 1
	moved := s.ring[last]
	s.ring[e.index] = moved
	moved.index = e.index
	s.ring[last] = nil
	s.ring = s.ring[:last]
	if s.hand >= len(s.ring) {
		s.hand = 0
	}
	delete(s.m, e.key)
	s.bytes -= e.size
}

// evictOne drops the first entry the CLOCK hand finds not read since it
// last passed; s.mu is held and s is not empty.
func (s *shard) evictOne() {
	for {
		e := s.ring[s.hand]
		if e.ref.Load() {
			e.ref.Store(false)
			s.hand = (s.hand + 1) % len(s.ring)
			continue
		}
		s.remove(e)
		s.evictions.Add(1)
		return
	}
}
