package nearcache_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/nearcache"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newCache(t *testing.T, c nearcache.Config) (*nearcache.Cache, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(t0)
	c.Now = clk.Now
	x, err := nearcache.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return x, clk
}

func rec(v uint64, data string) store.Record {
	return store.Record{Data: []byte(data), Version: v, Expires: t0.Add(time.Hour), UserID: "u"}
}

func mustGet(t *testing.T, c *nearcache.Cache, key string, want uint64) {
	t.Helper()
	got, ok := c.Get(key)
	switch {
	case want == 0 && ok:
		t.Fatalf("Get(%q) = version %d, want a miss", key, got.Version)
	case want != 0 && !ok:
		t.Fatalf("Get(%q) missed, want version %d", key, want)
	case want != 0 && got.Version != want:
		t.Fatalf("Get(%q) = version %d, want %d", key, got.Version, want)
	}
}

func TestNew_config(t *testing.T) {
	for _, c := range []nearcache.Config{
		{MaxEntries: -1}, {MaxBytes: -1}, {MaxEntryBytes: -1},
		{MaxAge: time.Microsecond}, {MaxAge: 2 * time.Minute},
	} {
		if _, err := nearcache.New(c); !errors.Is(err, nearcache.ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", c, err)
		}
	}
	if _, err := nearcache.New(nearcache.Config{}); err != nil {
		t.Fatalf("New(zero) = %v", err)
	}
}

func TestGetInsert(t *testing.T) {
	c, clk := newCache(t, nearcache.Config{})
	mustGet(t, c, "k", 0)
	if !c.Insert("k", rec(1, "a"), c.Begin("k")) {
		t.Fatal("Insert refused on a quiet key")
	}
	mustGet(t, c, "k", 1)
	// A newer version replaces; an older one is refused and evicts.
	if !c.Insert("k", rec(2, "b"), c.Begin("k")) {
		t.Fatal("Insert of a newer version refused")
	}
	if c.Insert("k", rec(1, "a"), c.Begin("k")) {
		t.Fatal("Insert of an older version accepted")
	}
	mustGet(t, c, "k", 0)
	// Expired records are misses.
	r := rec(3, "c")
	r.Expires = t0.Add(time.Millisecond)
	c.Insert("k", r, c.Begin("k"))
	mustGet(t, c, "k", 3)
	clk.Advance(time.Millisecond)
	mustGet(t, c, "k", 0)
	// The zero Token is never valid.
	if c.Insert("z", rec(1, "a"), nearcache.Token{}) {
		t.Fatal("Insert with the zero Token accepted")
	}
	st := c.Stats()
	if st.Hits != 2 || st.Misses != 3 || st.Rejected != 2 {
		t.Fatalf("Stats = %+v, want 2 hits, 3 misses, 2 rejected", st)
	}
}

func TestMaxAge(t *testing.T) {
	c, clk := newCache(t, nearcache.Config{MaxAge: 100 * time.Millisecond})
	tok := c.Begin("k")
	clk.Advance(60 * time.Millisecond) // the read's round trip
	c.Insert("k", rec(1, "a"), tok)
	clk.Advance(39 * time.Millisecond)
	mustGet(t, c, "k", 1)
	clk.Advance(time.Millisecond) // 100 ms after the read was sent
	mustGet(t, c, "k", 0)
}

// TestGuard walks through the races of docs/design/redis-near-cache.md
// section 3.3: a result whose key changed while it travelled is never
// inserted.
func TestGuard(t *testing.T) {
	t.Run("invalidation while the read travels", func(t *testing.T) {
		c, _ := newCache(t, nearcache.Config{})
		tok := c.Begin("k")
		c.Invalidate("k")
		if c.Insert("k", rec(5, "old"), tok) {
			t.Fatal("a read that raced with an invalidation was inserted")
		}
		mustGet(t, c, "k", 0)
		if c.Stats().Rejected != 1 {
			t.Fatalf("Rejected = %d, want 1", c.Stats().Rejected)
		}
	})
	t.Run("invalidation after the insert", func(t *testing.T) {
		c, _ := newCache(t, nearcache.Config{})
		c.Insert("k", rec(5, "v"), c.Begin("k"))
		c.Invalidate("k")
		mustGet(t, c, "k", 0)
	})
	t.Run("flush while the read travels", func(t *testing.T) {
		c, _ := newCache(t, nearcache.Config{})
		c.Insert("other", rec(1, "v"), c.Begin("other"))
		tok := c.Begin("k")
		c.Flush()
		if c.Insert("k", rec(5, "v"), tok) {
			t.Fatal("a read from before a flush was inserted")
		}
		mustGet(t, c, "other", 0)
		if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 || st.Flushes != 1 {
			t.Fatalf("after Flush: %+v", st)
		}
		if !c.Insert("k", rec(5, "v"), c.Begin("k")) {
			t.Fatal("a read after the flush was refused")
		}
	})
	t.Run("two own writes complete out of order", func(t *testing.T) {
		c, _ := newCache(t, nearcache.Config{})
		c.Invalidate("k")
		tok1 := c.Begin("k") // write 1 → v6
		c.Invalidate("k")
		tok2 := c.Begin("k") // write 2 → v7
		if !c.Insert("k", rec(7, "w2"), tok2) {
			t.Fatal("the later write's insert refused")
		}
		if c.Insert("k", rec(6, "w1"), tok1) {
			t.Fatal("the earlier write's late insert accepted")
		}
		mustGet(t, c, "k", 0) // evicted rather than ever old
	})
	t.Run("touch", func(t *testing.T) {
		c, clk := newCache(t, nearcache.Config{MaxAge: time.Second})
		c.Insert("k", rec(5, "v"), c.Begin("k"))
		clk.Advance(900 * time.Millisecond)
		if !c.Touch("k", 5, t0.Add(2*time.Hour), c.Begin("k")) {
			t.Fatal("Touch of the cached version refused")
		}
		clk.Advance(900 * time.Millisecond) // MaxAge now counts from the touch
		got, ok := c.Get("k")
		if !ok || !got.Expires.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("after Touch: %v %v", got.Expires, ok)
		}
		if c.Touch("k", 4, t0.Add(3*time.Hour), c.Begin("k")) {
			t.Fatal("Touch of another version kept the entry")
		}
		mustGet(t, c, "k", 0)
		c.Insert("k", rec(6, "v"), c.Begin("k"))
		tok := c.Begin("k")
		c.Invalidate("k")
		c.Insert("k", rec(7, "v"), c.Begin("k"))
		if c.Touch("k", 7, t0.Add(3*time.Hour), tok) {
			t.Fatal("a touch that raced with an invalidation kept the entry")
		}
	})
}

func TestBounds(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		c, _ := newCache(t, nearcache.Config{MaxEntries: 10})
		for i := range 100 {
			k := fmt.Sprint("k", i)
			c.Insert(k, rec(1, "v"), c.Begin(k))
			if n := c.Stats().Entries; n > 10 {
				t.Fatalf("%d entries, bound 10", n)
			}
		}
		if st := c.Stats(); st.Entries != 10 || st.Evictions != 90 {
			t.Fatalf("Stats = %+v, want 10 entries and 90 evictions", st)
		}
	})
	t.Run("recently read entries stay", func(t *testing.T) {
		c, _ := newCache(t, nearcache.Config{MaxEntries: 10})
		for i := range 10 {
			k := fmt.Sprint("k", i)
			c.Insert(k, rec(1, "v"), c.Begin(k))
		}
		mustGet(t, c, "k3", 1)
		for i := 10; i < 15; i++ {
			k := fmt.Sprint("k", i)
			c.Insert(k, rec(1, "v"), c.Begin(k))
			mustGet(t, c, "k3", 1)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		const maxBytes = 10 * (nearcache.EntryOverhead + 100)
		c, _ := newCache(t, nearcache.Config{MaxBytes: maxBytes, MaxEntryBytes: 1000})
		data := string(make([]byte, 97)) // + "kN" + "u" = 100
		for i := range 50 {
			k := fmt.Sprint("k", i%10, i/10)[:2]
			c.Insert(k, rec(uint64(i+1), data), c.Begin(k))
			if b := c.Stats().Bytes; b > maxBytes {
				t.Fatalf("%d bytes, bound %d", b, maxBytes)
			}
		}
		big := string(make([]byte, 2000))
		if c.Insert("big", rec(1, big), c.Begin("big")) {
			t.Fatal("a record over MaxEntryBytes was cached")
		}
		if c.Stats().Skipped != 1 {
			t.Fatalf("Skipped = %d, want 1", c.Stats().Skipped)
		}
	})
}

func TestDelay(t *testing.T) {
	c, _ := newCache(t, nearcache.Config{})
	for i := 1; i <= 300; i++ {
		c.ObserveDelay(time.Duration(i) * time.Microsecond)
	}
	d := c.Stats().Delay
	// The last 256 are 45..300 µs.
	if d.Count != 300 || d.Last != 300*time.Microsecond || d.Max != 300*time.Microsecond ||
		d.P50 != 172*time.Microsecond || d.P99 != 297*time.Microsecond {
		t.Fatalf("Delay = %+v", d)
	}
}

// TestConcurrent runs readers, inserters, invalidators and flushes at
// once (for the race detector) and then checks the books balance.
func TestConcurrent(t *testing.T) {
	c, _ := newCache(t, nearcache.Config{MaxEntries: 64 * 32})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint("k", (g*7+i)%300)
				switch i % 5 {
				case 0:
					c.Invalidate(k)
				case 1, 2:
					c.Insert(k, rec(uint64(i+1), "v"), c.Begin(k))
				default:
					c.Get(k)
				}
				if g == 0 && i%500 == 0 {
					c.Flush()
				}
			}
		})
	}
	wg.Wait()
	st := c.Stats()
	if st.Entries > 300 {
		t.Fatalf("%d entries for 300 keys", st.Entries)
	}
	if st.Hits+st.Misses != 8*2000*2/5 {
		t.Fatalf("hits %d + misses %d, want %d Gets", st.Hits, st.Misses, 8*2000*2/5)
	}
}
