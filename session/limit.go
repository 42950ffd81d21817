package session

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// LimitPolicy is what a Login beyond Config.MaxSessionsPerUser does.
type LimitPolicy uint8

// Limit policies.
const (
	// EvictLeastRecent ends the user's least recently used sessions
	// (Info.LastSeen) to make room for the new one: the default. An ended
	// session's next request finds no session (401 in most apps).
	EvictLeastRecent LimitPolicy = iota
	// RefuseNew refuses the login: the save fails with
	// ErrTooManySessions, the session stays as it was (not logged in),
	// and the user's other sessions are untouched, so that the user must
	// log out elsewhere first (see Session.DestroyOthers and
	// Manager.DestroyHandle).
	RefuseNew
)

func (p LimitPolicy) String() string {
	switch p {
	case EvictLeastRecent:
		return "evict"
	case RefuseNew:
		return "refuse"
	}
	return fmt.Sprintf("LimitPolicy(%d)", uint8(p))
}

// ParseLimitPolicy returns the LimitPolicy named by s, its String: "evict"
// or "refuse".
func ParseLimitPolicy(s string) (LimitPolicy, error) {
	switch s {
	case "evict":
		return EvictLeastRecent, nil
	case "refuse":
		return RefuseNew, nil
	}
	return 0, fmt.Errorf("session: unknown session limit policy %q (want evict or refuse)", s)
}

// checkLimit validates the MaxSessionsPerUser settings.
func (c *Config) checkLimit() error {
	switch {
	case c.MaxSessionsPerUser < 0:
		return fmt.Errorf("session: Config.MaxSessionsPerUser is negative (%d)", c.MaxSessionsPerUser)
	case c.SessionLimit > RefuseNew:
		return fmt.Errorf("session: Config.SessionLimit %d is not a LimitPolicy", c.SessionLimit)
	case c.MaxSessionsPerUser == 0:
		return nil
	case c.Tokens != nil:
		return errors.New("session: Config.MaxSessionsPerUser cannot be enforced with Config.Tokens: " +
			"no server knows how many tokens a user holds")
	}
	if _, ok := c.Store.(store.UserIndex); !ok {
		return fmt.Errorf("session: Config.MaxSessionsPerUser needs a store with a per-user index (store.UserIndex); %T has none", c.Store)
	}
	return nil
}

// Timings of the per-user limit's lock.
const (
	// limitLockTTL is how long a user's limit lock lives if its holder
	// dies without releasing it.
	limitLockTTL = 10 * time.Second
	// limitLockWait bounds how long a login waits for the lock.
	limitLockWait = 5 * time.Second
)

// lockData marks a limit lock's record: no session format starts with it.
var lockData = []byte{0xff, 'l', 'o', 'c', 'k'}

// limitLockKey is the store key of userID's limit lock: no session key
// (43 base64url characters) contains a colon.
func limitLockKey(userID string) string {
	h := sha256.Sum256([]byte(userID))
	return "session-limit:" + base64.RawURLEncoding.EncodeToString(h[:])
}

// limited runs save, which saves the session, under the per-user limit: if
// this request logged the session in and Config.MaxSessionsPerUser is set,
// it takes the user's limit lock (a record created with a
// compare-and-set, so it holds across instances), counts the user's other
// live sessions, ends the least recently used ones or refuses the login,
// saves, and releases the lock. The count and the save under one lock
// keep the limit under concurrent logins on any number of instances.
func (s *Session) limited(now time.Time, save func(time.Time) error) error {
	limit := s.m.cfg.MaxSessionsPerUser
	if limit == 0 || s.user == "" || !s.loggedIn() {
		return save(now)
	}
	ctx := s.ctx()
	release, err := s.m.lockUser(ctx, s.user)
	if err != nil {
		return err
	}
	defer release()
	if err := s.makeRoom(ctx, limit); err != nil {
		if errors.Is(err, ErrTooManySessions) {
			s.err = err // final for this request: later commits answer it too
		}
		return err
	}
	return save(now)
}

// makeRoom ends or refuses as Config.SessionLimit says, so that the
// session being logged in is at most the limit-th of its user.
func (s *Session) makeRoom(ctx context.Context, limit int) error {
	m := s.m
	entries, err := m.userIndex.ListUser(ctx, s.user)
	if err != nil {
		return fmt.Errorf("%w: list user: %w", ErrStore, err)
	}
	now := m.cfg.Now()
	type other struct {
		key     string
		version uint64
		info    Info
	}
	var others []other
	for _, e := range entries {
		// This session's own record, bound to the user before a new
		// Login, is about to be renewed away: not another session.
		if e.Key == s.key && !s.id.IsZero() {
			continue
		}
		if in, ok := m.info(e.Key, e.Record, "", now); ok {
			others = append(others, other{e.Key, e.Record.Version, in})
		}
	}
	excess := len(others) - (limit - 1)
	if excess <= 0 {
		return nil
	}
	if m.cfg.SessionLimit == RefuseNew {
		m.event(ctx, EventLimitRefused, s.key, 0, nil)
		return fmt.Errorf("%w: the user has %d sessions, the limit is %d", ErrTooManySessions, len(others), limit)
	}
	slices.SortFunc(others, func(a, b other) int {
		return cmp.Or(a.info.LastSeen.Compare(b.info.LastSeen), a.info.Created.Compare(b.info.Created), cmp.Compare(a.key, b.key))
	})
	for _, o := range others[:excess] {
		if err := m.deleteFollowing(ctx, o.key, o.version); err != nil {
			return fmt.Errorf("%w: end a session over the limit: %w", ErrStore, err)
		}
		m.event(ctx, EventLimitEvicted, o.key, 0, nil)
	}
	return nil
}

// lockUser takes userID's limit lock, waiting up to limitLockWait, and
// returns its release.
func (m *Manager) lockUser(ctx context.Context, userID string) (release func(), err error) {
	key := limitLockKey(userID)
	deadline := time.Now().Add(limitLockWait)
	wait := 500 * time.Microsecond
	for {
		v, err := m.cfg.Store.Save(ctx, key, store.Record{Data: lockData, Expires: m.cfg.Now().Add(limitLockTTL)})
		if err == nil {
			return func() {
				if err := m.cfg.Store.Delete(ctx, key, v); err != nil && !errors.Is(err, store.ErrConflict) {
					m.cfg.Logger.Warn("session: could not release a user's session-limit lock; it expires by itself",
						"ttl", limitLockTTL, "err", err)
				}
			}, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("%w: lock the user's session limit: %w", ErrStore, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: the user's session limit stayed locked for %v by other logins", ErrTooManyConflicts, limitLockWait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: lock the user's session limit: %w", ErrStore, ctx.Err())
		case <-time.After(wait/2 + rand.N(wait)):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}
