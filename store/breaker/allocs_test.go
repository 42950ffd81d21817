package breaker_test

import (
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// TestWrap_allocations: on the closed circuit the wrapper adds no
// allocation to a store call.
func TestWrap_allocations(t *testing.T) {
	mem, err := memstore.New(memstore.Config{CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	b, _ := breaker.New(breaker.Config{})
	w := breaker.Wrap(mem, b)
	ctx := t.Context()
	if _, err := mem.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	bare := testing.AllocsPerRun(100, func() { mem.Load(ctx, "k") })
	wrapped := testing.AllocsPerRun(100, func() { w.Load(ctx, "k") })
	if wrapped > bare {
		t.Errorf("Load: got %v allocations through the breaker; want %v, as without it", wrapped, bare)
	}
}
