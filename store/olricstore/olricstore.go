package olricstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olric-data/olric"
	"github.com/redis/go-redis/v9"

	"github.com/sessionkit/sessionkit/store"
)

// Config configures a Store. Set Member (embedded mode) or Addrs (client
// mode). The zero value of every other field means its default. New copies
// the config; changing it afterwards has no effect.
type Config struct {
	// Member is the embedded member the store works through: this process
	// is part of the cluster. It belongs to the caller, who shuts it down
	// after closing the store.
	Member *Member
	// Addrs are the Olric addresses (MemberConfig.Addr) of one or more
	// members of an existing cluster (client mode). The store discovers the
	// others from them.
	Addrs []string
	// DMap names the distributed map of the sessions; default "sessionkit".
	// The locks live in the DMap named DMap+".lock".
	DMap string
	// ReplicaCount is the cluster's replica count, used by Stats to count
	// sessions short of copies. Embedded mode takes the member's; client
	// mode defaults to 2.
	ReplicaCount int
	// Timeout bounds each operation, including the wait for the key's
	// lock; default 2 s.
	Timeout time.Duration
	// LockTTL is how long a key's lock lives if its holder dies before
	// releasing it; default 10 s. A write that finds it has held the lock
	// for more than half of LockTTL gives up instead of writing.
	LockTTL time.Duration
	// ChunkSize is the largest piece of data stored in one Olric value;
	// larger data is split into chunks. Default 32 KiB; it must stay below
	// the members' table size (MemberConfig.TableSize, 64 KiB by default).
	ChunkSize int
	// Grace is added to a record's expiry to give the Olric entry's own
	// expiry, so that records and tombstones outlive their logical expiry
	// a little; default 1 minute.
	Grace time.Duration
	// Now decides logical expiry; default time.Now.
	Now func() time.Time
	// Logger receives background errors (sweeps) and, in client mode, the
	// Olric client's logs at Debug; default slog.Default().
	Logger *slog.Logger
	// RefreshInterval is how often a client-mode store fetches the
	// cluster's routing table; default 2 s (Olric's own default, 1 minute,
	// keeps a client failing for over a minute after a member dies).
	RefreshInterval time.Duration
	// WatchInterval is how often the store lists the cluster's members to
	// notice a membership change; default 1 s. Negative turns off the watch,
	// and with it the sweep and the read retries that follow a change.
	WatchInterval time.Duration
	// SweepDelay is how long the membership must stay unchanged before the
	// re-replication sweep runs; default 5 s.
	SweepDelay time.Duration
	// Sweep makes a client-mode store run the re-replication sweep after
	// membership changes (turn it on in one client process). In embedded
	// mode the store on the cluster's coordinator member sweeps, whatever
	// this says.
	Sweep bool
	// SettleWindow is how long after a membership change a read that
	// finds nothing is retried (for up to NotFoundRetry) before it reports
	// store.ErrNotFound: while fragments move between members, Olric
	// briefly answers "not found" for keys that exist. Default 30 s.
	SettleWindow time.Duration
	// NotFoundRetry bounds those retries of one read; default 1 s.
	NotFoundRetry time.Duration
	// IndexLifetime is how long a user's index entry lives after the last
	// record was bound to the user; default 31 days. It must exceed the
	// longest session lifetime, or ListUser and DeleteUser may miss a
	// session that outlives its entry.
	IndexLifetime time.Duration
}

// Store is the Olric session store. It implements store.Store,
// store.Toucher and store.UserIndex. All methods are safe for concurrent
// use.
type Store struct {
	client    olric.Client
	ownClient bool
	member    *Member
	dm        olric.DMap
	locks     olric.DMap
	cfg       Config

	// sems serialize, per key stripe, the writers of this process, so
	// that they queue here instead of polling the cluster's lock.
	sems [64]chan struct{}
	seed maphash.Seed

	bg     context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	members     atomic.Int64
	changes     atomic.Int64
	changedAt   atomic.Int64 // unix ns of the last membership change seen
	sweeps      atomic.Int64
	sweepErrors atomic.Int64
	sweptKeys   atomic.Int64
	sweepTook   atomic.Int64
	sweptAt     atomic.Int64
	sweepMu     sync.Mutex
	versionMu   sync.Mutex
	lastVersion uint64
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Toucher   = (*Store)(nil)
	_ store.UserIndex = (*Store)(nil)
)

// errKeyNotFound is Olric's "not found" (see isOlric).
var errKeyNotFound = olric.ErrKeyNotFound

// New makes a store over cfg.Member or a client of cfg.Addrs and starts
// its membership watch. ctx bounds the connection in client mode.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if (cfg.Member == nil) == (len(cfg.Addrs) == 0) {
		return nil, errors.New("olricstore: New: set exactly one of Config.Member and Config.Addrs")
	}
	if cfg.DMap == "" {
		cfg.DMap = "sessionkit"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = 10 * time.Second
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 32 << 10
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 2 * time.Second
	}
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = time.Second
	}
	if cfg.SweepDelay <= 0 {
		cfg.SweepDelay = 5 * time.Second
	}
	if cfg.SettleWindow <= 0 {
		cfg.SettleWindow = 30 * time.Second
	}
	if cfg.NotFoundRetry <= 0 {
		cfg.NotFoundRetry = time.Second
	}
	if cfg.IndexLifetime <= 0 {
		cfg.IndexLifetime = 31 * 24 * time.Hour
	}
	cfg.Addrs = slices.Clone(cfg.Addrs)
	s := &Store{member: cfg.Member, seed: maphash.MakeSeed()}
	if cfg.Member != nil {
		s.client = cfg.Member.client
		cfg.ReplicaCount = cfg.Member.replicas
		cfg.Sweep = false
	} else {
		if cfg.ReplicaCount <= 0 {
			cfg.ReplicaCount = 2
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("olricstore: New: %w", err)
		}
		cc, err := connect(ctx, cfg.Addrs,
			olric.WithRoutingTableFetchInterval(cfg.RefreshInterval),
			olric.WithLogger(log.New(&slogWriter{log: cfg.Logger.With("component", "olric-client")}, "", 0)))
		if err != nil {
			return nil, fmt.Errorf("olricstore: connect %v: %w", cfg.Addrs, err)
		}
		s.client, s.ownClient = cc, true
	}
	s.cfg = cfg
	var err error
	if s.dm, err = s.client.NewDMap(cfg.DMap); err == nil {
		s.locks, err = s.client.NewDMap(cfg.DMap + ".lock")
	}
	if err != nil {
		if s.ownClient {
			s.client.Close(context.Background())
		}
		return nil, fmt.Errorf("olricstore: DMap %s: %w", cfg.DMap, err)
	}
	for i := range s.sems {
		s.sems[i] = make(chan struct{}, 1)
	}
	s.bg, s.cancel = context.WithCancel(context.Background())
	if cfg.WatchInterval > 0 {
		s.wg.Add(1)
		go s.watch()
	}
	return s, nil
}

// connect makes a cluster client from the first of addrs that answers.
// Olric's NewClusterClient sends its first two requests (the member list,
// then the routing table) to the first two addresses it is given, in
// turn, and fails if either is down; given one address, it asks that one
// for the members and then the routing table of one of the members it
// lists. So each address is tried alone, until one answers.
func connect(ctx context.Context, addrs []string, opts ...olric.ClusterClientOption) (*olric.ClusterClient, error) {
	var errs []error
	for _, addr := range addrs {
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(append(errs, err)...)
		}
		cc, err := olric.NewClusterClient([]string{addr}, opts...)
		if err == nil {
			return cc, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return nil, errors.Join(errs...)
}

// begin checks the key and that the store is open.
func (s *Store) begin(key string) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// wrap turns an Olric error into the store's: never ErrNotFound nor
// ErrConflict, which the callers return themselves.
func wrap(op string, err error) error {
	return fmt.Errorf("olricstore: %s: %w", op, err)
}

// isOlric reports whether err is Olric's target error. A process that runs
// no member gets Olric's errors from the cluster client as plain errors
// with the same text (Olric registers its error codes only when a member
// starts), so the text is compared too.
func isOlric(err, target error) bool {
	return errors.Is(err, target) || err != nil && err.Error() == target.Error()
}

// listMembers lists the cluster's members. A cluster client asks its members
// in turn and may ask a dead one: it retries a few times, refreshing its
// view of the cluster.
func (s *Store) listMembers(ctx context.Context) ([]olric.Member, error) {
	var err error
	for attempt := range 4 {
		var ms []olric.Member
		if ms, err = s.client.Members(ctx); err == nil && len(ms) > 0 {
			return ms, nil
		}
		if attempt == 1 {
			_ = s.client.RefreshMetadata(ctx)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err == nil {
		err = errors.New("no members")
	}
	return nil, wrap("members", err)
}

// settling reports whether a membership change was seen within the
// settle window.
func (s *Store) settling() bool {
	at := s.changedAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < s.cfg.SettleWindow
}

// read returns the value stored under okey (kind 0 if none). With retry,
// a "not found" during the settle window after a membership change is
// retried for up to NotFoundRetry.
func (s *Store) read(ctx context.Context, okey string, retry bool) (value, error) {
	var deadline time.Time
	for {
		resp, err := s.dm.Get(ctx, okey)
		if err == nil {
			var b []byte
			if b, err = resp.Byte(); err == nil {
				return decodeValue(b)
			}
		}
		if !isOlric(err, olric.ErrKeyNotFound) {
			if ctx.Err() != nil {
				err = errors.Join(err, ctx.Err())
			}
			return value{}, wrap("get", err)
		}
		if !retry || !s.settling() {
			return value{}, nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(s.cfg.NotFoundRetry)
		}
		if time.Now().After(deadline) {
			return value{}, nil
		}
		select {
		case <-ctx.Done():
			return value{}, wrap("get", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// put writes b under okey with the Olric expiry physical (unix ms).
func (s *Store) put(ctx context.Context, okey string, b []byte, physical int64) error {
	err := s.dm.Put(ctx, okey, b, olric.PXAT(time.Duration(physical)*time.Millisecond))
	if err != nil {
		return wrap("put", err)
	}
	return nil
}

// physical returns the Olric expiry (unix ms) for a logical expiry.
func (s *Store) physical(expires time.Time) int64 {
	t := expires
	if now := time.Now(); t.Before(now) {
		t = now
	}
	return t.Add(s.cfg.Grace).UnixMilli()
}

// nextVersion returns a version above prev, from the wall clock in
// microseconds with 10 random bits, so that versions of a key never repeat
// even when its tombstone is gone. It is not the store's clock (Config.Now):
// versions need only be new.
func (s *Store) nextVersion(prev uint64) uint64 {
	v := uint64(time.Now().UnixMicro())<<10 | mrand.Uint64N(1024)
	s.versionMu.Lock()
	if v <= s.lastVersion {
		v = s.lastVersion + 1
	}
	s.lastVersion = v
	s.versionMu.Unlock()
	if v <= prev {
		v = prev + 1 + mrand.Uint64N(1024)
	}
	return v
}

// lock takes the key's lock: first this process's stripe, then the
// cluster's lock on okey in the lock DMap. It returns the release function
// and when the cluster's lock was acquired.
func (s *Store) lock(ctx context.Context, okey string) (func(), time.Time, error) {
	sem := s.sems[maphash.String(s.seed, okey)%uint64(len(s.sems))]
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, time.Time{}, wrap("lock", ctx.Err())
	}
	unlock, at, err := s.clusterLock(ctx, okey)
	if err != nil {
		<-sem
		return nil, time.Time{}, err
	}
	return func() {
		unlock()
		<-sem
	}, at, nil
}

// clusterLock takes the cluster's lock on okey in the lock DMap.
func (s *Store) clusterLock(ctx context.Context, okey string) (func(), time.Time, error) {
	wait := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if wait <= 0 {
		return nil, time.Time{}, wrap("lock", context.DeadlineExceeded)
	}
	lc, err := s.locks.LockWithTimeout(ctx, okey, s.cfg.LockTTL, wait)
	if err != nil {
		if isOlric(err, olric.ErrLockNotAcquired) {
			err = fmt.Errorf("key locked for longer than the timeout: %w", err)
		}
		return nil, time.Time{}, wrap("lock", err)
	}
	at := time.Now()
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		if err := lc.Unlock(uctx); err != nil && !isOlric(err, olric.ErrNoSuchLock) {
			s.cfg.Logger.Debug("olricstore: unlock", "err", err)
		}
		cancel()
	}, at, nil
}

// leaseLeft reports an error if the lock taken at has been held for half
// its TTL: past that, another writer might soon take it.
func (s *Store) leaseLeft(at time.Time) error {
	if time.Since(at) > s.cfg.LockTTL/2 {
		return wrap("write", fmt.Errorf("lock held for %v, more than half its TTL %v: not writing", time.Since(at).Round(time.Millisecond), s.cfg.LockTTL))
	}
	return nil
}

// check returns ErrConflict unless version matches cur at now: 0 means no
// live record.
func check(cur value, version uint64, now time.Time) error {
	if version == 0 {
		if cur.live(now) {
			return fmt.Errorf("%w: a live record exists", store.ErrConflict)
		}
		return nil
	}
	if !cur.live(now) {
		return fmt.Errorf("%w: no live record", store.ErrConflict)
	}
	if cur.version != version {
		return fmt.Errorf("%w: version %d stored, not %d", store.ErrConflict, cur.version, version)
	}
	return nil
}

// Load returns the record stored under key. During the settle window after
// a membership change, a "not found" from Olric is retried (Config) before
// it becomes store.ErrNotFound.
func (s *Store) Load(ctx context.Context, key string) (store.Record, error) {
	if err := s.begin(key); err != nil {
		return store.Record{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Record{}, wrap("load", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	okey := olricKey(key)
	for attempt := 0; ; attempt++ {
		cur, err := s.read(ctx, okey, true)
		if err != nil {
			return store.Record{}, err
		}
		if !cur.live(s.cfg.Now()) {
			return store.Record{}, store.ErrNotFound
		}
		data := cur.data
		if cur.kind == kindChunked {
			data, err = s.readChunks(ctx, cur)
			if errors.Is(err, errChunkGone) && attempt < 3 {
				continue // replaced meanwhile: read the new record
			}
			if err != nil {
				return store.Record{}, err
			}
		}
		return store.Record{Data: data, Version: cur.version, Expires: time.UnixMilli(cur.expires), UserID: cur.userID}, nil
	}
}

var errChunkGone = errors.New("olricstore: chunk gone")

func (s *Store) readChunks(ctx context.Context, v value) ([]byte, error) {
	data := make([]byte, 0, v.size)
	for n := range v.chunks {
		resp, err := s.dm.Get(ctx, chunkKey(v.chunkID, n))
		if isOlric(err, olric.ErrKeyNotFound) {
			return nil, errChunkGone
		}
		if err != nil {
			return nil, wrap("get chunk", err)
		}
		b, err := resp.Byte()
		if err != nil {
			return nil, wrap("get chunk", err)
		}
		piece, err := decodeChunk(b)
		if err != nil {
			return nil, err
		}
		data = append(data, piece...)
	}
	if len(data) != v.size {
		return nil, fmt.Errorf("%w: chunked record of %d bytes has %d", errCorrupt, v.size, len(data))
	}
	return data, nil
}

// writeChunks stores data in chunks and fills in v's reference to them.
func (s *Store) writeChunks(ctx context.Context, v *value, data []byte) error {
	if _, err := rand.Read(v.chunkID[:]); err != nil {
		return wrap("chunk id", err)
	}
	v.kind, v.size, v.chunks = kindChunked, len(data), 0
	for off := 0; off < len(data); off += s.cfg.ChunkSize {
		end := min(off+s.cfg.ChunkSize, len(data))
		if err := s.put(ctx, chunkKey(v.chunkID, v.chunks), encodeChunk(v.physical, data[off:end]), v.physical); err != nil {
			return err
		}
		v.chunks++
	}
	return nil
}

// dropChunks deletes the chunks of a replaced record, best effort: they
// expire anyway.
func (s *Store) dropChunks(v value) {
	if v.kind != kindChunked {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	for n := range v.chunks {
		if _, err := s.dm.Delete(ctx, chunkKey(v.chunkID, n)); err != nil {
			s.cfg.Logger.Debug("olricstore: delete chunk", "err", err)
			return
		}
	}
}

// Save is a compare-and-set under the key's lock (see the package doc).
func (s *Store) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	if err := s.begin(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, wrap("save", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	okey := olricKey(key)
	// A version that is not stored now never will be again (versions are
	// not reused), so a conflict seen without the lock is final. New
	// sessions (version 0) rarely contend: they skip this read.
	var cur value
	var err error
	if rec.Version != 0 {
		if cur, err = s.read(ctx, okey, true); err != nil {
			return 0, err
		}
		if err := check(cur, rec.Version, s.cfg.Now()); err != nil {
			return 0, err
		}
	}
	unlock, at, err := s.lock(ctx, okey)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if cur, err = s.read(ctx, okey, rec.Version != 0); err != nil {
		return 0, err
	}
	if err := check(cur, rec.Version, s.cfg.Now()); err != nil {
		return 0, err
	}
	v := value{
		kind:     kindRecord,
		physical: s.physical(rec.Expires),
		version:  s.nextVersion(cur.version),
		expires:  rec.Expires.UnixMilli(),
		userID:   rec.UserID,
		data:     rec.Data,
	}
	if rec.UserID != "" && (!cur.live(s.cfg.Now()) || cur.userID != rec.UserID) {
		if err := s.indexAdd(ctx, rec.UserID, key); err != nil {
			return 0, err
		}
	}
	if len(rec.Data) > s.cfg.ChunkSize {
		if err := s.writeChunks(ctx, &v, rec.Data); err != nil {
			return 0, err
		}
	}
	if err := s.leaseLeft(at); err != nil {
		return 0, err
	}
	if err := s.put(ctx, okey, v.encode(), v.physical); err != nil {
		return 0, err
	}
	s.dropChunks(cur)
	return v.version, nil
}

// Delete replaces the record with a tombstone that keeps its version and
// lasts as long as the record would have, so that a stale copy cannot come
// back after a failover, and a late Save with its version conflicts.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := s.begin(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap("delete", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	okey := olricKey(key)
	cur, err := s.read(ctx, okey, version != 0)
	if err != nil {
		return err
	}
	if version == 0 && !cur.isRecord() {
		return nil
	}
	if version != 0 {
		if err := check(cur, version, s.cfg.Now()); err != nil {
			return err
		}
	}
	unlock, at, err := s.lock(ctx, okey)
	if err != nil {
		return err
	}
	defer unlock()
	if cur, err = s.read(ctx, okey, version != 0); err != nil {
		return err
	}
	if version != 0 {
		if err := check(cur, version, s.cfg.Now()); err != nil {
			return err
		}
	}
	if !cur.isRecord() {
		return nil
	}
	tomb := value{kind: kindTombstone, physical: max(cur.physical, s.physical(time.Time{})), version: cur.version, expires: cur.expires}
	if err := s.leaseLeft(at); err != nil {
		return err
	}
	if err := s.put(ctx, okey, tomb.encode(), tomb.physical); err != nil {
		return err
	}
	s.dropChunks(cur)
	return nil
}

// Touch moves the expiry of the live record by writing it again with the
// same version and data (Olric's Expire is not used: it wipes values).
func (s *Store) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	if err := s.begin(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap("touch", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	okey := olricKey(key)
	unlock, at, err := s.lock(ctx, okey)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := s.read(ctx, okey, true)
	if err != nil {
		return err
	}
	if !cur.live(s.cfg.Now()) {
		return store.ErrNotFound
	}
	if version != 0 && cur.version != version {
		return fmt.Errorf("%w: version %d stored, not %d", store.ErrConflict, cur.version, version)
	}
	next := cur
	next.expires = expires.UnixMilli()
	next.physical = s.physical(expires)
	if cur.kind == kindChunked {
		data, err := s.readChunks(ctx, cur)
		if err != nil {
			return err
		}
		if err := s.writeChunks(ctx, &next, data); err != nil {
			return err
		}
	}
	if err := s.leaseLeft(at); err != nil {
		return err
	}
	if err := s.put(ctx, okey, next.encode(), next.physical); err != nil {
		return err
	}
	if cur.kind == kindChunked {
		s.dropChunks(cur)
	}
	return nil
}

// Close stops the membership watch and, in client mode, closes the client.
// The Member (embedded mode) stays up. Calls after the first do nothing.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	if s.ownClient {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		defer cancel()
		return s.client.Close(ctx)
	}
	return nil
}

// sweepMark is the key, in the lock DMap, under which the last sweep by
// any store of the DMap records when it started.
const sweepMark = "~sweep"

// Stats describes the cluster as this store sees it.
type Stats struct {
	// Members is how many members the last watch saw.
	Members int
	// MembershipChanges counts the changes the watch saw.
	MembershipChanges int64
	// Sweeps counts completed re-replication sweeps by this store, and
	// SweepErrors the ones that failed (they are retried).
	Sweeps, SweepErrors int64
	// SweptKeys is how many Olric keys (records, tombstones, chunks) the
	// last sweep rewrote, SweepTook how long it took, SweptAt when it ended.
	SweptKeys int64
	SweepTook time.Duration
	SweptAt   time.Time
	// LastSweepStart is when the last completed sweep of the DMap, by any
	// store, started; zero if none has completed. A sweep that started
	// after a membership change gave every entry held then its copies.
	LastSweepStart time.Time
}

// Stats returns the store's counters, the members the cluster lists now,
// and when the last sweep started. It asks Olric for no statistics (see
// ShortOfCopies), so it is safe to call at any time.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{
		Members:           int(s.members.Load()),
		MembershipChanges: s.changes.Load(),
		Sweeps:            s.sweeps.Load(),
		SweepErrors:       s.sweepErrors.Load(),
		SweptKeys:         s.sweptKeys.Load(),
		SweepTook:         time.Duration(s.sweepTook.Load()),
	}
	if at := s.sweptAt.Load(); at != 0 {
		st.SweptAt = time.Unix(0, at)
	}
	if s.closed.Load() {
		return st, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.Timeout)
	defer cancel()
	members, err := s.listMembers(ctx)
	if err != nil {
		return st, err
	}
	st.Members = len(members)
	resp, err := s.locks.Get(ctx, sweepMark)
	if err == nil {
		var b []byte
		if b, err = resp.Byte(); err == nil && len(b) == 8 {
			st.LastSweepStart = time.Unix(0, int64(binary.BigEndian.Uint64(b)))
		}
	}
	if err != nil && !isOlric(err, olric.ErrKeyNotFound) {
		return st, wrap("sweep mark", err)
	}
	return st, nil
}

// ErrSettling is returned by ShortOfCopies while the membership is
// changing.
var ErrSettling = errors.New("olricstore: the cluster's membership changed moments ago; try again later")

// ShortOfCopies estimates how many entries of the sessions DMap (records,
// tombstones and chunks) have fewer than ReplicaCount copies: per
// partition, the primary entries times ReplicaCount-1 less the backup
// entries, summed over the members' partition tables, which it asks every
// member for. It is exact when no fragment is moving between members, and
// 0 when every session has all its copies.
//
// Olric v0.7.4 reads its member table without that table's lock while it
// computes these statistics, so a member that joins or leaves at that
// moment makes a concurrent map read and write in the member answering,
// which can crash it. ShortOfCopies therefore returns ErrSettling during
// Config.SettleWindow after a membership change this store saw; call it
// now and then (after a failure, say), not from every metrics scrape.
func (s *Store) ShortOfCopies(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	if s.settling() {
		return 0, ErrSettling
	}
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.Timeout)
	defer cancel()
	members, err := s.listMembers(ctx)
	if err != nil {
		return 0, err
	}
	short := 0
	primary := map[uint64]int{}
	backup := map[uint64]int{}
	for _, m := range members {
		ms, err := s.client.Stats(ctx, m.Name)
		if err != nil {
			return 0, wrap("stats of "+m.Name, err)
		}
		for id, p := range ms.Partitions {
			primary[uint64(id)] += p.DMaps[s.cfg.DMap].Length
		}
		for id, p := range ms.Backups {
			backup[uint64(id)] += p.DMaps[s.cfg.DMap].Length
		}
	}
	for id, n := range primary {
		if d := n*(s.cfg.ReplicaCount-1) - backup[id]; d > 0 {
			short += d
		}
	}
	return short, nil
}

// watch lists the members every WatchInterval; after a change it marks
// the settle window and, once the membership has been stable for
// SweepDelay, runs the sweep if this store is the sweeper.
func (s *Store) watch() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.WatchInterval)
	defer t.Stop()
	var last string
	var stableSince time.Time
	pending := false
	for {
		ctx, cancel := context.WithTimeout(s.bg, s.cfg.Timeout)
		members, err := s.listMembers(ctx)
		cancel()
		if err == nil && len(members) > 0 {
			names := make([]string, 0, len(members))
			coordinator := ""
			for _, m := range members {
				names = append(names, fmt.Sprintf("%s@%d", m.Name, m.Birthdate))
				if m.Coordinator {
					coordinator = m.Name
				}
			}
			slices.Sort(names)
			sig := strings.Join(names, ",")
			if sig != last {
				if last != "" {
					s.changedAt.Store(time.Now().UnixNano())
					s.changes.Add(1)
					pending = true
				}
				last, stableSince = sig, time.Now()
				s.members.Store(int64(len(members)))
			}
			if s.ownClient && s.settling() {
				s.refreshClient()
			}
			sweeper := s.cfg.Sweep || s.member != nil && coordinator == s.member.name
			if pending && time.Since(stableSince) >= s.cfg.SweepDelay {
				if !sweeper {
					pending = false
				} else if err := s.Sweep(s.bg); err != nil {
					if s.bg.Err() != nil {
						return
					}
					s.sweepErrors.Add(1)
					s.cfg.Logger.Warn("olricstore: re-replication sweep failed; retrying", "err", err)
				} else {
					pending = false
				}
			}
		}
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
	}
}

// refreshClient drops the cluster client's connections to addresses that
// are no longer members and fetches the routing table again. In client
// mode the watch calls it on every tick of the settle window after a
// membership change.
//
// Olric's cluster client sends its member-list and routing-table requests
// to the addresses it knows in turn, dead ones included; it learns them
// from its seeds and from the owners its routing tables name, and forgets
// one only in RefreshMetadata. A member that died would stay in that
// rotation, and the periodic routing-table fetch (every RefreshInterval)
// can fall on its turn every time, the watch's requests in between keeping
// the rotation in step: the client then never learns the new owners of
// the dead member's partitions, and keeps sending their keys to it.
func (s *Store) refreshClient() {
	ctx, cancel := context.WithTimeout(s.bg, s.cfg.Timeout)
	defer cancel()
	if err := s.client.RefreshMetadata(ctx); err != nil && s.bg.Err() == nil {
		s.cfg.Logger.Debug("olricstore: refresh the cluster client", "err", err)
	}
}

// Sweep rewrites every entry of the sessions DMap through its current
// owner, with its own expiry, so that each gets its ReplicaCount copies
// again after a member was lost (Olric does not re-create missing copies
// by itself). Records and tombstones are rewritten under their lock, so a
// concurrent Save is never undone. The watch runs it after membership
// changes; an operator may run it at any time. Sweeps of one store do not
// overlap.
func (s *Store) Sweep(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	start := time.Now()
	keys, err := s.scanKeys(ctx)
	if err != nil {
		return err
	}
	// The first failure ends the sweep (the watch retries it): while the
	// routing table still names a lost member, every rewrite of its
	// partitions would wait out its timeout.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if err := s.resweep(ctx, k); err != nil {
					if failed.Add(1) == 1 {
						firstErr.Store(&err)
						cancel()
					}
				}
			}
		})
	}
	for k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("olricstore: sweep of %d keys stopped at a failure: %w", len(keys), *p)
	}
	if err := ctx.Err(); err != nil {
		return wrap("sweep", err)
	}
	took := time.Since(start)
	mark := binary.BigEndian.AppendUint64(nil, uint64(start.UnixNano()))
	if err := s.locks.Put(ctx, sweepMark, mark); err != nil {
		return wrap("sweep mark", err)
	}
	s.sweeps.Add(1)
	s.sweptKeys.Store(int64(len(keys)))
	s.sweepTook.Store(int64(took))
	s.sweptAt.Store(time.Now().UnixNano())
	s.cfg.Logger.Info("olricstore: re-replication sweep done", "keys", len(keys), "took", took.Round(time.Millisecond))
	return nil
}

// scanKeys lists the keys of the sessions DMap held by every owner of every
// partition, primary copies and backups (after a loss, some keys live only
// in a backup). Olric's own Scan is not used: its iterator refreshes its
// routing table from a goroutine while it reads it (a data race in
// v0.7.4), so the store sends Olric's scan command itself.
func (s *Store) scanKeys(ctx context.Context) (map[string]struct{}, error) {
	rt, err := s.client.RoutingTable(ctx)
	if err != nil {
		_ = s.client.RefreshMetadata(ctx)
		rt, err = s.client.RoutingTable(ctx)
	}
	if err != nil {
		return nil, wrap("routing table", err)
	}
	conns := map[string]*redis.Client{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	keys := map[string]struct{}{}
	for partID, route := range rt {
		for _, replica := range []bool{false, true} {
			owners := route.PrimaryOwners
			if replica {
				owners = route.ReplicaOwners
			}
			for _, owner := range owners {
				c := conns[owner]
				if c == nil {
					c = redis.NewClient(&redis.Options{Addr: owner, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
					conns[owner] = c
				}
				for cursor := uint64(0); ; {
					args := []any{"dm.scan", partID, s.cfg.DMap, cursor, "COUNT", 1000}
					if replica {
						args = append(args, "RC")
					}
					cmd := redis.NewScanCmd(ctx, nil, args...)
					if err := c.Process(ctx, cmd); err != nil {
						return nil, wrap(fmt.Sprintf("scan partition %d on %s", partID, owner), err)
					}
					page, next, err := cmd.Result()
					if err != nil {
						return nil, wrap(fmt.Sprintf("scan partition %d on %s", partID, owner), err)
					}
					for _, k := range page {
						keys[k] = struct{}{}
					}
					if next == 0 {
						break
					}
					cursor = next
				}
			}
		}
	}
	return keys, nil
}

// resweep rewrites one Olric key with its own expiry.
func (s *Store) resweep(ctx context.Context, okey string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if !strings.HasPrefix(okey, "c") {
		unlock, _, err := s.lock(ctx, okey)
		if err != nil {
			return err
		}
		defer unlock()
	}
	resp, err := s.dm.Get(ctx, okey)
	if isOlric(err, olric.ErrKeyNotFound) {
		return nil // deleted or expired meanwhile
	}
	if err != nil {
		return wrap("get", err)
	}
	b, err := resp.Byte()
	if err != nil {
		return wrap("get", err)
	}
	physical, err := physicalExpiry(b)
	if err != nil {
		return fmt.Errorf("%w: key %q", err, okey)
	}
	if physical <= time.Now().UnixMilli() {
		return nil
	}
	return s.put(ctx, okey, b, physical)
}
