package memstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is the tests' fake clock.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(epoch) }

func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// recorder collects events.
type recorder struct {
	mu  sync.Mutex
	evs []store.Event
}

func (r *recorder) add(ev store.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) take() []store.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.evs
	r.evs = nil
	return evs
}

func (r *recorder) ops(op store.Op) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for _, ev := range r.evs {
		if ev.Op == op {
			keys = append(keys, ev.Key)
		}
	}
	slices.Sort(keys)
	return keys
}

var ctx = context.Background()

func ev(op store.Op, key string, v uint64) store.Event {
	return store.Event{Op: op, Key: key, Version: v}
}

func mustSave(t testing.TB, s *Store, key string, rec store.Record) uint64 {
	t.Helper()
	v, err := s.Save(ctx, key, rec)
	if err != nil {
		t.Fatalf("Save(%q): %v", key, err)
	}
	return v
}

// checkInvariants verifies the store's internal structures agree.
func checkInvariants(t testing.TB, s *Store) {
	t.Helper()
	var n, b int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if len(sh.m) != len(sh.h) {
			t.Errorf("shard %d: %d map entries, %d heap entries", i, len(sh.m), len(sh.h))
		}
		var sb int64
		for j, e := range sh.h {
			if e.index != j {
				t.Errorf("shard %d: heap[%d].index = %d", i, j, e.index)
			}
			if sh.m[e.key] != e {
				t.Errorf("shard %d: heap entry %q not in map", i, e.key)
			}
			if j > 0 && e.expires.Before(sh.h[(j-1)/2].expires) {
				t.Errorf("shard %d: heap order broken at %d", i, j)
			}
			if e.size != int64(len(e.key)+len(e.data)+len(e.user)) {
				t.Errorf("shard %d: %q size %d", i, e.key, e.size)
			}
			sb += e.size
			if e.user != "" {
				if _, ok := sh.users[e.user][e.key]; !ok {
					t.Errorf("shard %d: %q not indexed under user %q", i, e.key, e.user)
				}
			}
		}
		for u, set := range sh.users {
			if len(set) == 0 {
				t.Errorf("shard %d: empty index set for %q", i, u)
			}
			for k := range set {
				if e := sh.m[k]; e == nil || e.user != u {
					t.Errorf("shard %d: stale index %q -> %q", i, u, k)
				}
			}
		}
		if got := sh.count.Load(); got != int64(len(sh.m)) {
			t.Errorf("shard %d: count %d, map %d", i, got, len(sh.m))
		}
		if got := sh.size.Load(); got != sb {
			t.Errorf("shard %d: size %d, sum %d", i, got, sb)
		}
		n += int64(len(sh.m))
		b += sb
		sh.mu.RUnlock()
	}
	if s.maxEntries > 0 {
		if got := s.live.Load(); got != n {
			t.Errorf("live counter %d, entries %d", got, n)
		}
		if n > s.maxEntries {
			t.Errorf("%d entries, bound %d", n, s.maxEntries)
		}
	}
	if s.maxBytes > 0 {
		if got := s.bytes.Load(); got != b {
			t.Errorf("bytes counter %d, bytes %d", got, b)
		}
		if b > s.maxBytes {
			t.Errorf("%d bytes, bound %d", b, s.maxBytes)
		}
	}
	st := s.Stats()
	if st.Entries != uint64(n) || st.Bytes != uint64(b) {
		t.Errorf("Stats %+v, want %d entries, %d bytes", st, n, b)
	}
}

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		shards, want int
	}{{0, 64}, {1, 1}, {3, 4}, {64, 64}, {100, 128}, {4000, 4096}, {4096, 4096}} {
		s := newStore(t, Config{Shards: tc.shards})
		if len(s.shards) != tc.want {
			t.Errorf("Shards %d: got %d shards, want %d", tc.shards, len(s.shards), tc.want)
		}
	}
	for _, n := range []int{-1, 4097, 1 << 30} {
		s, err := New(Config{Shards: n})
		if err == nil || !strings.HasPrefix(err.Error(), "memstore: ") {
			t.Errorf("Shards %d: New = %v, %v; want a memstore error", n, s, err)
		}
	}
	s := newStore(t, Config{})
	if s.maxEntries != DefaultMaxEntries || s.maxBytes != 0 {
		t.Errorf("defaults: maxEntries %d, maxBytes %d", s.maxEntries, s.maxBytes)
	}
	s = newStore(t, Config{MaxEntries: -1, MaxBytes: -5, CleanupInterval: -1})
	if s.maxEntries != 0 || s.maxBytes != 0 {
		t.Errorf("unbounded: maxEntries %d, maxBytes %d", s.maxEntries, s.maxBytes)
	}
	select {
	case <-s.done:
	default:
		t.Error("negative CleanupInterval started a sweep goroutine")
	}
}

func TestCRUD(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Shards: 2, Now: c.Now})
	exp := epoch.Add(time.Hour)

	if _, err := s.Load(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load absent: %v", err)
	}
	if _, err := s.Save(ctx, "k", store.Record{Data: []byte("x"), Version: 7, Expires: exp}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Save v7 on absent: %v", err)
	}
	buf := []byte("hello")
	v1 := mustSave(t, s, "k", store.Record{Data: buf, Expires: exp, UserID: "u"})
	buf[0] = 'J' // Save must have copied
	rec, err := s.Load(ctx, "k")
	if err != nil || string(rec.Data) != "hello" || rec.Version != v1 || !rec.Expires.Equal(exp) || rec.UserID != "u" {
		t.Fatalf("Load = %+v, %v", rec, err)
	}
	if _, err := s.Save(ctx, "k", store.Record{Data: []byte("y"), Expires: exp}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Save v0 on live: %v", err)
	}
	v2 := mustSave(t, s, "k", store.Record{Data: []byte("y"), Version: v1, Expires: exp})
	if v2 == v1 || v2 == 0 {
		t.Fatalf("versions %d then %d", v1, v2)
	}
	if _, err := s.Save(ctx, "k", store.Record{Data: []byte("z"), Version: v1, Expires: exp}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale Save: %v", err)
	}
	if err := s.Delete(ctx, "k", v1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale Delete: %v", err)
	}
	if err := s.Delete(ctx, "k", v2); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "k", 0); err != nil {
		t.Fatalf("Delete absent unconditionally: %v", err)
	}
	if err := s.Delete(ctx, "k", v2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete absent with version: %v", err)
	}
	if _, err := s.Save(ctx, "k", store.Record{Version: v2, Expires: exp}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("late Save after Delete: %v", err)
	}
	v3 := mustSave(t, s, "k", store.Record{Expires: exp})
	if v3 == v1 || v3 == v2 {
		t.Fatalf("recreated key reused a version: %d, %d, %d", v1, v2, v3)
	}
	rec, err = s.Load(ctx, "k")
	if err != nil || len(rec.Data) != 0 {
		t.Fatalf("Load empty data = %+v, %v", rec, err)
	}

	// Touch.
	if err := s.Touch(ctx, "k", 0, exp.Add(time.Hour)); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	rec, _ = s.Load(ctx, "k")
	if rec.Version != v3 || !rec.Expires.Equal(exp.Add(time.Hour)) {
		t.Fatalf("after Touch: %+v", rec)
	}
	if err := s.Touch(ctx, "absent", 0, exp); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Touch absent: %v", err)
	}
	if err := s.Touch(ctx, "k", 0, time.Time{}); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Touch zero: %v", err)
	}

	// Expiry is exact at Expires and makes the record absent everywhere.
	c.Advance(2 * time.Hour)
	if _, err := s.Load(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load at Expires: %v", err)
	}
	if err := s.Touch(ctx, "k", 0, exp.Add(5*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Touch expired: %v", err)
	}
	checkInvariants(t, s)
	if st := s.Stats(); st.Expirations != 1 || st.Entries != 0 {
		t.Fatalf("Stats after lazy expiry: %+v", st)
	}
	checkInvariants(t, s)
}

func TestExpiredCountsAsAbsent(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Now: c.Now})
	v := mustSave(t, s, "k", store.Record{Expires: epoch.Add(time.Minute)})
	c.Advance(time.Minute)
	if _, err := s.Save(ctx, "k", store.Record{Version: v, Expires: epoch.Add(time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Save on expired with its version: %v", err)
	}
	if err := s.Delete(ctx, "k", v); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete expired with its version: %v", err)
	}
	mustSave(t, s, "k2", store.Record{Expires: epoch.Add(2 * time.Minute)})
	c.Advance(time.Minute)
	v2 := mustSave(t, s, "k2", store.Record{Expires: epoch.Add(time.Hour)})
	if v2 == 0 {
		t.Fatal("zero version")
	}
	if st := s.Stats(); st.Expirations != 2 || st.Entries != 1 {
		t.Fatalf("Stats: %+v", st)
	}
	checkInvariants(t, s)
}

func TestSaveRejects(t *testing.T) {
	s := newStore(t, Config{})
	_, err := s.Save(ctx, "k", store.Record{Data: []byte("x")})
	if err == nil || errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "Expires") {
		t.Fatalf("Save with zero Expires: %v", err)
	}
	exp := time.Now().Add(time.Hour)
	for _, key := range []string{"", strings.Repeat("k", store.MaxKeyLen+1)} {
		if _, err := s.Save(ctx, key, store.Record{Expires: exp}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Save(len %d): %v", len(key), err)
		}
		if _, err := s.Load(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Load(len %d): %v", len(key), err)
		}
		if err := s.Delete(ctx, key, 0); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Delete(len %d): %v", len(key), err)
		}
		if err := s.Touch(ctx, key, 0, exp); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Touch(len %d): %v", len(key), err)
		}
	}
	long := strings.Repeat("\x00\xff", store.MaxKeyLen/2)
	mustSave(t, s, long, store.Record{Expires: exp})
	if _, err := s.Load(ctx, long); err != nil {
		t.Errorf("Load of a %d-byte binary key: %v", len(long), err)
	}
}

func TestContextDone(t *testing.T) {
	s := newStore(t, Config{})
	exp := time.Now().Add(time.Hour)
	mustSave(t, s, "k", store.Record{Expires: exp, UserID: "u"})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Load(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load: %v", err)
	}
	if _, err := s.Save(cctx, "k2", store.Record{Expires: exp}); !errors.Is(err, context.Canceled) {
		t.Errorf("Save: %v", err)
	}
	if err := s.Delete(cctx, "k", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete: %v", err)
	}
	if err := s.Touch(cctx, "k", 0, exp); !errors.Is(err, context.Canceled) {
		t.Errorf("Touch: %v", err)
	}
	if _, err := s.ListUser(cctx, "u"); !errors.Is(err, context.Canceled) {
		t.Errorf("ListUser: %v", err)
	}
	if _, err := s.DeleteUser(cctx, "u"); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteUser: %v", err)
	}
	if _, err := s.Load(ctx, "k"); err != nil {
		t.Errorf("record changed by cancelled calls: %v", err)
	}
}

func TestEviction(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Shards: 1, MaxEntries: 3, Now: c.Now})
	var r recorder
	defer s.Subscribe(r.add)()
	// "b" expires soonest.
	mustSave(t, s, "a", store.Record{Expires: epoch.Add(3 * time.Hour), UserID: "u"})
	mustSave(t, s, "b", store.Record{Expires: epoch.Add(1 * time.Hour), UserID: "u"})
	mustSave(t, s, "c", store.Record{Expires: epoch.Add(2 * time.Hour), UserID: "u"})
	mustSave(t, s, "d", store.Record{Expires: epoch.Add(4 * time.Hour), UserID: "u"})

	if _, err := s.Load(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Load of the evicted record: %v", err)
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, err := s.Load(ctx, k); err != nil {
			t.Errorf("Load(%q): %v", k, err)
		}
	}
	if st := s.Stats(); st.Evictions != 1 || st.Entries != 3 || st.Expirations != 0 {
		t.Errorf("Stats: %+v", st)
	}
	if got := r.ops(store.OpEvict); !slices.Equal(got, []string{"b"}) {
		t.Errorf("evict events: %v", got)
	}
	ents, err := s.ListUser(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range ents {
		keys = append(keys, e.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "c", "d"}) {
		t.Errorf("ListUser after eviction: %v", keys)
	}
	// Replacing an existing key in a full store evicts nothing.
	v, _ := s.Load(ctx, "d")
	mustSave(t, s, "d", store.Record{Version: v.Version, Expires: epoch.Add(time.Minute)})
	if st := s.Stats(); st.Evictions != 1 || st.Entries != 3 {
		t.Errorf("Stats after replace: %+v", st)
	}
	checkInvariants(t, s)
}

func TestEvictionPrefersExpired(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Shards: 1, MaxEntries: 2, CleanupInterval: -1, Now: c.Now})
	var r recorder
	defer s.Subscribe(r.add)()
	mustSave(t, s, "old", store.Record{Expires: epoch.Add(time.Minute)})
	mustSave(t, s, "live", store.Record{Expires: epoch.Add(time.Hour)})
	c.Advance(2 * time.Minute)
	mustSave(t, s, "new", store.Record{Expires: epoch.Add(time.Hour)})
	if st := s.Stats(); st.Evictions != 0 || st.Expirations != 1 || st.Entries != 2 {
		t.Errorf("Stats: %+v", st)
	}
	if got := r.ops(store.OpExpire); !slices.Equal(got, []string{"old"}) {
		t.Errorf("expire events: %v", got)
	}
	if got := r.ops(store.OpEvict); len(got) != 0 {
		t.Errorf("evict events: %v", got)
	}
	checkInvariants(t, s)
}

func TestEvictionOtherShard(t *testing.T) {
	s := newStore(t, Config{Shards: 64, MaxEntries: 2})
	var r recorder
	defer s.Subscribe(r.add)()
	exp := time.Now().Add(time.Hour)
	// Find three keys in three distinct shards.
	var keys []string
	seen := map[*shard]bool{}
	for i := 0; len(keys) < 3; i++ {
		k := fmt.Sprint("key", i)
		if sh := s.shardFor(k); !seen[sh] {
			seen[sh] = true
			keys = append(keys, k)
		}
	}
	mustSave(t, s, keys[0], store.Record{Expires: exp.Add(2 * time.Minute)})
	mustSave(t, s, keys[1], store.Record{Expires: exp.Add(time.Minute)})
	mustSave(t, s, keys[2], store.Record{Expires: exp.Add(3 * time.Minute)})
	if st := s.Stats(); st.Evictions != 1 || st.Entries != 2 {
		t.Errorf("Stats: %+v", st)
	}
	if got := r.ops(store.OpEvict); len(got) != 1 {
		t.Errorf("evict events: %v", got)
	}
	if _, err := s.Load(ctx, keys[2]); err != nil {
		t.Errorf("new key not stored: %v", err)
	}
	checkInvariants(t, s)
}

func TestMaxBytes(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Shards: 1, MaxEntries: -1, MaxBytes: 100, Now: c.Now})
	var r recorder
	defer s.Subscribe(r.add)()
	rec := func(n int, exp time.Duration) store.Record {
		return store.Record{Data: make([]byte, n), Expires: epoch.Add(exp), UserID: "u"}
	}
	// Each record: 2 (key) + 27 (data) + 1 (user) = 30 bytes.
	mustSave(t, s, "k1", rec(27, 4*time.Hour))
	mustSave(t, s, "k2", rec(27, 1*time.Hour))
	mustSave(t, s, "k3", rec(27, 3*time.Hour))
	if st := s.Stats(); st.Bytes != 90 || st.Evictions != 0 {
		t.Fatalf("Stats: %+v", st)
	}
	mustSave(t, s, "k4", rec(27, 2*time.Hour)) // 120 > 100: evicts k2
	if st := s.Stats(); st.Bytes != 90 || st.Evictions != 1 || st.Entries != 3 {
		t.Fatalf("Stats after k4: %+v", st)
	}
	if got := r.ops(store.OpEvict); !slices.Equal(got, []string{"k2"}) {
		t.Fatalf("evicted %v", got)
	}

	// A record larger than MaxBytes is rejected and evicts nothing.
	_, err := s.Save(ctx, "big", rec(98, 5*time.Hour)) // 3+98+1 = 102
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, store.ErrConflict) {
		t.Fatalf("oversize Save: %v", err)
	}
	if _, err := s.Load(ctx, "big"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("oversize record stored: %v", err)
	}
	if st := s.Stats(); st.Entries != 3 || st.Evictions != 1 {
		t.Fatalf("Stats after oversize: %+v", st)
	}
	// Exactly MaxBytes fits, by evicting everything else.
	mustSave(t, s, "big", rec(96, 5*time.Hour))
	if st := s.Stats(); st.Entries != 1 || st.Bytes != 100 || st.Evictions != 4 {
		t.Fatalf("Stats after exact fit: %+v", st)
	}
	checkInvariants(t, s)

	// Growing a record evicts others but never the record itself.
	s2 := newStore(t, Config{Shards: 1, MaxEntries: -1, MaxBytes: 100, Now: c.Now})
	v := mustSave(t, s2, "a", store.Record{Data: make([]byte, 9), Expires: epoch.Add(time.Minute)}) // 10 bytes, soonest
	mustSave(t, s2, "b", store.Record{Data: make([]byte, 49), Expires: epoch.Add(time.Hour)})       // 50
	mustSave(t, s2, "a", store.Record{Version: v, Data: make([]byte, 59), Expires: epoch.Add(time.Minute)})
	if _, err := s2.Load(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b not evicted: %v", err)
	}
	if got, err := s2.Load(ctx, "a"); err != nil || len(got.Data) != 59 {
		t.Fatalf("Load(a) = %d bytes, %v", len(got.Data), err)
	}
	// Shrinking returns bytes.
	got, _ := s2.Load(ctx, "a")
	mustSave(t, s2, "a", store.Record{Version: got.Version, Data: make([]byte, 1), Expires: epoch.Add(time.Minute)})
	if st := s2.Stats(); st.Bytes != 2 || st.Entries != 1 {
		t.Fatalf("Stats after shrink: %+v", st)
	}
	checkInvariants(t, s2)
}

func TestSweep(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Shards: 2, CleanupInterval: -1, Now: c.Now})
	var r recorder
	defer s.Subscribe(r.add)()
	const n = 3*sweepBatch + 7 // more than a batch per shard
	for i := range n {
		mustSave(t, s, fmt.Sprint("short", i), store.Record{Expires: epoch.Add(time.Minute), UserID: fmt.Sprint("u", i%5)})
	}
	mustSave(t, s, "long", store.Record{Expires: epoch.Add(time.Hour), UserID: "u1"})
	r.take()

	if got := s.sweep(); got != 0 {
		t.Fatalf("sweep before expiry removed %d", got)
	}
	c.Advance(time.Minute)
	if got := s.sweep(); got != n {
		t.Fatalf("sweep removed %d, want %d", got, n)
	}
	if st := s.Stats(); st.Expirations != n || st.Entries != 1 {
		t.Fatalf("Stats: %+v", st)
	}
	if got := len(r.ops(store.OpExpire)); got != n {
		t.Fatalf("%d expire events, want %d", got, n)
	}
	for i := range s.shards {
		for u, set := range s.shards[i].users {
			for k := range set {
				if u != "u1" || k != "long" {
					t.Errorf("index left %q -> %q", u, k)
				}
			}
		}
	}
	ents, err := s.ListUser(ctx, "u1")
	if err != nil || len(ents) != 1 || ents[0].Key != "long" {
		t.Fatalf("ListUser(u1) = %v, %v", ents, err)
	}
	checkInvariants(t, s)
}

func TestBackgroundSweep(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{CleanupInterval: time.Millisecond, Now: c.Now})
	mustSave(t, s, "k", store.Record{Expires: epoch.Add(time.Minute)})
	c.Advance(time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Expirations != 1 {
		if time.Now().After(deadline) {
			t.Fatal("background sweep did not remove the expired record")
		}
		time.Sleep(time.Millisecond) // waiting for the ticker, not for expiry
	}
}

func TestClose(t *testing.T) {
	s, err := New(Config{CleanupInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	mustSave(t, s, "k", store.Record{Expires: exp, UserID: "u"})
	var r recorder
	s.Subscribe(r.add)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("Close returned before the sweep goroutine ended")
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Load: %v", err)
	}
	if _, err := s.Save(ctx, "k", store.Record{Expires: exp}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Save: %v", err)
	}
	if err := s.Delete(ctx, "k", 0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Delete: %v", err)
	}
	if err := s.Touch(ctx, "k", 0, exp); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Touch: %v", err)
	}
	if _, err := s.ListUser(ctx, "u"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ListUser: %v", err)
	}
	if _, err := s.DeleteUser(ctx, "u"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("DeleteUser: %v", err)
	}
	s.Subscribe(func(store.Event) { t.Error("event after Close") })()
	if st := s.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("Stats after Close: %+v", st)
	}
	if evs := r.take(); len(evs) != 0 {
		t.Errorf("events from Close: %v", evs)
	}

	// Close without a sweep goroutine, and Close racing with use.
	s2, _ := New(Config{CleanupInterval: -1})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				k := fmt.Sprint(g, "-", i)
				if _, err := s2.Save(ctx, k, store.Record{Expires: exp}); err != nil && !errors.Is(err, store.ErrClosed) {
					t.Errorf("Save: %v", err)
				}
			}
		})
	}
	s2.Close()
	wg.Wait()
}

func TestLoadAllocs(t *testing.T) {
	s := newStore(t, Config{})
	exp := time.Now().Add(time.Hour)
	mustSave(t, s, "k", store.Record{Data: []byte("data"), Expires: exp, UserID: "u"})
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := s.Load(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Load hit allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { s.Load(ctx, "absent") }); n != 0 {
		t.Errorf("Load miss allocates %v times", n)
	}
	// With no subscriber, reporting costs nothing.
	if n := testing.AllocsPerRun(1000, func() {
		if err := s.Touch(ctx, "k", 0, exp); err != nil {
			t.Fatal(err)
		}
		s.Delete(ctx, "absent", 0)
	}); n != 0 {
		t.Errorf("Touch+Delete allocate %v times", n)
	}
}

func TestUserIndex(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Shards: 4, Now: c.Now})
	var r recorder
	defer s.Subscribe(r.add)()
	exp := epoch.Add(time.Hour)
	for i := range 10 {
		mustSave(t, s, fmt.Sprint("a", i), store.Record{Data: []byte{byte(i)}, Expires: exp, UserID: "alice"})
	}
	mustSave(t, s, "b0", store.Record{Expires: exp, UserID: "bob"})
	mustSave(t, s, "short", store.Record{Expires: epoch.Add(time.Minute), UserID: "alice"})
	mustSave(t, s, "none", store.Record{Expires: exp})

	list := func(u string) []string {
		t.Helper()
		ents, err := s.ListUser(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range ents {
			if e.Record.UserID != u || e.Record.Version == 0 {
				t.Errorf("entry %+v", e)
			}
			keys = append(keys, e.Key)
		}
		slices.Sort(keys)
		return keys
	}
	if got := list("alice"); len(got) != 11 {
		t.Fatalf("alice: %v", got)
	}
	if got := list(""); len(got) != 0 {
		t.Fatalf("empty user: %v", got)
	}
	if got := list("nobody"); len(got) != 0 {
		t.Fatalf("unknown user: %v", got)
	}
	// Re-binding moves the key.
	rec, _ := s.Load(ctx, "a0")
	mustSave(t, s, "a0", store.Record{Version: rec.Version, Expires: exp, UserID: "bob"})
	if got := list("bob"); !slices.Equal(got, []string{"a0", "b0"}) {
		t.Fatalf("bob: %v", got)
	}
	// Unbinding removes it.
	rec, _ = s.Load(ctx, "a1")
	mustSave(t, s, "a1", store.Record{Version: rec.Version, Expires: exp})
	if err := s.Delete(ctx, "a2", 0); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute) // "short" expires
	if got := list("alice"); len(got) != 7 || slices.Contains(got, "short") {
		t.Fatalf("alice: %v", got)
	}
	checkInvariants(t, s)
	r.take()
	n, err := s.DeleteUser(ctx, "alice")
	if err != nil || n != 7 {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	if got := len(r.ops(store.OpDelete)); got != 7 {
		t.Errorf("%d delete events", got)
	}
	if got := r.ops(store.OpExpire); !slices.Equal(got, []string{"short"}) {
		t.Errorf("expire events %v", got)
	}
	if got := list("alice"); len(got) != 0 {
		t.Fatalf("alice after DeleteUser: %v", got)
	}
	if n, err := s.DeleteUser(ctx, "alice"); err != nil || n != 0 {
		t.Fatalf("second DeleteUser = %d, %v", n, err)
	}
	for _, k := range []string{"a0", "a1", "b0", "none"} {
		if _, err := s.Load(ctx, k); err != nil {
			t.Errorf("Load(%q): %v", k, err)
		}
	}
	checkInvariants(t, s)
}

func TestEvents(t *testing.T) {
	c := newClock()
	s := newStore(t, Config{Shards: 1, MaxEntries: 2, CleanupInterval: -1, Now: c.Now})
	var r1, r2 recorder
	unsub1 := s.Subscribe(r1.add)
	unsub2 := s.Subscribe(r2.add)

	v1 := mustSave(t, s, "a", store.Record{Expires: epoch.Add(time.Hour)})
	s.Touch(ctx, "a", 0, epoch.Add(2*time.Hour))
	v2 := mustSave(t, s, "a", store.Record{Version: v1, Expires: epoch.Add(2 * time.Hour)})
	s.Save(ctx, "a", store.Record{Version: v1, Expires: epoch.Add(time.Hour)}) // conflict: no event
	s.Delete(ctx, "a", v2)
	s.Delete(ctx, "a", 0) // absent: no event
	vb := mustSave(t, s, "b", store.Record{Expires: epoch.Add(time.Minute)})
	vc := mustSave(t, s, "c", store.Record{Expires: epoch.Add(time.Hour)})
	vd := mustSave(t, s, "d", store.Record{Expires: epoch.Add(time.Hour)}) // evicts b
	c.Advance(2 * time.Hour)
	s.sweep() // expires c and d

	want := []store.Event{
		ev(store.OpSave, "a", v1),
		ev(store.OpTouch, "a", v1),
		ev(store.OpSave, "a", v2),
		ev(store.OpDelete, "a", v2),
		ev(store.OpSave, "b", vb),
		ev(store.OpSave, "c", vc),
		ev(store.OpEvict, "b", vb),
		ev(store.OpSave, "d", vd),
	}
	got := r1.take()
	if len(got) != len(want)+2 || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("events:\n got %v\nwant %v + 2 expiries", got, want)
	}
	exp := got[len(want):]
	slices.SortFunc(exp, func(a, b store.Event) int { return strings.Compare(a.Key, b.Key) })
	if !slices.Equal(exp, []store.Event{ev(store.OpExpire, "c", vc), ev(store.OpExpire, "d", vd)}) {
		t.Fatalf("expire events %v", exp)
	}
	if got2 := r2.take(); len(got2) != len(got) {
		t.Fatalf("second subscriber got %d events, want %d", len(got2), len(got))
	}
	unsub1()
	unsub1() // idempotent
	mustSave(t, s, "e", store.Record{Expires: epoch.Add(3 * time.Hour)})
	if evs := r1.take(); len(evs) != 0 {
		t.Errorf("events after unsubscribe: %v", evs)
	}
	if evs := r2.take(); len(evs) != 1 {
		t.Errorf("second subscriber: %v", evs)
	}
	unsub2()
	if s.subs.Load() != nil {
		t.Error("subscriber list not empty")
	}
}

// TestConcurrent hammers a small bounded store from many goroutines; run it
// with -race.
func TestConcurrent(t *testing.T) {
	for _, cfg := range []Config{
		{Shards: 1, MaxEntries: 8},
		{Shards: 4, MaxEntries: 16, MaxBytes: 400},
		{Shards: 64, MaxEntries: 3},
		{MaxEntries: -1},
	} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			c := newClock()
			cfg.Now = c.Now
			cfg.CleanupInterval = -1
			s := newStore(t, cfg)
			var events sync.Map
			defer s.Subscribe(func(ev store.Event) { events.Store(ev.Op, true) })()
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 500 {
						k := fmt.Sprint("k", (g*7+i)%40)
						u := fmt.Sprint("u", i%3)
						exp := c.Now().Add(time.Duration(1+(i*g)%60) * time.Second)
						rec, err := s.Load(ctx, k)
						if err != nil && !errors.Is(err, store.ErrNotFound) {
							t.Error(err)
							return
						}
						switch i % 7 {
						case 0:
							s.Delete(ctx, k, rec.Version)
						case 1:
							s.Touch(ctx, k, 0, exp)
						case 2:
							s.ListUser(ctx, u)
						case 3:
							if g == 0 {
								s.DeleteUser(ctx, u)
								c.Advance(time.Second)
							}
						case 4:
							if g == 1 {
								s.sweep()
							}
						}
						_, err = s.Save(ctx, k, store.Record{Data: make([]byte, i%20), Version: rec.Version, Expires: exp, UserID: u})
						if err != nil && !errors.Is(err, store.ErrConflict) {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			checkInvariants(t, s)
		})
	}
}

// TestCASCounter checks that compare-and-set serializes increments.
func TestCASCounter(t *testing.T) {
	s := newStore(t, Config{Shards: 2})
	exp := time.Now().Add(time.Hour)
	const workers, incs = 8, 200
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range incs {
				for {
					rec, err := s.Load(ctx, "ctr")
					n := 0
					if err == nil {
						fmt.Sscan(string(rec.Data), &n)
					}
					_, err = s.Save(ctx, "ctr", store.Record{Data: []byte(fmt.Sprint(n + 1)), Version: rec.Version, Expires: exp})
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	rec, err := s.Load(ctx, "ctr")
	if err != nil || string(rec.Data) != fmt.Sprint(workers*incs) {
		t.Fatalf("counter = %q, %v; want %d", rec.Data, err, workers*incs)
	}
}

// TestBytesLivelock: two Saves that each hold part of the byte budget must
// not wait for each other forever.
func TestBytesContention(t *testing.T) {
	s := newStore(t, Config{Shards: 64, MaxEntries: -1, MaxBytes: 100, CleanupInterval: -1})
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := fmt.Sprint(g, "/", i)
				if _, err := s.Save(ctx, k, store.Record{Data: make([]byte, 30+(i*g)%60), Expires: exp}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkInvariants(t, s)
}
