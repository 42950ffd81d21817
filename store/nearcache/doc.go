// Package nearcache keeps recently used session records in the memory of
// each application node, so that most session reads make no round trip to
// the shared store, and keeps them coherent with the store's change feed.
//
// A Cache is the bounded, guarded cache itself: redisstore uses one fed by
// Redis server-assisted client-side caching (Config.NearCache there), and
// Wrap puts one in front of any store.Notifier (natsstore's KV watch,
// pgstore's LISTEN/NOTIFY).
//
// # Coherence
//
// A cached record may be stale for at most the feed's delay: the time from
// a change acknowledged by the store on one node to its invalidation on
// the others (measured and reported in Stats.Delay where the owner can
// measure it). Three rules keep it so:
//
//   - Every change the feed reports evicts the key (Invalidate), and every
//     change a node makes itself evicts it before it is sent.
//   - A value read from the store is inserted only if nothing invalidated
//     its key between the moment the read was sent (Begin) and the insert,
//     so a read that raced with a change never re-inserts the older value.
//   - When the feed breaks, or may have missed changes, the whole cache is
//     flushed (Flush), and entries are served for at most Config.MaxAge
//     (1 s by default) after the read or write that produced them, so a
//     feed that dies silently cannot keep a logged-out session alive
//     longer than that. Over a store that implements store.LiveFeed
//     (natsstore), Wrap serves and caches nothing while the store says its
//     feed is not live, which it knows sooner than MaxAge.
//
// Writes still compare and set on the store: a write based on a stale
// cached copy fails with store.ErrConflict, which evicts the key, and the
// session Manager reloads (from the store, not the cache) and re-applies.
// No update is lost; a stale cache costs a retry.
//
// # Memory
//
// The cache holds at most Config.MaxEntries records (100,000 by default)
// and Config.MaxBytes bytes (64 MiB: key, user ID and data, plus 96
// bytes per entry); a record larger than Config.MaxEntryBytes is never
// cached. When full, the entry not read for longest (by the CLOCK
// approximation of least recently used) is evicted. Not-found answers are
// not cached: a flood of invented session IDs cannot fill the cache.
package nearcache
