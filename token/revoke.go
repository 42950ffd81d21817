package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

// DefaultRefreshInterval is how often Revocations reads the shared list by
// default, and so the default bound on how long a revocation made on one
// instance takes to reach the others.
const DefaultRefreshInterval = 2 * time.Second

// revocationOwner is the store.Record.UserID of every revocation record:
// the store's per-user index then lists them all in one call. The NUL byte
// keeps it apart from any real user ID an application uses.
const revocationOwner = "\x00sessionkit/token-revocations"

// Store keys of revocation records.
const (
	sessionPrefix = "sessionkit/token-revoked/s/" // + the session's store key (a hash of its ID)
	familyPrefix  = "sessionkit/token-revoked/f/" // + the store key of the family's first ID
	// generationKey names a record rewritten after every revocation, not
	// listed with them: a refresh that finds its version unchanged skips
	// reading the list.
	generationKey = "sessionkit/token-revoked/generation"
)

// fullRefreshEvery bounds how many refreshes in a row may skip the list:
// a full read also drops entries that expired from the store.
const fullRefreshEvery = 30

const (
	userPrefix = "sessionkit/token-revoked/u/" // + base64url(SHA-256(user ID))
)

// RevocationConfig configures Revocations. Store is required; every other
// zero field means its documented default. NewRevocations copies it.
type RevocationConfig struct {
	// Store keeps the revocations, shared by every instance: a memstore
	// for one instance, Redis or PostgreSQL for several. It must implement
	// store.UserIndex (all of sessionkit's stores do). It may be the store
	// of other data: revocation records have their own keys.
	Store store.Store

	// RefreshInterval is how often the whole list is read from Store;
	// default DefaultRefreshInterval (2s). A revocation made on another
	// instance is honoured here at most RefreshInterval plus one store
	// call later; one made here is honoured here at once.
	RefreshInterval time.Duration

	// MaxLifetime is how long a per-user cutoff is kept: the longest
	// lifetime of any token. Default DefaultLifetime (30 days).
	MaxLifetime time.Duration

	// Logger receives failed refreshes. Default: discard.
	Logger *slog.Logger

	// Now is the clock; default time.Now. NewTicker makes the refresh
	// ticker; default time.NewTicker. Tests inject both.
	Now       func() time.Time
	NewTicker func(d time.Duration) (c <-chan time.Time, stop func())
}

// Revocations is the set of revoked sessions and per-user cutoffs, kept in
// a shared store and mirrored in memory: Revoked, called on every request,
// reads only the mirror, which a background loop refreshes from the store
// every RefreshInterval (see Refresh for what that reads). Safe for
// concurrent use. Close stops the loop.
//
// Guarantees: a revocation is written to the store before Revoke returns,
// and kept there until the last token it concerns has expired; this
// instance honours it at once; every other instance within
// RefreshInterval plus the duration of one store call (the propagation
// delay), provided the store answers. While the store is unreachable each
// instance keeps its last copy and logs the failure, so revocations made
// meanwhile elsewhere are not seen until it answers again.
type Revocations struct {
	cfg   RevocationConfig
	index store.UserIndex

	mu       sync.RWMutex
	sessions map[string]time.Time // store key of a session -> when its tokens expire
	families map[string]time.Time // store key of a family -> when its tokens expire
	users    map[string]time.Time // hash of a user ID -> cutoff
	own      []entry              // revocations made here, kept in every refresh until they expire

	refreshMu sync.Mutex // serializes Refresh; guards the fields below
	listed    bool       // the list has been read at least once
	lastGen   uint64     // the generation record's version at the last read of the list
	skipped   int        // refreshes since then that skipped the list

	stop     func()
	done     chan struct{} // closed by Close
	exited   chan struct{} // closed when the loop has returned
	closeOne sync.Once
}

type entry struct {
	kind    byte // 's', 'f' or 'u'
	key     string
	at      time.Time // session: expiry; user: cutoff
	expires time.Time
}

// NewRevocations reads the list from cfg.Store once (so that a new
// instance starts with every revocation) and starts the refresh loop.
func NewRevocations(ctx context.Context, cfg RevocationConfig) (*Revocations, error) {
	c := cfg
	if c.Store == nil {
		return nil, errors.New("token: RevocationConfig.Store is required")
	}
	idx, ok := c.Store.(store.UserIndex)
	if !ok {
		return nil, fmt.Errorf("token: the revocation store %T has no per-user index (store.UserIndex)", c.Store)
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultLifetime
	}
	if c.RefreshInterval < 0 || c.MaxLifetime < 0 {
		return nil, errors.New("token: RevocationConfig.RefreshInterval and MaxLifetime must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewTicker == nil {
		c.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	r := &Revocations{cfg: c, index: idx, sessions: map[string]time.Time{}, families: map[string]time.Time{},
		users: map[string]time.Time{}, done: make(chan struct{}), exited: make(chan struct{})}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	tick, stop := c.NewTicker(c.RefreshInterval)
	r.stop = stop
	go r.loop(tick)
	return r, nil
}

func (r *Revocations) loop(tick <-chan time.Time) {
	defer close(r.exited)
	for {
		select {
		case <-r.done:
			return
		case <-tick:
			ctx, cancel := context.WithTimeout(context.Background(), 10*r.cfg.RefreshInterval)
			if err := r.Refresh(ctx); err != nil {
				r.cfg.Logger.Warn("token: refreshing the revocation list failed; keeping the last copy", "err", err)
			}
			cancel()
		}
	}
}

// Close stops the refresh loop and waits for a refresh in progress to
// end, so that the store can be closed after it. It does not close the
// store.
func (r *Revocations) Close() error {
	r.closeOne.Do(func() {
		if r.stop != nil {
			r.stop()
		}
		close(r.done)
	})
	<-r.exited
	return nil
}

// Refresh brings the copy in memory up to date with the store, now
// (revocations made here are kept until they expire). It reads one
// record, the generation, and only if that changed since the last read
// of the list (some instance revoked something) the whole list; every
// 30th refresh reads the list anyway, to drop what expired. The loop
// calls it every RefreshInterval.
func (r *Revocations) Refresh(ctx context.Context) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	gen, err := r.cfg.Store.Load(ctx, generationKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		gen = store.Record{}
	case err != nil:
		return fmt.Errorf("token: reading the revocations' generation: %w", err)
	}
	if r.listed && gen.Version == r.lastGen && r.skipped < fullRefreshEvery-1 {
		r.skipped++
		return nil
	}
	entries, err := r.index.ListUser(ctx, revocationOwner)
	if err != nil {
		return fmt.Errorf("token: reading revocations: %w", err)
	}
	r.listed, r.lastGen, r.skipped = true, gen.Version, 0
	now := r.cfg.Now()
	sessions := make(map[string]time.Time, len(entries))
	families := map[string]time.Time{}
	users := map[string]time.Time{}
	for _, e := range entries {
		switch {
		case len(e.Key) > len(sessionPrefix) && e.Key[:len(sessionPrefix)] == sessionPrefix:
			sessions[e.Key[len(sessionPrefix):]] = e.Record.Expires
		case len(e.Key) > len(familyPrefix) && e.Key[:len(familyPrefix)] == familyPrefix:
			families[e.Key[len(familyPrefix):]] = e.Record.Expires
		case len(e.Key) > len(userPrefix) && e.Key[:len(userPrefix)] == userPrefix && len(e.Record.Data) == 8:
			users[e.Key[len(userPrefix):]] = time.UnixMilli(int64(binary.BigEndian.Uint64(e.Record.Data)))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	own := r.own[:0]
	for _, e := range r.own {
		if !e.expires.After(now) {
			continue
		}
		own = append(own, e)
		r.merge(sessions, families, users, e)
	}
	clear(r.own[len(own):])
	r.own, r.sessions, r.families, r.users = own, sessions, families, users
	return nil
}

// merge adds e to the maps, keeping the later time.
func (r *Revocations) merge(sessions, families, users map[string]time.Time, e entry) {
	m := sessions
	switch e.kind {
	case 'f':
		m = families
	case 'u':
		m = users
	}
	if old, ok := m[e.key]; !ok || e.at.After(old) {
		m[e.key] = e.at
	}
}

// sessionKey returns the key revocations of session ID id are kept under:
// the ID's store key (package sid: a hash of its random part, so a route
// re-tag keeps it), or for IDs of another format a hash of the ID.
func sessionKey(id string) string {
	if p, err := sid.Parse(id); err == nil {
		return p.Key()
	}
	return hashKey(id)
}

func hashKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Revoke revokes every token with the ID c.ID, and if c.Family is set
// every token of that family, until c.Expires, in the store and here.
func (r *Revocations) Revoke(ctx context.Context, c Claims) error {
	if c.ID == "" {
		return errors.New("token: Revoke: empty session ID")
	}
	exp := c.Expires
	if now := r.cfg.Now(); !exp.After(now) {
		return nil // already dead
	}
	// Keep it past the token's expiry by the most leeway a Format allows.
	until := exp.Add(MaxLeeway)
	if c.Family != "" {
		if err := r.revoke(ctx, 'f', familyPrefix, sessionKey(c.Family), exp, until); err != nil {
			return err
		}
	}
	return r.revoke(ctx, 's', sessionPrefix, sessionKey(c.ID), exp, until)
}

func (r *Revocations) revoke(ctx context.Context, kind byte, prefix, key string, exp, until time.Time) error {
	_, err := r.cfg.Store.Save(ctx, prefix+key, store.Record{Expires: until, UserID: revocationOwner})
	if err != nil && !errors.Is(err, store.ErrConflict) { // a conflict: it is revoked already
		return fmt.Errorf("token: recording a revocation: %w", err)
	}
	r.add(entry{kind: kind, key: key, at: exp, expires: until})
	return r.bump(ctx)
}

// bump rewrites the generation record after a revocation was written, so
// that every instance's next refresh reads the list. A conflict means
// another instance bumped it after this revocation was written: enough.
func (r *Revocations) bump(ctx context.Context) error {
	rec, err := r.cfg.Store.Load(ctx, generationKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rec = store.Record{}
	case err != nil:
		return fmt.Errorf("token: announcing a revocation: %w", err)
	}
	exp := r.cfg.Now().Add(r.cfg.MaxLifetime + MaxLeeway)
	_, err = r.cfg.Store.Save(ctx, generationKey, store.Record{Version: rec.Version, Expires: exp})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("token: announcing a revocation: %w", err)
	}
	return nil
}

// RevokeUser revokes every token of userID whose AuthTime is not after
// before, in the store and here.
func (r *Revocations) RevokeUser(ctx context.Context, userID string, before time.Time) error {
	if userID == "" {
		return errors.New("token: RevokeUser: empty user ID")
	}
	key := hashKey(userID)
	before = before.Truncate(time.Millisecond)
	until := before.Add(r.cfg.MaxLifetime + MaxLeeway)
	data := binary.BigEndian.AppendUint64(nil, uint64(before.UnixMilli()))
	for attempt := 0; ; attempt++ {
		rec, err := r.cfg.Store.Load(ctx, userPrefix+key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			rec = store.Record{}
		case err != nil:
			return fmt.Errorf("token: recording a user's revocation: %w", err)
		case len(rec.Data) == 8 && int64(binary.BigEndian.Uint64(rec.Data)) >= before.UnixMilli():
			r.add(entry{kind: 'u', key: key, at: time.UnixMilli(int64(binary.BigEndian.Uint64(rec.Data))), expires: rec.Expires})
			return nil // a later cutoff is in place
		}
		_, err = r.cfg.Store.Save(ctx, userPrefix+key, store.Record{Data: data, Version: rec.Version, Expires: until, UserID: revocationOwner})
		if err == nil {
			r.add(entry{kind: 'u', key: key, at: before, expires: until})
			return r.bump(ctx)
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 8 {
			return fmt.Errorf("token: recording a user's revocation: %w", err)
		}
	}
}

func (r *Revocations) add(e entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.own = append(r.own, e)
	r.merge(r.sessions, r.families, r.users, e)
}

// Revoked reports whether c's session, or its user's sessions up to its
// AuthTime, are revoked in this instance's copy. It does no I/O.
func (r *Revocations) Revoked(c Claims) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.sessions) > 0 {
		if _, ok := r.sessions[sessionKey(c.ID)]; ok {
			return true
		}
	}
	if len(r.families) > 0 && c.Family != "" {
		if _, ok := r.families[sessionKey(c.Family)]; ok {
			return true
		}
	}
	if len(r.users) > 0 && c.UserID != "" {
		if cutoff, ok := r.users[hashKey(c.UserID)]; ok && !c.AuthTime.After(cutoff) {
			return true
		}
	}
	return false
}

// Len returns how many session and family revocations, and user cutoffs,
// the copy in memory holds.
func (r *Revocations) Len() (sessions, users int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions) + len(r.families), len(r.users)
}
