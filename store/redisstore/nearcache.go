package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/store/nearcache"
)

// DefaultProbeInterval is the default of NearCache.ProbeInterval.
const DefaultProbeInterval = 5 * time.Second

// NearCache configures the store's near cache: an in-process cache of the
// records this node read or wrote recently, kept coherent by Redis
// server-assisted client-side caching (RESP3 CLIENT TRACKING in OPTOUT
// NOLOOP mode), so that a read of a cached session sends no command and a
// read followed by a write sends one (the compare-and-set script). See
// the package doc, "Near cache", for what it guarantees and costs.
type NearCache struct {
	// MaxEntries bounds the records held. 0 means 100,000; negative is an
	// error.
	MaxEntries int
	// MaxBytes bounds their size (key, user ID, data and 96 bytes per
	// entry). 0 means 64 MiB; negative is an error.
	MaxBytes int64
	// MaxEntryBytes: a larger record is never cached. 0 means
	// MaxBytes/1024; negative is an error.
	MaxEntryBytes int
	// MaxAge bounds how long an entry is served after the read or write
	// that produced it, so that an invalidation lost in a way Redis and
	// the client cannot notice cannot keep a logged-out session alive for
	// longer. 0 means 1 s; otherwise 1 ms to 1 min.
	MaxAge time.Duration
	// ProbeInterval is how often the store measures the invalidation delay
	// (NearCacheStats().Delay): it reads a probe key of its own, writes it
	// from another connection and times the invalidation. 0 means
	// DefaultProbeInterval (5 s); negative turns the probe off.
	ProbeInterval time.Duration
}

// near is the Store's near cache and its probe.
type near struct {
	c        *nearcache.Cache
	probeKey string
	probeT0  atomic.Int64 // Unix ns of the probe write in flight, or 0
	stop     chan struct{}
	wg       sync.WaitGroup
}

// newNear validates nc and makes the cache; the store's key prefix names
// the probe key.
func newNear(nc *NearCache, prefix string) (*near, error) {
	c, err := nearcache.New(nearcache.Config{MaxEntries: nc.MaxEntries, MaxBytes: nc.MaxBytes,
		MaxEntryBytes: nc.MaxEntryBytes, MaxAge: nc.MaxAge})
	if err != nil {
		return nil, fmt.Errorf("redisstore: NearCache: %w", err)
	}
	var b [12]byte
	rand.Read(b[:])
	return &near{c: c, probeKey: prefix + "nc-probe:" + hex.EncodeToString(b[:]), stop: make(chan struct{})}, nil
}

// onInvalidations receives Redis's invalidation pushes, in the reader
// goroutine of the connection they came on: nil when a connection closed
// (the tracking it held is lost), otherwise the keys that changed.
func (n *near) onInvalidations(msgs []rueidis.RedisMessage) {
	if msgs == nil {
		n.c.Flush()
		return
	}
	for _, m := range msgs {
		k, err := m.ToString()
		if err != nil {
			continue
		}
		if k == n.probeKey {
			if t0 := n.probeT0.Swap(0); t0 != 0 {
				n.c.ObserveDelay(time.Duration(time.Now().UnixNano() - t0))
			}
		}
		n.c.Invalidate(k)
	}
}

// probeLoop measures the invalidation delay every interval until stop.
func (s *Store) probeLoop(every time.Duration) {
	defer s.nc.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.nc.stop:
			return
		case <-t.C:
			s.probe()
		}
	}
}

// probe reads the probe key on the store's connection, which arms its
// tracking, then writes it on another connection: the invalidation that
// write sends back is timed by onInvalidations. It is the path a logout
// on another node takes to this one.
func (s *Store) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	k := s.nc.probeKey
	c := s.client()
	if err := c.Do(ctx, c.B().Get().Key(k).Build()).Error(); err != nil && !rueidis.IsRedisNil(err) {
		return
	}
	_ = c.Dedicated(func(d rueidis.DedicatedClient) error {
		s.nc.probeT0.Store(time.Now().UnixNano())
		return d.Do(ctx, d.B().Set().Key(k).Value("1").Px(time.Minute).Build()).Error()
	})
}

// NearCacheStats returns the near cache's counters, and false if the
// store has no near cache. Safe to call at any time, also after Close.
func (s *Store) NearCacheStats() (nearcache.Stats, bool) {
	if s.nc == nil {
		return nearcache.Stats{}, false
	}
	return s.nc.c.Stats(), true
}
