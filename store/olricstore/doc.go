// Package olricstore is the Olric session store (github.com/olric-data/olric
// v0.7.4): the sessions live in the memory of the app instances themselves,
// partitioned over them, with a backup copy of each on another instance.
// It implements store.Store, store.Toucher and store.UserIndex and passes
// the storetest conformance suite on a 3-member cluster, with its writers
// spread over the three members, both embedded and as a client.
//
// # Modes
//
// In embedded mode every app instance is a member: StartMember starts one
// (an Olric listener at MemberConfig.Addr, a gossip listener at
// MemberConfig.ClusterAddr, peers by a static list of the others'
// ClusterAddr) and New(Config{Member: m}) makes a store over it. `sessionkit
// serve --strategy olric --cluster-addr ... --peers ...` does this. In client
// mode, New(Config{Addrs: ...}) connects to an Olric cluster run apart
// (olric-server), through the first of the addresses that answers,
// refreshing its routing table every 2 s. Configure such a cluster's
// members to push their routing table every few seconds
// (server.routingTablePushInterval, "5s", in olric-server's YAML; see
// MemberConfig.RoutingPushInterval for why).
//
// # Guarantees
//
// With ReplicaCount 2 (the default) every session has two copies, on two
// members. Losing one member abruptly loses no session, and the sweep that
// follows gives every session its second copy again, so that the loss of
// another member after that loses none either. A session deleted before a
// failure stays deleted. Reads of the sessions the lost member owned, and
// writes of those it owned or held the backup of (an owner that cannot
// reach a backup gives up the write), fail with an error (not
// store.ErrNotFound: the Manager answers 503, it does not log the user
// out) until the others notice the loss:
// memberlist's failure detection (about 4 s with MemberConfig.Network
// "local", 6 s with "lan"), then the coordinator's new
// routing table, then, for a client, its next routing-table refresh (2 s).
// StartMember bounds that detection: memberlist waits up to six times as
// long (18 s "local", 24 s "lan") for a survivor that gets fewer
// confirmations of the suspicion than it expects, which in small clusters
// happens whenever the others cannot give them (two survivors still
// counting a member lost less than 30 s before) or one is not delivered;
// an embedded member waits only the base timeout (see memberlistConfig in
// member.go, and TestDetection).
// When the lost member was the coordinator, a member that has not noticed
// the loss yet refuses the new coordinator's routing table, and Olric
// v0.7.4 then drops it for every member until the coordinator pushes it
// again: every MemberConfig.RoutingPushInterval (5 s) here, every minute
// by Olric's default, which kept a third of the sessions failing for over
// 30 s. A client store also drops the lost member from its cluster
// client's rotation after a membership change (Olric's client keeps it,
// and its routing-table refresh could keep landing on it).
// A member that leaves with Shutdown is noticed at once. A "not found" from
// Olric right after a membership change is retried (see below); none
// reached a caller in the tests.
//
// TestCrash measures this with three member processes on loopback, each
// running a store as an app instance would, and SIGKILL: 10,000 sessions
// written through a cluster client (64 writers), one in ten bound to a
// user, one deleted; the coordinator killed; then a replacement started,
// and a second original member killed. It requires that no session is
// lost after either kill (all readable within 30 s), that the deleted one
// stays deleted, and that the users' index still lists their sessions at
// the end; before the next kill it waits for a sweep and for no entry to
// be short of copies (ShortOfCopies counts a fragment twice until Olric's
// balancer, every 15 s, has moved it to its new owner, and answers only
// after the 30 s settle window). docs/measurements.md has the times
// measured. Run it with
//
//	go test -count=1 -v -run TestCrash ./store/olricstore/
//
// Not guaranteed: two members lost at once (or the second before the
// sweep after the first has finished) loses the sessions whose two copies
// were on them, unless ReplicaCount equals the member count. Writes are
// acknowledged once the owner has written its copy and asked the backup
// (MemberConfig.WriteQuorum 1, Olric's default): a backup that refuses the
// write leaves that session with one copy until the next sweep. Not tested:
// a network partition (Olric has no quorum: both sides keep serving).
//
// Memory: Olric allocates a table per partition fragment up front; with the
// defaults here (71 partitions, 64 KiB tables) a member's heap in use was
// 10 to 18 MiB in TestCrash (10,000 sessions over three members, each
// holding about a third as owner and a third as backup) and 3 to 5 MiB for
// an idle `sessionkit serve` member (Olric's defaults, 271 partitions and
// 1 MiB tables, cost about 272 MiB per member).
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
// lock. Stats reports the sweeps; ShortOfCopies estimates the entries short
// of copies (it overcounts while fragments move, and refuses to ask Olric
// while the membership is settling: Olric v0.7.4 computes its statistics
// with an unlocked read of its member table). For
// Config.SettleWindow after a membership change, a read that finds nothing
// is retried for up to Config.NotFoundRetry, since Olric
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
// # Costs
//
// A Load is one Olric Get (the key's owner also asks the backup: Olric
// returns the newest copy). A Save is a lock, a Get, a Put (the owner writes
// the backup synchronously) and an unlock, plus a Get before the lock when
// it replaces a version: a Save costs several times a Redis one
// (docs/measurements.md).
//
// # User index
//
// A user's index entry ("u"+user ID, or "w"+base64url(SHA-256(ID)) when
// longer than 200 bytes) lists the keys of the records bound to the user. A
// Save that binds a record to a user adds its key first, under the entry's
// lock, so that a saved record is never missing from its user's index; the
// entry lives Config.IndexLifetime (31 days) after the last addition, which
// must exceed the longest session lifetime. Keys of records since deleted,
// expired or rebound stay listed until an addition finds 32 or more and
// drops them. ListUser reads the entry and then each record, keeping the
// live ones still bound to the user (1 + n reads); DeleteUser deletes each
// of them with a compare-and-delete.
//
// # Not implemented
//
// store.Notifier. In client mode the sweep runs only in a store with Config.Sweep set: an Olric
// cluster run apart (olric-server) does not sweep by itself.
package olricstore
