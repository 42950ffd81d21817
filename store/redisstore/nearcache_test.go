package redisstore_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// monitor counts the commands clients send to a server whose arguments
// mention a key prefix, from MONITOR (commands run by scripts, shown as
// "[0 lua]", are not counted: they cost no round trip).
type monitor struct {
	conn net.Conn
	seen chan string // "NAME rest of the line", in order
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "MONITOR\r\n")
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("MONITOR: %q %v", l, err)
	}
	m := &monitor{conn: c, seen: make(chan string, 1024)}
	go func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(m.seen)
				return
			}
			if strings.Contains(l, " lua]") {
				continue
			}
			_, rest, ok := strings.Cut(l, "] \"")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(rest, "\"")
			name = strings.ToUpper(name)
			m.seen <- name + " " + rest
		}
	}()
	return m
}

// take returns the commands that mention prefix since the last take,
// after a marker command sent by admin has come through (so every command
// sent before is in).
func (m *monitor) take(t *testing.T, admin rueidis.Client, prefix string) []string {
	t.Helper()
	marker := "marker-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := admin.Do(t.Context(), admin.B().Echo().Message(marker).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-m.seen:
			if !ok {
				t.Fatal("MONITOR connection closed")
			}
			if strings.Contains(l, marker) {
				return got
			}
			if strings.Contains(l, prefix) {
				name, _, _ := strings.Cut(l, " ")
				got = append(got, name)
			}
		case <-timeout:
			t.Fatal("the marker did not come through MONITOR")
		}
	}
}

func count(cmds []string) map[string]int {
	m := map[string]int{}
	for _, c := range cmds {
		m[c]++
	}
	return m
}

// TestNearCache_roundTrips counts what the store sends with a near cache,
// on a server of its own: a read-only request on a warm cache sends
// nothing, a read+write request one EVALSHA.
func TestNearCache_roundTrips(t *testing.T) {
	t.Parallel()
	srv := startStandalone(t)
	admin := adminClient(t, srv.addr())
	const prefix = "rtnc:"
	a := newStore(t, redisstore.Config{Addrs: []string{srv.addr()}, KeyPrefix: prefix,
		NearCache: &redisstore.NearCache{ProbeInterval: -1}})
	b := newStore(t, redisstore.Config{Addrs: []string{srv.addr()}, KeyPrefix: prefix})
	mon := startMonitor(t, srv.addr())
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	step := func(what string, want map[string]int, op func()) {
		t.Helper()
		mon.take(t, admin, prefix)
		op()
		if got := count(mon.take(t, admin, prefix)); !mapsEqual(got, want) {
			t.Errorf("%s: sent %v, want %v", what, got, want)
		}
	}
	load := func(key string) store.Record {
		t.Helper()
		rec, err := a.Load(ctx, key)
		if err != nil {
			t.Fatalf("Load(%s): %v", key, err)
		}
		return rec
	}
	save := func(s store.Store, key string, rec store.Record) uint64 {
		t.Helper()
		rec.Expires = exp
		v, err := s.Save(ctx, key, rec)
		if err != nil {
			t.Fatalf("Save(%s): %v", key, err)
		}
		return v
	}
	// Warm the scripts up, so that no EVALSHA below meets NOSCRIPT.
	v := save(a, "warm", store.Record{Data: []byte("w")})
	save(a, "warm", store.Record{Data: []byte("w"), Version: v})
	a.Touch(ctx, "warm", 0, exp)

	step("create", map[string]int{"SET": 1}, func() { save(a, "k", store.Record{Data: []byte("0")}) })
	var rec store.Record
	step("first load", map[string]int{"GET": 1}, func() { rec = load("k") })
	step("warm load", map[string]int{}, func() { rec = load("k") })
	step("100 read+write", map[string]int{"EVALSHA": 100}, func() {
		for i := range 100 {
			rec = load("k")
			rec.Version = save(a, "k", store.Record{Data: []byte(strconv.Itoa(i + 1)), Version: rec.Version})
		}
	})
	step("load after own write", map[string]int{}, func() {
		if got := load("k"); string(got.Data) != "100" {
			t.Errorf("Load after 100 writes: %q, want 100", got.Data)
		}
	})
	step("touch", map[string]int{"EVALSHA": 1}, func() {
		if err := a.Touch(ctx, "k", load("k").Version, exp.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	})
	step("load after touch", map[string]int{}, func() {
		if got := load("k"); !got.Expires.Equal(exp.Add(time.Hour).Truncate(time.Millisecond)) {
			t.Errorf("Expires after Touch: %v", got.Expires)
		}
	})
	// Another node writes: its change reaches a's cache, and a reads the
	// new value (one GET) instead of its cached one.
	cur := load("k")
	save(b, "k", store.Record{Data: []byte("from b"), Version: cur.Version})
	waitUntil(t, time.Second, "b's write to reach a", func() bool {
		got, err := a.Load(ctx, "k")
		return err == nil && string(got.Data) == "from b"
	})
	step("load after the peer's write, cached again", map[string]int{}, func() { load("k") })
	// A stale copy (b writes, a writes before the invalidation could
	// matter): the conflict costs EVALSHA + GET + EVALSHA, and no update
	// is lost.
	st, _ := a.NearCacheStats()
	if st.Hits < 100 || st.Entries == 0 {
		t.Errorf("stats %+v: want at least 100 hits and entries", st)
	}
	t.Logf("near cache: %+v", st)
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// nearPair returns two stores on the shared Redis under one prefix, each
// with a near cache of its own: two nodes.
func nearPair(t *testing.T, nc redisstore.NearCache) (a, b *redisstore.Store) {
	t.Helper()
	cfg := redisstore.Config{Addrs: []string{redisAddr(t)}, KeyPrefix: uniquePrefix(), NearCache: &nc}
	admin := adminClient(t, cfg.Addrs[0])
	t.Cleanup(func() { dropPrefix(t, admin, cfg.KeyPrefix) })
	return newStore(t, cfg), newStore(t, cfg)
}

// TestNearCache_noLostUpdates increments one counter from two nodes with
// near caches, 8 goroutines each, as the session Manager does: load,
// change, compare-and-set, and on a conflict load again.
func TestNearCache_noLostUpdates(t *testing.T) {
	t.Parallel()
	a, b := nearPair(t, redisstore.NearCache{})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if _, err := a.Save(ctx, "counter", store.Record{Data: []byte("0"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	const per = 100
	var wg sync.WaitGroup
	var conflicts sync.Map
	for g := range 16 {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Go(func() {
			n := 0
			for range per {
				for {
					rec, err := s.Load(ctx, "counter")
					if err != nil {
						t.Error(err)
						return
					}
					v, _ := strconv.Atoi(string(rec.Data))
					_, err = s.Save(ctx, "counter", store.Record{Data: []byte(strconv.Itoa(v + 1)), Version: rec.Version, Expires: exp})
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Error(err)
						return
					}
					n++
				}
			}
			conflicts.Store(g, n)
		})
	}
	wg.Wait()
	for _, s := range []*redisstore.Store{a, b} {
		rec, err := s.Load(ctx, "counter")
		if err != nil {
			t.Fatal(err)
		}
		if string(rec.Data) != strconv.Itoa(16*per) {
			t.Errorf("counter = %s, want %d: updates were lost", rec.Data, 16*per)
		}
	}
	sa, _ := a.NearCacheStats()
	sb, _ := b.NearCacheStats()
	t.Logf("a: %+v\nb: %+v", sa, sb)
}

// TestNearCache_logoutHonoured measures, over 200 logouts, how long after
// node b's Delete returns node a (which had the session cached) answers
// not found; it must be within MaxAge, and is in practice the
// invalidation's delay.
func TestNearCache_logoutHonoured(t *testing.T) {
	t.Parallel()
	a, b := nearPair(t, redisstore.NearCache{ProbeInterval: 50 * time.Millisecond})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	var lags []time.Duration
	for i := range 200 {
		key := fmt.Sprint("s", i)
		if _, err := b.Save(ctx, key, store.Record{Data: []byte("x"), Expires: exp}); err != nil {
			t.Fatal(err)
		}
		a.Load(ctx, key) // cached now
		before, _ := a.NearCacheStats()
		if _, err := a.Load(ctx, key); err != nil {
			t.Fatal(err)
		}
		if after, _ := a.NearCacheStats(); after.Hits != before.Hits+1 {
			t.Fatalf("session %d was not served from the cache", i)
		}
		if err := b.Delete(ctx, key, 0); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		for {
			_, err := a.Load(ctx, key)
			if errors.Is(err, store.ErrNotFound) {
				lags = append(lags, time.Since(acked))
				break
			}
			if time.Since(acked) > time.Second { // the default MaxAge
				t.Fatalf("a still serves session %d %v after b deleted it", i, time.Since(acked))
			}
		}
	}
	slices.Sort(lags)
	t.Logf("logout honoured on the other node after: p50 %v, p99 %v, max %v",
		lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
	// b's deletes through user: DeleteUser on b reaches a too.
	if _, err := b.Save(ctx, "u1", store.Record{Data: []byte("x"), Expires: exp, UserID: "alice"}); err != nil {
		t.Fatal(err)
	}
	a.Load(ctx, "u1")
	if n, err := b.DeleteUser(ctx, "alice"); n != 1 || err != nil {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	waitUntil(t, time.Second, "DeleteUser on b to reach a", func() bool {
		_, err := a.Load(ctx, "u1")
		return errors.Is(err, store.ErrNotFound)
	})
	waitUntil(t, 2*time.Second, "a probe of the invalidation delay", func() bool {
		st, _ := a.NearCacheStats()
		return st.Delay.Count > 0
	})
	st, _ := a.NearCacheStats()
	t.Logf("probed invalidation delay: %+v", st.Delay)
	if st.Delay.Max > time.Second {
		t.Errorf("probed delay %v", st.Delay.Max)
	}
}

// TestNearCache_flushOnKill: when Redis closes a connection the near
// cache depends on (the data connection, whose tracking it held, the
// connection its invalidations are redirected to, or both), the cache is
// flushed, the store's calls go on without an error, and the connections
// are tracked again (a change by another node still reaches it).
func TestNearCache_flushOnKill(t *testing.T) {
	t.Parallel()
	srv := startStandalone(t)
	for _, kill := range []string{"both", "invalidation", "data"} {
		t.Run(kill, func(t *testing.T) {
			admin := adminClient(t, srv.addr())
			cfg := redisstore.Config{Addrs: []string{srv.addr()}, KeyPrefix: "kill-" + kill + ":",
				NearCache: &redisstore.NearCache{ProbeInterval: -1}}
			a := newStore(t, cfg)
			b := newStore(t, redisstore.Config{Addrs: cfg.Addrs, KeyPrefix: cfg.KeyPrefix})
			ctx := t.Context()
			exp := time.Now().Add(time.Hour)
			v, err := b.Save(ctx, "k", store.Record{Data: []byte("1"), Expires: exp})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Load(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			st0, _ := a.NearCacheStats()
			if st0.Entries != 1 {
				t.Fatalf("entries %d, want 1", st0.Entries)
			}
			killed := 0
			for _, id := range trackingConns(t, admin, kill) {
				if err := admin.Do(ctx, admin.B().ClientKill().Id(id).Build()).Error(); err != nil {
					t.Fatal(err)
				}
				killed++
			}
			if killed == 0 {
				t.Fatal("no connection to kill in CLIENT LIST")
			}
			if kill == "data" {
				// Nobody reads an idle data connection: its close is
				// noticed by the next call on it.
				rec, err := a.Load(ctx, "other")
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Load of a missing key after the kill: %v, %v", rec.Version, err)
				}
			}
			waitUntil(t, time.Second, "the cache to be flushed", func() bool {
				st, _ := a.NearCacheStats()
				return st.Flushes > st0.Flushes && st.Entries == 0
			})
			// Reconnected and tracked again.
			rec, err := a.Load(ctx, "k")
			if err != nil || rec.Version != v {
				t.Fatalf("Load after the kill: %v, %v", rec.Version, err)
			}
			waitUntil(t, time.Second, "a to cache k again", func() bool {
				a.Load(ctx, "k")
				st, _ := a.NearCacheStats()
				return st.Entries == 1
			})
			if _, err := b.Save(ctx, "k", store.Record{Data: []byte("2"), Version: v, Expires: exp}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, time.Second, "b's write to reach a after the reconnection", func() bool {
				rec, err := a.Load(ctx, "k")
				return err == nil && string(rec.Data) == "2"
			})
		})
	}
}

// trackingConns returns the IDs of the near cache's connections in CLIENT
// LIST: which is "data" (tracking, redirected), "invalidation" (the
// target of a redirection) or "both".
func trackingConns(t *testing.T, admin rueidis.Client, which string) []int64 {
	t.Helper()
	list, err := admin.Do(t.Context(), admin.B().ClientList().Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	var data, inv []int64
	for _, line := range strings.Split(list, "\n") {
		var id, redir string
		tracking := false
		for _, kv := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(kv, "id="); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(kv, "redir="); ok {
				redir = v
			}
			if v, ok := strings.CutPrefix(kv, "flags="); ok && strings.Contains(v, "t") {
				tracking = true
			}
		}
		if tracking && redir != "" && redir != "-1" && redir != "0" {
			data = append(data, mustInt(t, id)[0])
			inv = append(inv, mustInt(t, redir)[0])
		}
	}
	if len(data) == 0 {
		t.Fatalf("no redirected tracking connection in CLIENT LIST:\n%s", list)
	}
	switch which {
	case "data":
		return data
	case "invalidation":
		return inv
	}
	return append(data, inv...)
}

func mustInt(t *testing.T, s string) []int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("client id %q: %v", s, err)
	}
	return []int64{n}
}

// TestNearCache_refused: a near cache is never set up where it could not
// be kept coherent.
func TestNearCache_refused(t *testing.T) {
	t.Parallel()
	raw, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr(t)}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := redisstore.NewFromClient(raw, redisstore.Config{NearCache: &redisstore.NearCache{}}); err == nil {
		t.Error("NewFromClient with a NearCache: got nil error")
	}
	for _, nc := range []redisstore.NearCache{{MaxEntries: -1}, {MaxAge: time.Hour}} {
		if s, err := redisstore.New(t.Context(), redisstore.Config{Addrs: []string{redisAddr(t)}, NearCache: &nc}); err == nil {
			s.Close()
			t.Errorf("New with NearCache %+v: got nil error", nc)
		}
	}
	// A server that speaks only RESP2 has no CLIENT TRACKING push channel.
	dir := t.TempDir()
	old := startRedis(t, dir, "resp2", false, func(port int) []string {
		return append(baseArgs(dir, port), "--rename-command", "HELLO", "")
	})
	s, err := redisstore.New(t.Context(), redisstore.Config{Addrs: []string{old.addr()}, NearCache: &redisstore.NearCache{}})
	if err == nil {
		s.Close()
		t.Fatal("New with a near cache on a RESP2-only server: got nil error")
	}
	t.Logf("RESP2 server: %v", err)
	if !strings.Contains(err.Error(), "near cache") {
		t.Errorf("error %q does not name the near cache", err)
	}
}
