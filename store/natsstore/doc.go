// Package natsstore is the NATS JetStream key-value session store. It
// implements store.Store, store.UserIndex, store.Notifier and
// store.LiveFeed, and passes the storetest conformance suite both against
// a standalone server and against a 3-node cluster with 3 replicas. It
// does not implement store.Toucher (see "Not implemented").
//
// # Modes
//
// In client mode, New connects to Config.URL (or uses the caller's
// Config.Conn) and creates the bucket, or binds to it if it exists. In
// embedded mode, the process runs a NATS server itself: StartNode starts one
// node (JetStream on, storage in NodeConfig.Dir, routes to NodeConfig.Peers)
// and the store connects to Node.ClientURL. Three processes, each with a
// Node whose Peers name the two others, form a cluster (`sessionkit serve
// --strategy nats --cluster-addr ... --peers ...` does this); the
// conformance tests run the three nodes in one process, the crash test in
// three. Config.Replicas defaults to 3 when the server
// is part of a cluster and to 1 otherwise; it applies when New creates the
// bucket. New waits (until its context ends) for the bucket's stream to
// have a leader, which a new cluster needs a few seconds to elect.
//
// # Guarantees
//
// With Replicas 3 the bucket is a Raft-replicated stream: a write is
// acknowledged once a majority (2 of 3) has stored it, so losing one node
// loses no acknowledged write, and the two remaining nodes elect a new
// leader and keep serving reads and writes. A 2-node majority is needed to
// write; with two nodes down the store returns errors (not ErrNotFound nor
// ErrConflict) until one comes back.
//
// Losing the node that leads the bucket's stream stops reads and writes
// (both go to the leader, see below) until the other two elect a new one:
// NATS's Raft election timeout is 4 to 9 s. Requests in that window fail
// with an error after Config.Timeout (the Manager answers 503, or a
// degraded session with FailOpen); losing a node that does not lead costs
// only a reconnect of the clients connected to it. TestCrash checks this
// with three node processes on loopback and SIGKILL (no graceful shutdown,
// no leadership handed over): 10,000 sessions written through the three
// nodes, then the stream leader killed: every session must be there with
// its acknowledged version once the survivors answer (within 30 s), and
// the one deleted before the kill must stay deleted; the killed node,
// restarted on its disk, must catch up, and killing another original node
// (the new leader) must give the same. docs/measurements.md has the times
// measured. Run it with
//
//	go test -count=1 -v -run TestCrash ./store/natsstore/
//
// A node that comes back under its name must come back with its disk:
// not tested is one that comes back under its name with an empty Dir. A
// replacement under a new name is the subject of "Replacing nodes".
//
// Versions are KV revisions, the stream's sequence numbers: they are
// unique across the bucket and never reused, so a key never sees a version
// twice, even after it is deleted and created again. Every write is a
// compare-and-set checked by the stream leader:
//
//	Save (v=0)    absent or deleted: Create; logically expired: Update at its
//	              revision; live: ErrConflict
//	Save (v>0)    Update(key, value, v), after checking that revision v is
//	              live; a wrong revision is ErrConflict
//	Delete (v>0)  Delete(key, LastRevision(v)), after the same check
//	Delete (v=0)  Delete at the current revision (retried if it moves)
//
// On a replicated bucket the leader also answers "wrong last sequence"
// (without a sequence, code 10164) while an earlier write of the same key
// is still being applied, even one already acknowledged: the store then
// reads the revision again and, if it is still the expected one, writes
// again after a short pause (1 to 64 ms), so that such an answer is never
// reported as a conflict. A full CI run caught one as a failed conformance
// test before this retry.
//
// A Save with the version that the same Store's Load or Save returned skips
// the read (the Store remembers the metadata of the last 4096 revisions it
// saw; a revision names exactly one value, so if the Update succeeds the
// remembered expiry was the replaced value's). Otherwise a Save is one read
// and one write, plus the index write when the record has a user.
//
// Reads go to the stream's leader: New turns off the bucket's direct gets,
// which let any replica answer and could return a value a few writes old
// (a cart read on one node missing an item just added on another). The
// price is that every Load is a request to the leader, wherever it is.
//
// # Replacing nodes
//
// A node is a member of the JetStream cluster by its Name. A node that
// comes back under its name, with its Dir, is the same member and catches
// up (TestCrash). A node started under a new name (a new machine, or an
// empty Dir) is a new member: the cluster grows, and the member it replaces
// still counts towards the quorum of the JetStream meta group until it is
// removed. Without that removal, three nodes that lost n2 and gained n4 are
// a cluster of four that needs three: losing n3 then leaves two, and every
// request is answered "JetStream system temporarily unavailable" until a
// lost node comes back.
//
// So every Node in a cluster watches the members. While it leads the meta
// group, a member it has not heard from for NodeConfig.RemoveDeadAfter
// (default 10 s, counted from its election at the earliest) is removed,
// provided that the members it still hears from, itself included, are at
// least the cluster's size: this node and its Peers. A dead member is thus
// removed once a replacement has joined, and never while the cluster is
// merely short of a node, which may come back under its name after a
// restart however long. Members are removed one at a time, by the request
// `nats server raft peer-remove` sends ($JS.API.SERVER.REMOVE), through a
// user of the system account that the node creates with a password only
// its process knows; clients still connect without credentials, to the
// global account, as before. The leader then moves the bucket's replica
// off the removed member onto a member that holds none (the replacement),
// which catches up from the others; nats-server 2.15 does this by itself.
// Removals are logged at Info on the leader ("removed a dead node"),
// failures at Warn. A negative RemoveDeadAfter turns this off (an operator
// then removes dead members with `nats server raft peer-remove`).
//
// With three nodes and Replicas 3, what is survived:
//   - One node lost: no session lost, service back after an election (see
//     Guarantees), whether the node comes back under its name or a new
//     node replaces it.
//   - A second node lost after a replacement of the first: no session lost
//     and service back after an election, provided that, before the second
//     loss, the replacement had joined, the first dead node had been
//     removed, and the replacement's replica had caught up. That takes
//     RemoveDeadAfter from the moment the meta leader last heard from the
//     dead node (plus an election of 4 to 9 s first if it was the leader)
//     or from the replacement's start, whichever is later, and a few
//     seconds of catch-up for the sessions it must copy: wait for the
//     removal in the leader's log and for the replacement to be listed as
//     a current replica (`nats stream info KV_<bucket>`) before the next
//     failure or maintenance. TestReplace checks this; docs/measurements.md
//     has the times measured.
//   - Two nodes lost at once, or the second before the first was removed:
//     not survived. Two of three members (or of four, with the replacement)
//     are no majority: the survivors answer errors (503) and can remove no
//     one until a lost node comes back with its disk. Going on without
//     them takes an operator, and nats-server's $JS.API.META.RESCUE can lose
//     acknowledged writes; nothing here does it.
//
// A removed member must not come back under its name: the cluster refuses
// it as a member (for 5 minutes, nats-server's peerRemoveTimeout), so it
// serves its clients through the others but holds no replica and counts
// for no quorum. Start it again with a new name and an empty Dir. A member
// silent for longer than RemoveDeadAfter for another reason (a partition,
// a long pause) is removed the same way when the cluster has a member more
// than its size.
//
// # Keys and values
//
// KV keys allow only a few characters, so a store key is stored as
// "k." + base64url(key), which keeps any byte and keys up to
// store.MaxKeyLen. A value is a small header (format, flags, expiry in unix
// milliseconds, user ID) followed by the data. Data too large for one NATS
// message (the server's max_payload, 1 MB by default, less 8 KiB) is
// written first as chunks under "c.<random id>.<n>", and the record holds
// their reference; a Save removes the chunks of the value it replaced, and
// a Load that finds a chunk gone (replaced meanwhile) reads again.
//
// # Expiry
//
// Expiry is logical and follows Config.Now, as in pgstore: a record whose
// expiry is not after Config.Now() is absent for every operation, and a
// Save with version 0 replaces it. Processes sharing a bucket should run
// NTP. (The per-message TTL of NATS 2.11 is not used, so that the store
// works with older servers such as 2.9, and so that a test can move the
// clock.)
//
// Expired values stay in the bucket until removed by one of:
//   - the background sweep, every Config.SweepInterval (default 1 minute),
//     which reads every value of the bucket once (an ordered consumer over
//     the latest value of each key: the whole bucket's bytes travel to the
//     store on every sweep) and purges the expired ones, records, index
//     entries and chunks, each conditional on its revision so that a value
//     written since is kept, pausing every Config.SweepBatch (default 100)
//     purges. Its cost grows with the bucket: set a longer interval for
//     large buckets, or disable it (negative) in all but one process.
//     Store.Sweep runs one pass on demand.
//   - the bucket's MaxAge, Config.MaxLifetime (default 31 days): the server
//     removes any value older than that, whatever its logical expiry. It
//     must therefore exceed the longest session lifetime; a session saved
//     (the Manager saves on every extension) restarts its age.
//
// Deletes and purges leave small delete markers, which the server removes
// after MaxAge.
//
// # User index
//
// A record with a user ID has an index entry "u.<base64url(user)>.<base64url(key)>"
// with the record's expiry, written before the record so that a saved
// record is never missing from it. ListUser lists the user's index keys (a
// filtered watch: one request plus one message per entry) and then reads
// each record, keeping those still bound to the user: 1 + n round trips for
// n entries. DeleteUser deletes each of them with a compare-and-delete:
// about 2n round trips. Entries left by a rebinding are removed by the Save
// that rebinds; any other stale entry is filtered out and swept when it
// expires. A rebinding racing another rebinding of the same key can remove
// the newer entry; sessions do not change users that way.
//
// # Events
//
// Subscribe starts, on first use, the store's change feed: one watch of the
// bucket's record keys per Store (an ephemeral push consumer, in memory
// with one replica, that delivers new messages only, their headers without
// the values, and an idle heartbeat every Config.FeedHeartbeat, 100 ms by
// default, whenever it has nothing else to send), whose events go to every
// subscriber, from one goroutine, in the order of the bucket's revisions:
//
//	OpSave    every Save, from any process; Version is the new revision,
//	          the version Save returned and Load returns
//	OpDelete  every Delete and every record DeleteUser deletes (Version 0)
//	OpExpire  every record the sweep purges (Version 0)
//	OpReset   the feed may have missed changes (Key empty, Version 0)
//
// These are exact while the feed is up: every write acknowledged after the
// watch was set up is reported, once, from the stream itself, whichever
// process made it. Not reported: logical expiry, which writes nothing (see
// Expiry), and chunk and index-entry writes. store.Toucher is not
// implemented, so there is no OpTouch.
//
// The feed reports OpReset, to every subscriber, whenever it may have
// missed changes, and sets itself up again:
//   - when the connection's status changes (disconnected, reconnecting,
//     reconnected, closed: nats.go's status events, which the store listens
//     to without taking the caller's handlers);
//   - when the consumer has sent nothing, neither an event nor a heartbeat,
//     for Config.FeedStall (default FeedHeartbeat + 100 ms): the server
//     that holds it, which the cluster picks at random among the stream's
//     replicas and need not be the one this store is connected to, may be
//     gone, and then nothing tells the connection so;
//   - when the consumer skips a message (a consumer sequence missing, in a
//     message or in a heartbeat's Nats-Last-Consumer) or reports an error.
//
// It then creates a new watch (the meta group's leader must answer: after
// the loss of that leader, not before a new one is elected), retrying
// while the store is open with a pause growing from 50 ms to 5 s, and once
// that watch is up reports OpReset again, before any of its events: writes
// made between the break and then may have gone unreported, and a near
// cache drops what it holds on each OpReset. A reconnect therefore gives
// two to four OpResets. A Subscribe whose first watch cannot be set up
// returns all the same; its subscriber gets an OpReset when the feed is
// up. Close stops the feed; a subscriber is not called once its
// unsubscribe function has returned.
//
// The store implements store.LiveFeed: FeedLive reports true only while a
// watch is up and its consumer sent something less than FeedStall ago. It
// turns false at that moment, even before the feed's goroutine has
// noticed, and true again only with a new watch, followed by an OpReset. A
// near cache (nearcache.Wrap) serves and caches nothing while it is false,
// so a logout acknowledged through another node while this store's feed is
// stalled is honoured here at most FeedStall after the feed's last message
// (200 ms by default), not after the near cache's MaxAge; TestFeed_consumerHostKilled
// kills the consumer's server with SIGKILL and checks it. What FeedLive
// proves is that the consumer is alive and has skipped nothing, not that it
// is up to date: its server's replica of the stream may lag the leader by
// the replication delay, as in normal operation. The cost is a heartbeat
// message per FeedHeartbeat per Store while the bucket is idle, and a new
// consumer when a silence longer than FeedStall was only a pause (a loaded
// machine): a flush of the near cache, misses, never a stale read.
//
// On loopback, a delete acknowledged to one Store was seen as not found
// through another Store behind a near cache after 0.45 ms at the median
// and 2.9 ms at the 99th percentile (TestNearCache, 200 trials, race
// detector, loaded 2-core machine); every event is one message from the
// server to each subscribed Store.
//
// # Errors and lifetime
//
// Errors start with "natsstore:" and wrap the store sentinels for the
// contract's outcomes and the nats.go errors otherwise, which wrap neither
// ErrNotFound nor ErrConflict. Each operation is bounded by Config.Timeout
// (default 2 s) and its context. A request that no server answers (just
// after the bucket is created, during a leader election) is retried until
// then, and so is a read answered with "JetStream temporarily unavailable"
// (a write is not: it may have been applied). Close stops the sweep and the watch and closes the connection if
// New opened it; a Config.Conn belongs to the caller. A Node outlives its
// stores: shut it down after closing them.
//
// # Not implemented
//
// store.Toucher is not implemented: JetStream KV cannot change a value
// without writing a new revision, and Touch must keep the version. The
// Manager extends a session by saving it again, which costs one write (the
// record, and its index entry if bound to a user) instead of a Touch.
package natsstore
