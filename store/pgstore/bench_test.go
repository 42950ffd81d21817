package pgstore

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

const benchKeys = 1024

// benchStore returns a store holding benchKeys records of 256 bytes, with
// their versions.
func benchStore(b *testing.B) (*Store, []string, []uint64) {
	return benchStoreConfig(b, Config{CleanupInterval: -1})
}

// benchStoreConfig is benchStore with cfg. With cfg.Notify, a subscriber
// that does nothing consumes the notifications, as a near cache would.
func benchStoreConfig(b *testing.B, cfg Config) (*Store, []string, []uint64) {
	s := newStore(b, testPool(b, nil), cfg)
	if cfg.Notify {
		b.Cleanup(s.Subscribe(func(store.Event) {}))
	}
	keys := make([]string, benchKeys)
	versions := make([]uint64, benchKeys)
	rec := store.Record{Data: make([]byte, 256), Expires: time.Now().Add(time.Hour), UserID: "user"}
	for i := range keys {
		keys[i] = fmt.Sprintf("%043d", i) // the Manager's keys are 43 bytes
		v, err := s.Save(b.Context(), keys[i], rec)
		if err != nil {
			b.Fatal(err)
		}
		versions[i] = v
	}
	return s, keys, versions
}

func BenchmarkLoad(b *testing.B) {
	s, keys, _ := benchStore(b)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Load(ctx, keys[i%benchKeys]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkLoadParallel(b *testing.B) {
	s, keys, _ := benchStore(b)
	ctx := b.Context()
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1) * 7919)
		for pb.Next() {
			if _, err := s.Load(ctx, keys[i%benchKeys]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkSave replaces existing records with a compare-and-set, as the
// Manager does at the end of a request.
func BenchmarkSave(b *testing.B) {
	s, keys, versions := benchStore(b)
	ctx := b.Context()
	rec := store.Record{Data: make([]byte, 256), Expires: time.Now().Add(time.Hour), UserID: "user"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % benchKeys
		rec.Version = versions[j]
		v, err := s.Save(ctx, keys[j], rec)
		if err != nil {
			b.Fatal(err)
		}
		versions[j] = v
		i++
	}
}

// BenchmarkSaveNotify measures what the change feed costs a write (a
// pg_notify in its statement; at commit, PostgreSQL queues the
// notification under a lock that every notifying commit of the database
// takes in turn): Saves alternate between a store without Config.Notify
// and one with it (a subscriber that does nothing consuming its
// notifications), each on its own table, so that the two see the same
// load on a shared machine. It reports the median and 90th percentile
// latency of each (off-p50-µs, on-p50-µs, ...), with one writer and with
// GOMAXPROCS x 4.
func BenchmarkSaveNotify(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", parallel), func(b *testing.B) {
			type side struct {
				s        *Store
				keys     []string
				versions []uint64
				mu       sync.Mutex
				lat      []time.Duration
			}
			var sides [2]*side
			for i, notify := range []bool{false, true} {
				s, keys, versions := benchStoreConfig(b, Config{CleanupInterval: -1, Notify: notify})
				sides[i] = &side{s: s, keys: keys, versions: versions}
			}
			ctx := b.Context()
			rec := store.Record{Data: make([]byte, 256), Expires: time.Now().Add(time.Hour), UserID: "user"}
			save := func(sd *side, j int, rec store.Record) {
				rec.Version = atomic.LoadUint64(&sd.versions[j])
				start := time.Now()
				v, err := sd.s.Save(ctx, sd.keys[j], rec)
				d := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				atomic.StoreUint64(&sd.versions[j], v)
				sd.mu.Lock()
				sd.lat = append(sd.lat, d)
				sd.mu.Unlock()
			}
			b.ReportAllocs()
			b.ResetTimer()
			if !parallel {
				for i := 0; b.Loop(); i++ {
					save(sides[i%2], (i/2)%benchKeys, rec)
				}
			} else {
				// Each goroutine replaces keys of its own, so that no
				// compare-and-set conflicts.
				var seq atomic.Int64
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					g := int(seq.Add(1) - 1)
					for i := 0; pb.Next(); i++ {
						save(sides[i%2], (g*64+(i/2)%64)%benchKeys, rec)
					}
				})
			}
			b.StopTimer()
			for i, name := range []string{"off", "on"} {
				lat := sides[i].lat
				if len(lat) == 0 {
					continue
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), name+"-p50-µs")
				b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), name+"-p90-µs")
			}
		})
	}
}

func BenchmarkTouch(b *testing.B) {
	s, keys, versions := benchStore(b)
	ctx := b.Context()
	exp := time.Now().Add(time.Hour)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % benchKeys
		if err := s.Touch(ctx, keys[j], versions[j], exp.Add(time.Duration(i)*time.Millisecond)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
