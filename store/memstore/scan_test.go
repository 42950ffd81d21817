package memstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func TestScanKeys(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := memstore.New(memstore.Config{Now: func() time.Time { return now }, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		s.Save(ctx, k, store.Record{Data: []byte(k), Expires: now.Add(time.Minute)})
	}
	s.Save(ctx, "old", store.Record{Data: []byte("x"), Expires: now.Add(time.Second)})
	now = now.Add(2 * time.Second) // "old" has expired
	var keys []string
	if err := s.ScanKeys(ctx, func(k string) bool { keys = append(keys, k); return true }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Errorf("ScanKeys: %v; want the live keys a, b, c", keys)
	}
	n := 0
	s.ScanKeys(ctx, func(string) bool { n++; return false })
	if n != 1 {
		t.Errorf("ScanKeys went on after fn returned false: %d calls", n)
	}
}
