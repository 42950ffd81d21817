// Package redisstore is the session store on Redis: a standalone server, a
// master behind Sentinel, or a Redis Cluster. It implements store.Store and
// the optional store.Toucher and store.UserIndex, and passes the storetest
// conformance suite against all three deployments. It needs Redis 6.2 or
// later (ZADD GT); it is tested on Redis 7.
//
// # Why rueidis
//
// The Redis client is github.com/redis/rueidis. It pipelines automatically:
// concurrent requests share a few connections per server and their commands
// go out in batches, with no connection pool to size and no head-of-line
// wait for a free connection, which is what a session store under many
// concurrent requests needs. It speaks RESP3, and one client type serves
// standalone, Sentinel (following failovers) and Cluster (routing each
// command by hash slot, following MOVED and ASK). Its push channel
// (OnInvalidations) feeds the store's near cache; its own client-side
// cache (DoCache) is not used (see "Near cache").
//
// rueidis writes and reads a connection in the caller's goroutine until
// calls first overlap on it, and pipelines it for good after that, through
// a writer and a reader goroutine that cost a lone call three goroutine
// wake-ups per round trip. On a standalone server the store therefore
// sends a call made while no other is in flight to a connection of its own,
// which one call uses at a time and rueidis never pipelines, and
// overlapping calls to the shared, pipelined one (a server that has served
// concurrent requests made one read+write request 1.4x slower one at a
// time without it; docs/near-cache.md, "Speed"). For that, a call whose
// context can be cancelled but has no deadline (an HTTP request's) is
// bounded by Config.Timeout once sent, not by the cancellation; with a
// negative Timeout the context is passed as it is.
//
// # Configuration
//
// New takes a Config whose zero value means the defaults:
//
//	Addrs        ["127.0.0.1:6379"], or ["127.0.0.1:26379"] with SentinelMaster
//	KeyPrefix    "sk:"
//	DialTimeout  5 s (at most Timeout)
//	Timeout      2 s: the longest wait for a reply (negative: only the context bounds it)
//	DB           0 (a cluster has only DB 0)
//
// A non-empty SentinelMaster selects Sentinel mode, Addrs being the
// Sentinels. There is no cluster switch: cluster mode is detected from the
// first reachable address (CLUSTER SLOTS), and one address of a server that
// is not a cluster node gives a standalone connection. Several addresses
// without SentinelMaster must be nodes of one cluster.
//
// ParseURL reads the form the command line takes (--redis URL):
//
//	redis://[[user][:password]@]host[:port][/db][?options]             standalone, or any cluster node
//	redis://host:port,host:port,...[?options]                          cluster seeds
//	rediss://...                                                       TLS
//	redis-sentinel://[[user][:password]@]s1[:port],s2.../master[/db]   Sentinel (port 26379)
//	rediss-sentinel://...                                              Sentinel, TLS to all
//
// with options db, key_prefix, timeout, dial_timeout, master,
// sentinel_username and sentinel_password (see ParseURL).
//
// NewFromClient wraps a rueidis client the caller made and owns.
//
// # Data layout
//
// One string per session, one sorted set per user:
//
//	<prefix>s:{<tag>}        STRING  a 60-byte header of fixed-width decimal fields
//	                                 (version 20 digits, expiry in Unix ms 15,
//	                                 index horizon in Unix ms 15, user ID length 10),
//	                                 then the user ID, then the data; PXAT the expiry
//	<prefix>u:{<userhash>}   ZSET    member: session key, score: its index horizon
//	                                 (Unix ms); PEXPIREAT its highest score
//
// A string rather than a hash keeps Redis's work per request small: Load is
// one GET, and Save's compare-and-set script runs two commands (GET, then
// SET with PXAT) where a hash needs three (HMGET, HSET, PEXPIREAT)
// (docs/measurements.md has Redis's time for each). A new record needs no
// compare-and-set script: "only if there is none" is SET's own NX, so a
// first save (a first visit, a login) is one native SET NX PXAT.
// The fixed widths let the scripts read the header with GETRANGE and
// string.sub, and let Touch rewrite the expiry in place with SETRANGE,
// without rewriting the data. Times are clamped to [1 ms, year 33658].
// (Versions of this package before the string layout kept a hash under
// <prefix>{<tag>}; this one does not read those, which expire on their
// own: upgrading ends the sessions stored by the old layout.)
//
// tag is the session key itself when it is printable ASCII without spaces
// or braces and does not start with '~' (the session Manager's keys, which
// are base64url SHA-256 hashes, always are); any other key is written as
// '~' and its unpadded base64url, so that keys of any bytes neither break
// the hash tag nor collide. userhash is the base64url SHA-256 of the user
// ID: user IDs of any length and bytes, and never in key names. Since the
// Manager's keys are hashes of session IDs, a dump of the keyspace holds no
// session ID. Expiry is Redis's own: records expire by the server's clock,
// to the millisecond.
//
// # Cluster hash slots
//
// Every script touches exactly one key, so each runs on the node that owns
// that key's slot. A session record and its user's index are generally in
// different slots, on different nodes, so no operation updates both
// atomically; instead, the index is always written before the record, in
// separate calls (see below). Multi-key work (listing or deleting a user's
// sessions) is one command per key, pipelined with DoMulti, which rueidis
// splits by node. The store never sends KEYS or multi-key DEL.
//
// # Versions
//
// A new record gets a random version in [1, 2^62]; each replace adds one,
// computed by the client from the expected version the script has just
// verified. Versions are compared as decimal strings in Lua, never as Lua
// numbers (doubles). A key's versions never repeat within one life of the
// record, since they only grow. Across lives (the record deleted or expired
// and created again) a repeat needs the new random start to land within
// the range of versions an earlier life used: for lives of n saves each,
// about n/2^62 per pair of lives, about 2e-13 for a million saves. The
// alternative, versions from the server's clock, would be exact only as
// long as that clock never steps back, including across a failover to a
// replica with another clock; the random start does not depend on clocks.
//
// # User index
//
// ListUser and DeleteUser read the user's index and check every record it
// names: only records that still exist and are still bound to that user
// count. So the index may hold more than the user's sessions, but must
// never miss one. The store keeps this invariant: every live record bound
// to a user has an entry in that user's index with a score (its horizon) of
// at least the record's expiry.
//
// Scores only grow (ZADD GT). Each record remembers, in its header (x in
// the scripts), the horizon its index entry is known to have. A save or
// touch whose new expiry is within x, for the same user, writes the record
// alone. Otherwise the store first raises the index entry, then writes the
// record with the new x: the index is written first, so a crash or an
// error in between leaves an index that covers more than needed, never
// less. The horizon written is twice the
// record's remaining lifetime, so that its next saves and touches over that
// span need no index write (it is never before the record's expiry,
// whatever the local clock says).
//
// Entries are removed only by time: every index write drops the entries
// whose horizon has passed (by the server's clock) and sets the index to
// expire with its highest score, so an index dies with its last session's
// horizon, and nothing leaks. Deleting or re-binding a session leaves its
// old entry until its horizon; it is skipped meanwhile. The store never
// removes entries on deletion because, with the record and the index on
// different nodes, a removal could race with a concurrent save that binds
// the same key to the same user again and leave that session unindexed.
//
// # Round trips
//
// Each call below is one round trip; the commands are what the client sends
// (measured by TestRoundTrips):
//
//	Load                                      1: GET
//	Save, new unbound record                  1: SET NX
//	Save, new bound record                    2: EVALSHA index, SET NX
//	Save, replace unbound record              1: EVALSHA (compare-and-set)
//	Save, bound, same user, within horizon    1: EVALSHA
//	Save, user changed or past horizon        3: EVALSHA (answers "index first"), index, compare-and-set
//	Save, conflict                            1 (or 2 for a new bound record)
//	Touch, unbound or within horizon          1: EVALSHA
//	Touch, bound, past horizon                3, as Save
//	Delete(key, 0)                            1: UNLINK
//	Delete(key, version)                      1: EVALSHA (compare-and-delete)
//	ListUser                                  2: EVALSHA (read index), then n GET in one DoMulti
//	DeleteUser                                2: EVALSHA (read index), then n EVALSHA in one DoMulti
//
// EVALSHA falls back to EVAL, once, when the server answers NOSCRIPT (after
// a restart or a failover).
//
// # Concurrency and failures
//
// All methods are safe for concurrent use; the Store holds no lock and
// rueidis pipelines concurrent calls. Every operation is bounded by its
// context and by Timeout, whichever ends first. Timeout is kept by the
// client's connections (rueidis ConnWriteTimeout), not by a context and a
// timer per call, which would cost every request about two microseconds of
// CPU: a connection whose replies stall for Timeout is closed, and the
// calls on it fail with an error wrapping context.DeadlineExceeded, after
// Timeout for a lone call and within about 1.5 Timeout under concurrent
// traffic (the client finds the stall with a PING after Timeout/4 without a
// reply, then gives the PING Timeout to answer). Reconnecting is bounded by
// DialTimeout or Timeout, the shorter. A store made by NewFromClient cannot
// set its client's timeouts, so it bounds each call with a context deadline
// instead.
//
// When Redis is down or slow, methods return an error (wrapping the
// client's or the context's) that wraps neither store.ErrNotFound nor
// store.ErrConflict; a write that timed out may still be applied later. A
// read that meets a network error other than a timeout is retried once, at
// once, and never again: with Redis down, an operation fails in
// microseconds, and the circuit breaker of package breaker, in front of the
// store, decides when to try again. rueidis reconnects by itself, and the
// store works again as soon as the server does. TestOutage kills a
// test-owned server mid-traffic: every request while it is down is a 503
// within 50 ms, and after its restart every session written
// before loads. New fails if it cannot connect and PING within DialTimeout
// and Timeout.
//
// Redis replication is asynchronous: a failover (Sentinel or Cluster) can
// lose the last writes the old master acknowledged, session data and index
// entries alike. Eviction must be off (maxmemory-policy noeviction) for the
// index to stay exact: an evicted session is simply gone, but an evicted
// index would hide live sessions from DeleteUser.
//
// # Notifications
//
// The store does not implement store.Notifier. Redis keyspace notifications
// need server configuration that managed services often forbid, must be
// subscribed on every node of a cluster, are lost while a subscriber is
// disconnected, and carry no version; publishing from the scripts would
// cost every write a fan-out. The near cache uses server-assisted
// client-side caching instead.
//
// # Near cache
//
// With Config.NearCache, each Store keeps the records it read or wrote
// recently in its own memory (package nearcache: bounded by entries and
// bytes, least recently used evicted first), and Redis tells it when one
// of them changes: the connection runs CLIENT TRACKING ON OPTOUT NOLOOP
// (RESP3; Redis 6 or later), so Redis remembers every key the store reads
// and pushes an invalidation when another client changes it. On a
// standalone server the tracking redirects the invalidations to a second
// connection (REDIRECT), so that the data connection carries replies only
// and a lone call is written and read in the caller's goroutine, with no
// hand-off to rueidis's pipelining goroutines (see redirect.go and
// lone.go); with
// Sentinel or Cluster the invalidations come on the data connection.
// Then:
//
//   - a Load of a cached record sends nothing; a miss sends one GET and
//     caches what it read;
//   - a Save of a replaced record sends one EVALSHA, as without the cache,
//     and caches what it wrote: a request that reads and writes its
//     session costs one round trip instead of two;
//   - a Touch keeps the cached record with its new expiry; Delete and
//     DeleteUser drop what they delete.
//
// Coherence. A change made by another node is reported to this one by
// Redis, after the change and on the connection the read came on, in
// order; a logout on another node is honoured here within that delay
// (NearCacheStats().Delay measures it every NearCache.ProbeInterval:
// typically well under a millisecond on a LAN). Reads that raced with a
// change are never cached (nearcache.Cache.Begin and Insert). Writes still
// compare and set in Redis: a write based on a copy that another node's
// change has made stale fails with store.ErrConflict, which drops the copy,
// and the session Manager reloads from Redis and re-applies; no update is
// lost. When a connection closes (network, failover, CLIENT KILL), the
// tracking it held is gone and the whole cache is dropped. In redirect
// mode: when the invalidation connection closes, the cache is also
// bypassed until a new pair of connections is up (calls made meanwhile
// wait for the attempt, bounded by the dial timeout); a data connection
// nobody is using is found closed by the next call or by the client's
// keep-alive PING (sent after Timeout/4 without a reply). An entry is
// never served more than NearCache.MaxAge (1 s) after the read or write
// that produced it, which bounds what a loss nobody noticed could cost.
//
// Why not rueidis's own client-side cache (DoCache): Redis sends a
// client's invalidation for its own write after the write's reply, so the
// next cached read after a write could hand out the old version (measured:
// a third of them, each ending in a conflict), and it cannot hold what the
// store wrote. docs/design/redis-near-cache.md has the measurements. Two
// details follow from NOLOOP: the store's own changes are not reported to
// it (it applies them to its cache itself), and Redis stops tracking a key
// a client changed, so the compare-and-set and touch scripts end with a
// read of the key (EXISTS) that re-arms the tracking, atomically with the
// write. The store uses one data connection per server with a near cache
// (a change made on a second connection would invalidate what the first
// one cached); rueidis pipelines concurrent calls on it.
//
// Costs: Redis keeps a tracking table entry per key and tracking
// connection (tracking-table-max-keys, default 1,000,000: beyond it, Redis
// evicts entries and sends invalidations, which cost misses, never stale
// reads); the probe costs three commands per ProbeInterval. A record whose
// session was only created (SET NX) is cached at its first read.
//
// # Lifetime
//
// Close closes the client (unless it came from NewFromClient), waiting for
// calls in flight. After Close every method returns an error wrapping
// store.ErrClosed.
package redisstore
