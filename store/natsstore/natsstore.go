package natsstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sessionkit/sessionkit/store"
)

// Config configures a Store. Set URL or Conn.
type Config struct {
	// URL is the NATS server to connect to (client mode), for example
	// nats://127.0.0.1:4222 or a Node's ClientURL. The store owns this
	// connection and closes it on Close.
	URL string
	// Conn is an existing connection, used instead of URL. It belongs to
	// the caller, who closes it after the store.
	Conn *nats.Conn
	// Bucket is the KV bucket; default "sessionkit". New creates it, or
	// binds to it if it exists.
	Bucket string
	// Replicas is the bucket's replication factor when New creates it.
	// Default: 3 when the server is part of a cluster, otherwise 1.
	Replicas int
	// MaxLifetime is the bucket's MaxAge: the bound after which the server
	// physically removes a value, whatever its logical expiry. Default 31
	// days. It must exceed the longest session lifetime.
	MaxLifetime time.Duration
	// Timeout bounds each operation; default 2 s.
	Timeout time.Duration
	// Now decides expiry; default time.Now.
	Now func() time.Time
	// Logger receives background errors; default slog.Default().
	Logger *slog.Logger
	// SweepInterval is the period of the background sweep of logically
	// expired values; default 1 minute. Negative disables the sweep.
	SweepInterval time.Duration
	// SweepBatch is how many expired keys the sweep purges between pauses;
	// default 100.
	SweepBatch int
	// FeedHeartbeat is the idle heartbeat of the change feed's consumer:
	// the server sends one whenever the consumer has delivered nothing for
	// that long. Default 100 ms, the server's minimum.
	FeedHeartbeat time.Duration
	// FeedStall is how long the change feed may deliver nothing, neither an
	// event nor a heartbeat, before it counts as stalled: FeedLive reports
	// false from then on, and the feed reports OpReset and sets itself up
	// again (see "Events" in the package doc). Default FeedHeartbeat +
	// 100 ms; it must exceed FeedHeartbeat. On a 2-core machine with a load
	// average of 10, 150 ms gave one false alarm a minute (a new consumer
	// and a flush of a near cache), 200 ms none.
	FeedStall time.Duration
}

// Store is the NATS JetStream KV session store. It implements store.Store,
// store.UserIndex, store.Notifier and store.LiveFeed. It is safe for
// concurrent use.
type Store struct {
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	bucket  string
	now     func() time.Time
	timeout time.Duration
	log     *slog.Logger
	// maxValue is the largest value written in one message.
	maxValue int
	batch    int

	bg     context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	// seen caches the metadata (not the data) of the revisions this store
	// last read or wrote, by record key, so that a Save with the version a
	// Load returned skips the read: a revision names one value, so if the
	// Update succeeds, the value it replaced is the cached one.
	seenMu sync.Mutex
	seen   map[string]current

	subMu    sync.RWMutex
	subs     map[uint64]func(store.Event)
	nextSub  uint64
	watching bool

	// The feed is live until liveUntil, in nanoseconds since epoch on the
	// monotonic clock (0: down); each message of its consumer moves it to
	// FeedStall after the message's arrival.
	heartbeat time.Duration
	stall     time.Duration
	epoch     time.Time
	liveUntil atomic.Int64
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.UserIndex = (*Store)(nil)
	_ store.Notifier  = (*Store)(nil)
	_ store.LiveFeed  = (*Store)(nil)
)

// Defaults of Config's feed fields.
const (
	DefaultFeedHeartbeat = 100 * time.Millisecond
	defaultStallMargin   = 100 * time.Millisecond
)

// New connects (or uses cfg.Conn), creates or binds the bucket and starts
// the sweep. While the JetStream cluster is not ready (no meta leader yet)
// it retries until ctx ends.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "sessionkit"
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = 31 * 24 * time.Hour
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Minute
	}
	if cfg.SweepBatch <= 0 {
		cfg.SweepBatch = 100
	}
	if cfg.FeedHeartbeat <= 0 {
		cfg.FeedHeartbeat = DefaultFeedHeartbeat
	}
	if cfg.FeedHeartbeat < DefaultFeedHeartbeat {
		return nil, fmt.Errorf("natsstore: New: FeedHeartbeat %v is under the server's minimum, %v", cfg.FeedHeartbeat, DefaultFeedHeartbeat)
	}
	if cfg.FeedStall <= 0 {
		cfg.FeedStall = cfg.FeedHeartbeat + defaultStallMargin
	}
	if cfg.FeedStall <= cfg.FeedHeartbeat {
		return nil, fmt.Errorf("natsstore: New: FeedStall %v must exceed FeedHeartbeat %v", cfg.FeedStall, cfg.FeedHeartbeat)
	}
	nc, own := cfg.Conn, false
	if nc == nil {
		if cfg.URL == "" {
			return nil, errors.New("natsstore: New: Config.URL or Config.Conn is required")
		}
		var err error
		nc, err = nats.Connect(cfg.URL, nats.Name("sessionkit"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("natsstore: connect %s: %w", cfg.URL, err)
		}
		own = true
	}
	fail := func(err error) (*Store, error) {
		if own {
			nc.Close()
		}
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(fmt.Errorf("natsstore: %w", err))
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
		if nc.ConnectedClusterName() != "" {
			cfg.Replicas = 3
		}
	}
	kv, err := bindBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:   cfg.Bucket,
		History:  1,
		TTL:      cfg.MaxLifetime,
		Storage:  jetstream.FileStorage,
		Replicas: cfg.Replicas,
	}, cfg.Timeout)
	if err != nil {
		return fail(err)
	}
	maxValue := int(nc.MaxPayload()) - 8<<10
	if maxValue < 4<<10 {
		maxValue = 4 << 10
	}
	s := &Store{
		nc: nc, ownConn: own, js: js, kv: kv, bucket: cfg.Bucket, now: cfg.Now, timeout: cfg.Timeout,
		log: cfg.Logger, maxValue: maxValue, batch: cfg.SweepBatch,
		subs:      make(map[uint64]func(store.Event)),
		seen:      make(map[string]current),
		heartbeat: cfg.FeedHeartbeat, stall: cfg.FeedStall, epoch: time.Now(),
	}
	s.bg, s.cancel = context.WithCancel(context.Background())
	if cfg.SweepInterval > 0 {
		s.wg.Add(1)
		go s.sweepLoop(cfg.SweepInterval)
	}
	return s, nil
}

func bindBucket(ctx context.Context, js jetstream.JetStream, kvc jetstream.KeyValueConfig, timeout time.Duration) (jetstream.KeyValue, error) {
	var last error
	for {
		octx, cancel := context.WithTimeout(ctx, timeout)
		kv, err := js.KeyValue(octx, kvc.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(octx, kvc)
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = js.KeyValue(octx, kvc.Bucket)
			}
		}
		if err == nil {
			err = leaderElected(octx, kv)
		}
		if err == nil {
			kv, err = leaderReads(octx, js, kv, kvc.Bucket)
		}
		cancel()
		if err == nil {
			return kv, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("natsstore: bucket %s: %w (%w)", kvc.Bucket, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaderReads turns off direct gets on the bucket's stream, so that every
// Get is answered by the stream's leader: a replica answering directly can
// be a few writes behind, and a session read there would miss changes
// another node already saved (the conformance suite's concurrent counter
// caught this on a 3-node cluster). It returns the bucket bound again.
func leaderReads(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, bucket string) (jetstream.KeyValue, error) {
	stream, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, err
	}
	cfg := stream.CachedInfo().Config
	if !cfg.AllowDirect && !cfg.MirrorDirect {
		return kv, nil
	}
	cfg.AllowDirect, cfg.MirrorDirect = false, false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("turning off direct gets: %w", err)
	}
	return js.KeyValue(ctx, bucket)
}

// leaderElected returns nil once the bucket's stream has a leader: right
// after a replicated bucket is created, writes find no stream to answer
// them until its Raft group has elected one.
func leaderElected(ctx context.Context, kv jetstream.KeyValue) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil
	}
	if info := bs.StreamInfo(); info.Cluster != nil && info.Cluster.Leader == "" && info.Config.Replicas > 1 {
		return errors.New("stream has no leader yet")
	}
	return nil
}

// ---- encoding ----

// Every value starts with a header: format byte, flags byte, expiry (unix
// ms, big-endian int64), uvarint length and bytes of the user ID. A record
// then holds its data, or, flagged chunked, a reference to chunk keys.
const (
	format      = 1
	flagChunked = 1
)

type meta struct {
	expires int64 // unix ms
	user    string
	chunked bool
	chunkID string
	nChunks int
	total   int
	data    []byte // inline data, or the chunk's bytes
}

func encodeHeader(buf []byte, flags byte, expires int64, user string) []byte {
	buf = append(buf, format, flags)
	buf = binary.BigEndian.AppendUint64(buf, uint64(expires))
	buf = binary.AppendUvarint(buf, uint64(len(user)))
	return append(buf, user...)
}

var errCorrupt = errors.New("natsstore: corrupt value")

func decode(b []byte) (meta, error) {
	var m meta
	if len(b) < 10 || b[0] != format {
		return m, errCorrupt
	}
	flags := b[1]
	m.expires = int64(binary.BigEndian.Uint64(b[2:10]))
	b = b[10:]
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return m, errCorrupt
	}
	m.user = string(b[k : k+int(n)])
	b = b[k+int(n):]
	if flags&flagChunked == 0 {
		m.data = b
		return m, nil
	}
	m.chunked = true
	c, k := binary.Uvarint(b)
	if k <= 0 {
		return m, errCorrupt
	}
	b = b[k:]
	t, k := binary.Uvarint(b)
	if k <= 0 {
		return m, errCorrupt
	}
	m.nChunks, m.total, m.chunkID = int(c), int(t), string(b[k:])
	return m, nil
}

var b64 = base64.RawURLEncoding

func recordKey(key string) string      { return "k." + b64.EncodeToString([]byte(key)) }
func indexPrefix(user string) string   { return "u." + b64.EncodeToString([]byte(user)) + "." }
func indexKey(user, key string) string { return indexPrefix(user) + b64.EncodeToString([]byte(key)) }
func chunkKey(id string, i int) string { return "c." + id + "." + strconv.Itoa(i) }
func newChunkID() string               { return rand.Text() }
func (s *Store) live(m meta) bool      { return m.expires > s.now().UnixMilli() }
func (m meta) expiresTime() time.Time  { return time.UnixMilli(m.expires).UTC() }

// ---- plumbing ----

func (s *Store) check(key string) error {
	if s.closed.Load() {
		return fmt.Errorf("natsstore: %w", store.ErrClosed)
	}
	return store.CheckKey(key)
}

func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// retry calls f again while it fails with no responders: right after a
// bucket is created, or while a replica catches up or a leader is being
// elected, no server may answer a read or a write yet. Such a request
// reached no stream, so repeating it is safe. It gives up when ctx ends.
func retry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if !errors.Is(err, nats.ErrNoResponders) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// retryRead is retry for reads, which may also be repeated after an
// answer that JetStream is temporarily unavailable (code 503): for a few
// moments after a stream's leader is lost, the survivors answer that
// until they have elected a new one. Writes are not repeated on it: the
// write may have been applied, and a compare-and-set repeated after its own
// success would report a conflict for a write that happened.
func retryRead[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for {
		v, err := retry(ctx, f)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != 503 {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func retry0(ctx context.Context, f func() error) error {
	_, err := retry(ctx, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

func isMismatch(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// inFlight reports whether a mismatch is JetStream's "wrong last
// sequence" without a sequence (code 10164): on a replicated stream the
// leader gives it when another write of the same key is still being
// applied, whatever the expected revision, even right after that write
// was acknowledged to its client. It is no proof of a conflict: the
// caller reads the revision again and, if it is still the expected one,
// writes again.
func inFlight(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// backoff waits a little longer at each attempt (1 ms, 2 ms, ... up to
// 64 ms), or until ctx ends.
func backoff(ctx context.Context, attempt int) {
	t := time.NewTimer(time.Millisecond << min(attempt, 6))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// current is the latest entry of a record key: rev 0 if there is none (or
// only a delete marker).
type current struct {
	rev  uint64
	m    meta
	live bool
}

func (s *Store) current(ctx context.Context, k string) (current, error) {
	e, err := retryRead(ctx, func() (jetstream.KeyValueEntry, error) { return s.kv.Get(ctx, k) })
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return current{}, nil
	}
	if err != nil {
		return current{}, err
	}
	m, err := decode(e.Value())
	if err != nil {
		return current{}, fmt.Errorf("%w: key %s revision %d", err, k, e.Revision())
	}
	return current{rev: e.Revision(), m: m, live: s.live(m)}, nil
}

// data returns a live record's data, reading its chunks if any. ok is
// false if a chunk is gone (the record was replaced meanwhile).
func (s *Store) data(ctx context.Context, m meta) (data []byte, ok bool, err error) {
	if !m.chunked {
		return m.data, true, nil
	}
	data = make([]byte, 0, m.total)
	for i := range m.nChunks {
		e, err := retryRead(ctx, func() (jetstream.KeyValueEntry, error) { return s.kv.Get(ctx, chunkKey(m.chunkID, i)) })
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		cm, err := decode(e.Value())
		if err != nil {
			return nil, false, err
		}
		data = append(data, cm.data...)
	}
	if len(data) != m.total {
		return nil, false, errCorrupt
	}
	return data, true, nil
}

// removeChunks purges the chunks of m, best effort (the sweep removes
// what is left once they expire).
func (s *Store) removeChunks(ctx context.Context, m meta) {
	if !m.chunked {
		return
	}
	for i := range m.nChunks {
		if err := s.kv.Purge(ctx, chunkKey(m.chunkID, i)); err != nil {
			s.log.Debug("natsstore: purge chunk", "err", err)
			return
		}
	}
}

// ---- cache of seen revisions ----

const seenMax = 4096

func (s *Store) remember(k string, c current) {
	c.m.data = nil
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if len(s.seen) >= seenMax {
		for x := range s.seen { // evict an arbitrary entry
			delete(s.seen, x)
			break
		}
	}
	s.seen[k] = c
}

func (s *Store) forget(k string) {
	s.seenMu.Lock()
	delete(s.seen, k)
	s.seenMu.Unlock()
}

func (s *Store) recall(k string, rev uint64) (current, bool) {
	s.seenMu.Lock()
	c, ok := s.seen[k]
	s.seenMu.Unlock()
	return c, ok && c.rev == rev
}

// ---- Store ----

// Load implements store.Store.
func (s *Store) Load(ctx context.Context, key string) (store.Record, error) {
	if err := s.check(key); err != nil {
		return store.Record{}, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	rec, _, err := s.load(ctx, recordKey(key))
	if err != nil {
		return store.Record{}, fmt.Errorf("natsstore: load: %w", err)
	}
	return rec, nil
}

func (s *Store) load(ctx context.Context, k string) (store.Record, meta, error) {
	for range 5 {
		cur, err := s.current(ctx, k)
		if err != nil {
			return store.Record{}, meta{}, err
		}
		if !cur.live {
			return store.Record{}, meta{}, store.ErrNotFound
		}
		data, ok, err := s.data(ctx, cur.m)
		if err != nil {
			return store.Record{}, meta{}, err
		}
		if ok {
			s.remember(k, cur)
			return store.Record{Data: data, Version: cur.rev, Expires: cur.m.expiresTime(), UserID: cur.m.user}, cur.m, nil
		}
	}
	return store.Record{}, meta{}, errors.New("record replaced too often while reading its chunks")
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	if err := s.check(key); err != nil {
		return 0, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	v, err := s.save(ctx, key, rec)
	if err != nil {
		return 0, fmt.Errorf("natsstore: save: %w", err)
	}
	return v, nil
}

func (s *Store) save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	k := recordKey(key)
	exp := rec.Expires.UnixMilli()
	val := encodeHeader(nil, 0, exp, rec.UserID)
	var written meta
	if len(val)+len(rec.Data) <= s.maxValue {
		val = append(val, rec.Data...)
	} else {
		// Too large for one message: write the data as chunks first.
		size := s.maxValue - 64
		written = meta{chunked: true, chunkID: newChunkID(), total: len(rec.Data)}
		written.nChunks = (len(rec.Data) + size - 1) / size
		for i := range written.nChunks {
			part := rec.Data[i*size : min((i+1)*size, len(rec.Data))]
			cv := append(encodeHeader(make([]byte, 0, 32+len(part)), 0, exp, ""), part...)
			if _, err := retry(ctx, func() (uint64, error) { return s.kv.Put(ctx, chunkKey(written.chunkID, i), cv) }); err != nil {
				s.removeChunks(context.WithoutCancel(ctx), written)
				return 0, err
			}
		}
		val = encodeHeader(nil, flagChunked, exp, rec.UserID)
		val = binary.AppendUvarint(val, uint64(written.nChunks))
		val = binary.AppendUvarint(val, uint64(written.total))
		val = append(val, written.chunkID...)
	}
	if rec.UserID != "" {
		// The index entry goes first, so a saved record is never missing
		// from it; a stale entry is filtered out when listing.
		iv := encodeHeader(nil, 0, exp, "")
		if _, err := retry(ctx, func() (uint64, error) { return s.kv.Put(ctx, indexKey(rec.UserID, key), iv) }); err != nil {
			s.removeChunks(context.WithoutCancel(ctx), written)
			return 0, err
		}
	}
	for attempt := 0; attempt < 8; attempt++ {
		var cur current
		var err error
		if c, ok := s.recall(k, rec.Version); ok && rec.Version > 0 && attempt == 0 {
			cur, cur.live = c, s.live(c.m) // skip the read (see Store.seen)
		} else if cur, err = s.current(ctx, k); err != nil {
			s.removeChunks(context.WithoutCancel(ctx), written)
			return 0, err
		}
		var rev uint64
		switch {
		case rec.Version == 0 && cur.rev == 0:
			rev, err = retry(ctx, func() (uint64, error) { return s.kv.Create(ctx, k, val) })
		case rec.Version == 0 && !cur.live:
			rev, err = retry(ctx, func() (uint64, error) { return s.kv.Update(ctx, k, val, cur.rev) })
		case rec.Version == 0, !cur.live, cur.rev != rec.Version:
			s.removeChunks(context.WithoutCancel(ctx), written)
			return 0, store.ErrConflict
		default:
			rev, err = retry(ctx, func() (uint64, error) { return s.kv.Update(ctx, k, val, rec.Version) })
			if isMismatch(err) {
				s.forget(k)
				if inFlight(err) {
					backoff(ctx, attempt)
					continue // look again: still at rec.Version means write again
				}
				s.removeChunks(context.WithoutCancel(ctx), written)
				return 0, store.ErrConflict
			}
		}
		if isMismatch(err) {
			if inFlight(err) {
				backoff(ctx, attempt)
			}
			continue // changed between Get and write: look again
		}
		if err != nil {
			s.removeChunks(context.WithoutCancel(ctx), written)
			return 0, err
		}
		s.remember(k, current{rev: rev, m: meta{expires: exp, user: rec.UserID, chunked: written.chunked,
			chunkID: written.chunkID, nChunks: written.nChunks, total: written.total}})
		if cur.rev != 0 {
			s.cleanup(context.WithoutCancel(ctx), key, cur.m, rec.UserID)
		}
		return rev, nil
	}
	s.removeChunks(context.WithoutCancel(ctx), written)
	return 0, store.ErrConflict
}

// cleanup removes what the replaced or deleted value old referred to: its
// chunks, and its index entry unless the record is still bound to newUser.
func (s *Store) cleanup(ctx context.Context, key string, old meta, newUser string) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	s.removeChunks(ctx, old)
	if old.user != "" && old.user != newUser {
		if err := s.kv.Purge(ctx, indexKey(old.user, key)); err != nil {
			s.log.Debug("natsstore: purge index entry", "err", err)
		}
	}
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := s.check(key); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.del(ctx, key, version, nil); err != nil {
		return fmt.Errorf("natsstore: delete: %w", err)
	}
	return nil
}

// del deletes the record under key: with version > 0 only that live
// version, otherwise whatever is there (if match accepts it). It reports
// whether a live record was deleted.
func (s *Store) del(ctx context.Context, key string, version uint64, match func(meta) bool) (bool, error) {
	k := recordKey(key)
	for attempt := 0; attempt < 8; attempt++ {
		cur, err := s.current(ctx, k)
		if err != nil {
			return false, err
		}
		if version > 0 && (!cur.live || cur.rev != version) {
			return false, store.ErrConflict
		}
		if cur.rev == 0 || (match != nil && !match(cur.m)) {
			return false, nil
		}
		err = retry0(ctx, func() error { return s.kv.Delete(ctx, k, jetstream.LastRevision(cur.rev)) })
		if isMismatch(err) {
			if inFlight(err) {
				backoff(ctx, attempt) // look again (see inFlight)
				continue
			}
			if version > 0 {
				return false, store.ErrConflict
			}
			continue
		}
		if err != nil {
			return false, err
		}
		s.forget(k)
		s.cleanup(context.WithoutCancel(ctx), key, cur.m, "")
		return cur.live, nil
	}
	return false, errors.New("record changed too often to delete it")
}

// ListUser implements store.UserIndex. It lists the index keys of the user
// (a filtered watch of the bucket) and then loads each record: 1 + n round
// trips for n entries.
func (s *Store) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("natsstore: %w", store.ErrClosed)
	}
	if userID == "" {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	keys, err := s.userKeys(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("natsstore: list user: %w", err)
	}
	var out []store.Entry
	for _, key := range keys {
		rec, _, err := s.load(ctx, recordKey(key))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("natsstore: list user: %w", err)
		}
		if rec.UserID == userID {
			out = append(out, store.Entry{Key: key, Record: rec})
		}
	}
	return out, nil
}

func (s *Store) userKeys(ctx context.Context, userID string) ([]string, error) {
	prefix := indexPrefix(userID)
	w, err := s.kv.Watch(ctx, prefix+"*", jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	seen := make(map[string]bool)
	var keys []string
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("index watch ended early")
			}
			if e == nil {
				return keys, nil
			}
			raw, err := b64.DecodeString(strings.TrimPrefix(e.Key(), prefix))
			if err != nil || seen[string(raw)] {
				continue
			}
			seen[string(raw)] = true
			keys = append(keys, string(raw))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// DeleteUser implements store.UserIndex: 1 + 2n round trips and more for
// n entries.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("natsstore: %w", store.ErrClosed)
	}
	if userID == "" {
		return 0, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	keys, err := s.userKeys(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("natsstore: delete user: %w", err)
	}
	n := 0
	for _, key := range keys {
		deleted, err := s.del(ctx, key, 0, func(m meta) bool { return m.user == userID })
		if err != nil {
			return n, fmt.Errorf("natsstore: delete user: %w", err)
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// ---- Notifier ----

// Subscribe implements store.Notifier. The first call starts the store's
// change feed, a watch of the bucket's record keys that the store keeps up
// while it is open: it is set up again, with a growing pause between
// attempts, whenever it ends, and whenever the connection is lost or comes
// back, and every subscriber then gets a store.OpReset (see "Events" in the
// package doc). If the first watch cannot be set up, Subscribe returns all
// the same, and fn gets an OpReset once the feed is up.
func (s *Store) Subscribe(fn func(store.Event)) (unsubscribe func()) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.closed.Load() {
		return func() {}
	}
	if !s.watching {
		s.watching = true
		// Listen before the first watch, so that no loss of the
		// connection after it goes unseen.
		status := s.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CONNECTED, nats.CLOSED)
		w, err := s.watchRecords()
		if err != nil {
			s.log.Warn("natsstore: change feed: watch failed; retrying", "err", err)
		}
		if w != nil {
			s.liveUntil.Store(s.mono() + int64(s.stall))
		}
		s.wg.Add(1)
		go s.feed(w, status)
	}
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.subMu.Lock()
		delete(s.subs, id)
		s.subMu.Unlock()
	}
}

// watch is the change feed's consumer: an ephemeral push consumer of the
// bucket's record keys (new messages only, headers only, no acks, in
// memory, one replica) with idle heartbeats, delivered to a subscription
// of this store's connection. Unlike the ordered consumer of a KV watch,
// which re-creates itself after a gap and hides its heartbeats, it lets
// the feed see every heartbeat and every gap.
type watch struct {
	sub  *nats.Subscription
	msgs chan *nats.Msg
	done chan struct{}
	name string // the consumer
	dseq uint64 // the consumer sequence of the last message delivered
}

// watchRecords sets up a watch that delivers the writes made after it
// returns. Stop it with stopWatch.
func (s *Store) watchRecords() (*watch, error) {
	ctx, cancel := s.opCtx(s.bg)
	defer cancel()
	w := &watch{msgs: make(chan *nats.Msg, 256), done: make(chan struct{})}
	inbox := s.nc.NewInbox()
	// Subscribed before the consumer exists, so that nothing it delivers
	// is missed. The handler blocks, as a KV watch's does, so that a slow
	// feed delays events rather than dropping them.
	sub, err := s.nc.Subscribe(inbox, func(m *nats.Msg) {
		select {
		case w.msgs <- m:
		case <-w.done:
		}
	})
	if err != nil {
		return nil, err
	}
	w.sub = sub
	c, err := retry(ctx, func() (jetstream.PushConsumer, error) {
		return s.js.CreatePushConsumer(ctx, "KV_"+s.bucket, jetstream.ConsumerConfig{
			DeliverSubject:    inbox,
			DeliverPolicy:     jetstream.DeliverNewPolicy,
			AckPolicy:         jetstream.AckNonePolicy,
			FilterSubject:     "$KV." + s.bucket + ".k.*",
			HeadersOnly:       true,
			IdleHeartbeat:     s.heartbeat,
			MemoryStorage:     true,
			Replicas:          1,
			InactiveThreshold: 5 * time.Second,
		})
	})
	if err != nil {
		close(w.done)
		_ = sub.Unsubscribe()
		return nil, err
	}
	w.name = c.CachedInfo().Name
	return w, nil
}

// stopWatch ends w's subscription and, unless the store is closing,
// deletes its consumer in the background (best effort: the server deletes
// a consumer without interest after its InactiveThreshold, 5 s, if that
// fails or is not tried).
func (s *Store) stopWatch(w *watch) {
	close(w.done)
	_ = w.sub.Unsubscribe()
	if s.nc.IsClosed() || s.bg.Err() != nil {
		return
	}
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, time.Second))
		defer cancel()
		_ = s.js.DeleteConsumer(ctx, "KV_"+s.bucket, w.name)
	})
}

// feedRetryMax bounds the pause between two attempts to set up the watch.
const feedRetryMax = 5 * time.Second

// mono is the monotonic time since s.epoch, in nanoseconds.
func (s *Store) mono() int64 { return int64(time.Since(s.epoch)) }

// FeedLive implements store.LiveFeed: it reports whether the change feed is
// up and its consumer delivered something, an event or a heartbeat, less
// than Config.FeedStall ago. It is false before the first Subscribe, and
// from a break until the new watch is up (see "Events" in the package doc).
// It is safe for concurrent use.
func (s *Store) FeedLive() bool { return s.mono() < s.liveUntil.Load() }

// down marks the feed not live and reports OpReset.
func (s *Store) down() {
	s.liveUntil.Store(0)
	s.publish(store.Event{Op: store.OpReset})
}

// feed runs the change feed until the store is closed: it delivers the
// events of the watch w (nil: none is up) and, when the watch ends or
// stalls or the connection's status changes, marks the feed down, reports
// OpReset, stops w and sets up a new watch, retrying with backoff, then
// marks the feed live and reports OpReset again before any event of the
// new watch.
func (s *Store) feed(w *watch, status chan nats.Status) {
	defer s.wg.Done()
	defer s.nc.RemoveStatusListener(status)
	for attempt := 0; ; {
		if w == nil {
			var err error
			if w, err = s.watchRecords(); err != nil {
				if s.bg.Err() != nil {
					return
				}
				if attempt == 0 {
					s.log.Warn("natsstore: change feed: watch failed; retrying", "err", err)
				}
				pause := min(50*time.Millisecond<<min(attempt, 10), feedRetryMax)
				attempt++
				select {
				case <-s.bg.Done():
					return
				case <-time.After(pause):
				}
				continue
			}
			if attempt > 0 {
				s.log.Info("natsstore: change feed: watch set up again", "attempts", attempt+1)
			}
			attempt = 0
			// The new watch delivers every write from now on; anything
			// between the break and now may have gone unreported.
			s.liveUntil.Store(s.mono() + int64(s.stall))
			s.publish(store.Event{Op: store.OpReset})
		}
		open := s.follow(w, status)
		s.down()
		s.stopWatch(w)
		w = nil
		if !open {
			return
		}
	}
}

// follow delivers the events of w until the store is closed (it returns
// false), or w ends, stalls (nothing for Config.FeedStall) or skips a
// message, or the connection's status changes (true). Each message moves
// the feed's liveness on, unless it came too late.
func (s *Store) follow(w *watch, status chan nats.Status) bool {
	stall := time.NewTimer(s.stall)
	defer stall.Stop()
	prefix := "$KV." + s.bucket + "."
	for {
		select {
		case <-s.bg.Done():
			return false
		case st := <-status:
			s.log.Debug("natsstore: change feed: connection status changed; setting the watch up again", "status", st)
			return true
		case <-stall.C:
			s.log.Info("natsstore: change feed: nothing from the watch's consumer, not even a heartbeat; setting it up again", "for", s.stall)
			return true
		case m := <-w.msgs:
			now := s.mono()
			if now >= s.liveUntil.Load() {
				s.log.Info("natsstore: change feed: the watch's consumer was silent too long; setting it up again", "for", s.stall)
				return true
			}
			if code := m.Header.Get("Status"); code != "" {
				last := m.Header.Get("Nats-Last-Consumer")
				if code != "100" || last == "" || last != strconv.FormatUint(w.dseq, 10) {
					s.log.Info("natsstore: change feed: the watch's consumer reported a gap or an error; setting it up again",
						"status", code, "description", m.Header.Get("Description"), "last", last, "delivered", w.dseq)
					return true
				}
			} else {
				md, err := m.Metadata()
				if err != nil || md.Sequence.Consumer != w.dseq+1 {
					s.log.Info("natsstore: change feed: the watch skipped a message; setting it up again", "err", err, "delivered", w.dseq)
					return true
				}
				w.dseq = md.Sequence.Consumer
				if ev, ok := recordEvent(m, prefix, md.Sequence.Stream); ok {
					s.publish(ev)
				}
			}
			s.liveUntil.Store(now + int64(s.stall))
			stall.Reset(s.stall)
		}
	}
}

// recordEvent decodes the event of a message of the record keys.
func recordEvent(m *nats.Msg, prefix string, rev uint64) (store.Event, bool) {
	raw, err := b64.DecodeString(strings.TrimPrefix(strings.TrimPrefix(m.Subject, prefix), "k."))
	if err != nil {
		return store.Event{}, false
	}
	ev := store.Event{Key: string(raw), Op: store.OpSave, Version: rev}
	op := m.Header.Get("KV-Operation")
	if op == "" {
		switch m.Header.Get(jetstream.MarkerReasonHeader) {
		case "MaxAge", "Purge":
			op = "PURGE"
		case "Remove":
			op = "DEL"
		}
	}
	switch op {
	case "PURGE":
		ev.Op, ev.Version = store.OpExpire, 0 // only the sweep purges record keys
	case "DEL":
		ev.Op, ev.Version = store.OpDelete, 0
	}
	return ev, true
}

// publish calls every subscriber with ev.
func (s *Store) publish(ev store.Event) {
	s.subMu.RLock()
	defer s.subMu.RUnlock()
	for _, fn := range s.subs {
		fn(ev)
	}
}

// ---- lifetime and sweep ----

// Close implements store.Store.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.subMu.Lock() // no watch starts after this
	s.cancel()
	s.subMu.Unlock()
	s.wg.Wait()
	if s.ownConn {
		s.nc.Close()
	}
	return nil
}

func (s *Store) sweepLoop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
			n, err := s.Sweep(s.bg)
			if err != nil && s.bg.Err() == nil {
				s.log.Warn("natsstore: sweep", "err", err, "purged", n)
			}
		}
	}
}

// Sweep purges the values (records, index entries, chunks) whose logical
// expiry has passed and returns how many it purged. It reads every value
// of the bucket once; the background sweep calls it every
// Config.SweepInterval.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*s.timeout+time.Minute)
	defer cancel()
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	type kr struct {
		key string
		rev uint64
	}
	var expired []kr
	now := s.now().UnixMilli()
scan:
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				break scan
			}
			m, err := decode(e.Value())
			if err == nil && m.expires <= now {
				expired = append(expired, kr{e.Key(), e.Revision()})
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	w.Stop()
	n := 0
	for i, x := range expired {
		// LastRevision: a value written since the scan stays.
		err := s.kv.Purge(ctx, x.key, jetstream.LastRevision(x.rev))
		if err != nil && !isMismatch(err) {
			return n, err
		}
		if err == nil {
			n++
		}
		if (i+1)%s.batch == 0 {
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return n, nil
}
