package natsstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
	"github.com/sessionkit/sessionkit/store/nearcache"
)

// consumerHosts returns the server hosting each consumer of the bucket's
// stream, by consumer name.
func consumerHosts(t *testing.T, url, bucket string) map[string]string {
	t.Helper()
	js, closeJS, err := jetstreamAt(url)
	if err != nil {
		t.Fatal(err)
	}
	defer closeJS()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]string{}
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		if ci.Cluster != nil {
			hosts[ci.Name] = ci.Cluster.Leader
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return hosts
}

// TestFeed_consumerHostKilled is the stalled feed: a 3-node cluster (one
// process per node), a near-cached store A connected to the bucket's
// stream leader, whose feed's consumer lives on another node, X. X is
// killed with SIGKILL: A's connection stays up, and its feed receives
// nothing more, without a word. A logout (Delete) is then acknowledged
// through the third node, and A must answer not found well before the
// cache's MaxAge (20 s here), and before the ordered consumer of a KV watch
// would have noticed the loss (twice its 5 s heartbeat): the feed counts
// as stalled after Config.FeedStall (200 ms by default) without a message,
// and the cache is bypassed from then on. Once the feed is set up again,
// the cache serves again.
func TestFeed_consumerHostKilled(t *testing.T) {
	const (
		maxAge = 20 * time.Second
		// bound is far above the stall bound (200 ms) so as to hold on a
		// loaded machine, and far below what the loss costs unnoticed.
		bound = 2 * time.Second
	)
	nodes := startProcCluster(t, 3)
	const bucket = "stall"
	first := newBucketStoreNamed(t, nodes[0].Info, bucket, 3)
	first.Close()
	byName := map[string]int{}
	for i, n := range nodes {
		byName[n.cfg.Name] = i
	}
	leader := byName[streamLeader(t, nodes[0].Info, bucket)]

	// A on the leader's node, its feed's consumer on another node: set A
	// up again until the server places the consumer so.
	var (
		a     nearcache.Store
		inner *natsstore.Store
		host  = leader
	)
	for attempt := 0; host == leader; attempt++ {
		if attempt == 20 {
			t.Fatalf("the feed's consumer was placed on the leader's node %d times", attempt)
		}
		if a != nil {
			a.Close()
		}
		// The consumers of closed stores linger until the server drops
		// them: A's is the new one.
		old := consumerHosts(t, nodes[leader].Info, bucket)
		inner = newBucketStoreNamed(t, nodes[leader].Info, bucket, 3)
		var err error
		if a, err = nearcache.Wrap(inner, nearcache.Config{MaxAge: maxAge}); err != nil {
			t.Fatal(err)
		}
		hosts := consumerHosts(t, nodes[leader].Info, bucket)
		for name := range old {
			delete(hosts, name)
		}
		if len(hosts) != 1 {
			t.Fatalf("new consumers of the bucket: got %v; want A's feed's only", hosts)
		}
		for _, h := range hosts {
			host = byName[h]
		}
	}
	defer func() { a.Close() }()
	third := 3 - leader - host
	b := newBucketStoreNamed(t, nodes[third].Info, bucket, 3)
	defer b.Close()
	t.Logf("stream leader and A on %s, A's feed's consumer on %s, B on %s",
		nodes[leader].cfg.Name, nodes[host].cfg.Name, nodes[third].cfg.Name)

	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	v, err := b.Save(ctx, "sess", store.Record{Data: []byte("cart"), Expires: exp, UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	// Load until A answers from memory (a read that raced with the Save's
	// event is not cached).
	for n := 0; a.Stats().Hits == 0; n++ {
		if n == 100 {
			t.Fatalf("A's cache after %d Loads: %+v; want a hit (the test's premise: A serves from memory)", n, a.Stats())
		}
		if got, err := a.Load(ctx, "sess"); err != nil || got.Version != v {
			t.Fatalf("A.Load: got %+v, %v; want version %d", got, err, v)
		}
	}

	nodes[host].Kill()
	// The logout, through the third node; retried while the cluster
	// takes in the loss (the stream leader is alive, so not for long).
	var acked time.Time
	for deadline := time.Now().Add(30 * time.Second); ; {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := b.Delete(dctx, "sess", v)
		cancel()
		if err == nil {
			acked = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B.Delete after the kill: %v", err)
		}
	}
	var lag time.Duration
	for {
		_, err := a.Load(ctx, "sess")
		lag = time.Since(acked)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("A.Load after the logout: %v", err)
		}
		if lag > bound {
			t.Fatalf("A.Load still answers the session %v after its logout was acknowledged through another node (bound %v, MaxAge %v): a stalled feed kept the cache serving", lag.Round(time.Millisecond), bound, maxAge)
		}
		time.Sleep(time.Millisecond) // a real cluster's timing: no clock to move
	}
	t.Logf("A answered not found %v after the logout was acknowledged (the consumer's host killed just before it)", lag.Round(time.Millisecond))

	// The feed comes back (a new consumer on a survivor, once the meta
	// group has a leader), and with it the cache.
	for deadline := time.Now().Add(30 * time.Second); !inner.FeedLive(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("A's feed not live again within 30 s of the kill")
		}
	}
	v2, err := b.Save(ctx, "sess2", store.Record{Data: []byte("cart"), Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	before := a.Stats().Hits
	for n := 0; a.Stats().Hits == before; n++ {
		if n == 100 {
			t.Fatalf("A's cache with the feed back, after %d Loads: %+v; want a hit", n, a.Stats())
		}
		if got, err := a.Load(ctx, "sess2"); err != nil || got.Version != v2 {
			t.Fatalf("A.Load with the feed back: got %+v, %v; want version %d", got, err, v2)
		}
	}
}
