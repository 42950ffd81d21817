package pgstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/storetest"
)

func is(op store.Op, key string, version uint64) func(store.Event) bool {
	return func(ev store.Event) bool { return ev == store.Event{Op: op, Key: key, Version: version} }
}

func isReset(ev store.Event) bool { return ev.Op == store.OpReset }

func TestSubscribe_notifyOff(t *testing.T) {
	s := newStore(t, testPool(t, nil), Config{})
	if unsub := s.Subscribe(func(store.Event) { t.Error("event from a store without Notify") }); unsub != nil {
		t.Errorf("Subscribe without Config.Notify: got a subscription; want nil")
	}
}

// TestFeed_events checks the event of every kind of write, each with the
// version the write made or removed, from a store on the table and from a
// second store with its own pool, and that a Touch of a version that is
// not stored reports nothing.
func TestFeed_events(t *testing.T) {
	pool := testPool(t, nil)
	clk := newClock()
	s := newStore(t, pool, Config{Notify: true, Now: clk.Now, CleanupInterval: -1})
	other := newStore(t, testPool(t, nil), Config{Notify: true, Now: clk.Now, CleanupInterval: -1, Table: strings.Trim(s.table, `"`)})
	var evs storetest.EventLog
	defer s.Subscribe(evs.Add)()
	ctx := t.Context()
	exp := clk.Now().Add(time.Hour)
	key := "k\x00\xff" // any byte, in the payload as hex

	want := func(what string, match func(store.Event) bool) {
		t.Helper()
		if evs.WaitFor(0, 5*time.Second, match) < 0 {
			t.Fatalf("events after %s: got %v; want the event", what, evs.Events())
		}
	}
	v1, err := other.Save(ctx, key, store.Record{Data: []byte("a"), Expires: exp, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	want("Save(new) through another store", is(store.OpSave, key, v1))
	v2, err := s.Save(ctx, key, store.Record{Data: []byte("b"), Version: v1, Expires: exp, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	want("Save(replace)", is(store.OpSave, key, v2))
	if err := s.Touch(ctx, key, v1, exp.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Touch(old version): got %v; want ErrConflict", err)
	}
	if err := s.Touch(ctx, key, v2, exp.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want("Touch(version)", is(store.OpTouch, key, v2))
	if err := s.Touch(ctx, key, 0, exp.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key, v2); err != nil {
		t.Fatal(err)
	}
	want("Delete(version)", is(store.OpDelete, key, v2))
	touches := 0
	for _, ev := range evs.Events() {
		if ev.Op == store.OpTouch {
			touches++
		}
	}
	if touches != 2 {
		t.Errorf("events: got %d OpTouch in %v; want 2: a Touch that changes nothing reports nothing", touches, evs.Events())
	}

	v3, err := s.Save(ctx, "a", store.Record{Expires: exp, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	want("Delete(0)", is(store.OpDelete, "a", v3))

	v4, err := s.Save(ctx, "b", store.Record{Expires: exp, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := other.DeleteUser(ctx, "u"); err != nil || n != 1 {
		t.Fatalf("DeleteUser: got %d, %v; want 1, nil", n, err)
	}
	want("DeleteUser", is(store.OpDelete, "b", v4))

	v5, err := s.Save(ctx, "c", store.Record{Expires: clk.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if n, _, err := s.sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: got %d, %v; want 1, nil", n, err)
	}
	want("the sweep", is(store.OpExpire, "c", v5))

	// Concurrent Saves, batched, each reported with its version.
	versions := make([]uint64, 20)
	testenvParallel(t, 20, func(i int) error {
		v, err := s.Save(ctx, fmt.Sprintf("batch/%d", i), store.Record{Expires: exp})
		versions[i] = v
		return err
	})
	for i, v := range versions {
		want("concurrent Saves", is(store.OpSave, fmt.Sprintf("batch/%d", i), v))
	}
	for _, ev := range evs.Events() {
		if ev.Op == store.OpReset {
			t.Errorf("events: got %v; want no OpReset while the connection is up", evs.Events())
			break
		}
	}
}

// testenvParallel runs f(0..n-1) in n goroutines and fails t on the first
// error.
func testenvParallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestFeed_reconnect ends the store's listening connection from the server
// (pg_terminate_backend) and checks that subscribers get an OpReset, that
// the store listens again, and that it reports a second OpReset before
// any notification of the new connection.
func TestFeed_reconnect(t *testing.T) {
	pool := testPool(t, nil)
	s := newStore(t, pool, Config{Notify: true, CleanupInterval: -1})
	var evs storetest.EventLog
	defer s.Subscribe(evs.Add)()
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	v, err := s.Save(ctx, "a", store.Record{Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if evs.WaitFor(0, 5*time.Second, is(store.OpSave, "a", v)) < 0 {
		t.Fatalf("events after Save: got %v; want its OpSave", evs.Events())
	}

	for round := range 2 {
		from := len(evs.Events())
		if n := terminateListener(t, pool, s.channel); n == 0 {
			t.Fatalf("round %d: no listening connection found in pg_stat_activity", round)
		}
		lost := evs.WaitFor(from, 5*time.Second, isReset)
		if lost < 0 {
			t.Fatalf("round %d: events after the listener's backend was terminated: got %v; want an OpReset", round, evs.Events()[from:])
		}
		// Write until a write is reported: those made before the store
		// listens again are not.
		got := -1
		for i := 0; got < 0 && i < 100; i++ {
			key := fmt.Sprintf("r%d/%d", round, i)
			v, err := s.Save(ctx, key, store.Record{Expires: exp})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(100 * time.Millisecond)
			for got < 0 && time.Now().Before(deadline) {
				got = slices.IndexFunc(evs.Events(), is(store.OpSave, key, v))
				time.Sleep(2 * time.Millisecond)
			}
		}
		if got < 0 {
			t.Fatalf("round %d: no write reported after the reconnect: %v", round, evs.Events()[from:])
		}
		if !slices.ContainsFunc(evs.Events()[lost+1:got], isReset) {
			t.Errorf("round %d: events: got %v; want an OpReset once the store listens again, before its first event", round, evs.Events()[from:])
		}
	}
}

// terminateListener ends, from the server, the listening connections of
// the stores on channel (their last statement is the LISTEN within 5 s of
// connecting), and returns how many it ended.
func terminateListener(t *testing.T, pool *pgxpool.Pool, channel string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query = $2`, ApplicationName, "LISTEN "+pgx.Identifier{channel}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotifyChannel(t *testing.T) {
	long := strings.Repeat("s", 48) + "." + strings.Repeat("t", 48)
	for _, c := range []struct{ table, want string }{
		{"", "sessionkit_sessions"},
		{"app.sessions", "app.sessions"},
		{long, long[:46] + "_"},
	} {
		got := notifyChannel(c.table)
		if !strings.HasPrefix(got, c.want) || len(got) > maxChannel || (len(c.table) <= maxChannel && got != c.want) {
			t.Errorf("notifyChannel(%q) = %q; want %q (a prefix of it for a long name), at most %d bytes", c.table, got, c.want, maxChannel)
		}
	}
	if notifyChannel(long) == notifyChannel(long[:len(long)-1]+"u") {
		t.Error("two long table names sharing their first 46 bytes: same channel; want different ones")
	}
}

func TestParsePayload(t *testing.T) {
	for _, c := range []struct {
		payload string
		want    store.Event
		ok      bool
	}{
		{"s 12 6b", store.Event{Op: store.OpSave, Key: "k", Version: 12}, true},
		{"t 1 00ff", store.Event{Op: store.OpTouch, Key: "\x00\xff", Version: 1}, true},
		{"d 7 6b", store.Event{Op: store.OpDelete, Key: "k", Version: 7}, true},
		{"e 7 6b", store.Event{Op: store.OpExpire, Key: "k", Version: 7}, true},
		{"x 7 6b", store.Event{}, false},
		{"s 7 ", store.Event{}, false},
		{"s -1 6b", store.Event{}, false},
		{"s 7 6", store.Event{}, false},
		{"s 7", store.Event{}, false},
		{"", store.Event{}, false},
		{"hello", store.Event{}, false},
	} {
		got, ok := parsePayload(c.payload)
		if got != c.want || ok != c.ok {
			t.Errorf("parsePayload(%q) = %v, %v; want %v, %v", c.payload, got, ok, c.want, c.ok)
		}
	}
}

// FuzzParsePayload: anyone who may connect to the database can NOTIFY on
// the channel, so the payload is untrusted input.
func FuzzParsePayload(f *testing.F) {
	f.Add("s 12 6b")
	f.Add("d 18446744073709551615 00ff")
	f.Add("e 0 ")
	f.Fuzz(func(t *testing.T, p string) {
		ev, ok := parsePayload(p)
		if !ok {
			return
		}
		if ev.Key == "" || ev.Op == store.OpReset {
			t.Errorf("parsePayload(%q) = %v; want a keyed event", p, ev)
		}
	})
}
