// Package memcachedstore is the session store on Memcached: one server or
// several, the keys spread over them by rendezvous hashing. It implements
// store.Store and the optional store.Toucher and store.UserIndex, and
// passes the storetest conformance suite against one and three real
// memcached processes. It is tested on memcached 1.6.
//
// Memcached is fast, simple and already run by many shops (PHP's, Django's
// and Tomcat's session handlers use it), and it has a price that the other
// stores do not: it keeps nothing on disk (a restart ends every session it
// held), it evicts the least recently used items when its memory is full
// (a session can vanish before its idle timeout), and a client that
// spreads keys over several servers loses the share of a server that dies.
// `sessionkit lab --faults evict` shows the eviction.
//
// # Why gomemcache
//
// The client is github.com/bradfitz/gomemcache: the most used Go client,
// still maintained, with no dependency of its own, and it has what
// compare-and-set needs (gets with CAS values, cas, add) and lets the
// store choose the server of each key (memcache.NewFromSelector).
//
// # Configuration
//
// New takes a Config whose zero value means the defaults:
//
//	Servers       ["127.0.0.1:11211"]
//	KeyPrefix     "sk:"
//	Timeout       1 s: each network read, write and dial
//	MaxIdleConns  64 per server
//	MaxItemSize   asked of each server at New (stats settings; memcached -I, 1 MiB by default)
//	Breaker       the breaker package's defaults, one breaker per server
//	Now           time.Now
//
// New asks every server for its item size limit, so it fails when one does
// not answer.
//
// # Data layout
//
// One item per session, one per user with sessions:
//
//	<prefix>s:<tag>       the record: a 25-byte binary header (format, version,
//	                      expiry and index horizon in Unix ms), the user ID with
//	                      its length, then the data
//	<prefix>u:<userhash>  the user's index: (session key, horizon) pairs
//
// tag is the session key itself when it is at most 200 bytes of printable
// ASCII without spaces and does not start with '~' (the session Manager's
// keys, 43-byte base64url hashes of session IDs, always are, so a dump of
// the servers holds no session ID); any other key is '~' and the base64url
// SHA-256 of the key, within Memcached's 250-byte key limit and its
// characters. userhash is the base64url SHA-256 of the user ID.
//
// A record whose stored form would not fit in an item (the servers' item
// size limit less 378 bytes for the item's key and header: MaxData
// returns what is left for data) is refused before anything is sent, with
// an error wrapping store.ErrTooLarge; Memcached never truncates, and a
// server's own "object too large" answer is reported the same way.
//
// # Versions and compare-and-set
//
// The record's version lives in its value, not in Memcached's CAS value:
// Memcached's cas command does not return the CAS value it assigns, so
// Save could not tell the caller the new version without a second read
// that another writer could beat. A new record gets a random version in
// [1, 2^62] and each replace adds one, as in redisstore. Memcached's CAS
// value serves only to make each write conditional on the item read just
// before:
//
//	Save, new record     add; if an item is there that is expired by the store's
//	                     clock (or unreadable), gets and cas over it; a live one
//	                     is a conflict
//	Save, replace        gets; the record's version must be rec.Version and it must
//	                     be live, or it is a conflict; then cas with the CAS value
//	                     read. EXISTS (changed since the gets) reads again, NOT_FOUND
//	                     (deleted, evicted, expired since) is a conflict
//	Delete(key, 0)       delete
//	Delete(key, v)       gets, check v, then cas with expiration -1: Memcached's
//	                     text protocol has no compare-and-delete, but a cas whose
//	                     expiration is negative stores an item that is expired at
//	                     once, only if the CAS value still matches
//	Touch                gets, check the version, cas of the same record with the
//	                     new expiry: the version and data do not change
//
// So a replace costs two round trips (redisstore's one script call does it
// in one): the CAS value of the Load the Manager made is not kept, since
// the store hands out records, not items. Memcached's touch command is not
// used: it compares no version (the contract's Touch must not apply an
// expiry computed from a stale copy), and it moves only the server's
// whole-second expiration, while the record's expiry must come back from
// Load to the millisecond.
//
// # Expiry
//
// A record is live while its expiry, kept in its value to the
// millisecond, is after Config.Now (so processes sharing the servers
// should run NTP). Memcached expires the item itself too, by its own
// clock: the item's expiration is the record's remaining lifetime rounded
// up to whole seconds plus one (Memcached's clock ticks once a second and
// may drop an item up to a second early), so Memcached drops it at most
// two seconds after the record expired (TestServerExpiresItems). Lifetimes
// beyond 30 days are sent as Unix times, as Memcached wants them.
//
// # User index
//
// ListUser and DeleteUser read the user's index item and then the records
// it names (one gets of many keys per server), and count only the records
// that still exist, are live and are still bound to that user. So the
// index may name more than the user's sessions, and must not miss one: it
// is always written before the record (gets and cas, or add for a user's
// first session), so an error between the two leaves an entry too many,
// never one too few. Each record remembers in its header the horizon its index entry
// covers (twice its remaining lifetime when written), so the saves and
// touches within that span write the record alone. Entries leave the
// index only when their horizon passes (every index write drops those).
// DeleteUser deletes each record with a compare-and-delete of the item it
// read, re-reading an item that changed meanwhile; it never writes a
// record, so neither it nor ListUser can bring an ended session back.
//
// What the index cannot promise under eviction: the index is an item like
// any other, and Memcached may evict it while the user's sessions live
// (or evict sessions while the index lives, which is harmless: they are
// skipped). Then ListUser misses those sessions and DeleteUser ("log out
// everywhere") leaves them alive until they expire or are themselves
// evicted; a later login of the user starts a new index that covers only
// the sessions written after it. Memcached has no way to pin an item. Run
// it with memory to spare (watch the evictions counter of stats); where
// "log out everywhere" must hold, use redisstore or pgstore.
//
// # Several servers
//
// Keys are spread by rendezvous hashing (highest random weight) on the
// configured server names: every process with the same list, in any order,
// picks the same server for a key; removing a server moves only the keys
// it held, and adding one moves only the share it now wins, about 1/n
// (TestServers_removeMovesOnlyItsShare, TestServers_addMovesOnlyItsShare).
// gomemcache's own ServerList (CRC-32 mod n) would move nearly every key
// when n changes. A user's index and their sessions are generally on
// different servers.
//
// A dead server is not skipped: its keys are not moved to another server,
// since processes that disagree about its death would then write one
// session to two places. Its share fails instead, fast: each server has a
// circuit breaker of its own (Config.Breaker), so after Failures failed
// calls in a row the calls for its keys return an error wrapping
// store.ErrUnavailable at once, without dialing, while the other servers'
// keys work (TestOneServerDown). After OpenFor one call probes the server,
// and when it answers again the store uses it by itself. The sessions it
// held are gone: Memcached keeps nothing on disk.
//
// # Concurrency and failures
//
// All methods are safe for concurrent use. gomemcache takes no context:
// each method checks its context before every call to a server, and
// Config.Timeout bounds each network read, write and dial. When a server
// is down or slow, methods return an error that wraps neither
// store.ErrNotFound nor store.ErrConflict; a write that timed out may
// still have been applied.
//
// # Notifications
//
// The store does not implement store.Notifier: Memcached tells nobody
// about changes.
//
// # Lifetime
//
// Close marks the store closed and closes the idle connections. After
// Close every method returns an error wrapping store.ErrClosed.
package memcachedstore
