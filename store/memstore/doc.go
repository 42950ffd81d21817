// Package memstore is the in-process session store: the store of the
// sticky-session strategy, where a load balancer sends every request of a
// session to the node that holds it. It implements store.Store and the
// optional store.Toucher, store.UserIndex and store.Notifier, and passes the
// storetest conformance suite.
//
// # Defaults and bounds
//
// The zero Config is ready to use; every zero field means its default:
//
//	Shards           64 lock shards (rounded up to a power of two, at most 4096)
//	MaxEntries       1_000_000 records (negative: unbounded)
//	MaxBytes         no byte bound; when set, bounds the sum over all records
//	                 of len(key)+len(Data)+len(UserID)
//	CleanupInterval  1 minute (negative: no background sweep)
//	Now              time.Now
//
// A record whose own size exceeds MaxBytes is rejected with ErrTooLarge and
// nothing is stored or evicted.
//
// # Eviction
//
// When saving a new key (or growing a record under MaxBytes) would exceed a
// bound, the store first drops expired records of the key's shard, then
// evicts the live record that expires soonest in that shard; if that shard
// holds no other record it evicts the soonest-to-expire record of another
// shard. The policy is therefore "evict the session closest to its end",
// approximated per shard. Eviction is never silent: every evicted record is
// counted in Stats.Evictions and reported as a store.OpEvict event.
//
// # Expiry
//
// Expiry follows Config.Now. A record whose Expires is not after Now is
// invisible to every operation at once; it is physically removed by the
// background sweep, or earlier by a write that meets it, and then counted in
// Stats.Expirations and reported as a store.OpExpire event. The sweep locks
// one shard at a time and removes at most a small batch of records per lock,
// so it never holds up requests for long. Each shard keeps its records in a
// min-heap by Expires, which serves both the sweep and eviction.
//
// # Concurrency and cost
//
// All methods are safe for concurrent use. Keys are spread over the shards
// by a seeded hash; every keyed operation takes exactly one shard lock (Load
// a read lock). Load does not allocate: the Data it returns is the stored
// slice itself and must be treated as read-only. Save copies Data, so the
// caller may reuse its buffer. Versions come from a per-shard counter, so a
// key never sees a version twice, even after it is deleted and recreated.
//
// Operations do not block on I/O; they return ctx.Err() if the context is
// already done when they start, and otherwise ignore the context.
//
// # Events
//
// Events are exact: every save, touch, delete, expiry and eviction is
// reported once to each subscriber, after the shard lock has been released,
// in the goroutine that made the change (the caller's goroutine, or the
// sweep's). Events of one key made by different goroutines may therefore
// arrive out of order; compare Event.Version. A caller's Delete of a key
// without a live record reports nothing. With no subscriber, reporting costs
// nothing.
//
// # Lifetime
//
// New starts the background sweep; Close stops it, waits for it to end, and
// drops every record (without events). After Close every method returns an
// error wrapping store.ErrClosed; Subscribe returns a no-op.
package memstore
