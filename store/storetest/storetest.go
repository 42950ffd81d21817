package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store"
)

// Options says how to make the store under test.
type Options struct {
	// New returns a new, empty store, isolated from every other store New
	// returned (for a shared server: a unique key prefix). now is the clock
	// the store must use for expiry. The suite closes the store at the end of
	// the subtest (t.Cleanup is yours to use too).
	New func(t *testing.T, now func() time.Time) store.Store

	// ServerClock says the store expires records by its own (server) clock
	// and ignores now. Expiry tests then use real time: records that expire
	// about 1 s ahead, polled (never a bare long sleep) with a deadline.
	ServerClock bool

	// Writers is how many goroutines the concurrency tests put on one
	// record; default 64. A store whose every write is a consensus round
	// among replicas (a clustered NATS or Olric) may lower it to keep the
	// suite within its time bound on a small machine: the tests prove
	// compare-and-set by the updates they count, which any number of
	// contending writers above one exposes. Values below 8 are raised to 8.
	Writers int

	// MaxData, if positive, says the store holds no record whose Data is
	// longer than MaxData bytes (for an unbound record; Memcached's item
	// size limit, say), where the suite otherwise saves and loads 1 MiB.
	// The Values test then saves Data of min(MaxData, 1 MiB) bytes, and
	// checks that MaxData+1 bytes are refused with store.ErrTooLarge,
	// changing nothing. Default 0: no limit below 1 MiB.
	MaxData int

	// Peer, if set, returns another store on the same data as s, which New
	// returned: a second client of the same server, with the same key
	// prefix, table or bucket (and the same clock), as a second node of an
	// app would have. The suite closes it at the end of the subtest. With
	// a Peer, the concurrency tests spread their writers over s and its
	// peer, and the Coherence test checks that a change made through one is
	// seen through the other within CoherenceBound: the tests to run a
	// store with a near cache through, where each of the two has its own.
	Peer func(t *testing.T, s store.Store) store.Store

	// FeedResets says, for a store.Notifier, when it reports store.OpReset
	// (for example "when the listening connection breaks, and again once
	// it listens again"; "never: the feed is in-process"). With a Peer the
	// Coherence test fails for a Notifier whose feed is on and that leaves
	// it empty: a near cache over the store depends on it.
	FeedResets string
}

// CoherenceBound is how long the Coherence test lets a change made through
// a store take to be seen through its peer (Options.Peer): the bound on a
// near cache's staleness that the suite holds a store to.
const CoherenceBound = 2 * time.Second

func (o Options) writers() int {
	switch {
	case o.Writers == 0:
		return 64
	case o.Writers < 8:
		return 8
	}
	return o.Writers
}

// Run runs every test of the suite as subtests of t, named after what they
// check.
func Run(t *testing.T, opts Options) {
	if opts.New == nil {
		t.Fatal("storetest: Options.New is nil")
	}
	su := &suite{opts: opts}
	t.Run("CRUD", su.testCRUD)
	t.Run("CompareAndSet", su.testCompareAndSet)
	t.Run("Delete", su.testDelete)
	t.Run("Expiry", su.testExpiry)
	t.Run("Touch", su.testTouch)
	t.Run("UserIndex", su.testUserIndex)
	t.Run("Notifier", su.testNotifier)
	t.Run("Concurrency", su.testConcurrency)
	t.Run("Coherence", su.testCoherence)
	t.Run("Values", su.testValues)
	t.Run("Keys", su.testKeys)
	t.Run("Closed", su.testClosed)
	t.Run("CanceledContext", su.testCanceledContext)
}

const (
	// waitTimeout bounds every wait of the suite: events, expiry polls,
	// operations with a canceled context.
	waitTimeout = 5 * time.Second
	// pollInterval is how often expiry is polled on a server clock.
	pollInterval = 50 * time.Millisecond

	skipToucher   = "store does not implement store.Toucher"
	skipUserIndex = "store does not implement store.UserIndex"
	skipNotifier  = "store does not implement store.Notifier"
	skipFeedOff   = "store's change feed is off: Subscribe returned nil"
)

// clockStart is where every fake clock starts, so that expiry does not depend
// on the wall clock.
var clockStart = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

type suite struct{ opts Options }

// env is one subtest's store and clock.
type env struct {
	t     *testing.T
	ctx   context.Context
	s     store.Store
	clock *testclock.Clock // nil with ServerClock
	peer  store.Store      // made by peerStore
	opts  Options
}

// newEnv makes a new store for the subtest t and closes it when t ends.
func (su *suite) newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), opts: su.opts}
	now := time.Now
	if !su.opts.ServerClock {
		e.clock = testclock.New(clockStart)
		now = e.clock.Now
	}
	s := su.opts.New(t, now)
	if s == nil {
		t.Fatal("Options.New returned a nil store")
	}
	t.Cleanup(func() { s.Close() })
	e.s = s
	return e
}

// peerStore returns the peer of the subtest's store (Options.Peer), made
// on first use and closed when the subtest ends, or nil without a Peer.
func (e *env) peerStore() store.Store {
	e.t.Helper()
	if e.opts.Peer == nil {
		return nil
	}
	if e.peer == nil {
		p := e.opts.Peer(e.t, e.s)
		if p == nil {
			e.t.Fatal("Options.Peer returned a nil store")
		}
		e.t.Cleanup(func() { p.Close() })
		e.peer = p
	}
	return e.peer
}

// nodes returns the subtest's store and, with a Peer, its peer.
func (e *env) nodes() []store.Store {
	if p := e.peerStore(); p != nil {
		return []store.Store{e.s, p}
	}
	return []store.Store{e.s}
}

// now returns the time of the store's clock.
func (e *env) now() time.Time {
	if e.clock != nil {
		return e.clock.Now()
	}
	return time.Now()
}

// expires returns now+d with millisecond precision.
func (e *env) expires(d time.Duration) time.Time {
	return e.now().Add(d).Truncate(time.Millisecond)
}

// rec returns a new record (Version 0) that expires in an hour.
func (e *env) rec(data, userID string) store.Record {
	return store.Record{Data: []byte(data), Expires: e.expires(time.Hour), UserID: userID}
}

func (e *env) toucher() store.Toucher {
	e.t.Helper()
	x, ok := e.s.(store.Toucher)
	if !ok {
		e.t.Skip(skipToucher)
	}
	return x
}

func (e *env) userIndex() store.UserIndex {
	e.t.Helper()
	x, ok := e.s.(store.UserIndex)
	if !ok {
		e.t.Skip(skipUserIndex)
	}
	return x
}

func (e *env) notifier() store.Notifier {
	e.t.Helper()
	x, ok := e.s.(store.Notifier)
	if !ok {
		e.t.Skip(skipNotifier)
	}
	return x
}

// subscribe subscribes fn to the store's events, and skips the test if
// the store has no change feed (not a Notifier, or its feed turned off).
func (e *env) subscribe(fn func(store.Event)) (unsubscribe func()) {
	e.t.Helper()
	unsub := e.notifier().Subscribe(fn)
	if unsub == nil {
		e.t.Skip(skipFeedOff)
	}
	return unsub
}

// save saves rec under key and fails the test unless it succeeds with a
// non-zero version.
func (e *env) save(key string, rec store.Record) uint64 {
	e.t.Helper()
	v, err := e.s.Save(e.ctx, key, rec)
	if err != nil {
		e.t.Fatalf("Save(%q, Version %d): got err %v; want nil", key, rec.Version, err)
	}
	if v == 0 {
		e.t.Fatalf("Save(%q, Version %d): got version 0; want non-zero", key, rec.Version)
	}
	return v
}

// wantRecord loads key and reports how it differs from want with version.
func (e *env) wantRecord(key string, want store.Record, version uint64) {
	e.t.Helper()
	got, err := e.s.Load(e.ctx, key)
	if err != nil {
		e.t.Errorf("Load(%q): got err %v; want nil", key, err)
		return
	}
	want.Version = version
	checkRecord(e.t, fmt.Sprintf("Load(%q)", key), got, want)
}

// wantNotFound reports unless Load(key) returns ErrNotFound.
func (e *env) wantNotFound(key string) {
	e.t.Helper()
	rec, err := e.s.Load(e.ctx, key)
	if !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("Load(%q): got record version %d, err %v; want err %v", key, rec.Version, err, store.ErrNotFound)
	}
}

// wantErr reports unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got err %v; want %v", what, err, target)
	}
}

// checkRecord reports every field of got that differs from want. Expires may
// differ by up to a millisecond.
func checkRecord(t *testing.T, what string, got, want store.Record) {
	t.Helper()
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("%s.Data: got %s; want %s", what, showData(got.Data), showData(want.Data))
	}
	if got.Version != want.Version {
		t.Errorf("%s.Version: got %d; want %d", what, got.Version, want.Version)
	}
	if !sameTime(got.Expires, want.Expires) {
		t.Errorf("%s.Expires: got %v; want %v (within 1ms)", what, got.Expires, want.Expires)
	}
	if got.UserID != want.UserID {
		t.Errorf("%s.UserID: got %q; want %q", what, got.UserID, want.UserID)
	}
}

func sameTime(a, b time.Time) bool { return a.Sub(b).Abs() <= time.Millisecond }

// showData formats data for a failure message, briefly if it is long.
func showData(b []byte) string {
	if b == nil {
		return "nil"
	}
	if len(b) <= 64 {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%d bytes %q...", len(b), b[:32])
}

// ---- CRUD ----

func (su *suite) testCRUD(t *testing.T) {
	t.Run("SaveNewAndLoad", func(t *testing.T) {
		e := su.newEnv(t)
		want := e.rec("hello", "user-1")
		v, err := e.s.Save(e.ctx, "k", want)
		if err != nil {
			t.Fatalf("Save(new): got err %v; want nil", err)
		}
		if v == 0 {
			t.Fatalf("Save(new): got version %d; want non-zero", v)
		}
		e.wantRecord("k", want, v)
	})

	t.Run("Replace", func(t *testing.T) {
		e := su.newEnv(t)
		v1 := e.save("k", e.rec("one", "user-1"))
		two := store.Record{Data: []byte("two"), Version: v1, Expires: e.expires(2 * time.Hour), UserID: "user-2"}
		v2, err := e.s.Save(e.ctx, "k", two)
		if err != nil {
			t.Fatalf("Save(replace, Version %d): got err %v; want nil", v1, err)
		}
		if v2 == 0 || v2 == v1 {
			t.Fatalf("Save(replace, Version %d): got version %d; want non-zero and not %d", v1, v2, v1)
		}
		e.wantRecord("k", two, v2)

		three := store.Record{Data: []byte("three"), Version: v2, Expires: e.expires(3 * time.Hour)}
		v3 := e.save("k", three)
		if v3 == v1 || v3 == v2 {
			t.Errorf("Save(replace, Version %d): got version %d; want one not in [%d %d]", v2, v3, v1, v2)
		}
		e.wantRecord("k", three, v3)
	})

	t.Run("LoadMissing", func(t *testing.T) {
		e := su.newEnv(t)
		e.wantNotFound("missing")
		e.save("other", e.rec("x", ""))
		e.wantNotFound("missing")
	})

	t.Run("EmptyData", func(t *testing.T) {
		e := su.newEnv(t)
		for _, tc := range []struct {
			key  string
			data []byte
		}{{"empty", []byte{}}, {"nil", nil}} {
			rec := store.Record{Data: tc.data, Expires: e.expires(time.Hour), UserID: "u"}
			v := e.save(tc.key, rec)
			got, err := e.s.Load(e.ctx, tc.key)
			if err != nil {
				t.Errorf("Load(%q): got err %v; want nil", tc.key, err)
				continue
			}
			if len(got.Data) != 0 {
				t.Errorf("Load(%q): got %d bytes of Data; want 0", tc.key, len(got.Data))
			}
			if got.Version != v {
				t.Errorf("Load(%q).Version: got %d; want %d", tc.key, got.Version, v)
			}
			if got.UserID != "u" {
				t.Errorf("Load(%q).UserID: got %q; want %q", tc.key, got.UserID, "u")
			}
		}
	})
}

// ---- Compare-and-set ----

func (su *suite) testCompareAndSet(t *testing.T) {
	t.Run("CreateOverLive", func(t *testing.T) {
		e := su.newEnv(t)
		one := e.rec("one", "")
		v1 := e.save("k", one)
		_, err := e.s.Save(e.ctx, "k", e.rec("two", ""))
		wantErr(t, `Save("k", Version 0) over a live record`, err, store.ErrConflict)
		e.wantRecord("k", one, v1)
	})

	t.Run("StaleVersion", func(t *testing.T) {
		e := su.newEnv(t)
		v1 := e.save("k", e.rec("one", ""))
		two := e.rec("two", "")
		two.Version = v1
		v2 := e.save("k", two)
		stale := e.rec("stale", "")
		stale.Version = v1
		_, err := e.s.Save(e.ctx, "k", stale)
		wantErr(t, fmt.Sprintf(`Save("k", stale Version %d) after replace`, v1), err, store.ErrConflict)
		e.wantRecord("k", two, v2)
	})

	t.Run("VersionOnAbsentKey", func(t *testing.T) {
		e := su.newEnv(t)
		other := e.save("other", e.rec("other", ""))
		for _, v := range []uint64{1, other, other + 1, math.MaxUint64} {
			rec := e.rec("ghost", "")
			rec.Version = v
			_, err := e.s.Save(e.ctx, "absent", rec)
			wantErr(t, fmt.Sprintf(`Save("absent", Version %d)`, v), err, store.ErrConflict)
			e.wantNotFound("absent")
		}
	})
}

// ---- Delete ----

func (su *suite) testDelete(t *testing.T) {
	t.Run("Unconditional", func(t *testing.T) {
		e := su.newEnv(t)
		e.save("k", e.rec("x", ""))
		if err := e.s.Delete(e.ctx, "k", 0); err != nil {
			t.Fatalf(`Delete("k", 0): got err %v; want nil`, err)
		}
		e.wantNotFound("k")
	})

	t.Run("AbsentUnconditional", func(t *testing.T) {
		e := su.newEnv(t)
		for range 2 {
			if err := e.s.Delete(e.ctx, "absent", 0); err != nil {
				t.Errorf(`Delete("absent", 0): got err %v; want nil`, err)
			}
		}
		e.wantNotFound("absent")
	})

	t.Run("WrongVersion", func(t *testing.T) {
		e := su.newEnv(t)
		v1 := e.save("k", e.rec("one", ""))
		two := e.rec("two", "u")
		two.Version = v1
		v2 := e.save("k", two)
		for _, v := range []uint64{v1, v2 + 1, math.MaxUint64} {
			if v == v2 {
				continue
			}
			err := e.s.Delete(e.ctx, "k", v)
			wantErr(t, fmt.Sprintf(`Delete("k", %d) with version %d stored`, v, v2), err, store.ErrConflict)
		}
		e.wantRecord("k", two, v2)
	})

	t.Run("RightVersion", func(t *testing.T) {
		e := su.newEnv(t)
		v := e.save("k", e.rec("x", ""))
		if err := e.s.Delete(e.ctx, "k", v); err != nil {
			t.Fatalf(`Delete("k", %d): got err %v; want nil`, v, err)
		}
		e.wantNotFound("k")
	})

	t.Run("VersionOnAbsentKey", func(t *testing.T) {
		e := su.newEnv(t)
		rec := e.rec("x", "")
		other := e.save("other", rec)
		for _, v := range []uint64{1, other} {
			err := e.s.Delete(e.ctx, "absent", v)
			wantErr(t, fmt.Sprintf(`Delete("absent", %d)`, v), err, store.ErrConflict)
		}
		e.wantRecord("other", rec, other)
	})

	t.Run("NoResurrection", func(t *testing.T) {
		e := su.newEnv(t)
		for _, conditional := range []bool{false, true} {
			key := "unconditional"
			if conditional {
				key = "conditional"
			}
			v1 := e.save(key, e.rec("one", ""))
			two := e.rec("two", "")
			two.Version = v1
			v2 := e.save(key, two)
			var dv uint64
			if conditional {
				dv = v2
			}
			if err := e.s.Delete(e.ctx, key, dv); err != nil {
				t.Fatalf("Delete(%q, %d): got err %v; want nil", key, dv, err)
			}
			for _, v := range []uint64{v2, v1} {
				late := e.rec("late write", "")
				late.Version = v
				_, err := e.s.Save(e.ctx, key, late)
				wantErr(t, fmt.Sprintf("Save(%q, Version %d) after Delete", key, v), err, store.ErrConflict)
				e.wantNotFound(key)
			}
			fresh := e.rec("fresh", "")
			v3 := e.save(key, fresh)
			if v3 == v1 || v3 == v2 {
				t.Errorf("Save(%q, Version 0) after Delete: got version %d; want one not in [%d %d]", key, v3, v1, v2)
			}
			e.wantRecord(key, fresh, v3)
		}
	})
}

// ---- Expiry ----

// testExpiry saves records that expire together, waits once for them to
// expire (fake clock: advances it; server clock: polls), then checks each
// operation on its own key.
func (su *suite) testExpiry(t *testing.T) {
	e := su.newEnv(t)
	const (
		kLoad     = "expiry/load"
		kCreate   = "expiry/create"
		kSave     = "expiry/save-old-version"
		kDelete   = "expiry/delete-old-version"
		kTouch    = "expiry/touch"
		kUser     = "expiry/user-expiring"
		kTouched  = "expiry/touched"
		kUserLive = "expiry/user-live"
		user      = "expiry-user"
	)
	ttl := 10 * time.Second
	if e.clock == nil {
		ttl = time.Second
	}
	exp := e.expires(ttl)
	expiring := []string{kLoad, kCreate, kSave, kDelete, kTouch, kUser}
	old := make(map[string]uint64)
	for _, k := range expiring {
		rec := store.Record{Data: []byte("old " + k), Expires: exp}
		if k == kUser {
			rec.UserID = user
		}
		old[k] = e.save(k, rec)
	}
	touched := store.Record{Data: []byte("touched"), Expires: exp}
	if toucher, ok := e.s.(store.Toucher); ok {
		touched.Version = e.save(kTouched, touched)
		touched.Expires = e.expires(time.Hour)
		if err := toucher.Touch(e.ctx, kTouched, 0, touched.Expires); err != nil {
			t.Fatalf("Touch(%q) before expiry: got err %v; want nil", kTouched, err)
		}
	}
	live := e.rec("live", user)
	if _, ok := e.s.(store.UserIndex); ok {
		live.Version = e.save(kUserLive, live)
	}

	if e.clock != nil {
		e.clock.Advance(ttl - time.Second)
		for _, k := range expiring {
			if _, err := e.s.Load(e.ctx, k); err != nil {
				t.Errorf("Load(%q) 1s before it expires: got err %v; want nil", k, err)
			}
		}
		e.clock.Advance(2 * time.Second)
	} else {
		for _, k := range expiring {
			if time.Until(exp) < 200*time.Millisecond {
				t.Logf("store too slow to check all records before they expire")
				break
			}
			if _, err := e.s.Load(e.ctx, k); err != nil {
				t.Errorf("Load(%q) before it expires: got err %v; want nil", k, err)
			}
		}
		deadline := time.Now().Add(waitTimeout)
		for pending := slices.Clone(expiring); ; {
			pending = slices.DeleteFunc(pending, func(k string) bool {
				_, err := e.s.Load(e.ctx, k)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Load(%q) while waiting for expiry: got err %v; want nil or %v", k, err, store.ErrNotFound)
				}
				return err != nil
			})
			if len(pending) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("records that expire at %v still loadable at %v: %q", exp, time.Now(), pending)
			}
			time.Sleep(pollInterval)
		}
	}

	t.Run("LoadNotFound", func(t *testing.T) {
		e := e.sub(t)
		for _, k := range expiring {
			e.wantNotFound(k)
		}
	})

	t.Run("CreateOverExpired", func(t *testing.T) {
		e := e.sub(t)
		rec := e.rec("new", "")
		v, err := e.s.Save(e.ctx, kCreate, rec)
		if err != nil {
			t.Fatalf("Save(%q, Version 0) over an expired record: got err %v; want nil", kCreate, err)
		}
		if v == 0 || v == old[kCreate] {
			t.Errorf("Save(%q, Version 0) over an expired record: got version %d; want non-zero and not %d", kCreate, v, old[kCreate])
		}
		e.wantRecord(kCreate, rec, v)
	})

	t.Run("SaveOldVersion", func(t *testing.T) {
		e := e.sub(t)
		rec := e.rec("late write", "")
		rec.Version = old[kSave]
		_, err := e.s.Save(e.ctx, kSave, rec)
		wantErr(t, fmt.Sprintf("Save(%q, Version %d) over an expired record", kSave, rec.Version), err, store.ErrConflict)
		e.wantNotFound(kSave)
	})

	t.Run("DeleteOldVersion", func(t *testing.T) {
		e := e.sub(t)
		err := e.s.Delete(e.ctx, kDelete, old[kDelete])
		wantErr(t, fmt.Sprintf("Delete(%q, %d) of an expired record", kDelete, old[kDelete]), err, store.ErrConflict)
		if err := e.s.Delete(e.ctx, kDelete, 0); err != nil {
			t.Errorf("Delete(%q, 0) of an expired record: got err %v; want nil", kDelete, err)
		}
		e.wantNotFound(kDelete)
	})

	t.Run("TouchExpired", func(t *testing.T) {
		e := e.sub(t)
		toucher := e.toucher()
		err := toucher.Touch(e.ctx, kTouch, 0, e.expires(time.Hour))
		wantErr(t, fmt.Sprintf("Touch(%q) of an expired record", kTouch), err, store.ErrNotFound)
		e.wantNotFound(kTouch)
	})

	t.Run("TouchKeepsAlive", func(t *testing.T) {
		e := e.sub(t)
		e.toucher()
		e.wantRecord(kTouched, touched, touched.Version)
	})

	t.Run("ListUserOmitsExpired", func(t *testing.T) {
		e := e.sub(t)
		index := e.userIndex()
		wantList(e, index, user, map[string]store.Record{kUserLive: live})
		n, err := index.DeleteUser(e.ctx, user)
		if err != nil || n != 1 {
			t.Errorf("DeleteUser(%q) with 1 live and 1 expired record: got %d, err %v; want 1, nil", user, n, err)
		}
		e.wantNotFound(kUserLive)
	})
}

// sub returns e for the subtest t, sharing e's store and clock.
func (e *env) sub(t *testing.T) *env {
	return &env{t: t, ctx: t.Context(), s: e.s, clock: e.clock}
}

// ---- Touch ----

func (su *suite) testTouch(t *testing.T) {
	t.Run("MovesExpiry", func(t *testing.T) {
		e := su.newEnv(t)
		toucher := e.toucher()
		rec := e.rec("data", "u")
		v := e.save("k", rec)
		for _, d := range []time.Duration{2 * time.Hour, 30 * time.Minute} {
			rec.Expires = e.expires(d)
			if err := toucher.Touch(e.ctx, "k", 0, rec.Expires); err != nil {
				t.Fatalf(`Touch("k", %v): got err %v; want nil`, rec.Expires, err)
			}
			e.wantRecord("k", rec, v)
		}
	})

	t.Run("ByVersion", func(t *testing.T) {
		e := su.newEnv(t)
		toucher := e.toucher()
		rec := e.rec("data", "")
		v := e.save("k", rec)
		rec.Expires = e.expires(3 * time.Hour)
		if err := toucher.Touch(e.ctx, "k", v, rec.Expires); err != nil {
			t.Fatalf(`Touch("k", version %d): got err %v; want nil`, v, err)
		}
		e.wantRecord("k", rec, v)
		err := toucher.Touch(e.ctx, "k", v+1, e.expires(time.Minute))
		wantErr(t, `Touch("k") with a stale version`, err, store.ErrConflict)
		e.wantRecord("k", rec, v)
		err = toucher.Touch(e.ctx, "missing", v, e.expires(time.Hour))
		wantErr(t, `Touch("missing", version)`, err, store.ErrNotFound)
	})

	t.Run("MissingKey", func(t *testing.T) {
		e := su.newEnv(t)
		toucher := e.toucher()
		err := toucher.Touch(e.ctx, "missing", 0, e.expires(time.Hour))
		wantErr(t, `Touch("missing")`, err, store.ErrNotFound)
		e.wantNotFound("missing")
	})

	t.Run("VersionUnchanged", func(t *testing.T) {
		e := su.newEnv(t)
		toucher := e.toucher()
		v := e.save("k", e.rec("one", ""))
		if err := toucher.Touch(e.ctx, "k", 0, e.expires(2*time.Hour)); err != nil {
			t.Fatalf(`Touch("k"): got err %v; want nil`, err)
		}
		two := e.rec("two", "")
		two.Version = v
		v2, err := e.s.Save(e.ctx, "k", two)
		if err != nil {
			t.Fatalf(`Save("k", Version %d) after Touch: got err %v; want nil`, v, err)
		}
		if v2 == v {
			t.Errorf(`Save("k", Version %d) after Touch: got version %d; want a new one`, v, v2)
		}
		e.wantRecord("k", two, v2)
	})
}

// ---- UserIndex ----

// userFixture saves three records of alice, one of bob and one unbound, and
// returns them by key with their versions.
func (e *env) userFixture() map[string]store.Record {
	e.t.Helper()
	m := map[string]store.Record{
		"alice/1": e.rec("a1", "alice"),
		"alice/2": e.rec("a2", "alice"),
		"alice/3": e.rec("a3", "alice"),
		"bob/1":   e.rec("b1", "bob"),
		"none/1":  e.rec("n1", ""),
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		r := m[k]
		r.Version = e.save(k, r)
		m[k] = r
	}
	return m
}

// pick returns the records of m under keys.
func pick(m map[string]store.Record, keys ...string) map[string]store.Record {
	out := make(map[string]store.Record, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// wantList reports how ListUser(user) differs from want.
func wantList(e *env, index store.UserIndex, user string, want map[string]store.Record) {
	e.t.Helper()
	list, err := index.ListUser(e.ctx, user)
	if err != nil {
		e.t.Errorf("ListUser(%q): got err %v; want nil", user, err)
		return
	}
	var keys []string
	got := make(map[string]store.Record)
	for _, en := range list {
		keys = append(keys, en.Key)
		got[en.Key] = en.Record
	}
	slices.Sort(keys)
	wantKeys := slices.Sorted(maps.Keys(want))
	if !slices.Equal(keys, wantKeys) {
		e.t.Errorf("ListUser(%q) keys: got %q; want %q", user, keys, wantKeys)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			continue
		}
		checkRecord(e.t, fmt.Sprintf("ListUser(%q)[%q]", user, k), g, w)
	}
}

func (su *suite) testUserIndex(t *testing.T) {
	t.Run("List", func(t *testing.T) {
		e := su.newEnv(t)
		index := e.userIndex()
		m := e.userFixture()
		wantList(e, index, "alice", pick(m, "alice/1", "alice/2", "alice/3"))
		wantList(e, index, "bob", pick(m, "bob/1"))
	})

	t.Run("Rebind", func(t *testing.T) {
		e := su.newEnv(t)
		index := e.userIndex()
		m := e.userFixture()
		r := m["alice/2"]
		r.UserID = "bob"
		r.Version = e.save("alice/2", r)
		m["alice/2"] = r
		wantList(e, index, "alice", pick(m, "alice/1", "alice/3"))
		wantList(e, index, "bob", pick(m, "bob/1", "alice/2"))

		r.UserID = ""
		r.Version = e.save("alice/2", r)
		wantList(e, index, "bob", pick(m, "bob/1"))
		wantList(e, index, "alice", pick(m, "alice/1", "alice/3"))
	})

	t.Run("Delete", func(t *testing.T) {
		e := su.newEnv(t)
		index := e.userIndex()
		m := e.userFixture()
		if err := e.s.Delete(e.ctx, "alice/1", m["alice/1"].Version); err != nil {
			t.Fatalf(`Delete("alice/1", %d): got err %v; want nil`, m["alice/1"].Version, err)
		}
		wantList(e, index, "alice", pick(m, "alice/2", "alice/3"))
		if err := e.s.Delete(e.ctx, "alice/2", 0); err != nil {
			t.Fatalf(`Delete("alice/2", 0): got err %v; want nil`, err)
		}
		wantList(e, index, "alice", pick(m, "alice/3"))
		wantList(e, index, "bob", pick(m, "bob/1"))
	})

	t.Run("ExpiredNotListed", func(t *testing.T) {
		e := su.newEnv(t)
		index := e.userIndex()
		if e.clock == nil {
			t.Skip("needs the fake clock; Expiry/ListUserOmitsExpired covers server-clock stores")
		}
		m := e.userFixture()
		short := store.Record{Data: []byte("short"), Expires: e.expires(10 * time.Second), UserID: "alice"}
		short.Version = e.save("alice/short", short)
		m["alice/short"] = short
		wantList(e, index, "alice", pick(m, "alice/1", "alice/2", "alice/3", "alice/short"))
		e.clock.Advance(11 * time.Second)
		wantList(e, index, "alice", pick(m, "alice/1", "alice/2", "alice/3"))
	})

	t.Run("DeleteUser", func(t *testing.T) {
		e := su.newEnv(t)
		index := e.userIndex()
		m := e.userFixture()
		alice := []string{"alice/1", "alice/2", "alice/3"}
		if e.clock != nil {
			e.save("alice/short", store.Record{Data: []byte("short"), Expires: e.expires(10 * time.Second), UserID: "alice"})
			e.clock.Advance(11 * time.Second)
			alice = append(alice, "alice/short")
		}
		n, err := index.DeleteUser(e.ctx, "alice")
		if err != nil || n != 3 {
			t.Errorf(`DeleteUser("alice") with 3 live records: got %d, err %v; want 3, nil`, n, err)
		}
		wantList(e, index, "alice", nil)
		for _, k := range alice {
			e.wantNotFound(k)
		}
		wantList(e, index, "bob", pick(m, "bob/1"))
		e.wantRecord("bob/1", m["bob/1"], m["bob/1"].Version)
		e.wantRecord("none/1", m["none/1"], m["none/1"].Version)
		n, err = index.DeleteUser(e.ctx, "alice")
		if err != nil || n != 0 {
			t.Errorf(`DeleteUser("alice") again: got %d, err %v; want 0, nil`, n, err)
		}
	})

	t.Run("UnknownUser", func(t *testing.T) {
		e := su.newEnv(t)
		index := e.userIndex()
		m := e.userFixture()
		wantList(e, index, "carol", nil)
		n, err := index.DeleteUser(e.ctx, "carol")
		if err != nil || n != 0 {
			t.Errorf(`DeleteUser("carol"): got %d, err %v; want 0, nil`, n, err)
		}
		for k, r := range m {
			e.wantRecord(k, r, r.Version)
		}
	})

	t.Run("OddUserIDs", func(t *testing.T) {
		e := su.newEnv(t)
		index := e.userIndex()
		ids := []string{" ", "a b", "a", "a*", "a?", "a:b", ":", "{x}", "{x}y", "%", "A", "пользователь", "用户", "a\n"}
		recs := make([]map[string]store.Record, len(ids))
		for i, id := range ids {
			recs[i] = make(map[string]store.Record)
			for j := range 2 {
				k := fmt.Sprintf("odd/%d/%d", i, j)
				r := e.rec(fmt.Sprintf("data %d/%d", i, j), id)
				r.Version = e.save(k, r)
				recs[i][k] = r
			}
		}
		for i, id := range ids {
			wantList(e, index, id, recs[i])
		}
		for i, id := range ids {
			n, err := index.DeleteUser(e.ctx, id)
			if err != nil || n != 2 {
				t.Errorf("DeleteUser(%q): got %d, err %v; want 2, nil", id, n, err)
			}
			wantList(e, index, id, nil)
			for j := i + 1; j < len(ids); j++ {
				wantList(e, index, ids[j], recs[j])
			}
		}
	})
}

// ---- Notifier ----

func isEvent(op store.Op, key string, version uint64) func(store.Event) bool {
	return func(ev store.Event) bool {
		return ev.Op == op && ev.Key == key && (version == 0 || ev.Version == version)
	}
}

func (su *suite) testNotifier(t *testing.T) {
	t.Run("Save", func(t *testing.T) {
		e := su.newEnv(t)
		c := new(EventLog)
		defer e.subscribe(c.Add)()
		v1 := e.save("k", e.rec("one", ""))
		if c.WaitFor(0, waitTimeout, isEvent(store.OpSave, "k", v1)) < 0 {
			t.Errorf("events after Save: got %v; want one with {Op:%v Key:%q Version:%d}", c.Events(), store.OpSave, "k", v1)
		}
		if rec, err := e.s.Load(e.ctx, "k"); err != nil || rec.Version != v1 {
			t.Errorf(`Load("k") after Save: got version %d, err %v; want version %d, the OpSave event's`, rec.Version, err, v1)
		}
		two := e.rec("two", "")
		two.Version = v1
		v2 := e.save("k", two)
		if c.WaitFor(0, waitTimeout, isEvent(store.OpSave, "k", v2)) < 0 {
			t.Errorf("events after replace: got %v; want one with {Op:%v Key:%q Version:%d}", c.Events(), store.OpSave, "k", v2)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		e := su.newEnv(t)
		c := new(EventLog)
		defer e.subscribe(c.Add)()
		v := e.save("k", e.rec("one", ""))
		if err := e.s.Delete(e.ctx, "k", v); err != nil {
			t.Fatalf(`Delete("k", %d): got err %v; want nil`, v, err)
		}
		if c.WaitFor(0, waitTimeout, isEvent(store.OpDelete, "k", 0)) < 0 {
			t.Errorf("events after Delete: got %v; want one with {Op:%v Key:%q}", c.Events(), store.OpDelete, "k")
		}
	})

	t.Run("Unsubscribe", func(t *testing.T) {
		e := su.newEnv(t)
		a, b := new(EventLog), new(EventLog)
		unsubA := e.subscribe(a.Add)
		defer e.subscribe(b.Add)()
		v := e.save("before", e.rec("x", ""))
		if a.WaitFor(0, waitTimeout, isEvent(store.OpSave, "before", v)) < 0 {
			t.Fatalf("events before unsubscribe: got %v; want one with {Op:%v Key:%q Version:%d}", a.Events(), store.OpSave, "before", v)
		}
		unsubA()
		// Changes after unsubscribe; b, still subscribed, tells when their
		// events have been delivered.
		v = e.save("after", e.rec("x", ""))
		if err := e.s.Delete(e.ctx, "after", v); err != nil {
			t.Fatalf(`Delete("after", %d): got err %v; want nil`, v, err)
		}
		if b.WaitFor(0, waitTimeout, isEvent(store.OpDelete, "after", 0)) < 0 {
			t.Fatalf("events of the remaining subscriber: got %v; want one with {Op:%v Key:%q}", b.Events(), store.OpDelete, "after")
		}
		for _, ev := range a.Events() {
			if ev.Key == "after" {
				t.Errorf("event after unsubscribe: got %v; want none", ev)
			}
		}
	})
}

// ---- Concurrency ----

func (su *suite) testConcurrency(t *testing.T) {
	t.Run("OneRecord", func(t *testing.T) {
		e := su.newEnv(t)
		if err := checkConcurrentEntries(e.ctx, e.nodes(), "concurrent/entries", e.expires(time.Hour), su.opts.writers()); err != nil {
			t.Error(err)
		}
	})
	t.Run("Counter", func(t *testing.T) {
		e := su.newEnv(t)
		if err := checkConcurrentCounter(e.ctx, e.nodes(), "concurrent/counter", e.expires(time.Hour), su.opts.writers(), 20); err != nil {
			t.Error(err)
		}
	})
}

// settled loads key from every store of nodes and returns nil once check
// accepts what each returns; with several nodes it tries again for up to
// CoherenceBound (a near cache may serve a copy that is stale for that
// long), and returns check's last error.
func settled(ctx context.Context, nodes []store.Store, key string, check func(store.Record) error) error {
	deadline := time.Now().Add(CoherenceBound)
	for i, s := range nodes {
		for {
			rec, err := s.Load(ctx, key)
			if err != nil {
				err = fmt.Errorf("Load(%q): %w", key, err)
			} else {
				err = check(rec)
			}
			if err == nil {
				break
			}
			if len(nodes) == 1 || time.Now().After(deadline) || ctx.Err() != nil {
				if len(nodes) > 1 {
					err = fmt.Errorf("store %d of %d, %v after the last write: %w", i+1, len(nodes), CoherenceBound, err)
				}
				return err
			}
			time.Sleep(pollInterval / 10)
		}
	}
	return nil
}

// checkConcurrentEntries has n goroutines, spread over nodes, each add its
// own entry to the one record under key, in compare-and-set loops, and
// returns an error if the record does not end up holding all n entries
// once each.
func checkConcurrentEntries(ctx context.Context, nodes []store.Store, key string, expires time.Time, n int) error {
	err := hammer(ctx, nodes, key, expires, n, 1, func(old []byte, g, _ int) []byte {
		b := make([]byte, 0, len(old)+8)
		b = append(b, old...)
		return fmt.Appendf(b, "w%d;", g)
	})
	if err != nil {
		return err
	}
	return settled(ctx, nodes, key, func(rec store.Record) error {
		seen := make(map[string]int)
		for _, f := range strings.Split(strings.TrimSuffix(string(rec.Data), ";"), ";") {
			if f != "" {
				seen[f]++
			}
		}
		var missing, dup []string
		for g := range n {
			switch c := seen[fmt.Sprintf("w%d", g)]; {
			case c == 0:
				missing = append(missing, fmt.Sprintf("w%d", g))
			case c > 1:
				dup = append(dup, fmt.Sprintf("w%d", g))
			}
		}
		if len(missing) > 0 || len(dup) > 0 || len(seen) != n {
			return fmt.Errorf("%d concurrent compare-and-set updates of %q over %d stores: lost %d updates (missing %q), applied %d twice (%q), %d distinct entries; want %d entries once each",
				n, key, len(nodes), len(missing), missing, len(dup), dup, len(seen), n)
		}
		return nil
	})
}

// checkConcurrentCounter has goroutines goroutines, spread over nodes,
// each increment the counter under key incs times, in compare-and-set
// loops, and returns an error if the final count is not goroutines*incs.
func checkConcurrentCounter(ctx context.Context, nodes []store.Store, key string, expires time.Time, goroutines, incs int) error {
	var parseErr atomic.Pointer[error]
	err := hammer(ctx, nodes, key, expires, goroutines, incs, func(old []byte, _, _ int) []byte {
		c := 0
		if len(old) > 0 {
			var err error
			if c, err = strconv.Atoi(string(old)); err != nil {
				parseErr.CompareAndSwap(nil, &err)
			}
		}
		return strconv.AppendInt(nil, int64(c+1), 10)
	})
	if p := parseErr.Load(); p != nil {
		return fmt.Errorf("counter %q holds a non-number: %w", key, *p)
	}
	if err != nil {
		return err
	}
	return settled(ctx, nodes, key, func(rec store.Record) error {
		got, err := strconv.Atoi(string(rec.Data))
		if err != nil {
			return fmt.Errorf("counter %q holds %q: %w", key, rec.Data, err)
		}
		want := goroutines * incs
		switch {
		case got < want:
			return fmt.Errorf("%d goroutines x %d compare-and-set increments of %q over %d stores: got %d; want %d (lost %d updates)", goroutines, incs, key, len(nodes), got, want, want-got)
		case got > want:
			return fmt.Errorf("%d goroutines x %d compare-and-set increments of %q over %d stores: got %d; want %d (%d conflicts reported for writes that were applied)", goroutines, incs, key, len(nodes), got, want, got-want)
		}
		return nil
	})
}

// hammer runs goroutines goroutines, goroutine g on nodes[g%len(nodes)],
// that each apply steps updates to the record under key, each update a
// compare-and-set loop: Load (ErrNotFound means version 0), apply, Save
// with the loaded version, retry on ErrConflict. apply must not modify old.
// hammer gives up, so that a broken store cannot hang it, after 30 s or
// after more attempts than a correct store can need (each success makes at
// most every other goroutine's attempt fail once; a stale copy served by a
// near cache costs one failed attempt more, after which the conflict has
// dropped it).
func hammer(ctx context.Context, nodes []store.Store, key string, expires time.Time, goroutines, steps int,
	apply func(old []byte, g, step int) []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	maxAttempts := int64(3*goroutines*goroutines*steps + 1000)
	var (
		attempts atomic.Int64
		once     sync.Once
		first    error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel() })
	}
	for g := range goroutines {
		s := nodes[g%len(nodes)]
		wg.Go(func() {
			for step := range steps {
				for {
					if a := attempts.Add(1); a > maxAttempts {
						fail(fmt.Errorf("concurrent updates of %q: gave up after %d attempts for %d updates", key, maxAttempts, goroutines*steps))
						return
					}
					if ctx.Err() != nil {
						fail(fmt.Errorf("concurrent updates of %q: not done within 30s: %w", key, ctx.Err()))
						return
					}
					var version uint64
					var data []byte
					rec, err := s.Load(ctx, key)
					switch {
					case err == nil:
						version, data = rec.Version, rec.Data
					case errors.Is(err, store.ErrNotFound):
					default:
						fail(fmt.Errorf("goroutine %d: Load(%q): %w", g, key, err))
						return
					}
					next := apply(data, g, step)
					_, err = s.Save(ctx, key, store.Record{Data: next, Version: version, Expires: expires})
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						fail(fmt.Errorf("goroutine %d: Save(%q, Version %d): %w", g, key, version, err))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return first
}

// ---- Coherence ----

// delays collects how long changes took to be seen through the peer.
type delays []time.Duration

// String gives the count, median, 99th percentile and maximum.
func (d delays) String() string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(math.Ceil(p*float64(len(s))))-1)] }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(s), q(0.5), q(0.99), s[len(s)-1])
}

// seenWithin polls Load(key) on s until match accepts its outcome, for up
// to CoherenceBound, and returns how long that took since from, or an
// error describing the last outcome.
func seenWithin(ctx context.Context, s store.Store, key string, from time.Time, match func(store.Record, error) bool) (time.Duration, error) {
	deadline := from.Add(CoherenceBound)
	for {
		rec, err := s.Load(ctx, key)
		if match(rec, err) {
			return time.Since(from), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("Load(%q) %v after the change: got version %d, err %v", key, CoherenceBound, rec.Version, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func hasVersion(v uint64) func(store.Record, error) bool {
	return func(rec store.Record, err error) bool { return err == nil && rec.Version == v }
}

func notFound(_ store.Record, err error) bool { return errors.Is(err, store.ErrNotFound) }

func (su *suite) testCoherence(t *testing.T) {
	if su.opts.Peer == nil {
		t.Skip("Options.Peer is nil")
	}
	const rounds = 20

	// Each round: one store creates, replaces and deletes a key that the
	// other has just read (and so may hold in a near cache); the two take
	// turns writing.
	t.Run("SaveReplaceDelete", func(t *testing.T) {
		e := su.newEnv(t)
		nodes := e.nodes()
		var created, replaced, deleted delays
		for i := range rounds {
			w, r := nodes[i%2], nodes[(i+1)%2]
			key := fmt.Sprintf("coherence/%d", i)
			if _, err := r.Load(e.ctx, key); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Load(%q) before it is saved: got err %v; want %v", key, err, store.ErrNotFound)
			}
			v, err := w.Save(e.ctx, key, e.rec("one", ""))
			if err != nil {
				t.Fatalf("Save(%q, new): %v", key, err)
			}
			d, err := seenWithin(e.ctx, r, key, time.Now(), hasVersion(v))
			if err != nil {
				t.Fatalf("new record saved through store %d, read through the other: %v; want version %d", i%2+1, err, v)
			}
			created = append(created, d)

			two := e.rec("two", "")
			two.Version = v
			if v, err = w.Save(e.ctx, key, two); err != nil {
				t.Fatalf("Save(%q, Version %d): %v", key, two.Version, err)
			}
			d, err = seenWithin(e.ctx, r, key, time.Now(), hasVersion(v))
			if err != nil {
				t.Fatalf("record replaced through store %d, read through the other: %v; want version %d", i%2+1, err, v)
			}
			replaced = append(replaced, d)

			if err := w.Delete(e.ctx, key, v); err != nil {
				t.Fatalf("Delete(%q, %d): %v", key, v, err)
			}
			d, err = seenWithin(e.ctx, r, key, time.Now(), notFound)
			if err != nil {
				t.Fatalf("record deleted through store %d, read through the other: %v; want %v", i%2+1, err, store.ErrNotFound)
			}
			deleted = append(deleted, d)
		}
		t.Logf("seen through the peer after a create: %v; a replace: %v; a delete: %v", created, replaced, deleted)
	})

	// A logout: one store deletes a session the other has just read, and
	// the other must answer not found within the bound; 200 trials, whose
	// delays (from the Delete's return to the first not-found) are logged.
	t.Run("Logout", func(t *testing.T) {
		e := su.newEnv(t)
		nodes := e.nodes()
		var deleted delays
		for i := range 200 {
			w, r := nodes[i%2], nodes[(i+1)%2]
			key := fmt.Sprintf("logout/%d", i)
			v, err := w.Save(e.ctx, key, e.rec("x", ""))
			if err != nil {
				t.Fatalf("Save(%q, new): %v", key, err)
			}
			if _, err := seenWithin(e.ctx, r, key, time.Now(), hasVersion(v)); err != nil {
				t.Fatalf("new record saved through store %d, read through the other: %v", i%2+1, err)
			}
			if err := w.Delete(e.ctx, key, v); err != nil {
				t.Fatalf("Delete(%q, %d): %v", key, v, err)
			}
			d, err := seenWithin(e.ctx, r, key, time.Now(), notFound)
			if err != nil {
				t.Fatalf("trial %d: record deleted through store %d, read through the other: %v; want %v", i, i%2+1, err, store.ErrNotFound)
			}
			deleted = append(deleted, d)
		}
		t.Logf("a delete through one store seen through the other after: %v", deleted)
	})

	t.Run("DeleteUser", func(t *testing.T) {
		e := su.newEnv(t)
		nodes := e.nodes()
		if _, ok := e.s.(store.UserIndex); !ok {
			t.Skip(skipUserIndex)
		}
		var deleted delays
		for i := range rounds / 4 {
			w, r := nodes[i%2], nodes[(i+1)%2]
			user := fmt.Sprintf("user%d", i)
			keys := []string{fmt.Sprintf("du/%d/a", i), fmt.Sprintf("du/%d/b", i)}
			for _, key := range keys {
				v, err := w.Save(e.ctx, key, e.rec("x", user))
				if err != nil {
					t.Fatalf("Save(%q): %v", key, err)
				}
				if _, err := seenWithin(e.ctx, r, key, time.Now(), hasVersion(v)); err != nil {
					t.Fatalf("new record saved through store %d, read through the other: %v", i%2+1, err)
				}
			}
			n, err := w.(store.UserIndex).DeleteUser(e.ctx, user)
			if err != nil || n != len(keys) {
				t.Fatalf("DeleteUser(%q): got %d, err %v; want %d, nil", user, n, err, len(keys))
			}
			from := time.Now()
			for _, key := range keys {
				d, err := seenWithin(e.ctx, r, key, from, notFound)
				if err != nil {
					t.Fatalf("user deleted through store %d, a session read through the other: %v; want %v", i%2+1, err, store.ErrNotFound)
				}
				deleted = append(deleted, d)
			}
		}
		t.Logf("sessions seen deleted through the peer after a DeleteUser: %v", deleted)
	})

	t.Run("FeedResetsDocumented", func(t *testing.T) {
		e := su.newEnv(t)
		n, ok := e.s.(store.Notifier)
		if !ok {
			t.Skip(skipNotifier)
		}
		unsub := n.Subscribe(func(store.Event) {})
		if unsub == nil {
			t.Skip(skipFeedOff)
		}
		unsub()
		if su.opts.FeedResets == "" {
			t.Error("the store is a store.Notifier and Options.FeedResets is empty: say when it reports store.OpReset, which a near cache over it relies on")
		}
	})
}

// ---- Values ----

func (su *suite) testValues(t *testing.T) {
	sizes := []int{0, 1, 1000, 1 << 20}
	if su.opts.MaxData > 0 {
		sizes[3] = min(su.opts.MaxData, 1<<20)
		t.Run("TooLarge", func(t *testing.T) {
			e := su.newEnv(t)
			old := e.rec("old", "")
			v := e.save("v", old)
			_, err := e.s.Save(e.ctx, "new", store.Record{Data: randomBytes(su.opts.MaxData + 1), Expires: e.expires(time.Hour)})
			wantErr(t, fmt.Sprintf("Save(new, %d bytes)", su.opts.MaxData+1), err, store.ErrTooLarge)
			e.wantNotFound("new")
			_, err = e.s.Save(e.ctx, "v", store.Record{Data: randomBytes(su.opts.MaxData + 1), Version: v, Expires: e.expires(time.Hour)})
			wantErr(t, fmt.Sprintf("Save(replace, %d bytes)", su.opts.MaxData+1), err, store.ErrTooLarge)
			e.wantRecord("v", old, v)
		})
	}
	for _, n := range sizes {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			e := su.newEnv(t)
			data := randomBytes(n)
			v := e.save("v", store.Record{Data: data, Expires: e.expires(time.Hour)})
			got, err := e.s.Load(e.ctx, "v")
			if err != nil {
				t.Fatalf(`Load("v"): got err %v; want nil`, err)
			}
			if !bytes.Equal(got.Data, data) {
				i := 0
				for i < len(got.Data) && i < len(data) && got.Data[i] == data[i] {
					i++
				}
				t.Errorf(`Load("v").Data: got %d bytes, first difference at byte %d; want the %d bytes saved`, len(got.Data), i, len(data))
			}
			if got.Version != v {
				t.Errorf(`Load("v").Version: got %d; want %d`, got.Version, v)
			}
		})
	}
}

// randomBytes returns n bytes, the same for every run.
func randomBytes(n int) []byte {
	var seed [32]byte
	copy(seed[:], "sessionkit storetest")
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// ---- Keys ----

func (su *suite) testKeys(t *testing.T) {
	t.Run("Empty", func(t *testing.T) {
		e := su.newEnv(t)
		e.wantInvalidKey("")
	})

	t.Run("TooLong", func(t *testing.T) {
		e := su.newEnv(t)
		e.wantInvalidKey(strings.Repeat("k", store.MaxKeyLen+1))
		e.wantNotFound(strings.Repeat("k", store.MaxKeyLen))
	})

	t.Run("Odd", func(t *testing.T) {
		e := su.newEnv(t)
		keys := []string{
			"a b", "ключ", "{tag}", "{tag}x", "a:b", "a*b?", "a*", "\x00\xff\x01", "/", "%2F",
			strings.Repeat("k", store.MaxKeyLen), "K", "k", "k\x00", "k ", "\n", "\\",
		}
		recs := make(map[string]store.Record, len(keys))
		for i, k := range keys {
			r := e.rec(fmt.Sprintf("value %d of %q", i, k), "")
			r.Version = e.save(k, r)
			recs[k] = r
		}
		for i, k := range keys {
			for _, k := range keys[i:] {
				e.wantRecord(k, recs[k], recs[k].Version)
			}
			if err := e.s.Delete(e.ctx, k, recs[k].Version); err != nil {
				t.Errorf("Delete(%q, %d): got err %v; want nil", k, recs[k].Version, err)
			}
			e.wantNotFound(k)
		}
	})
}

// wantInvalidKey reports unless every keyed operation rejects key with
// ErrInvalidKey.
func (e *env) wantInvalidKey(key string) {
	e.t.Helper()
	short := key
	if len(short) > 16 {
		short = fmt.Sprintf("<%d bytes>", len(key))
	}
	_, err := e.s.Load(e.ctx, key)
	wantErr(e.t, fmt.Sprintf("Load(%q)", short), err, store.ErrInvalidKey)
	_, err = e.s.Save(e.ctx, key, e.rec("x", ""))
	wantErr(e.t, fmt.Sprintf("Save(%q)", short), err, store.ErrInvalidKey)
	for _, v := range []uint64{0, 1} {
		err = e.s.Delete(e.ctx, key, v)
		wantErr(e.t, fmt.Sprintf("Delete(%q, %d)", short, v), err, store.ErrInvalidKey)
	}
	if toucher, ok := e.s.(store.Toucher); ok {
		err = toucher.Touch(e.ctx, key, 0, e.expires(time.Hour))
		wantErr(e.t, fmt.Sprintf("Touch(%q)", short), err, store.ErrInvalidKey)
	}
}

// ---- Closed ----

func (su *suite) testClosed(t *testing.T) {
	t.Run("ReturnsErrClosed", func(t *testing.T) {
		e := su.newEnv(t)
		v := e.save("k", e.rec("x", "u"))
		if err := e.s.Close(); err != nil {
			t.Errorf("Close: got err %v; want nil", err)
		}
		_, err := e.s.Load(e.ctx, "k")
		wantErr(t, "Load after Close", err, store.ErrClosed)
		_, err = e.s.Save(e.ctx, "new", e.rec("x", ""))
		wantErr(t, "Save(new) after Close", err, store.ErrClosed)
		r := e.rec("y", "")
		r.Version = v
		_, err = e.s.Save(e.ctx, "k", r)
		wantErr(t, "Save(replace) after Close", err, store.ErrClosed)
		err = e.s.Delete(e.ctx, "k", 0)
		wantErr(t, "Delete(k, 0) after Close", err, store.ErrClosed)
		err = e.s.Delete(e.ctx, "k", v)
		wantErr(t, fmt.Sprintf("Delete(k, %d) after Close", v), err, store.ErrClosed)
		if toucher, ok := e.s.(store.Toucher); ok {
			err = toucher.Touch(e.ctx, "k", 0, e.expires(2*time.Hour))
			wantErr(t, "Touch after Close", err, store.ErrClosed)
		}
		if index, ok := e.s.(store.UserIndex); ok {
			_, err = index.ListUser(e.ctx, "u")
			wantErr(t, "ListUser after Close", err, store.ErrClosed)
			_, err = index.DeleteUser(e.ctx, "u")
			wantErr(t, "DeleteUser after Close", err, store.ErrClosed)
		}
	})

	t.Run("SecondClose", func(t *testing.T) {
		e := su.newEnv(t)
		if err := e.s.Close(); err != nil {
			t.Errorf("Close: got err %v; want nil", err)
		}
		if p := panics(func() { e.s.Close() }); p != nil {
			t.Errorf("second Close: got panic %v; want none", p)
		}
	})
}

// panics calls f and returns what it panicked with, or nil.
func panics(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// ---- Canceled context ----

func (su *suite) testCanceledContext(t *testing.T) {
	// canceled returns a context that is already canceled.
	canceled := func(t *testing.T) context.Context {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		return ctx
	}
	// An operation that fails must not fail as if the record were missing or
	// changed: the key exists and the versions are right, so ErrNotFound or
	// ErrConflict would make a caller mistake the cancellation for a state.
	notStateErr := func(t *testing.T, what string, err error) {
		t.Helper()
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s with a canceled context: got err %v; want nil or an error wrapping neither %v nor %v", what, err, store.ErrNotFound, store.ErrConflict)
		}
	}

	t.Run("Load", func(t *testing.T) {
		e := su.newEnv(t)
		want := e.rec("x", "")
		v := e.save("k", want)
		var rec store.Record
		var err error
		promptly(t, "Load", func() { rec, err = e.s.Load(canceled(t), "k") })
		if err == nil {
			want.Version = v
			checkRecord(t, `Load("k") with a canceled context`, rec, want)
		}
		notStateErr(t, "Load", err)
	})

	t.Run("Save", func(t *testing.T) {
		e := su.newEnv(t)
		v := e.save("k", e.rec("one", ""))
		for _, tc := range []struct {
			key     string
			version uint64
		}{{"k", v}, {"new", 0}} {
			rec := e.rec("two", "")
			rec.Version = tc.version
			var v2 uint64
			var err error
			promptly(t, "Save", func() { v2, err = e.s.Save(canceled(t), tc.key, rec) })
			if err == nil {
				what := fmt.Sprintf("Load(%q) after Save with a canceled context returned (%d, nil)", tc.key, v2)
				got, err := e.s.Load(e.ctx, tc.key)
				if err != nil {
					t.Errorf("%s: got err %v; want nil", what, err)
				} else {
					rec.Version = v2
					checkRecord(t, what, got, rec)
				}
			}
			notStateErr(t, fmt.Sprintf("Save(%q, Version %d)", tc.key, tc.version), err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		e := su.newEnv(t)
		v := e.save("k", e.rec("one", ""))
		var err error
		promptly(t, "Delete", func() { err = e.s.Delete(canceled(t), "k", v) })
		if err == nil {
			if _, err := e.s.Load(e.ctx, "k"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf(`Load("k") after Delete with a canceled context returned nil: got err %v; want %v`, err, store.ErrNotFound)
			}
		}
		notStateErr(t, fmt.Sprintf(`Delete("k", %d)`, v), err)
	})
}

// promptly runs f and fails the test if f panics or does not return within
// waitTimeout.
func promptly(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	select {
	case p := <-done:
		if p != nil {
			t.Fatalf("%s with a canceled context: got panic %v; want a return", what, p)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("%s with a canceled context: still running after %v; want a prompt return", what, waitTimeout)
	}
}
