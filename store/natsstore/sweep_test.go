package natsstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
)

// keys returns the live keys of the bucket.
func bucketKeys(t *testing.T, url, bucket string) []string {
	t.Helper()
	js, closeJS, err := jetstreamAt(url)
	if err != nil {
		t.Fatal(err)
	}
	defer closeJS()
	kv, err := js.KeyValue(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(t.Context())
	if err != nil && err != jetstream.ErrNoKeysFound {
		t.Fatal(err)
	}
	return keys
}

// TestSweep checks, on a single embedded node, that replacing a chunked
// record removes its chunks and that Sweep purges exactly the logically
// expired values: records, index entries and chunks.
func TestSweep(t *testing.T) {
	n, err := natsstore.StartNode(natsstore.NodeConfig{Name: "single", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	var clock atomic.Int64
	clock.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := natsstore.New(ctx, natsstore.Config{URL: n.ClientURL(), Bucket: "sweep", Now: now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	big := make([]byte, 3<<20) // 4 chunks at the default 1 MB max payload
	short := now().Add(time.Minute)
	long := now().Add(time.Hour)
	v, err := s.Save(ctx, "big", store.Record{Data: big, Expires: long, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	before := len(bucketKeys(t, n.ClientURL(), "sweep"))
	if _, err := s.Save(ctx, "big", store.Record{Data: big[:1<<20+1], Expires: short, UserID: "u", Version: v}); err != nil {
		t.Fatal(err)
	}
	after := len(bucketKeys(t, n.ClientURL(), "sweep"))
	if before != 1+1+4 || after != 1+1+2 {
		t.Errorf("keys (record, index, chunks) before and after replacing 3 MiB by 1 MiB: got %d, %d; want 6, 4", before, after)
	}
	if _, err := s.Save(ctx, "small", store.Record{Data: []byte("x"), Expires: short, UserID: "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, "live", store.Record{Data: []byte("y"), Expires: long, UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Sweep(ctx); err != nil || got != 0 {
		t.Errorf("Sweep before expiry: got %d, %v; want 0, nil", got, err)
	}
	clock.Add(int64(2 * time.Minute))
	got, err := s.Sweep(ctx)
	if want := 4 + 2; err != nil || got != want {
		t.Errorf("Sweep after expiry: got %d, %v; want %d, nil", got, err, want)
	}
	if keys := bucketKeys(t, n.ClientURL(), "sweep"); len(keys) != 2 {
		t.Errorf("keys after Sweep: got %q; want the record and index entry of \"live\"", keys)
	}
	if rec, err := s.Load(ctx, "live"); err != nil || string(rec.Data) != "y" {
		t.Errorf(`Load("live") after Sweep: got %q, %v`, rec.Data, err)
	}
}
