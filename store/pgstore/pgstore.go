package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionkit/sessionkit/store"
)

// Defaults and limits of Config.
const (
	DefaultTable           = "sessionkit_sessions"
	DefaultCleanupInterval = time.Minute
	DefaultCleanupBatch    = 500
	MaxCleanupBatch        = 100_000
)

// ErrSchema is returned, wrapped with the reason, by New when the table is
// missing or is not the one Migrate creates. Run Migrate, or the SQL in the
// package documentation, to fix it.
var ErrSchema = errors.New("pgstore: table missing or not as Migrate creates it")

var (
	errClosed       = fmt.Errorf("pgstore: %w", store.ErrClosed)
	errZeroExpires  = errors.New("pgstore: record has a zero Expires")
	errTouchExpires = errors.New("pgstore: Touch with a zero expiry")
)

var (
	_ store.Store     = (*Store)(nil)
	_ store.Toucher   = (*Store)(nil)
	_ store.UserIndex = (*Store)(nil)
	_ store.Notifier  = (*Store)(nil)
)

// Config configures a Store. Every zero field except Pool means its
// documented default.
type Config struct {
	// Pool is the connection pool the store runs its queries on. It is
	// required by New and belongs to the caller: Close does not close it.
	// Open makes the pool itself, and then Close does close it.
	Pool *pgxpool.Pool

	// Table is the table holding the sessions, optionally schema-qualified
	// ("schema.table"). Each part is 1 to 48 bytes of lower-case ASCII
	// letters, digits and underscores, not starting with a digit; the store
	// quotes it. Empty means "sessionkit_sessions" (in the search_path).
	Table string

	// CleanupInterval is how often the background sweep deletes expired
	// rows. Zero means one minute; a negative value disables the sweep
	// (expired rows stay invisible, and are replaced by a new Save of their
	// key, but stay on disk until something deletes them).
	CleanupInterval time.Duration

	// CleanupBatch is the most rows one sweep statement deletes. Zero means
	// 500; it must not be negative nor above 100_000.
	CleanupBatch int

	// Now is the clock that decides expiry: every query compares expires_at
	// with its value, passed as a parameter; the database's own clock is
	// never used. Nil means time.Now. All processes sharing a table should
	// have synchronized clocks.
	Now func() time.Time

	// Logger receives the sweep's errors (Warn) and counts (Debug). Nil
	// means slog.Default() as it is when New runs.
	Logger *slog.Logger

	// Timeout bounds every operation, whatever the caller's context says,
	// so that a database that stops answering never holds a request
	// longer. Zero means DefaultTimeout; negative means only the context
	// bounds operations, and turns batching off (a batch serves several
	// callers, so no one caller's context can bound it).
	Timeout time.Duration

	// MaxBatches is how many batches of Loads, and separately of Saves,
	// run at once (see "Batching" in the package documentation): a Load
	// or Save that finds MaxBatches of its kind running waits for one to
	// end, then goes with every other call that waited, in one round
	// trip. Zero means DefaultMaxBatches; a negative value turns batching
	// off, so that every call runs its own statement on its own
	// connection, as Delete, Touch and the user index always do.
	MaxBatches int

	// Notify turns the store's change feed on (see "Notifications" in the
	// package documentation): every write sends a notification, in its own
	// statement, on a channel named after the table, and Subscribe
	// reports the writes of every store on the table that has Notify set.
	// False (the default) sends none, so that a store without subscribers
	// pays nothing, and Subscribe then returns nil. Every process that
	// writes the table must set it for the feed to be complete.
	Notify bool
}

// DefaultMaxBatches is the default of Config.MaxBatches.
const DefaultMaxBatches = 2

// DefaultTimeout is the default of Config.Timeout.
const DefaultTimeout = 2 * time.Second

// opCtx bounds ctx by the store's timeout.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return ctx, func() {}
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// Store is a PostgreSQL session store. Create it with New or Open. It is
// safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	ownsPool  bool
	table     string // quoted
	now       func() time.Time
	log       *slog.Logger
	interval  time.Duration
	batch     int
	timeout   time.Duration // <= 0: none
	q         queries
	loads     *batcher[*loadCall] // nil: batching off
	saves     *batcher[*saveCall] // nil: batching off
	closed    atomic.Bool
	closeOnce sync.Once
	stop      context.CancelFunc // ends the sweep's context
	done      chan struct{}      // closed when the sweep goroutine has ended; nil without one

	notify  bool
	channel string // the notification channel; "" without Notify
	feed    feed
}

// queries are the store's statements, built once in New so that pgx's
// per-connection statement cache sees the same strings every time.
type queries struct {
	load, loadMany, insert, update, deleteAny, deleteVersion, touchAny, touchVersion, listUser, deleteUser, sweep string
	scanKeys                                                                                                      string
}

// buildQueries builds the statements on the quoted table t. With a
// channel (see Config.Notify) every statement that changes records also
// sends, in the same statement and so in the same transaction, one
// pg_notify per record it changes (see notifyPayload): the data-changing
// part becomes a CTE whose rows are joined with the pg_notify call, so
// that each statement still returns what it returned without it (one
// version, one count, or as many rows as it changed, which Exec's command
// tag counts).
func buildQueries(t, channel string) queries {
	q := queries{
		load: `SELECT data, version, user_id, expires_at FROM ` + t +
			` WHERE key = $1 AND expires_at > $2`,
		loadMany: `SELECT key, data, version, user_id, expires_at FROM ` + t +
			` WHERE key = ANY($1) AND expires_at > $2`,
		insert: `INSERT INTO ` + t + ` AS s (key, data, user_id, expires_at) VALUES ($1, $2, $3, $4)` +
			` ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, version = DEFAULT,` +
			` user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at` +
			` WHERE s.expires_at <= $5 RETURNING version`,
		update: `UPDATE ` + t + ` SET data = $2, version = DEFAULT, user_id = $3, expires_at = $4` +
			` WHERE key = $1 AND version = $5 AND expires_at > $6 RETURNING version`,
		deleteAny: `DELETE FROM ` + t + ` WHERE key = $1`,
		deleteVersion: `DELETE FROM ` + t +
			` WHERE key = $1 AND version = $2 AND expires_at > $3`,
		touchAny: `UPDATE ` + t + ` SET expires_at = $2 WHERE key = $1 AND expires_at > $3`,
		// A live row of another version is rewritten unchanged, so that one
		// statement tells ErrNotFound (no row) from ErrConflict (another
		// version, returned), both decided under the row lock.
		touchVersion: `UPDATE ` + t + ` SET expires_at = CASE WHEN version = $2 THEN $3 ELSE expires_at END` +
			` WHERE key = $1 AND expires_at > $4 RETURNING version`,
		scanKeys: `SELECT key FROM ` + t + ` WHERE expires_at > $1`,
		listUser: `SELECT key, data, version, expires_at FROM ` + t +
			` WHERE user_id = $1 AND expires_at > $2`,
		// The rows are locked in key order, as batched Saves lock theirs,
		// so that the two never deadlock.
		deleteUser: `WITH l AS (SELECT key FROM ` + t + ` WHERE user_id = $1 ORDER BY key FOR UPDATE),` +
			` d AS (DELETE FROM ` + t + ` t USING l WHERE t.key = l.key RETURNING t.expires_at)` +
			` SELECT count(*) FILTER (WHERE expires_at > $2) FROM d`,
		sweep: `DELETE FROM ` + t + ` WHERE key IN (SELECT key FROM ` + t +
			` WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)` +
			` AND expires_at <= $1`,
	}
	if channel == "" {
		return q
	}
	ch := "'" + channel + "'" // a channel name holds no quote (see notifyChannel)
	notify := func(op byte, row string) string {
		return `pg_notify(` + ch + `, '` + string(op) + ` ' || ` + row + `.version || ' ' || encode(` + row + `.key, 'hex'))`
	}
	q.insert = `WITH w AS (` + q.insert + `, key) SELECT w.version FROM w, ` + notify(opSave, "w")
	q.update = `WITH w AS (` + q.update + `, key) SELECT w.version FROM w, ` + notify(opSave, "w")
	q.deleteAny = `WITH d AS (` + q.deleteAny + ` RETURNING key, version) SELECT FROM d, ` + notify(opDelete, "d")
	q.deleteVersion = `WITH d AS (` + q.deleteVersion + ` RETURNING key, version) SELECT FROM d, ` + notify(opDelete, "d")
	q.touchAny = `WITH u AS (` + q.touchAny + ` RETURNING key, version) SELECT FROM u, ` + notify(opTouch, "u")
	// Only a row whose expiry moved is reported.
	q.touchVersion = `WITH u AS (` + q.touchVersion + `, key) SELECT u.version FROM u` +
		` LEFT JOIN LATERAL (SELECT ` + notify(opTouch, "u") + ` WHERE u.version = $2) n ON true`
	q.deleteUser = `WITH l AS (SELECT key FROM ` + t + ` WHERE user_id = $1 ORDER BY key FOR UPDATE),` +
		` d AS (DELETE FROM ` + t + ` t USING l WHERE t.key = l.key RETURNING t.key, t.version, t.expires_at)` +
		` SELECT count(*) FILTER (WHERE expires_at > $2) FROM d, ` + notify(opDelete, "d")
	q.sweep = `WITH d AS (` + q.sweep + ` RETURNING key, version) SELECT FROM d, ` + notify(opExpire, "d")
	return q
}

// New returns a Store on cfg.Pool. It validates cfg, then checks with one
// query that the table exists with the columns Migrate creates (an error
// wrapping ErrSchema if not); it never creates or changes the table. It
// starts the background sweep unless cfg.CleanupInterval is negative.
func New(ctx context.Context, cfg Config) (*Store, error) {
	s, err := build(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, s.pool, s.table); err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

// Open makes a pool from the connection string url (see pgxpool.ParseConfig
// for its form and pool_* parameters) and returns a Store on it, as New
// does. cfg.Pool must be nil. Close closes the pool.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	return open(ctx, url, cfg, false)
}

// OpenMigrated is Open with Migrate run on the pool first: for programs,
// such as sessionkit serve, that own their database and want the table
// created on start. Services whose schema changes go through a DBA run
// SchemaSQL by hand and use Open.
func OpenMigrated(ctx context.Context, url string, cfg Config) (*Store, error) {
	return open(ctx, url, cfg, true)
}

func open(ctx context.Context, url string, cfg Config, migrate bool) (*Store, error) {
	if cfg.Pool != nil {
		return nil, errors.New("pgstore: Open with a Config.Pool; use New")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	if migrate {
		if err := Migrate(ctx, pool, cfg.Table); err != nil {
			pool.Close()
			return nil, err
		}
	}
	cfg.Pool = pool
	s, err := New(ctx, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownsPool = true
	return s, nil
}

// build validates cfg and returns a Store that has not checked the schema
// nor started the sweep.
func build(cfg Config) (*Store, error) {
	if cfg.Pool == nil {
		return nil, errors.New("pgstore: Config.Pool is nil")
	}
	table, err := quoteTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	var channel string
	if cfg.Notify {
		channel = notifyChannel(cfg.Table)
	}
	switch {
	case cfg.CleanupBatch < 0:
		return nil, fmt.Errorf("pgstore: CleanupBatch is %d, must not be negative", cfg.CleanupBatch)
	case cfg.CleanupBatch > MaxCleanupBatch:
		return nil, fmt.Errorf("pgstore: CleanupBatch is %d, more than the maximum %d", cfg.CleanupBatch, MaxCleanupBatch)
	case cfg.CleanupBatch == 0:
		cfg.CleanupBatch = DefaultCleanupBatch
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = DefaultCleanupInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBatches == 0 {
		cfg.MaxBatches = DefaultMaxBatches
	}
	s := &Store{
		timeout:  cfg.Timeout,
		pool:     cfg.Pool,
		table:    table,
		now:      cfg.Now,
		log:      cfg.Logger,
		interval: cfg.CleanupInterval,
		batch:    cfg.CleanupBatch,
		q:        buildQueries(table, channel),
		channel:  channel,
		notify:   cfg.Notify,
	}
	if cfg.MaxBatches > 0 && cfg.Timeout > 0 {
		s.loads = &batcher[*loadCall]{one: s.loadOneCall, many: s.loadMany, max: cfg.MaxBatches}
		s.saves = &batcher[*saveCall]{one: s.saveOneCall, many: s.saveMany, max: cfg.MaxBatches}
	}
	return s, nil
}

// start starts the background sweep, unless it is disabled.
func (s *Store) start() {
	if s.interval < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done = make(chan struct{})
	go s.run(ctx)
}

func (s *Store) check(key string) error {
	if err := store.CheckKey(key); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// Load returns the live record under key, or an error wrapping
// store.ErrNotFound. One query, which concurrent Loads may share (see
// Config.MaxBatches).
func (s *Store) Load(ctx context.Context, key string) (store.Record, error) {
	if err := s.check(key); err != nil {
		return store.Record{}, err
	}
	if s.loads == nil {
		return s.loadOne(ctx, key)
	}
	if s.loads.alone() {
		defer s.loads.next()
		return s.loadOne(ctx, key)
	}
	c := &loadCall{call: newCall(ctx, "load", key)}
	s.loads.submit(c)
	if err := c.wait(); err != nil {
		return store.Record{}, err
	}
	return c.rec, nil
}

// loadOne runs Load's one-key query.
func (s *Store) loadOne(ctx context.Context, key string) (store.Record, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var (
		rec     store.Record
		version int64
		user    []byte
	)
	err := s.pool.QueryRow(ctx, s.q.load, []byte(key), s.now()).Scan(&rec.Data, &version, &user, &rec.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, fmt.Errorf("pgstore: load: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("pgstore: load: %w", err)
	}
	rec.Version = uint64(version)
	rec.UserID = string(user)
	rec.Expires = rec.Expires.UTC()
	return rec, nil
}

// Save writes rec under key if the stored version is rec.Version (0: no
// live record), in one statement, and returns the new version, drawn from
// the table's identity sequence. A failed comparison returns an error
// wrapping store.ErrConflict. rec.Expires must not be zero. Concurrent
// Saves may share a round trip and a commit (see Config.MaxBatches).
func (s *Store) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	if err := s.check(key); err != nil {
		return 0, err
	}
	if err := checkSave(rec); err != nil {
		return 0, err
	}
	if s.saves == nil {
		return s.saveOne(ctx, key, rec)
	}
	if s.saves.alone() {
		defer s.saves.next()
		return s.saveOne(ctx, key, rec)
	}
	c := &saveCall{call: newCall(ctx, "save", key), rec: rec}
	s.saves.submit(c)
	if err := c.wait(); err != nil {
		return 0, err
	}
	return c.version, nil
}

// saveOne runs Save's statement on its own.
func (s *Store) saveOne(ctx context.Context, key string, rec store.Record) (uint64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	sql, args := s.saveStatement(key, rec, s.now())
	var version int64
	err := s.pool.QueryRow(ctx, sql, args...).Scan(&version)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("pgstore: save: %w", store.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: save: %w", err)
	}
	return uint64(version), nil
}

// Delete removes the row under key: with version 0 whatever is stored,
// otherwise only the live record of that version (else an error wrapping
// store.ErrConflict). One statement.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := s.check(key); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if version == 0 {
		if _, err := s.pool.Exec(ctx, s.q.deleteAny, []byte(key)); err != nil {
			return fmt.Errorf("pgstore: delete: %w", err)
		}
		return nil
	}
	if version > math.MaxInt64 {
		return fmt.Errorf("pgstore: delete: %w", store.ErrConflict)
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteVersion, []byte(key), int64(version), s.now())
	if err != nil {
		return fmt.Errorf("pgstore: delete: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: delete: %w", store.ErrConflict)
	}
	return nil
}

// Touch sets the expiry of the live record under key: with version 0
// unconditionally, otherwise only if version is the one stored. It returns
// an error wrapping store.ErrNotFound if there is no live record, and one
// wrapping store.ErrConflict, having changed nothing, if the version
// differs. One statement; the version and data are unchanged. expires must
// not be zero.
func (s *Store) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	if err := s.check(key); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if expires.IsZero() {
		return errTouchExpires
	}
	if version == 0 {
		tag, err := s.pool.Exec(ctx, s.q.touchAny, []byte(key), expires, s.now())
		if err != nil {
			return fmt.Errorf("pgstore: touch: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("pgstore: touch: %w", store.ErrNotFound)
		}
		return nil
	}
	// A version above MaxInt64 wraps to a negative number, which no row
	// holds: the result is ErrConflict or ErrNotFound, as it should be.
	var got int64
	err := s.pool.QueryRow(ctx, s.q.touchVersion, []byte(key), int64(version), expires, s.now()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgstore: touch: %w", store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("pgstore: touch: %w", err)
	}
	if uint64(got) != version {
		return fmt.Errorf("pgstore: touch: %w", store.ErrConflict)
	}
	return nil
}

// ScanKeys calls fn with the key of every live record, in no order, until
// fn returns false: one query whose rows are read as fn asks for them (no
// Config.Timeout: the scan of a large table may take longer). Records saved
// or deleted meanwhile may or may not be seen.
func (s *Store) ScanKeys(ctx context.Context, fn func(key string) bool) error {
	if s.closed.Load() {
		return errClosed
	}
	rows, err := s.pool.Query(ctx, s.q.scanKeys, s.now())
	if err != nil {
		return fmt.Errorf("pgstore: scan keys: %w", err)
	}
	defer rows.Close()
	var key []byte
	for rows.Next() {
		if err := rows.Scan(&key); err != nil {
			return fmt.Errorf("pgstore: scan keys: %w", err)
		}
		if !fn(string(key)) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: scan keys: %w", err)
	}
	return nil
}

// ListUser returns the live records bound to userID, in no particular
// order, with one query on the user_id index. The empty userID binds nothing
// and costs no query.
func (s *Store) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if userID == "" {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.listUser, []byte(userID), s.now())
	if err != nil {
		return nil, fmt.Errorf("pgstore: list user: %w", err)
	}
	var (
		out     []store.Entry
		key     []byte
		version int64
	)
	rec := store.Record{UserID: userID}
	_, err = pgx.ForEachRow(rows, []any{&key, &rec.Data, &version, &rec.Expires}, func() error {
		rec.Version = uint64(version)
		rec.Expires = rec.Expires.UTC()
		out = append(out, store.Entry{Key: string(key), Record: rec})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list user: %w", err)
	}
	return out, nil
}

// DeleteUser deletes every row bound to userID, expired or not, in one
// statement, and returns how many of them were live.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if userID == "" {
		return 0, nil
	}
	var n int64
	if err := s.pool.QueryRow(ctx, s.q.deleteUser, []byte(userID), s.now()).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgstore: delete user: %w", err)
	}
	return int(n), nil
}

// Close stops the background sweep, interrupting a batch in progress, and
// waits for it to end; it closes the change feed's listening connection, if
// Subscribe opened one (no subscriber is called after Close returns). It
// closes the pool only if Open made it. Later calls,
// and every other method, return an error wrapping store.ErrClosed.
// Operations already running when Close is called finish normally, unless
// the pool they use is closed under them.
func (s *Store) Close() error {
	err := errClosed
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.stop != nil {
			s.stop()
			<-s.done
		}
		s.feed.close()
		if s.ownsPool {
			s.pool.Close()
		}
		err = nil
	})
	return err
}

func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, batches, err := s.sweep(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("pgstore: cleanup of expired sessions failed", "table", s.table, "deleted", n, "err", err)
			case n > 0:
				s.log.Debug("pgstore: cleanup of expired sessions", "table", s.table, "deleted", n, "batches", batches)
			}
		}
	}
}

// sweep deletes the rows expired by the store's clock, at most s.batch per
// statement, each statement its own transaction, until a statement deletes
// fewer than s.batch. Rows locked by other transactions are skipped, so the
// sweep never waits for a request nor for another process's sweep. It
// returns how many rows it deleted in how many statements.
func (s *Store) sweep(ctx context.Context) (deleted, batches int, err error) {
	for {
		tag, err := s.pool.Exec(ctx, s.q.sweep, s.now(), int64(s.batch))
		if err != nil {
			return deleted, batches, fmt.Errorf("pgstore: cleanup: %w", err)
		}
		batches++
		n := int(tag.RowsAffected())
		deleted += n
		if n < s.batch {
			return deleted, batches, nil
		}
	}
}
