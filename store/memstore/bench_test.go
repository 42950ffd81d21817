package memstore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

const benchKeys = 1 << 14

func benchStore(b *testing.B) (*Store, []string) {
	s := newStore(b, Config{})
	keys := make([]string, benchKeys)
	exp := time.Now().Add(time.Hour)
	data := make([]byte, 256)
	for i := range keys {
		keys[i] = fmt.Sprintf("%043d", i) // the Manager's keys are 43 bytes
		mustSave(b, s, keys[i], store.Record{Data: data, Expires: exp, UserID: "user"})
	}
	return s, keys
}

func BenchmarkLoad(b *testing.B) {
	s, keys := benchStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Load(ctx, keys[i&(benchKeys-1)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkLoadParallel(b *testing.B) {
	s, keys := benchStore(b)
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1) * 7919)
		for pb.Next() {
			if _, err := s.Load(ctx, keys[i&(benchKeys-1)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkSave replaces existing records with a compare-and-set, as the
// Manager does at the end of a request.
func BenchmarkSave(b *testing.B) {
	s, keys := benchStore(b)
	versions := make([]uint64, benchKeys)
	for i, k := range keys {
		r, _ := s.Load(ctx, k)
		versions[i] = r.Version
	}
	rec := store.Record{Data: make([]byte, 256), Expires: time.Now().Add(time.Hour), UserID: "user"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i & (benchKeys - 1)
		rec.Version = versions[j]
		v, err := s.Save(ctx, keys[j], rec)
		if err != nil {
			b.Fatal(err)
		}
		versions[j] = v
		i++
	}
}

func BenchmarkSaveParallel(b *testing.B) {
	s, keys := benchStore(b)
	var seq atomic.Uint64
	exp := time.Now().Add(time.Hour)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine owns its own keys, so that every Save succeeds.
		g := int(seq.Add(1))
		own := make([]string, 64)
		versions := make([]uint64, len(own))
		for i := range own {
			own[i] = fmt.Sprintf("g%d-%s", g, keys[i])
		}
		rec := store.Record{Data: make([]byte, 256), Expires: exp, UserID: "user"}
		i := 0
		for pb.Next() {
			j := i & (len(own) - 1)
			rec.Version = versions[j]
			v, err := s.Save(ctx, own[j], rec)
			if err != nil {
				b.Fatal(err)
			}
			versions[j] = v
			i++
		}
	})
}

// BenchmarkSaveNewEvicting saves new keys into a full store, so that every
// Save evicts.
func BenchmarkSaveNewEvicting(b *testing.B) {
	s := newStore(b, Config{MaxEntries: benchKeys})
	rec := store.Record{Data: make([]byte, 256), Expires: time.Now().Add(time.Hour)}
	keys := make([]string, 4*benchKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%043d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rec.Expires = rec.Expires.Add(time.Millisecond)
		if _, err := s.Save(ctx, keys[i%len(keys)], rec); err != nil {
			// Rarely, a key from the previous round is still held.
			s.Delete(ctx, keys[i%len(keys)], 0)
		}
		i++
	}
}
