package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// The near cache on a standalone server (or a single-node deployment
// reached through one address) runs in redirect mode: the store's calls go
// to a data connection whose tracking (CLIENT TRACKING ON REDIRECT <id>
// OPTOUT NOLOOP) sends its invalidations to a second connection, which
// does nothing else.
//
// Why: rueidis runs a connection that receives invalidation pushes in its
// pipelined mode all the time, with a writer and a reader goroutine
// between the caller and the socket, and three goroutine wake-ups per
// round trip. A connection that receives none is written and read by a
// lone caller itself (rueidis's synchronous mode), and pipelined only
// while calls overlap. For a request that reads and writes its session
// (one EVALSHA with a warm near cache) that is most of the cost one at a
// time; see docs/near-cache.md for the figures.
//
// What keeps it coherent:
//   - NOLOOP is a property of the data connection: its own writes are not
//     reported, as in the other mode; a write from anywhere else is
//     reported to the invalidation connection.
//   - When the invalidation connection closes (or Redis reports a flush of
//     every key), the cache is flushed and bypassed (no hit, no insert)
//     until a new pair of connections is up: a new invalidation connection,
//     and a new data client whose tracking redirects to it. The old data
//     client is closed after the store's Timeout, so that calls in flight
//     on it end normally; what they read is not cached (the flush at the
//     switch refuses inserts of reads begun before it).
//   - When a data connection closes, the tracking it held is gone: the
//     cache is flushed as it closes (redirectConn.Close).
//
// In a Redis Cluster the invalidations of each node would need a
// connection of their own on that node, and a Sentinel failover moves the
// data connection to another server, where the redirect target does not
// exist: both keep the other mode (tracking on the data connection).

// pair is one data client and the invalidation connection its tracking
// redirects to.
type pair struct {
	data   rueidis.Client
	inv    rueidis.Client
	broken atomic.Bool // inv closed, or reported a flush of every key
}

// redirect keeps the store's current pair and replaces it when its
// invalidation connection breaks. Safe for concurrent use.
type redirect struct {
	n       *near
	opt     rueidis.ClientOption // the connection options, without tracking
	grace   time.Duration        // how long a replaced data client stays open
	cur     atomic.Pointer[pair]
	down    atomic.Bool // no usable pair: the cache is bypassed
	pending atomic.Bool // a rebuild is running
	// attempt, while a rebuild dials a pair, is closed when the attempt
	// ends; calls made meanwhile wait for it (see data).
	attempt atomic.Pointer[chan struct{}]

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // rebuilds, and replaced pairs waiting to close
	stop   chan struct{}
}

// newRedirect connects the first pair, bounded by ctx.
func newRedirect(ctx context.Context, opt rueidis.ClientOption, n *near, grace time.Duration) (*redirect, error) {
	r := &redirect{n: n, opt: opt, grace: grace, stop: make(chan struct{})}
	p, err := r.dial(ctx)
	if err != nil {
		return nil, err
	}
	r.cur.Store(p)
	return r, nil
}

// data returns the client of the current pair. While a rebuild is dialing
// a new pair, it waits for the attempt to end (it is bounded by the dial
// timeout): the old data client, if it reconnects meanwhile, cannot
// redirect its tracking to a connection that is gone, and would fail the
// call.
func (r *redirect) data() rueidis.Client {
	if r.down.Load() {
		if ch := r.attempt.Load(); ch != nil {
			<-*ch
		}
	}
	return r.cur.Load().data
}

// usable reports whether the cache may be read and filled: false between
// a broken invalidation connection and its replacement.
func (r *redirect) usable() bool { return !r.down.Load() }

// dial connects a new pair: the invalidation connection first, then the
// data client, which it checks with a PING.
func (r *redirect) dial(ctx context.Context) (*pair, error) {
	p := &pair{}
	io := r.opt
	io.DisableCache = false
	io.ClientTrackingOptions = []string{"OPTIN"} // it reads nothing, and tracks nothing
	io.OnInvalidations = func(msgs []rueidis.RedisMessage) { r.onInvalidations(p, msgs) }
	io.PipelineMultiplex = -1
	io.CacheSizeEachConn = 1
	io.ForceSingleClient = true
	inv, err := rueidis.NewClient(io)
	if err != nil {
		return nil, err
	}
	id, err := inv.Do(ctx, inv.B().ClientId().Build()).AsInt64()
	if err != nil {
		inv.Close()
		return nil, err
	}
	do := r.opt
	do.DisableCache = false
	do.ClientTrackingOptions = []string{"REDIRECT", strconv.FormatInt(id, 10), "OPTOUT", "NOLOOP"}
	do.PipelineMultiplex = -1 // one connection: see NOLOOP in the package doc
	do.CacheSizeEachConn = 1  // rueidis's own cache (DoCache) is never used
	do.ForceSingleClient = true
	do.DialCtxFn = func(ctx context.Context, dst string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
		return r.dialData(ctx, p, dst, d, cfg)
	}
	data, err := rueidis.NewClient(do)
	if err == nil {
		err = data.Do(ctx, data.B().Ping().Build()).Error()
		if err != nil {
			data.Close()
		}
	}
	if err != nil {
		inv.Close()
		return nil, err
	}
	p.inv, p.data = inv, &dataClient{loneClient: newLoneClient(data), r: r, p: p}
	return p, nil
}

// dataClient is a pair's data client: a loneClient (a call made while no
// other is in flight goes to a connection of its own, which rueidis never
// pipelines). Both its connections redirect their tracking to the pair's
// invalidation connection; NOLOOP covers one connection's own writes only,
// so a session read on one and written on the other is invalidated by its
// own write, which costs the next read a miss, never a stale copy.
//
// A call it could not send because the connection it opened for it could
// not redirect its tracking (the invalidation connection is gone, and the
// store has not noticed yet) marks the pair broken and is sent again,
// once, on the pair that replaces it: it never reached Redis.
type dataClient struct {
	*loneClient
	r *redirect
	p *pair
}

func (c *dataClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	res := c.loneClient.Do(ctx, cmd)
	if n, ok := c.again(res.NonRedisError()); ok {
		return n.Client.Do(ctx, cmd)
	}
	return res
}

func (c *dataClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	res := c.Client.DoMulti(ctx, cmds...)
	if len(res) == 0 {
		return res
	}
	if n, ok := c.again(res[0].NonRedisError()); ok {
		return n.Client.DoMulti(ctx, cmds...)
	}
	return res
}

// again returns the data client to send a call to again after err, if
// err says the call's connection could not redirect its tracking.
func (c *dataClient) again(err error) (*dataClient, bool) {
	if !errors.Is(err, rueidis.ErrNoCache) || !c.r.lost(c.p) {
		return nil, false
	}
	n := c.r.data().(*dataClient)
	return n, n != c
}

// lost marks p broken, after a call on its data client found its
// invalidation connection gone, and reports whether a call may be sent
// again: p was current, or has been replaced.
func (r *redirect) lost(p *pair) bool {
	if r.closing() {
		return false
	}
	p.broken.Store(true)
	if r.cur.Load() == p {
		r.breakDown()
	}
	return true
}

// closing reports whether close has begun.
func (r *redirect) closing() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// dialData opens a data connection of p as rueidis would, wrapped so that
// closing it flushes the cache while p is current.
func (r *redirect) dialData(ctx context.Context, p *pair, dst string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	if cfg != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", dst)
	} else {
		c, err = d.DialContext(ctx, "tcp", dst)
	}
	if err != nil {
		return nil, err
	}
	return &redirectConn{Conn: c, r: r, p: p}, nil
}

// redirectConn is a data connection of p: its tracking ends when it
// closes. (Those of a replaced pair are not tracking anything cached: the
// replacement flushed the cache.)
type redirectConn struct {
	net.Conn
	r    *redirect
	p    *pair
	once sync.Once
}

func (c *redirectConn) Close() error {
	c.once.Do(func() {
		if c.r.cur.Load() == c.p || c.r.cur.Load() == nil {
			c.r.n.c.Flush()
		}
	})
	return c.Conn.Close()
}

// onInvalidations receives the pushes of p's invalidation connection: nil
// when it closed or Redis flushed every key.
func (r *redirect) onInvalidations(p *pair, msgs []rueidis.RedisMessage) {
	if msgs != nil {
		r.n.onInvalidations(msgs)
		return
	}
	p.broken.Store(true)
	if r.cur.Load() == p {
		r.breakDown()
	}
}

// breakDown flushes and bypasses the cache, and starts a rebuild unless
// one is running.
func (r *redirect) breakDown() {
	r.down.Store(true)
	r.n.c.Flush()
	if !r.pending.CompareAndSwap(false, true) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	ch := make(chan struct{})
	r.attempt.Store(&ch)
	r.wg.Add(1)
	go r.rebuild(ch)
}

// rebuild dials new pairs, with a backoff from 10 ms to 1 s, until one is
// up or the store closes, and makes it current.
// ch is the first attempt's (see attempt).
func (r *redirect) rebuild(ch chan struct{}) {
	defer r.wg.Done()
	wait := 10 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), max(r.opt.Dialer.Timeout, time.Second))
		p, err := r.dial(ctx)
		cancel()
		if err == nil {
			old := r.cur.Swap(p)
			// Reads begun before this point may have used old's data
			// connection, whose invalidations are lost: refuse them.
			r.n.c.Flush()
			r.pending.Store(false)
			r.down.Store(false)
			r.attempt.Store(nil)
			close(ch)
			r.retire(old)
			if p.broken.Load() {
				r.breakDown() // it broke while it was being set up
			}
			return
		}
		r.attempt.Store(nil)
		close(ch)
		select {
		case <-r.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
		ch = make(chan struct{})
		r.attempt.Store(&ch)
	}
}

// retire closes p after the grace period (or at Close).
func (r *redirect) retire(p *pair) {
	p.inv.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		p.data.Close()
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case <-r.stop:
		case <-time.After(r.grace):
		}
		p.data.Close()
	}()
}

// close stops rebuilds and closes every pair, waiting for calls in flight.
func (r *redirect) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.stop)
	r.mu.Unlock()
	r.wg.Wait()
	p := r.cur.Load()
	p.inv.Close()
	p.data.Close()
}

// isStandalone reports whether the server c reaches is not a cluster node,
// from INFO cluster; false if the server refuses INFO.
func isStandalone(ctx context.Context, c rueidis.Client) (bool, error) {
	info, err := c.Do(ctx, c.B().Info().Section("cluster").Build()).ToString()
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false, nil // INFO refused (renamed, or not allowed to this user): assume the worst
	}
	if err != nil {
		return false, err
	}
	return !strings.Contains("\n"+strings.ReplaceAll(info, "\r", "")+"\n", "\ncluster_enabled:1\n"), nil
}
