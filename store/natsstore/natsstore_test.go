package natsstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/natsstore"
	"github.com/sessionkit/sessionkit/store/storetest"
)

// newBucketStore makes a store on a fresh bucket of the server at url and
// deletes the bucket when t ends.
func newBucketStore(t *testing.T, url string, replicas int, now func() time.Time) *natsstore.Store {
	t.Helper()
	bucket := "storetest_" + rand.Text()
	s := newStore(t, url, bucket, replicas, now)
	t.Cleanup(func() { deleteBucket(t, url, bucket) })
	return s
}

// newBucketStoreNamed makes a store on the bucket, which is not deleted.
func newBucketStoreNamed(t *testing.T, url, bucket string, replicas int) *natsstore.Store {
	t.Helper()
	return newStore(t, url, bucket, replicas, time.Now)
}

func newStore(t *testing.T, url, bucket string, replicas int, now func() time.Time) *natsstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := natsstore.New(ctx, natsstore.Config{
		URL:           url,
		Bucket:        bucket,
		Replicas:      replicas,
		Now:           now,
		Timeout:       5 * time.Second,
		SweepInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jetstreamAt connects to the server at url for the tests' own
// JetStream requests; close ends the connection.
func jetstreamAt(url string) (js jetstream.JetStream, close func(), err error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, nil, err
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}

func deleteBucket(t *testing.T, url, bucket string) {
	js, closeJS, err := jetstreamAt(url)
	if err != nil {
		t.Logf("delete bucket %s: %v", bucket, err)
		return
	}
	defer closeJS()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteKeyValue(ctx, bucket); err != nil {
		t.Logf("delete bucket %s: %v", bucket, err)
	}
}

// feedResets is what the conformance tests say about the store's OpReset.
const feedResets = "when the connection is lost, comes back or is closed, or the watch ends, skips a message or stalls (nothing, not even a heartbeat, for Config.FeedStall); and again once a new watch is up"

// peers makes the stores of the conformance suite and their peers
// (storetest's Options.Peer): a store on the same bucket, with the same
// clock, on a connection of its own.
type peers struct {
	mu   sync.Mutex
	made map[store.Store]peerOf
}

type peerOf struct {
	bucket string
	now    func() time.Time
}

// store makes a store on a fresh bucket, remembered for peer.
func (p *peers) store(t *testing.T, url string, replicas int, now func() time.Time) store.Store {
	bucket := "storetest_" + rand.Text()
	s := newStore(t, url, bucket, replicas, now)
	t.Cleanup(func() { deleteBucket(t, url, bucket) })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.made == nil {
		p.made = make(map[store.Store]peerOf)
	}
	p.made[s] = peerOf{bucket, now}
	return s
}

// alias makes peer find, for w, the bucket of the store s it wraps.
func (p *peers) alias(w, s store.Store) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.made[w] = p.made[s]
}

// clock returns the clock of the store s that the test made.
func (p *peers) clock(s store.Store) func() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.made[s].now
}

// peer makes a second store on the bucket of s, through url.
func (p *peers) peer(t *testing.T, s store.Store, url string, replicas int) store.Store {
	p.mu.Lock()
	of, ok := p.made[s]
	p.mu.Unlock()
	if !ok {
		t.Fatal("peer of a store the test did not make")
	}
	return newStore(t, url, of.bucket, replicas, of.now)
}

func TestConformanceExternal(t *testing.T) {
	addr := testenv.TCPAddr(t, "SESSIONKIT_NATS_ADDR", "127.0.0.1:4222")
	var p peers
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			return p.store(t, "nats://"+addr, 1, now)
		},
		Peer: func(t *testing.T, s store.Store) store.Store {
			return p.peer(t, s, "nats://"+addr, 1)
		},
		FeedResets: feedResets,
	})
}

// freeAddrs returns n loopback addresses with free ports.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// startCluster starts a 3-node cluster in one process and shuts it down
// when t ends. The cluster ports are picked free and then closed, so another
// socket may take one meanwhile: a failed start is retried on new ports.
func startCluster(t *testing.T) ([]*natsstore.Node, []natsstore.NodeConfig) {
	t.Helper()
	var err error
	for attempt := range 3 {
		var nodes []*natsstore.Node
		var cfgs []natsstore.NodeConfig
		nodes, cfgs, err = tryCluster(t, attempt)
		if err == nil {
			for _, n := range nodes {
				t.Cleanup(n.Shutdown)
			}
			return nodes, cfgs
		}
		t.Logf("starting the cluster: %v; retrying", err)
	}
	t.Fatal(err)
	return nil, nil
}

func tryCluster(t *testing.T, attempt int) ([]*natsstore.Node, []natsstore.NodeConfig, error) {
	routes := freeAddrs(t, 3)
	dir := t.TempDir()
	var nodes []*natsstore.Node
	var cfgs []natsstore.NodeConfig
	for i := range 3 {
		var peers []string
		for j, r := range routes {
			if j != i {
				peers = append(peers, r)
			}
		}
		cfg := natsstore.NodeConfig{
			Name:        fmt.Sprintf("n%d", i),
			Dir:         filepath.Join(dir, fmt.Sprintf("n%d-%d", i, attempt)),
			ClusterAddr: routes[i],
			Peers:       peers,
		}
		n, err := natsstore.StartNode(cfg)
		if err != nil {
			for _, n := range nodes {
				n.Shutdown()
			}
			return nil, nil, err
		}
		nodes, cfgs = append(nodes, n), append(cfgs, cfg)
	}
	return nodes, cfgs, nil
}

func TestConformanceCluster(t *testing.T) {
	// Not parallel: its concurrency test, bounded at 30 s, needs the CPU.
	nodes, _ := startCluster(t)
	i := 0
	var p peers
	storetest.Run(t, storetest.Options{
		New: func(t *testing.T, now func() time.Time) store.Store {
			i++
			return p.store(t, nodes[i%3].ClientURL(), 3, now)
		},
		// The peer is a client of the next node.
		Peer: func(t *testing.T, s store.Store) store.Store {
			return p.peer(t, s, nodes[(i+1)%3].ClientURL(), 3)
		},
		FeedResets: feedResets,
		// Every write here is a Raft round among three servers in this
		// one process; with the race detector on a shared 2-core machine
		// the default 64 writers x 20 increments (about 160,000 requests)
		// do not fit the suite's 30 s bound. 16 contending writers still
		// catch any lost or doubled update.
		Writers: 16,
	})

	// A compare-and-set right after the write it follows: the stream
	// leader may still count that write as in flight and answer "wrong
	// last sequence" (10164) for a version that is right; that must not
	// surface as a conflict.
	t.Run("WriteRightAfterWrite", func(t *testing.T) {
		s := newBucketStore(t, nodes[0].ClientURL(), 3, time.Now)
		expires := time.Now().Add(time.Hour)
		var wg sync.WaitGroup
		for g := range 8 { // each on its own keys, to keep the leader busy
			wg.Go(func() {
				for i := range 60 {
					key := fmt.Sprintf("g%d/k%d", g, i%5)
					v1, err := s.Save(t.Context(), key, store.Record{Data: []byte("one"), Expires: expires})
					if err != nil {
						t.Errorf("Save(%q, new): %v", key, err)
						return
					}
					v2, err := s.Save(t.Context(), key, store.Record{Data: []byte("two"), Version: v1, Expires: expires})
					if err != nil {
						t.Errorf("Save(%q, Version %d) right after the save that returned it: %v", key, v1, err)
						return
					}
					if err := s.Delete(t.Context(), key, v2); err != nil {
						t.Errorf("Delete(%q, %d) right after the save that returned it: %v", key, v2, err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}
