package redisstore_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// TestScanKeys lists the store's keys, those kept as they are and those
// stored encoded ("~" and base64url), and none of another prefix's.
func TestScanKeys(t *testing.T) {
	prefix := uniquePrefix()
	s := newStore(t, redisstore.Config{Addrs: []string{redisAddr(t)}, KeyPrefix: prefix})
	other := newStore(t, redisstore.Config{Addrs: []string{redisAddr(t)}, KeyPrefix: uniquePrefix()})
	ctx := t.Context()
	exp := time.Now().Add(time.Minute)
	want := []string{"plain-key", "with space", "{braces}", "~tilde"}
	for _, k := range want {
		if _, err := s.Save(ctx, k, store.Record{Data: []byte("x"), Expires: exp, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	other.Save(ctx, "elsewhere", store.Record{Data: []byte("x"), Expires: exp})
	t.Cleanup(func() {
		for _, k := range want {
			s.Delete(ctx, k, 0)
		}
		other.Delete(ctx, "elsewhere", 0)
	})
	var got []string
	if err := s.ScanKeys(ctx, func(k string) bool { got = append(got, k); return true }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ScanKeys: %q; want %q", got, want)
	}
	n := 0
	s.ScanKeys(ctx, func(string) bool { n++; return false })
	if n != 1 {
		t.Errorf("ScanKeys went on after fn returned false: %d calls", n)
	}
}
