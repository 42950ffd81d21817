package redisstore

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/rueidis"
)

// loneClient sends a call made while no other is in flight on it to a
// connection of its own (lone), which one call uses at a time, and
// overlapping calls to the client's shared connection, which rueidis
// pipelines.
//
// Why: rueidis writes and reads a connection in the caller's goroutine
// (its synchronous path) only until calls first overlap on it; from then
// on it pipelines that connection for good, through a writer and a reader
// goroutine, and a lone call pays three goroutine wake-ups per round trip
// (about 20 µs on a 2-core VM; see docs/near-cache.md, "Speed"). A
// server's shared connection soon sees overlapping calls. The lone
// connection never does, so a request that arrives alone is served as
// quickly as on a connection that has never been pipelined, and a burst is
// still pipelined.
//
// It is used on a standalone server (rueidis.ClientModeStandalone); the
// store then sends calls whose context can be cancelled but has no
// deadline with context.WithoutCancel (see Store.opCtx), since rueidis
// takes its synchronous path only for a context that has a deadline or
// cannot be cancelled.
type loneClient struct {
	rueidis.Client

	mu      sync.Mutex
	lone    rueidis.DedicatedClient // nil until used, and after an error
	release func()
	closed  bool
}

func newLoneClient(c rueidis.Client) *loneClient { return &loneClient{Client: c} }

func (c *loneClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if res, sent := c.doLone(ctx, cmd); sent {
		return res
	}
	return c.Client.Do(ctx, cmd)
}

// doLone sends cmd on the lone connection, unless another call holds it.
// After an error other than Redis's, the connection is given back (a
// broken one is closed) and a read-only command is sent again, once, on
// the shared connection, as the shared connection's own retry would
// (retryOnce).
func (c *loneClient) doLone(ctx context.Context, cmd rueidis.Completed) (rueidis.RedisResult, bool) {
	if cmd.IsBlock() || !c.mu.TryLock() {
		return rueidis.RedisResult{}, false
	}
	defer c.mu.Unlock()
	if c.closed {
		return rueidis.RedisResult{}, false
	}
	if c.lone == nil {
		c.lone, c.release = c.Client.Dedicate()
	}
	res := c.lone.Do(ctx, cmd)
	err := res.NonRedisError()
	if err == nil {
		return res, true
	}
	c.release()
	c.lone = nil
	if cmd.IsReadOnly() && !errors.Is(err, rueidis.ErrNoCache) && retryOnce(1, cmd, err) == 0 {
		res = c.Client.Do(ctx, cmd)
	}
	return res, true
}

// Close gives the lone connection back and closes the client.
func (c *loneClient) Close() {
	c.mu.Lock()
	c.closed = true
	if c.lone != nil {
		c.release()
		c.lone = nil
	}
	c.mu.Unlock()
	c.Client.Close()
}
