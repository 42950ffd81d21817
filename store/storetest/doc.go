// Package storetest is the conformance suite of the store contract. Every
// store adapter (memory, Redis, PostgreSQL, Olric, NATS) passes it, the way
// a file system passes testing/fstest.TestFS.
//
// An adapter's own test file calls [Run] with an [Options] whose New makes a
// fresh, empty store. Each subtest calls New once and closes the store when
// it ends, so stores made by New must not see each other's records; an
// adapter that shares one server between them gives each a unique key
// prefix. New is given the clock the store must use for expiry: the suite
// runs a fake clock and moves it to expire records at once. A store that
// expires records by its server's clock instead sets ServerClock, and the
// expiry tests then wait, about a second, in real time.
//
// For example, the Redis adapter tests itself against the server named by
// an environment variable (internal/testenv skips the test on a developer's
// machine without Redis, and fails it in CI):
//
//	func TestConformance(t *testing.T) {
//		addr := testenv.TCPAddr(t, "SESSIONKIT_REDIS_ADDR", "127.0.0.1:6379")
//		storetest.Run(t, storetest.Options{
//			New: func(t *testing.T, now func() time.Time) store.Store {
//				s, err := redisstore.New(t.Context(), redisstore.Config{
//					Addrs:     []string{addr},
//					KeyPrefix: "storetest:" + rand.Text() + ":",
//				})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s // Run closes it
//			},
//			ServerClock: true, // Redis expires keys by its own clock
//		})
//	}
//
// The tests of the optional interfaces (store.Toucher, store.UserIndex,
// store.Notifier) skip, saying so, for a store that does not implement them
// (and the Notifier tests for a store whose Subscribe returns nil: its
// change feed is turned off).
//
// Options.Peer makes the suite test two nodes: it returns a second store on
// the data of the one New made (another client, the same prefix or table).
// The concurrency tests then spread their writers over the two, and the
// Coherence test checks that a create, a replace, a delete and a
// DeleteUser made through one are seen through the other, which has just
// read the key, within CoherenceBound (2 s), polling, and logs the delays
// (for a delete, over 200 trials: the logout a near cache must honour).
// It is how a store with a near cache, one cache per node, is held to the
// contract. With a Peer, a store.Notifier must say in Options.FeedResets
// when it reports store.OpReset.
// The suite needs a few seconds at most; the concurrency tests put 64
// goroutines on one key (Options.Writers lowers that for replicated stores
// whose every write is a consensus round).
package storetest
