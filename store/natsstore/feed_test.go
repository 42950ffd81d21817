package natsstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
	"github.com/sessionkit/sessionkit/store/storetest"
)

func isOp(op store.Op, key string) func(store.Event) bool {
	return func(ev store.Event) bool { return ev.Op == op && ev.Key == key }
}

// saveRetrying saves rec under key, retrying while the store is
// reconnecting, for up to 30 s.
func saveRetrying(t *testing.T, s store.Store, key string, rec store.Record) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := s.Save(t.Context(), key, rec)
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("Save(%q) while the node restarts: %v", key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFeed_nodeRestart checks the change feed across a restart of the
// NATS server the store is connected to: the loss of the connection is
// reported with OpReset, the feed is set up again once the client has
// reconnected, and a second OpReset comes before any event of the new feed.
// It also checks that an OpSave carries the version Load returns.
func TestFeed_nodeRestart(t *testing.T) {
	cfg := natsstore.NodeConfig{
		Name:       "feed",
		Dir:        filepath.Join(t.TempDir(), "feed"),
		ClientAddr: freeAddrs(t, 1)[0],
	}
	node, err := natsstore.StartNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { node.Shutdown() }()
	s := newStore(t, node.ClientURL(), "feed", 1, time.Now)
	defer s.Close()
	var evs storetest.EventLog
	defer s.Subscribe(evs.Add)()

	expires := time.Now().Add(time.Hour)
	v := saveRetrying(t, s, "a", store.Record{Data: []byte("one"), Expires: expires})
	i := evs.WaitFor(0, 5*time.Second, isOp(store.OpSave, "a"))
	if i < 0 {
		t.Fatalf("events after Save: got %v; want an OpSave of %q", evs.Events(), "a")
	}
	rec, err := s.Load(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := evs.Events()[i].Version; got != v || got != rec.Version {
		t.Errorf("OpSave version: got %d; want %d, the version Save and Load return (Load: %d)", got, v, rec.Version)
	}

	node.Shutdown()
	// The client may take a few seconds to notice that the server is
	// gone (5 s in some runs on a loaded machine).
	lost := evs.WaitFor(i, 15*time.Second, func(ev store.Event) bool { return ev.Op == store.OpReset })
	if lost < 0 {
		t.Fatalf("events after the server's shutdown: got %v; want an OpReset", evs.Events())
	}
	if node, err = natsstore.StartNode(cfg); err != nil {
		t.Fatal(err)
	}
	// Writes made before the new watch is up may go unreported (the
	// OpReset says so): write until one is reported.
	b, key := -1, ""
	for n := 0; b < 0 && n < 100; n++ {
		key = fmt.Sprintf("b%d", n)
		v = saveRetrying(t, s, key, store.Record{Data: []byte("two"), Expires: expires})
		b = evs.WaitFor(lost, 500*time.Millisecond, isOp(store.OpSave, key))
	}
	if b < 0 {
		t.Fatalf("events after the restart: got %v; want an OpSave of a write made after it", evs.Events())
	}
	got := evs.Events()
	if !slices.ContainsFunc(got[lost+1:b], func(ev store.Event) bool { return ev.Op == store.OpReset }) {
		t.Errorf("events after the restart: got %v; want an OpReset after the reconnect, before the new feed's first event", got[lost:])
	}
	if got[b].Version != v {
		t.Errorf("OpSave of %q: got version %d; want %d", key, got[b].Version, v)
	}
	t.Logf("events: %v", got)
}

// TestFeed_connClosed checks that a caller's connection closed under the
// store is reported with OpReset, and that Close ends the feed.
func TestFeed_connClosed(t *testing.T) {
	node, err := natsstore.StartNode(natsstore.NodeConfig{Name: "conn", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown()
	nc, err := nats.Connect(node.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := natsstore.New(ctx, natsstore.Config{Conn: nc, Bucket: "conn", Replicas: 1, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var evs storetest.EventLog
	defer s.Subscribe(evs.Add)()
	if _, err := s.Save(ctx, "a", store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	i := evs.WaitFor(0, 5*time.Second, isOp(store.OpSave, "a"))
	if i < 0 {
		t.Fatalf("events after Save: got %v; want an OpSave", evs.Events())
	}
	nc.Close()
	if evs.WaitFor(i, 5*time.Second, func(ev store.Event) bool { return ev.Op == store.OpReset }) < 0 {
		t.Fatalf("events after the connection was closed: got %v; want an OpReset", evs.Events())
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close with the feed retrying on a closed connection: did not return within 10s")
	}
}

// TestFeed_ops checks the event of each kind of change: OpSave with the new
// version, OpDelete for a Delete and for each record of a DeleteUser, and
// OpExpire for a record the sweep purges.
func TestFeed_ops(t *testing.T) {
	node, err := natsstore.StartNode(natsstore.NodeConfig{Name: "ops", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown()
	clk := testclock.New(time.Now())
	s := newStore(t, node.ClientURL(), "ops", 1, clk.Now)
	defer s.Close()
	var evs storetest.EventLog
	defer s.Subscribe(evs.Add)()
	ctx := t.Context()
	want := func(what string, match func(store.Event) bool) {
		t.Helper()
		if evs.WaitFor(0, 5*time.Second, match) < 0 {
			t.Fatalf("events after %s: got %v; want the event", what, evs.Events())
		}
	}
	hour := clk.Now().Add(time.Hour)
	v, err := s.Save(ctx, "a", store.Record{Expires: hour})
	if err != nil {
		t.Fatal(err)
	}
	want("Save", func(ev store.Event) bool { return ev == store.Event{Op: store.OpSave, Key: "a", Version: v} })
	if err := s.Delete(ctx, "a", v); err != nil {
		t.Fatal(err)
	}
	want("Delete", isOp(store.OpDelete, "a"))
	if _, err := s.Save(ctx, "u", store.Record{Expires: hour, UserID: "user"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteUser(ctx, "user"); err != nil || n != 1 {
		t.Fatalf("DeleteUser: got %d, %v; want 1, nil", n, err)
	}
	want("DeleteUser", isOp(store.OpDelete, "u"))
	if _, err := s.Save(ctx, "e", store.Record{Expires: clk.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	want("the sweep", isOp(store.OpExpire, "e"))
	for _, ev := range evs.Events() {
		if ev.Op == store.OpReset || ev.Key == "" {
			t.Errorf("events: got %v; want no OpReset and every event keyed", evs.Events())
			break
		}
	}
}
