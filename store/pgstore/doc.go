// Package pgstore is the PostgreSQL session store. It implements
// store.Store and the optional store.Toucher, store.UserIndex and, with
// Config.Notify, store.Notifier (LISTEN/NOTIFY), and passes the storetest
// conformance suite, also as two stores on one table (storetest's Peer).
//
// # Driver
//
// The store runs on github.com/jackc/pgx/v5 and its pgxpool: the maintained,
// fastest pure-Go PostgreSQL driver. It speaks the binary protocol (bytea
// and timestamptz travel without text encoding), pools connections itself,
// and caches prepared statements per connection automatically: the store
// builds each of its statements once, in New, with the table name quoted
// once, so every call reuses the same prepared statement. Use
// pgx.QueryExecModeExec or QueryExecModeSimpleProtocol in the pool's
// ConnConfig.DefaultQueryExecMode behind a transaction-pooling proxy such as
// PgBouncer; the store works in every mode.
//
// # Schema
//
// New never creates nor changes the schema; it checks, with one query, that
// the table exists with the right columns, and otherwise returns an error
// wrapping ErrSchema. Create the table with Migrate, an explicit, idempotent
// step (safe to run at every start and from several processes at once), or
// have a DBA run its SQL, which SchemaSQL returns, by hand. For the default
// table it is:
//
//	CREATE TABLE IF NOT EXISTS "sessionkit_sessions" (
//		key        bytea       PRIMARY KEY,
//		data       bytea       NOT NULL,
//		version    bigint      GENERATED ALWAYS AS IDENTITY,
//		user_id    bytea,
//		expires_at timestamptz NOT NULL
//	);
//	CREATE INDEX IF NOT EXISTS "sessionkit_sessions_user_id_idx"
//		ON "sessionkit_sessions" (user_id) WHERE user_id IS NOT NULL;
//	CREATE INDEX IF NOT EXISTS "sessionkit_sessions_expires_at_idx"
//		ON "sessionkit_sessions" (expires_at);
//
// For another Config.Table, replace the table name and the prefix of the
// index names (the index names never carry the schema). Names are quoted, so
// Config.Table accepts only lower-case names, which then mean the same
// quoted or not.
//
// Keys and user IDs are bytea, not text, because the store contract allows
// any byte in them, and PostgreSQL text cannot hold a NUL byte nor invalid
// UTF-8. The session Manager's keys are 43-byte base64url SHA-256 digests
// of the session ID, so the table never holds a session ID itself. user_id
// is NULL for a session bound to no user. Data is opaque to the store.
//
// Versions come from the identity sequence of the version column: every
// successful Save sets version = DEFAULT, which draws the next value of the
// sequence. Versions are therefore unique across the whole table and
// increasing, so a key never sees a version twice, even after it is deleted
// and created again, and a late write with an old version can never hit a
// new record. Never reset the sequence (ALTER ... RESTART, TRUNCATE ...
// RESTART IDENTITY) while sessions may be in use; a pg_dump and restore
// keeps its value.
//
// # Round trips
//
// Every operation is one statement, which runs in its own implicit
// transaction, and so one round trip once pgx has prepared the statement on
// the connection; concurrent Loads, and concurrent Saves, share theirs (see
// "Batching" below). The first use of each statement on each connection
// adds one round trip to prepare it, and pgxpool pings a connection that
// has been idle for a second before handing it out
// (pgxpool.Config.ShouldPing). The statements ($now is Config.Now()):
//
//	Load          SELECT ... WHERE key = $1 AND expires_at > $now
//	Loads         SELECT key, ... WHERE key = ANY($1) AND expires_at > $now
//	Save (v=0)    INSERT ... ON CONFLICT (key) DO UPDATE SET ..., version = DEFAULT
//	                  WHERE t.expires_at <= $now RETURNING version
//	Save (v>0)    UPDATE ... SET ..., version = DEFAULT
//	                  WHERE key = $1 AND version = $v AND expires_at > $now RETURNING version
//	Delete (v=0)  DELETE ... WHERE key = $1
//	Delete (v>0)  DELETE ... WHERE key = $1 AND version = $v AND expires_at > $now
//	Touch (v=0)   UPDATE ... SET expires_at = $e WHERE key = $1 AND expires_at > $now
//	Touch (v>0)   UPDATE ... SET expires_at = CASE WHEN version = $v THEN $e ELSE expires_at END
//	                  WHERE key = $1 AND expires_at > $now RETURNING version
//	ListUser      SELECT ... WHERE user_id = $1 AND expires_at > $now
//	DeleteUser    WITH l AS (SELECT key ... WHERE user_id = $1 ORDER BY key FOR UPDATE),
//	                  d AS (DELETE ... USING l ... RETURNING expires_at)
//	                  SELECT count(*) FILTER (WHERE expires_at > $now) FROM d
//
// Save with version 0 inserts, or replaces a row whose record has expired; a
// live row makes the statement return nothing, which is store.ErrConflict.
// Save with a version updates only the live row of that version. A Save or
// conditional Delete that matches no row returns ErrConflict and has changed
// nothing. Touch returns ErrNotFound when no live row matches the key; with
// a version, a live row of another version is rewritten unchanged (so that
// one statement, under the row lock, tells the two cases apart) and Touch
// returns ErrConflict. ListUser and DeleteUser with the empty user ID return
// at once, without a query.
//
// # Concurrency
//
// All methods are safe for concurrent use, also from several processes on
// one table. The compare-and-set relies on PostgreSQL's row locks at READ
// COMMITTED: concurrent writers of one key serialize on its row, and each
// re-checks the version (or, for a new record, the expiry) of the row as the
// previous writer committed it, so exactly one of two writers with the same
// version wins and the other gets store.ErrConflict. A keyed operation locks
// only the row of its key; a batch of Saves locks the rows of its keys,
// DeleteUser the user's rows, the sweep the rows of one sweep batch.
//
// # Batching
//
// A session store's traffic is many small statements from many requests at
// once, and PostgreSQL spends more on each statement's round trip, and on
// each write's commit, than on the work itself. So concurrent Loads go to
// the server together, as one SELECT ... WHERE key = ANY($1), and
// concurrent Saves together, as one pipeline of their statements (one
// round trip) that PostgreSQL runs as one implicit transaction (one
// commit, one WAL flush). There is no timer and no added wait: a call that
// finds fewer than Config.MaxBatches batches of its kind running (default
// DefaultMaxBatches, 2) starts one at once with every call then queued, up
// to 128; one that finds them all running waits for the first to end,
// which starts the next batch with everything that queued meanwhile. A lone
// call, and every call at low load, therefore runs alone, as its own
// statement under its caller's context, exactly as without batching.
//
// A batch keeps each call's semantics:
//   - Each Save is the same compare-and-set statement as alone; one that
//     matches no row is that caller's store.ErrConflict and changes
//     nothing else. A caller learns of success only once the batch has
//     committed.
//   - A Save batch locks its rows in key order, and DeleteUser locks the
//     user's rows in key order too, so batches never deadlock with each
//     other nor with DeleteUser (the sweep never waits for a lock).
//   - If PostgreSQL refuses one statement, which rolls the whole batch back,
//     every call of the batch runs again alone, so that the error reaches
//     only its own caller. An error of the connection reaches every caller
//     of the batch.
//   - A batch of several calls runs under Config.Timeout, not under any one
//     caller's context; a caller whose context ends stops waiting at once
//     (its statement may still run, as any statement whose answer a caller
//     stops waiting for), and a call whose context has ended before its
//     batch starts is not sent.
//   - Two Loads of one key in one batch get separate copies of the data.
//
// A negative MaxBatches, or a negative Timeout, turns batching off. Delete,
// Touch, ListUser and DeleteUser are never batched: they are rare.
//
// Batching is what makes concurrent read+write traffic faster than one
// statement per call; docs/measurements.md has the figures.
//
// # Pool size
//
// A request that changes its session waits for its transaction's commit,
// that is for PostgreSQL to flush the WAL to disk; PostgreSQL flushes the
// commits of concurrent transactions together, so write-heavy session
// traffic without batching (Config.MaxBatches < 0) runs faster with more
// connections than CPUs. pgxpool's default MaxConns, which Open uses
// unless the URL sets pool_max_conns, is max(4, number of CPUs).
// Batching needs only 2 × MaxBatches connections for Loads and Saves, so
// with it the default pool is enough (docs/measurements.md compares pool
// sizes). The rest of the pool serves the unbatched operations and other
// users of the pool. Size the pool against the server's max_connections, shared by every
// instance of the app.
//
// # Clock and expiry
//
// Expiry follows Config.Now, not the database's clock: each statement is
// given the time as a parameter, which also lets tests run on a fake clock.
// Processes that share a table should run NTP. A row whose expires_at is
// not after that time is invisible to every operation at once, and may be
// replaced by a new Save of its key. Times are stored with microsecond
// precision; Load returns them in UTC.
//
// # Cleanup
//
// Expired rows are deleted by a background sweep every
// Config.CleanupInterval (default one minute), which deletes at most
// Config.CleanupBatch rows (default 500) per statement, each statement its
// own short transaction, oldest first, until a statement deletes fewer:
//
//	DELETE FROM t WHERE key IN (
//		SELECT key FROM t WHERE expires_at <= $now
//		ORDER BY expires_at LIMIT $batch FOR UPDATE SKIP LOCKED
//	) AND expires_at <= $now
//
// It uses the expires_at index, locks only the rows it deletes, and skips
// rows locked by requests or by the sweep of another process, so several
// processes may sweep the same table. Failures are logged to Config.Logger
// and retried at the next interval. DeleteUser also deletes the user's
// expired rows.
//
// # Lifetime
//
// New checks the table and starts the sweep; Close stops the sweep
// (interrupting a statement in progress), waits for it to end and, only if
// the store was made by Open, closes the pool. A pool passed in
// Config.Pool belongs to the caller, who closes it after the store. After
// Close every method returns an error wrapping store.ErrClosed.
//
// # Errors
//
// Errors start with "pgstore:" and wrap their cause with %w: the store
// sentinels (store.ErrNotFound, store.ErrConflict, store.ErrInvalidKey,
// store.ErrClosed) for the contract's outcomes, and pgx's errors (for
// example a *pgconn.PgError) for everything else, which wrap neither
// ErrNotFound nor ErrConflict. Every method honors its context: a canceled
// context makes pgx interrupt the query or, for a Load or Save in a batch
// of several, makes the call return at once with the context's error (see
// "Batching").
//
// # Notifications
//
// With Config.Notify set, the store has a change feed, for near caches
// (store/nearcache). Every statement that changes records also calls
// pg_notify, once per record it changes, in the same statement, so in the
// same transaction: PostgreSQL delivers the notification only if that
// transaction commits, after it commits, and in commit order. The channel
// is named after the table as Config.Table writes it ("sessionkit_sessions",
// "app.sessions"; a name longer than 63 bytes becomes its first 46 bytes,
// "_" and a 16-hex-digit hash). The payload is "<op> <version> <key in
// hex>": keys are at most store.MaxKeyLen (512) bytes, so a payload is at
// most about 1,050 bytes, under NOTIFY's 8,000, and no key needs hashing.
// What is reported, as store events:
//
//	OpSave    every Save, batched or not; Version is the new version, the
//	          one Save returned and Load returns
//	OpTouch   every Touch that moved an expiry (not one that returned
//	          ErrConflict or ErrNotFound); Version is the record's
//	OpDelete  every Delete that deleted a row, and every row DeleteUser
//	          deleted; Version is the deleted row's
//	OpExpire  every row the sweep deleted; Version is the deleted row's
//	OpReset   the feed may have missed changes (Key empty)
//
// These are exact: each committed change of a store with Notify, from any
// process, is reported once. A process writing the table without Notify
// reports nothing, so every process that writes it must set Notify for the
// feed to be complete (a near cache then serves such a write's old value
// for up to its maximum age). Expiry itself writes nothing and is not
// reported until the sweep deletes the row; a near cache checks expiry
// itself.
//
// Subscribe opens, on first use, one connection per Store (with the pool's
// connection configuration, not from the pool, application_name
// "sessionkit pgstore listen") and LISTENs on the channel; fn is called
// from that connection's goroutine, in commit order. The connection is
// checked with a ping after 5 s without a notification. When it breaks or
// the ping fails, every subscriber gets store.OpReset, the store connects
// again, with a pause growing from 50 ms to 5 s between attempts while the
// store is open, and reports OpReset again once it listens, before any
// notification of the new connection: what committed between the break and
// then is not reported. A Subscribe whose first connection fails returns
// all the same, and its subscriber gets an OpReset once the store listens.
// LISTEN needs a session of its own: behind a transaction-pooling proxy
// such as PgBouncer, point the pool at the server or at a session-pooled
// port. Close closes the connection.
//
// Without Config.Notify (the default) no statement notifies, so stores
// without subscribers pay nothing, and Subscribe returns nil: the
// store.Notifier contract's "feed turned off", which a near cache refuses.
// The *Store type implements store.Notifier either way, since Go decides
// interfaces by type, not by configuration.
//
// The cost is measured by BenchmarkSaveNotify, which alternates Saves
// between a store with Notify (and a subscriber) and one without, so that
// both see the same load:
//
//	go test -run '^$' -bench SaveNotify -benchtime 2000x -count 4 ./store/pgstore/
//
// On the development machine (PostgreSQL 15 on loopback, a 2-core VM
// shared with other work, load average about 10), two such runs gave a
// median Save of 0.43 and 1.05 ms without Notify against 0.53 and 2.36 ms
// with it for one writer (+24% and +124%), and 1.88 and 1.52 ms against
// 3.23 and 2.28 ms for 8 writers (+72% and +50%; each figure the median
// of a run's 4 medians). Part of it is PostgreSQL's: at commit a
// notifying transaction takes a lock that every notifying commit of the
// database takes in turn, and signals the listening backends; part is the
// listener's own work in the same process. Turn Notify on only where a
// near cache saves more reads than that costs writes.
//
// Subscribers must keep up: notifications not yet read by a listening
// connection stay in PostgreSQL's queue (8 GB by default), and when it is
// full, transactions that notify fail.
package pgstore
