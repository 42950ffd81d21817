package token_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

// BenchmarkRevocations: the check every request makes (in memory), and
// the refresh each node makes every interval (a memstore here; Redis adds
// its round trips), by the number of live revocations.
func BenchmarkRevocations(b *testing.B) {
	for _, n := range []int{0, 1000, 100000} {
		c := newClock()
		mem := newMem(b, c)
		n0 := &revNode{tick: make(chan time.Time)}
		rev, err := token.NewRevocations(b.Context(), token.RevocationConfig{Store: mem, Now: c.Now,
			NewTicker: func(time.Duration) (<-chan time.Time, func()) { return n0.tick, func() {} }})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rev.Close() })
		for range n {
			if err := rev.Revoke(b.Context(), claims(b, c.Now())); err != nil {
				b.Fatal(err)
			}
		}
		live := claims(b, c.Now())
		b.Run(fmt.Sprintf("op=check/revocations=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rev.Revoked(live) {
					b.Fatal("revoked")
				}
			}
		})
		b.Run(fmt.Sprintf("op=refresh/revocations=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := rev.Refresh(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
