package memstore

import (
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// TestConformance runs the store contract's suite against memstore, with
// the default configuration and with a few small shards.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"Default", Config{}},
		{"OneShard", Config{Shards: 1}},
		{"SmallShards", Config{Shards: 4, CleanupInterval: time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.Run(t, storetest.Options{
				New: func(t *testing.T, now func() time.Time) store.Store {
					cfg := c.cfg
					cfg.Now = now
					s, err := New(cfg)
					if err != nil {
						t.Fatal(err)
					}
					return s // Run closes it
				},
			})
		})
	}
}
