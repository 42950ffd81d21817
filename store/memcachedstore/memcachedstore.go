package memcachedstore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/sessionkit/sessionkit/store"
	"github.com/sessionkit/sessionkit/store/breaker"
)

// Defaults of Config.
const (
	DefaultAddr         = "127.0.0.1:11211"
	DefaultKeyPrefix    = "sk:"
	DefaultTimeout      = time.Second
	DefaultMaxIdleConns = 64
)

const (
	// maxRetries bounds the read-then-compare-and-set passes of one write
	// that meets other writers of the same item.
	maxRetries = 8
	// maxIndexRetries bounds those of a user index, which every login of
	// the user writes.
	maxIndexRetries = 32
	// itemOverhead is what Memcached counts against its item size limit
	// on top of the key and the value (its item header, the CAS value, the
	// line ends): about 60 bytes, measured on memcached 1.6; 128 leaves
	// room.
	itemOverhead = 128
	// maxItemKey is Memcached's limit on an item key.
	maxItemKey = 250
	// maxPlainKey is the longest store key used as it is in an item key;
	// longer ones are hashed (see tag).
	maxPlainKey = 200
	// maxPrefix bounds Config.KeyPrefix, so that item keys stay within
	// maxItemKey.
	maxPrefix = maxItemKey - maxPlainKey - 2
	// maxRelative is the longest expiry Memcached takes as relative
	// seconds; longer ones are Unix times.
	maxRelative = 30 * 24 * 60 * 60
)

var (
	errClosed      = fmt.Errorf("memcachedstore: %w", store.ErrClosed)
	errZeroExpires = errors.New("memcachedstore: record has a zero Expires")
	// errMiss and errExists are Memcached's answers "no such item" and
	// "not stored: it exists, or changed since read", as the per-server
	// breakers see them: contract answers, not failures.
	errMiss   = fmt.Errorf("memcachedstore: %w", store.ErrNotFound)
	errExists = fmt.Errorf("memcachedstore: %w", store.ErrConflict)
)

var (
	_ store.Store     = (*Store)(nil)
	_ store.Toucher   = (*Store)(nil)
	_ store.UserIndex = (*Store)(nil)
)

// Config configures a Store. The zero value uses one Memcached at
// 127.0.0.1:11211; every zero field means its documented default. New
// copies the Config; changing it afterwards has no effect.
type Config struct {
	// Servers are the host:port addresses of the Memcached servers; keys
	// are spread over them by rendezvous hashing on these names (see
	// doc.go), so every process sharing the sessions must list the same
	// names, in any order. Empty means ["127.0.0.1:11211"].
	Servers []string

	// KeyPrefix starts the key of every item the store writes, so that
	// several stores (or other data) can share the servers. Empty means
	// "sk:". At most 48 bytes of printable ASCII without spaces.
	KeyPrefix string

	// Timeout bounds each network read, write and dial to a server, on
	// top of the context, which is checked before each call (gomemcache
	// takes no context). Zero means 1 s; it must not be negative.
	Timeout time.Duration

	// MaxIdleConns is how many idle connections the client keeps per
	// server. Set it above the number of concurrent requests a process
	// serves, or connections are opened and closed per call. Zero means
	// 64; it must not be negative.
	MaxIdleConns int

	// MaxItemSize is the servers' item size limit (memcached -I) in
	// bytes. Zero means: ask each server at New (stats settings) and take
	// the smallest. A record whose stored form would not fit is refused
	// with an error wrapping store.ErrTooLarge before anything is sent.
	MaxItemSize int

	// Breaker configures the circuit breaker of each server: a server that
	// fails Failures calls in a row is not asked for OpenFor, and the
	// calls for its keys fail at once with an error wrapping
	// store.ErrUnavailable, while the other servers' keys work. The zero
	// value means the breaker package's defaults. OnStateChange, if set,
	// is called for every server's breaker.
	Breaker breaker.Config

	// Now is the clock records expire by (see doc.go, "Expiry"); default
	// time.Now.
	Now func() time.Time
}

// Store is a session store on one or more Memcached servers. Create it
// with New. All methods are safe for concurrent use.
type Store struct {
	c       *memcache.Client
	sel     *servers
	brk     []*breaker.Breaker
	prefix  string
	maxVal  int // the longest item value the servers take
	timeout time.Duration
	now     func() time.Time
	closed  atomic.Bool
}

// New checks cfg, asks every server for its item size limit (unless
// cfg.MaxItemSize is set) within ctx and cfg.Timeout, and returns the
// Store. It fails on an invalid cfg or when a server does not answer; it
// never panics.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	sel := newServers(cfg.Servers)
	limit := cfg.MaxItemSize
	if limit == 0 {
		for _, a := range cfg.Servers {
			n, err := itemSizeMax(ctx, a, cfg.Timeout)
			if err != nil {
				return nil, fmt.Errorf("memcachedstore: ask %s for its item size limit: %w", a, err)
			}
			if limit == 0 || n < limit {
				limit = n
			}
		}
	}
	if limit < 4<<10 {
		return nil, fmt.Errorf("memcachedstore: item size limit of %d bytes; want at least 4 KiB", limit)
	}
	s := &Store{
		c:       memcache.NewFromSelector(sel),
		sel:     sel,
		prefix:  cfg.KeyPrefix,
		maxVal:  limit - itemOverhead - maxItemKey,
		timeout: cfg.Timeout,
		now:     cfg.Now,
	}
	s.c.Timeout = cfg.Timeout
	s.c.MaxIdleConns = cfg.MaxIdleConns
	for range cfg.Servers {
		b, err := breaker.New(cfg.Breaker)
		if err != nil {
			return nil, fmt.Errorf("memcachedstore: %w", err)
		}
		s.brk = append(s.brk, b)
	}
	return s, nil
}

// normalized returns a copy of cfg with defaults filled in, or an error.
func (cfg Config) normalized() (Config, error) {
	cfg.Servers = slices.Clone(cfg.Servers)
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{DefaultAddr}
	}
	seen := make(map[string]bool)
	for _, a := range cfg.Servers {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return cfg, fmt.Errorf("memcachedstore: server %q is not host:port: %w", a, err)
		}
		if seen[a] {
			return cfg, fmt.Errorf("memcachedstore: server %q listed twice", a)
		}
		seen[a] = true
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if len(cfg.KeyPrefix) > maxPrefix || !printable(cfg.KeyPrefix) {
		return cfg, fmt.Errorf("memcachedstore: KeyPrefix %q: want at most %d bytes of printable ASCII without spaces", cfg.KeyPrefix, maxPrefix)
	}
	switch {
	case cfg.Timeout < 0:
		return cfg, fmt.Errorf("memcachedstore: Timeout is %v, must not be negative", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.MaxIdleConns < 0:
		return cfg, fmt.Errorf("memcachedstore: MaxIdleConns is %d, must not be negative", cfg.MaxIdleConns)
	case cfg.MaxIdleConns == 0:
		cfg.MaxIdleConns = DefaultMaxIdleConns
	}
	if cfg.MaxItemSize < 0 {
		return cfg, fmt.Errorf("memcachedstore: MaxItemSize is %d, must not be negative", cfg.MaxItemSize)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// itemSizeMax asks the server at addr for its item_size_max (stats
// settings).
func itemSizeMax(ctx context.Context, addr string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("stats settings\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			break
		}
		if v, ok := strings.CutPrefix(line, "STAT item_size_max "); ok {
			if n, err = strconv.Atoi(v); err != nil {
				return 0, fmt.Errorf("item_size_max %q: %w", v, err)
			}
		}
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "SERVER_ERROR") || strings.HasPrefix(line, "CLIENT_ERROR") {
			return 0, fmt.Errorf("stats settings: %s", line)
		}
	}
	if n <= 0 {
		return 0, errors.New("stats settings gave no item_size_max")
	}
	return n, nil
}

// MaxData returns the longest Data an unbound record may have; a bound
// record's limit is shorter by the length of its user ID. Longer records
// are refused with an error wrapping store.ErrTooLarge.
func (s *Store) MaxData() int { return s.maxVal - recordHeader - 1 }

// ---- Keys ----

// printable reports whether k is printable ASCII without spaces: what
// Memcached's text protocol allows in a key.
func printable(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// itemKey is the Memcached key of the record under key: <prefix>s:<tag>.
func (s *Store) itemKey(key string) string { return s.prefix + "s:" + tag(key) }

// indexKey is the Memcached key of userID's index:
// <prefix>u:<base64url(SHA-256(userID))>. User IDs never appear in keys.
func (s *Store) indexKey(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return s.prefix + "u:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// tag is key itself when it is at most 200 bytes of printable ASCII
// without spaces and does not start with '~' (the session Manager's keys,
// 43-byte base64url hashes, always are); otherwise '~' and the base64url
// SHA-256 of key. Only the second form starts with '~', so the forms do
// not collide, and neither do two hashed keys short of a SHA-256
// collision.
func tag(key string) string {
	if len(key) <= maxPlainKey && key[0] != '~' && printable(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "~" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// ---- Calls ----

// call runs fn, one request to the server of item key ik, through that
// server's breaker, after checking ctx. Memcached's "no such item" and
// "exists" come back as errMiss and errExists; an item too large as an
// error wrapping store.ErrTooLarge; anything else is the server failing.
func (s *Store) call(ctx context.Context, ik string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.brk[s.sel.pick(ik)].Do(ctx, func(context.Context) error {
		err := translate(fn())
		if err != nil && !errors.Is(err, errMiss) && !errors.Is(err, errExists) && !errors.Is(err, store.ErrTooLarge) {
			// The connection is closed, and so are the idle ones: after
			// a server restarts, every pooled connection to it is dead,
			// and each would fail one more call (the breaker's probe,
			// say) before the store reached the new process. gomemcache
			// can only close them all, every server's: they are
			// reopened as needed.
			s.c.Close()
		}
		return err
	})
}

func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, memcache.ErrCacheMiss):
		return errMiss
	case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCASConflict):
		return errExists
	case strings.Contains(err.Error(), "SERVER_ERROR object too large"):
		return fmt.Errorf("%w: the server refused it: %v", store.ErrTooLarge, err)
	}
	return err
}

// fail wraps err from operation op on item key ik.
func (s *Store) fail(op, ik string, err error) error {
	return fmt.Errorf("memcachedstore: %s on %s: %w", op, s.sel.names[s.sel.pick(ik)], err)
}

// get reads item ik (gets: with its CAS value). A missing item is errMiss.
func (s *Store) get(ctx context.Context, ik string) (it *memcache.Item, err error) {
	err = s.call(ctx, ik, func() error {
		it, err = s.c.Get(ik)
		return err
	})
	return it, err
}

// tooLarge returns an error wrapping store.ErrTooLarge if a value of n
// bytes does not fit in an item.
func (s *Store) tooLarge(n int) error {
	if n <= s.maxVal {
		return nil
	}
	return fmt.Errorf("memcachedstore: %w: a %d-byte item value, where the servers take at most %d (their item size limit, memcached -I, less %d for the key and the item header)",
		store.ErrTooLarge, n, s.maxVal, itemOverhead+maxItemKey)
}

// exptime is the Memcached expiration of an item whose record expires at
// exp (Unix ms): whole seconds from now, rounded up, plus one, since
// Memcached's clock ticks once a second and may expire an item up to a
// second early; a Unix time beyond 30 days. Memcached drops the item at
// most two seconds after exp; until then Load hides it by its own clock.
// An exp already passed gives -1: the item is gone at once.
func (s *Store) exptime(exp int64) int32 {
	rest := exp - s.now().UnixMilli()
	if rest <= 0 {
		return -1
	}
	secs := (rest+999)/1000 + 1
	if secs <= maxRelative {
		return int32(secs)
	}
	return int32(min((exp+999)/1000+1, 1<<31-1))
}

// live reports whether r has not expired by the store's clock.
func (s *Store) live(r record) bool { return r.expires > s.now().UnixMilli() }

// newVersion returns the first version of a new record: random, so that a
// key deleted and created again does not repeat a version of its earlier
// life.
func newVersion() uint64 { return rand.Uint64N(1<<62) + 1 }

// horizon returns how far, in Unix ms, an index entry is made to cover a
// record expiring at exp: twice the record's remaining lifetime, so that
// its next saves and touches within that span need no index write.
func (s *Store) horizon(exp int64) int64 {
	if rest := exp - s.now().UnixMilli(); rest > 0 {
		return exp + rest
	}
	return exp
}

func (s *Store) check(key string) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// ---- Store ----

// Load returns the record under key: one gets.
func (s *Store) Load(ctx context.Context, key string) (store.Record, error) {
	if err := s.check(key); err != nil {
		return store.Record{}, err
	}
	ik := s.itemKey(key)
	it, err := s.get(ctx, ik)
	if errors.Is(err, errMiss) {
		return store.Record{}, store.ErrNotFound
	}
	if err != nil {
		return store.Record{}, s.fail("load", ik, err)
	}
	r, err := parseRecord(it.Value)
	if err != nil {
		return store.Record{}, s.fail("load", ik, err)
	}
	if !s.live(r) {
		return store.Record{}, store.ErrNotFound
	}
	return r.toRecord(), nil
}

func (r record) toRecord() store.Record {
	return store.Record{Data: r.data, Version: r.version, Expires: time.UnixMilli(r.expires), UserID: r.user}
}

// Save writes rec under key if the stored version is rec.Version (0: no
// live record). A new record is one add (after an index write if it is
// bound to a user); a replace is gets, then cas with the CAS value the
// gets returned, after checking the version the record holds.
func (s *Store) Save(ctx context.Context, key string, rec store.Record) (uint64, error) {
	if err := s.check(key); err != nil {
		return 0, err
	}
	if rec.Expires.IsZero() {
		return 0, errZeroExpires
	}
	if rec.Version >= maxVersion {
		return 0, store.ErrConflict // never issued
	}
	if err := s.tooLarge(recordLen(rec.UserID, rec.Data)); err != nil {
		return 0, err
	}
	ik := s.itemKey(key)
	next := record{version: rec.Version + 1, expires: millis(rec.Expires), user: rec.UserID, data: rec.Data}
	if rec.Version == 0 {
		next.version = newVersion()
		return next.version, s.create(ctx, key, ik, next)
	}
	for range maxRetries {
		it, err := s.get(ctx, ik)
		if errors.Is(err, errMiss) {
			return 0, store.ErrConflict
		}
		if err != nil {
			return 0, s.fail("save", ik, err)
		}
		old, err := parseRecord(it.Value)
		if err != nil || old.version != rec.Version || !s.live(old) {
			return 0, store.ErrConflict
		}
		if err := s.cover(ctx, key, old, &next); err != nil {
			return 0, s.fail("save", ik, err)
		}
		err = s.cas(ctx, it, next)
		switch {
		case err == nil:
			return next.version, nil
		case errors.Is(err, errMiss): // deleted, evicted or expired since the gets
			return 0, store.ErrConflict
		case errors.Is(err, errExists): // written since the gets: check again
			continue
		}
		return 0, s.fail("save", ik, err)
	}
	return 0, store.ErrConflict
}

// create writes the new record r under key (item key ik), unless a live
// record is there: add, and if an expired or unreadable item is in the way,
// cas over it.
func (s *Store) create(ctx context.Context, key, ik string, r record) error {
	if r.user != "" {
		r.horizon = s.horizon(r.expires)
		if err := s.indexAdd(ctx, r.user, key, r.horizon); err != nil {
			return s.fail("save", ik, err)
		}
	}
	value := appendRecord(make([]byte, 0, recordLen(r.user, r.data)), r)
	for range maxRetries {
		err := s.call(ctx, ik, func() error {
			return s.c.Add(&memcache.Item{Key: ik, Value: value, Expiration: s.exptime(r.expires)})
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, errExists) {
			return s.fail("save", ik, err)
		}
		// Something is there: a live record (a conflict), or one that has
		// expired by the store's clock but not yet by Memcached's.
		it, err := s.get(ctx, ik)
		if errors.Is(err, errMiss) {
			continue // gone since: add again
		}
		if err != nil {
			return s.fail("save", ik, err)
		}
		if old, err := parseRecord(it.Value); err == nil && s.live(old) {
			return store.ErrConflict
		}
		it.Value, it.Expiration = value, s.exptime(r.expires)
		err = s.call(ctx, ik, func() error { return s.c.CompareAndSwap(it) })
		if err == nil {
			return nil
		}
		if !errors.Is(err, errExists) && !errors.Is(err, errMiss) {
			return s.fail("save", ik, err)
		}
	}
	return store.ErrConflict
}

// cover makes next's index entry cover its expiry: it keeps old's horizon
// when the user is the same and the horizon is far enough, and otherwise
// raises the user's index entry first and records the new horizon.
func (s *Store) cover(ctx context.Context, key string, old record, next *record) error {
	if next.user == "" {
		next.horizon = 0
		return nil
	}
	if next.user == old.user && next.expires <= old.horizon {
		next.horizon = old.horizon
		return nil
	}
	next.horizon = s.horizon(next.expires)
	return s.indexAdd(ctx, next.user, key, next.horizon)
}

// cas writes r over the item it read with gets, if it has not changed.
func (s *Store) cas(ctx context.Context, it *memcache.Item, r record) error {
	w := &memcache.Item{Key: it.Key, CasID: it.CasID, Expiration: s.exptime(r.expires),
		Value: appendRecord(make([]byte, 0, recordLen(r.user, r.data)), r)}
	return s.call(ctx, it.Key, func() error { return s.c.CompareAndSwap(w) })
}

// casDelete deletes the item it read with gets, if it has not changed: a
// cas that stores an empty value with a negative expiration, which
// Memcached takes as "expired at once" (its text protocol's delete takes
// no CAS value).
func (s *Store) casDelete(ctx context.Context, it *memcache.Item) error {
	w := &memcache.Item{Key: it.Key, CasID: it.CasID, Expiration: -1}
	return s.call(ctx, it.Key, func() error { return s.c.CompareAndSwap(w) })
}

// Delete removes the record under key: one delete when version is 0;
// otherwise gets, a check of the version, and a cas that expires the item
// (compare-and-delete). The user index keeps the key until its horizon
// passes; ListUser and DeleteUser skip it.
func (s *Store) Delete(ctx context.Context, key string, version uint64) error {
	if err := s.check(key); err != nil {
		return err
	}
	ik := s.itemKey(key)
	if version == 0 {
		err := s.call(ctx, ik, func() error { return s.c.Delete(ik) })
		if err != nil && !errors.Is(err, errMiss) {
			return s.fail("delete", ik, err)
		}
		return nil
	}
	for range maxRetries {
		it, err := s.get(ctx, ik)
		if errors.Is(err, errMiss) {
			return store.ErrConflict
		}
		if err != nil {
			return s.fail("delete", ik, err)
		}
		old, err := parseRecord(it.Value)
		if err != nil || old.version != version || !s.live(old) {
			return store.ErrConflict
		}
		err = s.casDelete(ctx, it)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errMiss):
			return store.ErrConflict
		case errors.Is(err, errExists):
			continue
		}
		return s.fail("delete", ik, err)
	}
	return store.ErrConflict
}

// Touch sets the expiry of the live record under key, only if version is
// the one stored (any version if 0): gets, then a cas of the same record
// with the new expiry, keeping its version and data (see doc.go for why
// not Memcached's touch).
func (s *Store) Touch(ctx context.Context, key string, version uint64, expires time.Time) error {
	if err := s.check(key); err != nil {
		return err
	}
	if expires.IsZero() {
		return errZeroExpires
	}
	ik := s.itemKey(key)
	for range maxRetries {
		it, err := s.get(ctx, ik)
		if errors.Is(err, errMiss) {
			return store.ErrNotFound
		}
		if err != nil {
			return s.fail("touch", ik, err)
		}
		old, err := parseRecord(it.Value)
		if err != nil || !s.live(old) {
			return store.ErrNotFound
		}
		if version != 0 && old.version != version {
			return store.ErrConflict
		}
		next := old
		next.expires = millis(expires)
		if err := s.cover(ctx, key, old, &next); err != nil {
			return s.fail("touch", ik, err)
		}
		err = s.cas(ctx, it, next)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errMiss):
			return store.ErrNotFound
		case errors.Is(err, errExists):
			continue
		}
		return s.fail("touch", ik, err)
	}
	return store.ErrConflict
}

// Close marks the store closed and closes the client's idle connections.
// Every later call returns an error wrapping store.ErrClosed. Close is
// idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.c.Close()
	return nil
}
