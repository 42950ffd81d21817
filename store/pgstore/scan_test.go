package pgstore

import (
	"slices"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

func TestScanKeys(t *testing.T) {
	now := time.Now()
	s := newStore(t, testPool(t, nil), Config{Now: func() time.Time { return now }})
	ctx := t.Context()
	want := []string{"a", "b\x00binary", "c"}
	for _, k := range want {
		if _, err := s.Save(ctx, k, store.Record{Data: []byte("x"), Expires: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Save(ctx, "soon", store.Record{Data: []byte("x"), Expires: now.Add(time.Second)})
	now = now.Add(2 * time.Second) // "soon" has expired
	var got []string
	if err := s.ScanKeys(ctx, func(k string) bool { got = append(got, k); return true }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("ScanKeys: %q; want %q", got, want)
	}
	n := 0
	s.ScanKeys(ctx, func(string) bool { n++; return false })
	if n != 1 {
		t.Errorf("ScanKeys went on after fn returned false: %d calls", n)
	}
}
