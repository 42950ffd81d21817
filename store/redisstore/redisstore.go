package redisstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/nearcache"
)

// Defaults of Config.
const (
	DefaultAddr         = "127.0.0.1:6379"
	DefaultSentinelAddr = "127.0.0.1:26379"
	DefaultKeyPrefix    = "sk:"
	DefaultTimeout      = 2 * time.Second
	DefaultDialTimeout  = 5 * time.Second
)

// sentinelRefresh is how often a Sentinel client re-checks which server is
// the master, on top of reacting to +switch-master messages (rueidis
// recommends it: a missed message would otherwise pin the old master).
const sentinelRefresh = 5 * time.Second

// maxRetries bounds the index-then-write passes of Save and Touch when the
// record's user changes between them.
const maxRetries = 3

var (
	errClosed      = fmt.Errorf("redisstore: %w", store.ErrClosed)
	errZeroExpires = errors.New("redisstore: record has a zero Expires")
	errRace        = errors.New("redisstore: the record's user kept changing; gave up")
)

var (
	_ store.Store     = (*Store)(nil)
	_ store.Toucher   = (*Store)(nil)
	_ store.UserIndex = (*Store)(nil)
)

// Config configures a Store. The zero value connects to a standalone Redis
// at 127.0.0.1:6379; every zero field means its documented default. New
// copies the Config; changing it afterwards has no effect.
type Config struct {
	// Addrs are the host:port addresses to connect to. Empty means
	// ["127.0.0.1:6379"], or ["127.0.0.1:26379"] with SentinelMaster.
	//
	// Without SentinelMaster, one address is a standalone server or any
	// node of a cluster; several addresses must be nodes of one Redis
	// Cluster (seeds: the client discovers the others). Cluster mode is
	// detected, never configured: the client asks the first reachable
	// address for its slots and falls back to a standalone connection if
	// the server is not a cluster node.
	//
	// With SentinelMaster, Addrs are the Sentinels.
	Addrs []string

	// SentinelMaster, if not empty, selects Sentinel mode: the name of the
	// master set the Sentinels at Addrs monitor. The client follows
	// failovers.
	SentinelMaster string

	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (Username and Password are for the Redis servers).
	SentinelUsername string
	SentinelPassword string

	// Username and Password authenticate to the Redis servers (AUTH; an
	// empty Username means the default user).
	Username string
	Password string

	// DB is the database number (SELECT). Redis Cluster has only DB 0.
	DB int

	// KeyPrefix starts the name of every key the store writes, so that
	// several stores (or other data) can share a server. Empty means "sk:".
	// It must not contain '{' or '}', which would change the hash slot of
	// the keys in a cluster.
	KeyPrefix string

	// DialTimeout bounds each attempt to open a connection (TCP, TLS and
	// the RESP handshake). When Timeout is shorter, Timeout bounds it
	// instead, since the client may reopen a connection in the middle of a
	// call. Zero means 5 s; it must not be negative.
	DialTimeout time.Duration

	// Timeout bounds how long the store waits for Redis, on top of the
	// context passed to each call (the earlier deadline wins), so that a
	// hung server never holds a request for long. The client's connections
	// enforce it (rueidis ConnWriteTimeout), at no cost per call: a
	// connection whose replies stall for Timeout is closed and the calls
	// waiting on it fail with an error wrapping context.DeadlineExceeded,
	// after Timeout for a lone call, and within about 1.5 Timeout under
	// concurrent traffic, where the stall is found by a PING the client
	// sends after Timeout/4 without a reply. Zero means 2 s; a negative
	// value means no bound other than the context's and rueidis's default
	// ConnWriteTimeout (10 s). With NewFromClient, see there.
	Timeout time.Duration

	// TLS, if not nil, is the TLS configuration for the Redis servers and
	// the Sentinels. New clones it.
	TLS *tls.Config

	// NearCache, if not nil, gives the store a near cache (see NearCache
	// and the package doc). It needs Redis 6 or later (RESP3 and CLIENT
	// TRACKING) and New: NewFromClient refuses it. New copies it.
	NearCache *NearCache
}

// Store is a session store on Redis: standalone, Sentinel or Cluster.
// Create it with New or NewFromClient. All methods are safe for concurrent
// use.
type Store struct {
	c      rueidis.Client
	owned  bool // Close closes c
	prefix string
	// callTimeout, if > 0, bounds every call with a context deadline: for
	// NewFromClient, whose client's connection timeouts are the caller's.
	// With New the client enforces Config.Timeout, and it is 0.
	callTimeout time.Duration
	closed      atomic.Bool

	// uncancelled: a call whose context can be cancelled but has no
	// deadline is sent with context.WithoutCancel, bounded by the
	// connections' Timeout (see loneClient). Set by New for a positive
	// Timeout on a standalone server.
	uncancelled bool

	nc *near // nil: no near cache
	// rd, with a near cache on a standalone server, holds the connections
	// (see redirect.go); c is then nil.
	rd *redirect

	// The compare-and-set and touch scripts: with a near cache, the
	// versions that end with a read of the key, which re-arms its
	// tracking (see the package doc).
	save, touch *script
}

// New connects to Redis as cfg says, checks the connection with a PING
// bounded by ctx and cfg.Timeout, and returns the Store. It fails on an
// invalid cfg or when the server cannot be reached or authenticated; it
// never panics.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	// rueidis connects without a context: bound its dial and handshake by
	// what is left of ctx, so that New never outlives its caller's deadline.
	dialTimeout := cfg.DialTimeout
	if cfg.Timeout > 0 {
		dialTimeout = min(dialTimeout, cfg.Timeout)
	}
	if deadline, ok := ctx.Deadline(); ok {
		dialTimeout = max(min(dialTimeout, time.Until(deadline)), time.Millisecond)
	}
	opt := rueidis.ClientOption{
		InitAddress:  cfg.Addrs,
		Username:     cfg.Username,
		Password:     cfg.Password,
		SelectDB:     cfg.DB,
		TLSConfig:    cfg.TLS.Clone(),
		Dialer:       net.Dialer{Timeout: dialTimeout},
		DisableCache: true,
		// A read that meets a network error other than a timeout is
		// retried once, at once (it may have met a connection that broke
		// earlier and has not been redialled yet), and not again: with
		// Redis down, a request fails in microseconds (and a circuit
		// breaker in front, see package breaker, can open) instead of
		// retrying until the Timeout.
		RetryDelay: retryOnce,
	}
	if cfg.Timeout > 0 {
		// The bound on every call, kept by the connections rather than by
		// a context (and its timer) per call. rueidis PINGs a connection
		// that has had no reply for Dialer.KeepAlive, and closes it when
		// the PING gets no answer within ConnWriteTimeout.
		opt.ConnWriteTimeout = cfg.Timeout
		opt.Dialer.KeepAlive = cfg.Timeout / 4
	}
	if cfg.SentinelMaster != "" {
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet:               cfg.SentinelMaster,
			Username:                cfg.SentinelUsername,
			Password:                cfg.SentinelPassword,
			Dialer:                  net.Dialer{Timeout: cfg.DialTimeout},
			TLSConfig:               cfg.TLS.Clone(),
			TopologyRefreshInterval: sentinelRefresh,
		}
	}
	var nc *near
	if cfg.NearCache != nil {
		if nc, err = newNear(cfg.NearCache, cfg.KeyPrefix); err != nil {
			return nil, err
		}
		// Tracking of every read (OPTOUT), except of the changes this
		// connection makes itself (NOLOOP), which the store applies to its
		// cache as it makes them; one connection per server, since a
		// change made on a second connection would come back as an
		// invalidation of what the first one cached.
		opt.DisableCache = false
		opt.ClientTrackingOptions = []string{"OPTOUT", "NOLOOP"}
		opt.OnInvalidations = nc.onInvalidations
		opt.PipelineMultiplex = -1
		opt.CacheSizeEachConn = 1 // rueidis's own cache (DoCache) is never used
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: connect: %w", err)
	}
	if nc != nil && cfg.SentinelMaster == "" && len(cfg.Addrs) == 1 {
		s, err := newRedirected(ctx, cfg, opt, nc)
		if s != nil || err != nil {
			return s, err
		}
		// A cluster node: the tracking stays on the data connection.
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		if nc != nil && errors.Is(err, rueidis.ErrNoCache) {
			return nil, fmt.Errorf("redisstore: the near cache needs Redis 6 or later with RESP3 (CLIENT TRACKING), which %s does not offer: %w", describe(cfg), err)
		}
		return nil, fmt.Errorf("redisstore: connect to %s: %w", describe(cfg), err)
	}
	if nc == nil && c.Mode() == rueidis.ClientModeStandalone {
		c = newLoneClient(c)
	}
	s := newStore(c, cfg.KeyPrefix, nc)
	s.owned = true
	_, lone := c.(*loneClient)
	s.uncancelled = lone && cfg.Timeout > 0
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		return nil, s.fail("ping "+describe(cfg), err)
	}
	if nc != nil {
		every := cmp.Or(cfg.NearCache.ProbeInterval, DefaultProbeInterval)
		if every > 0 {
			nc.wg.Add(1)
			go s.probeLoop(every)
		}
	}
	return s, nil
}

// newRedirected returns a Store with the near cache nc in redirect mode
// (see redirect.go), or nil and no error if the server is a cluster node.
// opt is the near cache's option set, whose tracking fields it replaces.
func newRedirected(ctx context.Context, cfg Config, opt rueidis.ClientOption, nc *near) (*Store, error) {
	opt.ClientTrackingOptions, opt.OnInvalidations = nil, nil
	grace := cfg.Timeout
	if grace <= 0 {
		grace = 10 * time.Second // rueidis's default ConnWriteTimeout
	}
	rd, err := newRedirect(ctx, opt, nc, grace)
	if err != nil {
		if errors.Is(err, rueidis.ErrNoCache) {
			return nil, fmt.Errorf("redisstore: the near cache needs Redis 6 or later with RESP3 (CLIENT TRACKING), which %s does not offer: %w", describe(cfg), err)
		}
		return nil, fmt.Errorf("redisstore: connect to %s: %w", describe(cfg), err)
	}
	standalone, err := isStandalone(ctx, rd.data())
	if err != nil || !standalone {
		rd.close()
		if err != nil {
			return nil, fmt.Errorf("redisstore: connect to %s: %w", describe(cfg), err)
		}
		return nil, nil
	}
	s := newStore(nil, cfg.KeyPrefix, nc)
	s.rd, s.owned = rd, true
	s.uncancelled = cfg.Timeout > 0
	if every := cmp.Or(cfg.NearCache.ProbeInterval, DefaultProbeInterval); every > 0 {
		nc.wg.Add(1)
		go s.probeLoop(every)
	}
	return s, nil
}

// client returns the client the store's calls go to: with a near cache in
// redirect mode, the current data client, which a broken invalidation
// connection replaces.
func (s *Store) client() rueidis.Client {
	if s.rd != nil {
		return s.rd.data()
	}
	return s.c
}

// newStore returns a Store on c, with the near cache nc if not nil.
func newStore(c rueidis.Client, prefix string, nc *near) *Store {
	s := &Store{c: c, prefix: prefix, nc: nc, save: luaSave, touch: luaTouch}
	if nc != nil {
		s.save, s.touch = luaSaveTracked, luaTouchTracked
	}
	return s
}

// NewFromClient returns a Store that uses c, a client the caller made and
// owns: Close does not close it. Of cfg only KeyPrefix and Timeout are used
// (with their defaults); the connection fields must be zero. Since the
// store cannot set c's connection timeouts, it applies Timeout to every
// call with a context deadline of its own (which costs a timer per call; a
// negative Timeout leaves the bounds to the caller's contexts and c's
// ConnWriteTimeout). Under concurrent calls to a server that stopped
// answering, a call that waits for another call's reconnection can take
// up to about a second more than Timeout (rueidis waits that long before
// closing a connection whose handshake ran out of time). c should have
// client-side caching disabled, since the store never uses it.
func NewFromClient(c rueidis.Client, cfg Config) (*Store, error) {
	if c == nil {
		return nil, errors.New("redisstore: NewFromClient with a nil client")
	}
	if len(cfg.Addrs) > 0 || cfg.SentinelMaster != "" || cfg.SentinelUsername != "" || cfg.SentinelPassword != "" ||
		cfg.Username != "" || cfg.Password != "" || cfg.DB != 0 || cfg.DialTimeout != 0 || cfg.TLS != nil {
		return nil, errors.New("redisstore: NewFromClient uses only KeyPrefix and Timeout of Config; configure the connection on the client")
	}
	if cfg.NearCache != nil {
		return nil, errors.New("redisstore: a near cache needs New: the store must own its connections' tracking mode and invalidation callback")
	}
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	s := newStore(c, cfg.KeyPrefix, nil)
	s.callTimeout = max(cfg.Timeout, 0)
	return s, nil
}

// normalized returns a copy of cfg with defaults filled in, or an error.
func (cfg Config) normalized() (Config, error) {
	cfg.Addrs = slices.Clone(cfg.Addrs)
	if len(cfg.Addrs) == 0 {
		if cfg.SentinelMaster != "" {
			cfg.Addrs = []string{DefaultSentinelAddr}
		} else {
			cfg.Addrs = []string{DefaultAddr}
		}
	}
	for _, a := range cfg.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return cfg, fmt.Errorf("redisstore: address %q is not host:port: %w", a, err)
		}
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		return cfg, fmt.Errorf("redisstore: KeyPrefix %q contains a brace; it would change the keys' hash slots", cfg.KeyPrefix)
	}
	if cfg.DB < 0 {
		return cfg, fmt.Errorf("redisstore: DB is %d, must not be negative", cfg.DB)
	}
	if cfg.DialTimeout < 0 {
		return cfg, fmt.Errorf("redisstore: DialTimeout is %v, must not be negative", cfg.DialTimeout)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return cfg, nil
}

// describe names the servers of cfg for an error message, without secrets.
func describe(cfg Config) string {
	if cfg.SentinelMaster != "" {
		return fmt.Sprintf("master %q via sentinels %s", cfg.SentinelMaster, strings.Join(cfg.Addrs, ","))
	}
	return strings.Join(cfg.Addrs, ",")
}

// retryOnce lets rueidis retry a read-only command once, immediately,
// unless it timed out (waiting for a reply, or for a new connection's
// handshake): a server that did not answer within Timeout gets no second
// Timeout.
func retryOnce(attempts int, _ rueidis.Completed, err error) time.Duration {
	if attempts <= 1 && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		return 0
	}
	return -1
}

func noCancel() {}

// opCtx bounds ctx by the store's callTimeout, if any.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.uncancelled {
		// rueidis writes and reads a connection in the caller's goroutine
		// only for a context that has a deadline or cannot be cancelled;
		// a request's context has neither. The connection's timeout
		// (Config.Timeout) bounds the call instead of the cancellation.
		if _, ok := ctx.Deadline(); !ok && ctx.Done() != nil && ctx.Err() == nil {
			return context.WithoutCancel(ctx), noCancel
		}
		return ctx, noCancel
	}
	if s.callTimeout <= 0 {
		return ctx, noCancel
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.callTimeout {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, s.callTimeout)
}

// fail wraps err from operation op. After Close, the client's "closing"
// error becomes store.ErrClosed. A connection's timeout (Config.Timeout,
// which the client reports as os.ErrDeadlineExceeded) also wraps
// context.DeadlineExceeded, as the caller's own deadline would.
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() && errors.Is(err, rueidis.ErrClosing) {
		return errClosed
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("redisstore: %s: %w (%w)", op, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// ---- Key names ----

// dataKey is the name of the string that holds the record under key:
// <prefix>s:{<tag>}. The braces make tag the cluster hash tag.
func (s *Store) dataKey(key string) string {
	return s.prefix + "s:{" + tag(key) + "}"
}

// indexKey is the name of the ZSET that indexes userID's records:
// <prefix>u:{<base64url(SHA-256(userID))>}. User IDs never appear in key
// names, and their length does not matter.
func (s *Store) indexKey(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return s.prefix + "u:{" + base64.RawURLEncoding.EncodeToString(sum[:]) + "}"
}

// ScanKeys calls fn with the key of every record, in no order, until fn
// returns false, with SCAN over the records' names (never KEYS): on a
// standalone server or a Sentinel master; a Redis Cluster's nodes are not
// walked, and it returns store.ErrUnsupported there. Records saved or
// deleted meanwhile may or may not be seen. Each SCAN call is bounded as
// other calls are; the whole walk only by ctx.
func (s *Store) ScanKeys(ctx context.Context, fn func(key string) bool) error {
	if s.closed.Load() {
		return errClosed
	}
	if len(s.client().Nodes()) > 1 {
		return fmt.Errorf("redisstore: scan keys of a cluster: %w", store.ErrUnsupported)
	}
	match := s.prefix + "s:{*}"
	var cursor uint64
	for {
		cctx, cancel := s.opCtx(ctx)
		c := s.client()
		e, err := c.Do(cctx, c.B().Scan().Cursor(cursor).Match(match).Count(1000).Build()).AsScanEntry()
		cancel()
		if err != nil {
			return s.fail("scan keys", err)
		}
		for _, name := range e.Elements {
			key, ok := untag(strings.TrimSuffix(strings.TrimPrefix(name, s.prefix+"s:{"), "}"))
			if ok && !fn(key) {
				return nil
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}

// untag is tag's inverse; ok is false for a name tag never makes.
func untag(t string) (string, bool) {
	if !strings.HasPrefix(t, "~") {
		return t, isPlainTag(t)
	}
	b, err := base64.RawURLEncoding.DecodeString(t[1:])
	if err != nil || len(b) == 0 {
		return "", false
	}
	return string(b), true
}

// tag returns the form of key used between the braces of its record name: key
// itself when it is printable ASCII without spaces or braces and does not
// start with '~'; otherwise '~' followed by key in unpadded base64url. The
// two forms cannot collide (only the second starts with '~'), and base64 is
// one-to-one, so distinct keys always get distinct names.
func tag(key string) string {
	if isPlainTag(key) {
		return key
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(key))
}

func isPlainTag(key string) bool {
	if key == "" || key[0] == '~' {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// ---- Versions and times ----

// maxVersion bounds the versions the store issues: a new record starts at a
// random version in [1, 2^62] and each replace adds one, so versions stay
// below 2^63 for any realistic number of writes.
const maxVersion = math.MaxInt64

// newVersion returns the first version of a new record: random, so that a
// key deleted and created again does not repeat a version of its earlier
// life (see doc.go, "Versions").
func newVersion() uint64 { return rand.Uint64N(1<<62) + 1 }

// millis returns t in Unix ms, clamped to what the record header holds.
func millis(t time.Time) int64 { return clampMillis(t.UnixMilli()) }

// horizon returns how long, in Unix ms, a user index entry is made to
// cover a record expiring at exp (in Unix ms): twice the record's
// remaining lifetime (by the local clock), so that the record's next
// touches and saves within that span need no index write. It is never
// before exp, whatever the clock, and never past maxMillis.
func horizon(exp int64) int64 {
	if rest := exp - time.Now().UnixMilli(); rest > 0 {
		exp += rest
	}
	return min(exp, maxMillis)
}

// ---- Store ----

// Load returns the record under key with one GET.
func (s *Store) Load(ctx context.Context, key string) (store.Record, error) {
	if err := store.CheckKey(key); err != nil {
		return store.Record{}, err
	}
	if s.closed.Load() {
		return store.Record{}, errClosed
	}
	dk := s.dataKey(key)
	var tok nearcache.Token
	if s.nc != nil {
		if s.rd == nil || s.rd.usable() {
			if rec, ok := s.nc.c.Get(dk); ok {
				return rec, nil
			}
		}
		tok = s.nc.c.Begin(dk)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	c := s.client()
	rec, ok, err := readRecord(c.Do(ctx, c.B().Get().Key(dk).Build()))
	if err != nil {
		return store.Record{}, s.fail("load", err)
	}
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	if s.nc != nil {
		s.nc.c.Insert(dk, rec, tok)
	}
	return rec, nil
}

func (s *Store) get(key string) rueidis.Completed {
	return s.client().B().Get().Key(s.dataKey(key)).Build()
}

// readRecord decodes the reply of get. ok is false if there is no record.
func readRecord(r rueidis.RedisResult) (rec store.Record, ok bool, err error) {
	b, err := r.AsBytes()
	if rueidis.IsRedisNil(err) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	if rec, err = parseRecord(b); err != nil {
		return rec, false, err
	}
	return rec, true, nil
}

// Save writes rec under key if the stored version is rec.Version (0: no
// live record). A new record (Version 0) is one SET NX, which needs no
// script; a new bound record first raises its user's index entry (two
// calls). A replaced record is one script call (EVALSHA, the
// compare-and-set) when unbound, or bound to an unchanged user whose index
// entry already covers the new expiry; three calls when it changes user or
// outgrows its index horizon. Expires is kept to the millisecond.
func (s *Store) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	cached := false // with a near cache: the saved record is in it
	if err := store.CheckKey(key); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, errClosed
	}
	if rec.Expires.IsZero() {
		return 0, errZeroExpires
	}
	var next uint64
	switch {
	case rec.Version == 0:
		next = newVersion()
	case rec.Version >= maxVersion:
		return 0, store.ErrConflict // never issued
	default:
		next = rec.Version + 1
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()

	// The script's arguments, in one allocation: the new record (its
	// horizon 0 for now), the expected version, the expiry.
	exp := millis(rec.Expires)
	n := recordLen(rec.UserID, rec.Data)
	buf := make([]byte, 0, n+versionDigits+msDigits)
	buf = appendRecord(buf, next, exp, 0, rec.UserID, rec.Data)
	buf = appendPadded(buf, rec.Version, versionDigits)
	buf = strconv.AppendInt(buf, exp, 10)
	args := []string{
		rueidis.BinaryString(buf[n : n+versionDigits]), // unused by a new record's SET NX
		rueidis.BinaryString(buf[:n]),                  // aliases buf: the horizon is set in place below
		rueidis.BinaryString(buf[n+versionDigits:]),
		rec.UserID,
		"0",
	}
	// A new bound record cannot be covered by an index entry yet: raise the
	// index first instead of asking the script.
	indexFirst := rec.Version == 0 && rec.UserID != ""
	dk := s.dataKey(key)
	var tok nearcache.Token
	if s.nc != nil {
		// Reads of key in flight, and this node's cached copy, predate
		// this write: none of them may be served after it. A new record
		// is not cached (SET NX does not arm its tracking); its first
		// Load is.
		s.nc.c.Invalidate(dk)
		tok = s.nc.c.Begin(dk)
		defer func() {
			if !cached {
				s.nc.c.Invalidate(dk)
			}
		}()
	}
	for range maxRetries {
		if indexFirst {
			h := horizon(exp)
			if err := s.indexAdd(ctx, rec.UserID, key, h); err != nil {
				return 0, s.fail("save", err)
			}
			// The previous call, if any, has completed: its arguments
			// may change.
			putPadded(buf[offHorizon:offUserLen], uint64(h))
			args[4] = strconv.FormatInt(h, 10)
		}
		if rec.Version == 0 {
			// "Only if there is no record" is SET's own NX: a native
			// command costs Redis a fraction of a script call. A bound
			// record's index entry, raised above, covers exp.
			c := s.client()
			err := c.Do(ctx, c.B().Set().Key(dk).Value(args[1]).Nx().PxatMillisecondsTimestamp(exp).Build()).Error()
			if rueidis.IsRedisNil(err) {
				return 0, store.ErrConflict
			}
			if err != nil {
				return 0, s.fail("save", err)
			}
			return next, nil
		}
		r, err := s.save.exec(ctx, s.client(), dk, args...).AsInt64()
		if err != nil {
			return 0, s.fail("save", err)
		}
		switch r {
		case 1:
			if s.nc != nil {
				cached = s.nc.c.Insert(dk, store.Record{Data: rec.Data, Version: next,
					Expires: time.UnixMilli(exp), UserID: rec.UserID}, tok)
			}
			return next, nil
		case 0:
			return 0, store.ErrConflict
		case 2:
			indexFirst = true
		default:
			return 0, s.fail("save", fmt.Errorf("script returned %d", r))
		}
	}
	return 0, s.fail("save", errRace)
}

// indexAdd raises key's entry in userID's index to horizon h (Unix ms).
func (s *Store) indexAdd(ctx context.Context, userID, key string, h int64) error {
	return luaIndexAdd.exec(ctx, s.client(), s.indexKey(userID), key, strconv.FormatInt(h, 10)).Error()
}

// Delete removes the record under key: one UNLINK when version is 0,
// otherwise one compare-and-delete script call. The user index keeps the
// key until its horizon passes; ListUser and DeleteUser skip it.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if s.nc != nil {
		// This connection's own deletes are not reported back to it
		// (NOLOOP): drop the key before, and after in case a read in
		// flight raced.
		dk := s.dataKey(key)
		s.nc.c.Invalidate(dk)
		defer s.nc.c.Invalidate(dk)
	}
	if version == 0 {
		c := s.client()
		if err := c.Do(ctx, c.B().Unlink().Key(s.dataKey(key)).Build()).Error(); err != nil {
			return s.fail("delete", err)
		}
		return nil
	}
	if version >= maxVersion {
		return store.ErrConflict // never issued
	}
	var b [versionDigits]byte
	putPadded(b[:], version)
	r, err := luaDeleteVersion.exec(ctx, s.client(), s.dataKey(key), string(b[:])).AsInt64()
	if err != nil {
		return s.fail("delete", err)
	}
	if r != 1 {
		return store.ErrConflict
	}
	return nil
}

// Touch moves the expiry of the live record under key without rewriting
// its data, only if version is the one stored (any version if 0): one
// script call, or three when the record is bound to a user and the new
// expiry is past its index horizon (the index entry is raised first).
func (s *Store) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	if expires.IsZero() {
		return errZeroExpires
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if version >= maxVersion {
		return store.ErrConflict // never issued
	}
	dk := s.dataKey(key)
	exp := millis(expires)
	var b [msDigits + versionDigits + msDigits]byte
	putPadded(b[:msDigits], uint64(exp))
	want := "0"
	if version != 0 {
		putPadded(b[msDigits:msDigits+versionDigits], version)
		want = string(b[msDigits : msDigits+versionDigits])
	}
	args := []string{string(b[:msDigits]), want, "", "0", strconv.FormatInt(exp, 10)}
	var (
		tok    nearcache.Token
		copied store.Record // the cached record, to keep cached with its new expiry
		recopy bool         // copied is the version touched
		kept   bool         // copied, with its new expiry, is cached
	)
	if s.nc != nil {
		copied, recopy = s.nc.c.Peek(dk)
		recopy = recopy && version != 0 && copied.Version == version
		s.nc.c.Invalidate(dk)
		tok = s.nc.c.Begin(dk)
		defer func() {
			if !kept {
				s.nc.c.Invalidate(dk)
			}
		}()
	}
	for range maxRetries {
		msg, err := s.touch.exec(ctx, s.client(), dk, args...).ToMessage()
		if err != nil {
			return s.fail("touch", err)
		}
		if msg.IsString() {
			user, _ := msg.ToString()
			h := horizon(exp)
			if err := s.indexAdd(ctx, user, key, h); err != nil {
				return s.fail("touch", err)
			}
			putPadded(b[msDigits+versionDigits:], uint64(h))
			args[2], args[3] = user, string(b[msDigits+versionDigits:])
			continue
		}
		r, err := msg.AsInt64()
		if err != nil {
			return s.fail("touch", err)
		}
		switch r {
		case 1:
			if recopy {
				copied.Expires = time.UnixMilli(exp)
				kept = s.nc.c.Insert(dk, copied, tok)
			}
			return nil
		case 0:
			return store.ErrNotFound
		case 3:
			return store.ErrConflict
		}
		return s.fail("touch", fmt.Errorf("script returned %d", r))
	}
	// Saves rebinding the record to other users kept racing this touch;
	// each of them rewrote the expiry, so an unconditional touch that
	// meets them has nothing left to do.
	if version == 0 {
		return nil
	}
	return store.ErrConflict
}

// ListUser returns the live records bound to userID: one script call that
// reads the user's index by the server's clock, then one pipelined GET
// per indexed key. Keys whose record is gone or now bound to another user
// are skipped.
func (s *Store) ListUser(ctx context.Context, userID string) ([]store.Entry, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if userID == "" {
		return nil, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	keys, err := s.indexed(ctx, userID)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = s.get(k)
	}
	var entries []store.Entry
	for i, r := range s.client().DoMulti(ctx, cmds...) {
		rec, ok, err := readRecord(r)
		if err != nil {
			return nil, s.fail("list user", err)
		}
		if ok && rec.UserID == userID {
			entries = append(entries, store.Entry{Key: keys[i], Record: rec})
		}
	}
	return entries, nil
}

// indexed returns the keys in userID's index whose horizon has not passed.
func (s *Store) indexed(ctx context.Context, userID string) ([]string, error) {
	keys, err := luaIndexList.exec(ctx, s.client(), s.indexKey(userID)).AsStrSlice()
	if err != nil {
		return nil, s.fail("read user index", err)
	}
	return keys, nil
}

// DeleteUser deletes every record bound to userID and returns how many it
// deleted: one script call to read the index, then one pipelined
// conditional delete per indexed key (each deletes the record only if it
// is still bound to userID). On an error the count is of the deletions
// confirmed so far; others may have happened.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	if userID == "" {
		return 0, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	keys, err := s.indexed(ctx, userID)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	dks := make([]string, len(keys))
	for i, k := range keys {
		dks[i] = s.dataKey(k)
	}
	if s.nc != nil {
		for _, dk := range dks {
			s.nc.c.Invalidate(dk)
		}
		defer func() {
			for _, dk := range dks {
				s.nc.c.Invalidate(dk)
			}
		}()
	}
	n := 0
	var first error
	for _, r := range luaDeleteUser.execEach(ctx, s.client(), dks, userID) {
		d, err := r.AsInt64()
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		n += int(d)
	}
	if first != nil {
		return n, s.fail("delete user", first)
	}
	return n, nil
}

// Close marks the store closed and, unless it was made by NewFromClient,
// closes its client, waiting for calls in flight. Every later call returns
// an error wrapping store.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.nc != nil {
		close(s.nc.stop)
		s.nc.wg.Wait()
	}
	if s.rd != nil {
		s.rd.close()
	} else if s.owned {
		s.c.Close()
	}
	return nil
}
