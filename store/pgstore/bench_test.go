package pgstore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

const benchKeys = 1024

// benchStore returns a store holding benchKeys records of 256 bytes, with
// their versions.
func benchStore(b *testing.B) (*Store, []string, []uint64) {
	s := newStore(b, testPool(b, nil), Config{CleanupInterval: -1})
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
