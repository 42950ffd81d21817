// Package olricstore is the Olric session store (github.com/olric-data/olric
// v0.7.4): the sessions live in the memory of the app instances themselves,
// partitioned over them, with a backup copy of each on another instance.
// It implements store.Store and store.Toucher and passes the storetest
// conformance suite on a 3-member cluster, with its writers spread over the
// three members, both embedded and as a client.
//
// # Modes
//
// In embedded mode every app instance is a member: StartMember starts one
// (an Olric listener at MemberConfig.Addr, a gossip listener at
// MemberConfig.ClusterAddr, peers by a static list of the others'
// ClusterAddr) and New(Config{Member: m}) makes a store over it. `sessionkit
// serve --strategy olric --cluster-addr ... --peers ...` does this. In client
// mode, New(Config{Addrs: ...}) connects to an Olric cluster run apart
// (olric-server), refreshing its routing table every 2 s.
//
// # Compare-and-set
//
// Olric v0.7.4 has no compare-and-set. Every write (Save, Delete, Touch,
// and the sweep's rewrites) runs under a lock on the key, a separate entry
// in the DMap named Config.DMap+".lock" (Olric's LockWithTimeout: a put-if-
// absent on the key's owner, with a TTL of Config.LockTTL, 10 s by default),
// and checks the stored version inside it before writing:
//
//	Save (v=0)    no live record (absent, deleted or expired): write; else ErrConflict
//	Save (v>0)    live record with version v: write; else ErrConflict
//	Delete (v>0)  the same check, then a tombstone; Delete (v=0) needs no check
//	Touch         live record (else ErrNotFound), version v unless 0: rewrite
//	              it with the new expiry, same version and data
//
// A check that fails before the lock is taken is final (versions are never
// reused), so contending writers that already lost do not queue for the
// lock. Writers of one process queue on a local mutex before the cluster's
// lock. Versions come from the wall clock in microseconds with 10 random
// bits, and are always above the version they replace, so a key never sees
// one twice, even after its tombstone is gone.
//
// The lock is as safe as Olric's put-if-absent on the owner of the lock key:
// a writer that has held it for more than half its TTL (a long pause) gives
// up instead of writing, but a pause between that check and the write, or
// the loss of the lock's owner and its backup copy at once, could let two
// writers in. Not tested beyond storetest's concurrency tests.
//
// # Deletes and failover
//
// Olric brings deleted keys back after a failover (a stale copy on a
// previous owner wins), so Delete writes a tombstone that keeps the last
// version and lasts as long as the record would have; Load reports it as
// ErrNotFound. Olric's Expire, which wipes values, is never used: Touch
// rewrites the record with the new expiry.
//
// Olric does not re-create the copies a lost member held. The store on the
// cluster's coordinator watches the membership (every Config.WatchInterval)
// and, once it has been stable for Config.SweepDelay, rewrites every entry
// through its current owner with its own expiry (Sweep), under the key's
// lock. Stats reports the sweeps and an estimate of the entries short of
// copies. For Config.SettleWindow after a membership change, a read that
// finds nothing is retried for up to Config.NotFoundRetry, since Olric
// briefly misses keys while fragments move.
//
// # Expiry, keys and values
//
// Expiry is logical, by Config.Now; each Olric entry also expires on its own,
// Config.Grace after the record (by the wall clock). A key of up to 200
// bytes is stored as "k"+key, a longer one as "h"+base64url(SHA-256(key)).
// Data over Config.ChunkSize (32 KiB) is written first as chunks, since an
// Olric entry must fit the members' table (MemberConfig.TableSize, 64 KiB).
//
// # Not implemented
//
// store.UserIndex and store.Notifier.
package olricstore
