package redisstore_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/redisstore"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// redisAddr returns the address of the shared Redis server the tests may
// use (with unique key prefixes), from SESSIONKIT_REDIS_ADDR.
func redisAddr(t testing.TB) string {
	return testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
}

// uniquePrefix returns a key prefix no other store of this run uses.
func uniquePrefix() string {
	return "sktest:" + rand.Text()[:12] + ":"
}

// newStore makes a store with cfg and closes it when t ends.
func newStore(t testing.TB, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dropPrefix deletes every key under prefix on a standalone server, with
// SCAN (never KEYS) and one UNLINK per key.
func dropPrefix(t testing.TB, c rueidis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range scanKeys(t, ctx, c, prefix) {
		if err := c.Do(ctx, c.B().Unlink().Key(k).Build()).Error(); err != nil {
			t.Errorf("clean up %q: %v", k, err)
		}
	}
}

// scanKeys returns the keys under prefix on one server, with SCAN.
func scanKeys(t testing.TB, ctx context.Context, c rueidis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatalf("SCAN %q: %v", prefix, err)
		}
		keys = append(keys, e.Elements...)
		if cursor = e.Cursor; cursor == 0 {
			return keys
		}
	}
}

// indexKey is the documented name of a user's index (see doc.go).
func indexKey(prefix, userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return prefix + "u:{" + base64.RawURLEncoding.EncodeToString(sum[:]) + "}"
}

// runSuite runs the conformance suite on stores made from cfg, each with a
// unique key prefix; clean, if not nil, is called with each prefix when its
// subtest ends.
func runSuite(t *testing.T, cfg redisstore.Config, clean func(prefix string)) {
	runSuiteWith(t, cfg, clean, false)
}

// runSuiteWith runs the suite as runSuite does; with peers, each store
// gets a peer: a second store made from the same cfg and key prefix (with
// its own near cache, if cfg has one), as a second node of an app.
func runSuiteWith(t *testing.T, cfg redisstore.Config, clean func(prefix string), peers bool) {
	var mu sync.Mutex
	prefixes := map[store.Store]string{}
	opts := storetest.Options{
		New: func(t *testing.T, _ func() time.Time) store.Store {
			cfg := cfg
			cfg.KeyPrefix = uniquePrefix()
			if clean != nil {
				t.Cleanup(func() { clean(cfg.KeyPrefix) })
			}
			s, err := redisstore.New(t.Context(), cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			mu.Lock()
			prefixes[s] = cfg.KeyPrefix
			mu.Unlock()
			return s // Run closes it
		},
		ServerClock: true, // Redis expires keys by its own clock
	}
	if peers {
		opts.Peer = func(t *testing.T, s store.Store) store.Store {
			cfg := cfg
			mu.Lock()
			cfg.KeyPrefix = prefixes[s]
			mu.Unlock()
			p, err := redisstore.New(t.Context(), cfg)
			if err != nil {
				t.Fatalf("New (peer): %v", err)
			}
			return p // Run closes it
		}
	}
	storetest.Run(t, opts)
}

// TestConformance runs the store contract's suite against the shared
// standalone Redis.
func TestConformance(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	admin := adminClient(t, addr)
	runSuite(t, redisstore.Config{Addrs: []string{addr}}, func(prefix string) { dropPrefix(t, admin, prefix) })
}

// TestConformance_nearCache runs the suite against stores with a near
// cache: every answer must be the one the store without it gives.
func TestConformance_nearCache(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	admin := adminClient(t, addr)
	runSuite(t, redisstore.Config{Addrs: []string{addr}, NearCache: &redisstore.NearCache{}},
		func(prefix string) { dropPrefix(t, admin, prefix) })
}

// TestConformance_nearCachePeers runs the suite with two stores on the
// same keys, each with its own near cache: the concurrency tests spread
// their writers over the two (no update may be lost), and the coherence
// tests check that a change through one is seen through the other.
func TestConformance_nearCachePeers(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	admin := adminClient(t, addr)
	runSuiteWith(t, redisstore.Config{Addrs: []string{addr}, NearCache: &redisstore.NearCache{}},
		func(prefix string) { dropPrefix(t, admin, prefix) }, true)
}

// TestCluster runs the suite against a 3-master Redis Cluster the test
// starts, after checking that records and indexes really spread over the
// three nodes (so that no script or command spans two slots).
func TestCluster(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	t.Run("DBNotZero", func(t *testing.T) {
		if s, err := redisstore.New(t.Context(), redisstore.Config{Addrs: addrs, DB: 1}); err == nil {
			s.Close()
			t.Error("New(cluster, DB 1): got nil error; want one (a cluster has only DB 0)")
		} else {
			t.Logf("New(cluster, DB 1): %v", err)
		}
	})
	t.Run("Spread", func(t *testing.T) {
		// One seed is enough: the client finds the other nodes.
		s := newStore(t, redisstore.Config{Addrs: addrs[:1], KeyPrefix: "spread:"})
		ctx := t.Context()
		exp := time.Now().Add(time.Hour)
		users := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
		for i := range 60 {
			rec := store.Record{Data: []byte("x"), Expires: exp, UserID: users[i%len(users)]}
			if _, err := s.Save(ctx, fmt.Sprintf("key-%d", i), rec); err != nil {
				t.Fatalf("Save(key-%d): %v", i, err)
			}
		}
		for _, u := range users {
			list, err := s.ListUser(ctx, u)
			if err != nil || len(list) != 10 {
				t.Errorf("ListUser(%q): got %d entries, err %v; want 10, nil", u, len(list), err)
			}
		}
		for _, a := range addrs {
			c := adminClient(t, a)
			n, err := c.Do(ctx, c.B().Dbsize().Build()).AsInt64()
			if err != nil || n == 0 {
				t.Errorf("DBSIZE of node %s: got %d, err %v; want keys on every node", a, n, err)
			}
		}
		for i, u := range users {
			if n, err := s.DeleteUser(ctx, u); err != nil || n != 10 {
				t.Errorf("DeleteUser(%q): got %d, err %v; want 10, nil", u, n, err)
			}
			if _, err := s.Load(ctx, fmt.Sprintf("key-%d", i)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Load(key-%d) after DeleteUser: got err %v; want %v", i, err, store.ErrNotFound)
			}
		}
	})
	runSuite(t, redisstore.Config{Addrs: addrs}, nil)
	t.Run("NearCache", func(t *testing.T) {
		runSuiteWith(t, redisstore.Config{Addrs: addrs, NearCache: &redisstore.NearCache{}}, nil, true)
	})
}

// TestSentinel runs the suite through a Sentinel the test starts, in front
// of a master it starts.
func TestSentinel(t *testing.T) {
	t.Parallel()
	sentinel, _ := startSentinel(t)
	runSuite(t, redisstore.Config{Addrs: []string{sentinel}, SentinelMaster: "mymaster"}, nil)
}

// countingClient counts the calls (round trips: each Do or DoMulti is one)
// and the commands, by name, that the store sends through it.
type countingClient struct {
	rueidis.Client
	mu    sync.Mutex
	calls int
	cmds  map[string]int
}

func (c *countingClient) count(multi ...rueidis.Completed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for i := range multi {
		c.cmds[strings.ToLower(multi[i].Commands()[0])]++
	}
}

// take returns the counts since the last take.
func (c *countingClient) take() (calls int, cmds map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls, cmds = c.calls, c.cmds
	c.calls, c.cmds = 0, make(map[string]int)
	return calls, cmds
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.count(cmd)
	return c.Client.Do(ctx, cmd)
}

func (c *countingClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	c.count(multi...)
	return c.Client.DoMulti(ctx, multi...)
}

// commandStats returns the calls of each command from INFO commandstats,
// which counts the commands scripts run as well as those clients send.
func commandStats(t *testing.T, c rueidis.Client) map[string]int {
	t.Helper()
	info, err := c.Do(t.Context(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	m := make(map[string]int)
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("INFO commandstats line %q: %v", line, err)
		}
		m[name] = n
	}
	return m
}

// TestRoundTrips counts the commands each operation sends and its round
// trips, on a Redis server of its own. The client side counts commands by
// name and round trips (each Do or DoMulti is one); the server side (INFO
// commandstats deltas) confirms that the scripts ran as EVALSHA, never
// EVAL, and shows what they did inside Redis.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	srv := startStandalone(t)
	admin := adminClient(t, srv.addr())
	raw, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	cc := &countingClient{Client: raw, cmds: make(map[string]int)}
	s, err := redisstore.NewFromClient(cc, redisstore.Config{KeyPrefix: "rt:"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	now := time.Now()
	hour := now.Add(time.Hour)

	// Warm up: run every script once, so that no EVALSHA below meets
	// NOSCRIPT (which costs one EVAL more, once per script and server).
	v, err := s.Save(ctx, "warm", store.Record{Expires: hour, UserID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err = s.Save(ctx, "warm", store.Record{Version: v, Expires: hour, UserID: "w"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, "warm", 0, now.Add(10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "warm", v+1); !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, "w"); err != nil {
		t.Fatal(err)
	}

	type step struct {
		name  string
		op    func() error
		cmds  map[string]int
		calls int
	}
	var va, vb uint64
	steps := []step{
		{"Load/missing", func() error { _, err := s.Load(ctx, "a"); return ignore(err, store.ErrNotFound) },
			map[string]int{"get": 1}, 1},
		{"Save/new-unbound", func() (err error) {
			va, err = s.Save(ctx, "a", store.Record{Data: []byte("1"), Expires: hour})
			return err
		},
			map[string]int{"set": 1}, 1},
		{"Save/new-exists", func() error {
			_, err := s.Save(ctx, "a", store.Record{Data: []byte("1"), Expires: hour})
			return ignore(err, store.ErrConflict)
		},
			map[string]int{"set": 1}, 1},
		{"Load", func() error { _, err := s.Load(ctx, "a"); return err },
			map[string]int{"get": 1}, 1},
		{"Save/replace-unbound", func() (err error) {
			va, err = s.Save(ctx, "a", store.Record{Data: []byte("2"), Version: va, Expires: hour})
			return err
		}, map[string]int{"evalsha": 1}, 1},
		{"Save/conflict", func() error {
			_, err := s.Save(ctx, "a", store.Record{Data: []byte("3"), Version: va - 1, Expires: hour})
			return ignore(err, store.ErrConflict)
		}, map[string]int{"evalsha": 1}, 1},
		{"Touch/unbound", func() error { return s.Touch(ctx, "a", va, now.Add(5*time.Hour)) },
			map[string]int{"evalsha": 1}, 1},
		{"Save/new-bound", func() (err error) {
			vb, err = s.Save(ctx, "b", store.Record{Data: []byte("1"), Expires: hour, UserID: "alice"})
			return err
		}, map[string]int{"evalsha": 1, "set": 1}, 2},
		{"Save/replace-same-user", func() (err error) {
			vb, err = s.Save(ctx, "b", store.Record{Data: []byte("2"), Version: vb, Expires: hour, UserID: "alice"})
			return err
		}, map[string]int{"evalsha": 1}, 1},
		{"Touch/bound-within-horizon", func() error { return s.Touch(ctx, "b", vb, now.Add(90*time.Minute)) },
			map[string]int{"evalsha": 1}, 1},
		{"Touch/bound-past-horizon", func() error { return s.Touch(ctx, "b", 0, now.Add(3*time.Hour)) },
			map[string]int{"evalsha": 3}, 3},
		{"Save/rebind", func() (err error) {
			vb, err = s.Save(ctx, "b", store.Record{Data: []byte("3"), Version: vb, Expires: hour, UserID: "bob"})
			return err
		}, map[string]int{"evalsha": 3}, 3},
		{"ListUser/one", func() error { return wantLen(s.ListUser(ctx, "bob")) },
			map[string]int{"evalsha": 1, "get": 1}, 2},
		{"ListUser/stale-entry", func() error { l, err := s.ListUser(ctx, "alice"); return wantLen(l, err, 0) },
			map[string]int{"evalsha": 1, "get": 1}, 2},
		{"ListUser/unknown", func() error { l, err := s.ListUser(ctx, "nobody"); return wantLen(l, err, 0) },
			map[string]int{"evalsha": 1}, 1},
		{"DeleteUser/one", func() error { n, err := s.DeleteUser(ctx, "bob"); return wantN(n, err, 1) },
			map[string]int{"evalsha": 2}, 2},
		{"Delete/version", func() error { return s.Delete(ctx, "a", va) },
			map[string]int{"evalsha": 1}, 1},
		{"Delete/unconditional", func() error { return s.Delete(ctx, "a", 0) },
			map[string]int{"unlink": 1}, 1},
	}
	for _, st := range steps {
		before := commandStats(t, admin)
		cc.take()
		if err := st.op(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		calls, sent := cc.take()
		after := commandStats(t, admin)
		server := make(map[string]int)
		for name, n := range after {
			if d := n - before[name]; d != 0 && name != "info" {
				server[name] = d
			}
		}
		if !maps.Equal(sent, st.cmds) || calls != st.calls {
			t.Errorf("%s: got commands %v in %d round trips; want %v in %d", st.name, sent, calls, st.cmds, st.calls)
		}
		if server["evalsha"] != sent["evalsha"] || server["eval"] != 0 {
			t.Errorf("%s: server ran EVALSHA %d times and EVAL %d times; want %d and 0", st.name, server["evalsha"], server["eval"], sent["evalsha"])
		}
		t.Logf("%-28s sent %v in %d round trip(s); server ran %v", st.name, sent, calls, server)
	}
}

func ignore(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("got nil error; want %v", want)
	}
	return err
}

func wantLen(list []store.Entry, err error, n ...int) error {
	want := 1
	if len(n) > 0 {
		want = n[0]
	}
	if err == nil && len(list) != want {
		err = fmt.Errorf("got %d entries; want %d", len(list), want)
	}
	return err
}

func wantN(n int, err error, want int) error {
	if err == nil && n != want {
		err = fmt.Errorf("got %d; want %d", n, want)
	}
	return err
}

// TestUserIndex_noLeak checks that expired sessions do not stay in their
// user's index: once their index horizon (twice their lifetime) has passed,
// the next index write drops them, and an index whose sessions are all gone
// expires by itself.
func TestUserIndex_noLeak(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	admin := adminClient(t, addr)
	prefix := uniquePrefix()
	t.Cleanup(func() { dropPrefix(t, admin, prefix) })
	s := newStore(t, redisstore.Config{Addrs: []string{addr}, KeyPrefix: prefix})
	ctx := t.Context()

	const n = 100
	start := time.Now()
	short := start.Add(time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n+1)
	for i := range n {
		wg.Go(func() {
			for _, u := range []string{"leaky", "gone"} {
				if _, err := s.Save(ctx, fmt.Sprintf("%s/%d", u, i), store.Record{Expires: short, UserID: u}); err != nil {
					errs <- err
				}
			}
		})
	}
	long := store.Record{Expires: start.Add(time.Minute), UserID: "leaky"}
	if _, err := s.Save(ctx, "leaky/long", long); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Save: %v", err)
	}
	leaky, gone := indexKey(prefix, "leaky"), indexKey(prefix, "gone")
	if got := zcard(t, admin, leaky); got != n+1 {
		t.Fatalf("ZCARD of leaky's index: got %d; want %d", got, n+1)
	}
	pttl, err := admin.Do(ctx, admin.B().Pttl().Key(gone).Build()).AsInt64()
	if err != nil || pttl <= 0 || pttl > 2100 {
		t.Fatalf("PTTL of gone's index: got %d, err %v; want an expiry within about 2s (twice the sessions' lifetime)", pttl, err)
	}

	// The sessions expire after 1s, their index entries after 2s at most.
	waitUntil(t, 4*time.Second, "short sessions expire", func() bool {
		for _, k := range []string{"leaky/0", fmt.Sprintf("leaky/%d", n-1), "gone/0"} {
			if _, err := s.Load(ctx, k); !errors.Is(err, store.ErrNotFound) {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Until(start.Add(2*time.Second + 50*time.Millisecond)))

	fresh := store.Record{Expires: time.Now().Add(time.Minute), UserID: "leaky"}
	if _, err := s.Save(ctx, "leaky/fresh", fresh); err != nil {
		t.Fatal(err)
	}
	members, err := admin.Do(ctx, admin.B().Zrange().Key(leaky).Min("0").Max("-1").Build()).AsStrSlice()
	slices.Sort(members)
	if err != nil || !slices.Equal(members, []string{"leaky/fresh", "leaky/long"}) {
		t.Errorf("leaky's index after its expired sessions: got %q, err %v; want [leaky/fresh leaky/long]", members, err)
	}
	list, err := s.ListUser(ctx, "leaky")
	if err := wantLen(list, err, 2); err != nil {
		t.Errorf("ListUser(leaky): %v", err)
	}
	waitUntil(t, 3*time.Second, "gone's index expires", func() bool {
		n, err := admin.Do(ctx, admin.B().Exists().Key(gone).Build()).AsInt64()
		return err == nil && n == 0
	})
}

func zcard(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	n, err := c.Do(t.Context(), c.B().Zcard().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatalf("ZCARD %q: %v", key, err)
	}
	return n
}

// waitUntil polls cond every 20ms and fails t if it is not true within d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeyspace_noSecrets saves sessions the way the session Manager does
// (the store key is a hash of the session ID) and scans the whole keyspace
// of the store: no key name or value holds a session ID, and no key name
// holds a user ID.
func TestKeyspace_noSecrets(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	admin := adminClient(t, addr)
	prefix := uniquePrefix()
	t.Cleanup(func() { dropPrefix(t, admin, prefix) })
	s := newStore(t, redisstore.Config{Addrs: []string{addr}, KeyPrefix: prefix})
	ctx := t.Context()

	const user = "alice@example.com"
	var secrets []string
	for i := range 5 {
		sid := rand.Text() + rand.Text() // what a cookie would carry
		sum := sha256.Sum256([]byte(sid))
		key := base64.RawURLEncoding.EncodeToString(sum[:])
		secrets = append(secrets, sid)
		rec := store.Record{Data: []byte(`{"cart":3}`), Expires: time.Now().Add(time.Hour), UserID: user}
		v, err := s.Save(ctx, key, rec)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Touch(ctx, key, v, time.Now().Add(3*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if list, err := s.ListUser(ctx, user); err != nil || len(list) != 5 {
		t.Fatalf("ListUser: got %d entries, err %v; want 5", len(list), err)
	}

	keys := scanKeys(t, ctx, admin, prefix)
	if len(keys) != 6 {
		t.Fatalf("keys under the prefix: got %d (%q); want 6: 5 sessions and 1 index", len(keys), keys)
	}
	for _, k := range keys {
		var values []string
		typ, err := admin.Do(ctx, admin.B().Type().Key(k).Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			v, err := admin.Do(ctx, admin.B().Get().Key(k).Build()).ToString()
			if err != nil {
				t.Fatal(err)
			}
			values = append(values, v)
		case "zset":
			values, err = admin.Do(ctx, admin.B().Zrange().Key(k).Min("0").Max("-1").Withscores().Build()).AsStrSlice()
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("key %q has type %s; want string or zset", k, typ)
		}
		if strings.Contains(k, user) {
			t.Errorf("key name %q holds the user ID", k)
		}
		for _, sid := range secrets {
			if strings.Contains(k, sid) || slices.ContainsFunc(values, func(v string) bool { return strings.Contains(v, sid) }) {
				t.Errorf("key %q or its value holds a session ID", k)
			}
		}
	}
}

// TestStore_serverDown checks what callers see when Redis hangs or dies:
// errors within the Timeout that wrap neither ErrNotFound nor ErrConflict,
// and service again once the server is back.
func TestStore_serverDown(t *testing.T) {
	t.Parallel()
	srv := startStandalone(t)
	const timeout = 300 * time.Millisecond
	s := newStore(t, redisstore.Config{Addrs: []string{srv.addr()}, Timeout: timeout})
	ctx := t.Context()
	v, err := s.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour), UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}

	// A hung server (SIGSTOP): every operation gives up after the Timeout.
	srv.signal(t, syscall.SIGSTOP)
	ops := map[string]func() error{
		"Load": func() error { _, err := s.Load(ctx, "k"); return err },
		"Save": func() error {
			_, err := s.Save(ctx, "k", store.Record{Version: v, Expires: time.Now().Add(time.Hour)})
			return err
		},
		"Delete":     func() error { return s.Delete(ctx, "k", v) },
		"Touch":      func() error { return s.Touch(ctx, "k", v, time.Now().Add(2*time.Hour)) },
		"ListUser":   func() error { _, err := s.ListUser(ctx, "u"); return err },
		"DeleteUser": func() error { _, err := s.DeleteUser(ctx, "u"); return err },
	}
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		start := time.Now()
		err := ops[name]()
		took := time.Since(start)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s on a hung server: got err %v; want an outage error", name, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s on a hung server: got err %v; want one wrapping %v", name, err, context.DeadlineExceeded)
		}
		if took > timeout+500*time.Millisecond {
			t.Errorf("%s on a hung server: returned after %v; want about %v", name, took, timeout)
		}
	}
	srv.signal(t, syscall.SIGCONT)
	waitUntil(t, 5*time.Second, "Load after the server resumes", func() bool {
		_, err := s.Load(ctx, "k")
		return err == nil || errors.Is(err, store.ErrNotFound)
	})

	// A dead server: errors, never ErrNotFound.
	srv.kill()
	start := time.Now()
	_, err = s.Load(ctx, "k")
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("Load from a dead server: got err %v; want an outage error", err)
	}
	if took := time.Since(start); took > timeout+500*time.Millisecond {
		t.Errorf("Load from a dead server: returned after %v; want at most about %v", took, timeout)
	}
}

// TestStore_serverHung_concurrent: under concurrent traffic the client's
// connections, not a context per call, bound the wait for a server that
// stops answering (SIGSTOP). In a first wave the calls wait on connections
// that were open: they fail within about 1.5 Timeout (the stall is found by
// a PING after Timeout/4 of silence, which gets Timeout to answer). In a
// second wave the connections are gone and the calls reconnect, each dial
// bounded by Timeout, and a timed-out read is not retried. Every error
// wraps context.DeadlineExceeded. A store made by NewFromClient bounds each
// call with its own deadline, but a call may also wait for a reconnection
// another call started, and rueidis, when a new connection's handshake
// ends with the caller's context, waits up to a second for a PING before
// closing it: it is held to Timeout plus that second.
func TestStore_serverHung_concurrent(t *testing.T) {
	t.Parallel()
	srv := startStandalone(t)
	const timeout = 400 * time.Millisecond
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	fromClient, err := redisstore.NewFromClient(c, redisstore.Config{KeyPrefix: "fc:", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]*redisstore.Store{
		"New":           newStore(t, redisstore.Config{Addrs: []string{srv.addr()}, Timeout: timeout}),
		"NewFromClient": fromClient,
	}
	bound := map[string]time.Duration{"New": timeout * 3 / 2, "NewFromClient": timeout + time.Second}
	ctx := t.Context()
	for _, s := range stores {
		if _, err := s.Save(ctx, "k", store.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	srv.signal(t, syscall.SIGSTOP)
	defer srv.signal(t, syscall.SIGCONT)
	for _, wave := range []string{"open connections", "reconnecting"} {
		var wg sync.WaitGroup
		for _, name := range slices.Sorted(maps.Keys(stores)) {
			for i := range 32 {
				wg.Go(func() {
					start := time.Now()
					_, err := stores[name].Load(ctx, "k")
					took := time.Since(start)
					if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrNotFound) {
						t.Errorf("%s, %s: Load %d on a hung server: got err %v; want one wrapping %v", name, wave, i, err, context.DeadlineExceeded)
					}
					if took > bound[name]+500*time.Millisecond {
						t.Errorf("%s, %s: Load %d on a hung server: returned after %v; want within about %v", name, wave, i, took, bound[name])
					}
				})
			}
		}
		wg.Wait()
	}
}

// TestNew_errors checks that New rejects bad configurations and
// unreachable servers with an error, promptly and without a panic.
func TestNew_errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  redisstore.Config
	}{
		{"BracePrefix", redisstore.Config{KeyPrefix: "a{b}:"}},
		{"NegativeDB", redisstore.Config{DB: -1}},
		{"NegativeDialTimeout", redisstore.Config{DialTimeout: -time.Second}},
		{"BadAddr", redisstore.Config{Addrs: []string{"no-port"}}},
		{"Unreachable", redisstore.Config{Addrs: []string{fmt.Sprintf("127.0.0.1:%d", freePort(t, false))}, DialTimeout: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s, err := redisstore.New(t.Context(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v): got nil error; want one", tc.cfg)
			}
			if !strings.HasPrefix(err.Error(), "redisstore: ") {
				t.Errorf("New error %q: want it to start with %q", err, "redisstore: ")
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("New(%+v): took %v", tc.cfg, took)
			}
		})
	}
	t.Run("FromClient", func(t *testing.T) {
		if _, err := redisstore.NewFromClient(nil, redisstore.Config{}); err == nil {
			t.Error("NewFromClient(nil): got nil error; want one")
		}
	})
}

// TestNewFromClient_closeKeepsClient checks that closing a store made by
// NewFromClient leaves the caller's client open.
func TestNewFromClient_closeKeepsClient(t *testing.T) {
	t.Parallel()
	addr := redisAddr(t)
	c := adminClient(t, addr)
	s, err := redisstore.NewFromClient(c, redisstore.Config{KeyPrefix: uniquePrefix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(t.Context(), "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load: got err %v; want %v", err, store.ErrNotFound)
	}
	s.Close()
	if _, err := s.Load(t.Context(), "k"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Load after Close: got err %v; want %v", err, store.ErrClosed)
	}
	if err := c.Do(t.Context(), c.B().Ping().Build()).Error(); err != nil {
		t.Errorf("PING on the caller's client after the store's Close: %v", err)
	}
	if _, err := redisstore.NewFromClient(c, redisstore.Config{Addrs: []string{addr}}); err == nil {
		t.Error("NewFromClient with connection fields set: got nil error; want one")
	}
}

// TestStore_scriptFlush checks that every operation still works when the
// server has lost its script cache (as after a restart or failover): each
// EVALSHA answered NOSCRIPT is sent again as EVAL, pipelined ones too.
func TestStore_scriptFlush(t *testing.T) {
	t.Parallel()
	srv := startStandalone(t)
	admin := adminClient(t, srv.addr())
	s := newStore(t, redisstore.Config{Addrs: []string{srv.addr()}})
	ctx := t.Context()
	flush := func() {
		t.Helper()
		if err := admin.Do(ctx, admin.B().ScriptFlush().Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	exp := time.Now().Add(time.Hour)
	var versions []uint64
	for i := range 3 {
		flush()
		v, err := s.Save(ctx, fmt.Sprintf("k%d", i), store.Record{Data: []byte("x"), Expires: exp, UserID: "u"})
		if err != nil {
			t.Fatalf("Save after SCRIPT FLUSH: %v", err)
		}
		versions = append(versions, v)
	}
	flush()
	if err := s.Touch(ctx, "k0", versions[0], exp.Add(5*time.Hour)); err != nil {
		t.Fatalf("Touch after SCRIPT FLUSH: %v", err)
	}
	flush()
	if err := s.Delete(ctx, "k0", versions[0]); err != nil {
		t.Fatalf("Delete after SCRIPT FLUSH: %v", err)
	}
	flush()
	if list, err := s.ListUser(ctx, "u"); err != nil || len(list) != 2 {
		t.Fatalf("ListUser after SCRIPT FLUSH: got %d entries, err %v; want 2", len(list), err)
	}
	flush()
	if n, err := s.DeleteUser(ctx, "u"); err != nil || n != 2 {
		t.Fatalf("DeleteUser after SCRIPT FLUSH: got %d, err %v; want 2", n, err)
	}
	if evals := commandStats(t, admin)["eval"]; evals == 0 {
		t.Error("server ran no EVAL; the NOSCRIPT fallback was not exercised")
	}
}

// TestNew_honoursContext: a server that accepts connections but never
// answers does not hold New past its context's deadline.
func TestNew_honoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err := redisstore.New(ctx, redisstore.Config{Addrs: []string{ln.Addr().String()}})
	if err == nil {
		s.Close()
		t.Fatal("New succeeded against a silent server")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("New took %v with a 300ms deadline", d)
	}
}
