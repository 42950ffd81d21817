package session

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Info describes one session of a user, as listed by UserSessions: what a
// "your devices" page shows. It never holds the session's ID or store key.
type Info struct {
	// Handle names the session without revealing it, for DestroyHandle:
	// safe to show and to put in a URL. It is stable for the session's
	// life but changes when the session gets a new ID (Login, Renew).
	Handle string
	// Current marks the session of the request whose context was passed
	// to UserSessions.
	Current bool
	// Created is when the session was created or last logged in: the
	// start of its absolute lifetime.
	Created time.Time
	// LastSeen is when a request last used the session, coarsely: it
	// moves when the session is saved or its expiry is extended (at most
	// every Config.TouchInterval), never with a write of its own, so it
	// can be up to TouchInterval behind.
	LastSeen time.Time
	// Authenticated is when the user last logged in on this session
	// (Session.Login); zero for a session made before sessionkit kept it.
	Authenticated time.Time
	// Expires is when the session ends unless used again.
	Expires    time.Time
	RememberMe bool
	// Client is a label of the browser or program that created or last
	// logged in to the session, from its User-Agent ("Firefox on Linux"),
	// or "" when it was not recognized (see docs/account-sessions.md).
	Client string
	// IP is the client's address at creation or last login, whole or
	// truncated to its network ("203.0.113.0/24"), with Config.ClientIP;
	// "" by default.
	IP string
}

// handleOf returns the Info.Handle of the session stored under key: 96 bits
// of a hash of the key, so that the handle reveals neither the ID nor the
// key, and leads to the session only through its user's index.
func handleOf(key string) string {
	h := sha256.Sum256([]byte("sessionkit session handle\x00" + key))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// info returns the Info of the session stored in rec under key, and false
// if rec holds no live session.
func (m *Manager) info(key string, rec store.Record, current string, now time.Time) (Info, bool) {
	if !rec.Expires.After(now) {
		return Info{}, false
	}
	st, err := decodeState(rec.Data)
	if err != nil {
		if _, moved := movedTo(rec.Data); !moved {
			m.cfg.Logger.Error("session: skipping unreadable session", "session", m.redact.name(key), "err", err)
		}
		return Info{}, false
	}
	return m.infoOf(key, &st, rec.Expires, current), true
}

func (m *Manager) infoOf(key string, st *state, expires time.Time, current string) Info {
	idle, _ := m.timeouts(st.remember)
	seen := st.meta.saved
	if t := expires.Add(-idle); t.After(seen) {
		seen = t // the last extension: expires is IdleTimeout after it (unless capped by the lifetime)
	}
	if seen.Before(st.created) {
		seen = st.created
	}
	return Info{
		Handle:        handleOf(key),
		Current:       key == current && current != "",
		Created:       st.created,
		LastSeen:      seen,
		Authenticated: st.meta.authAt,
		Expires:       expires,
		RememberMe:    st.remember,
		Client:        st.meta.client,
		IP:            st.meta.addr,
	}
}

// currentKey returns the store key of the session ctx carries (the
// request's, for a context from Request.Context), or "".
func (m *Manager) currentKey(ctx context.Context) string {
	s, ok := ctx.Value(ctxKey{}).(*Session)
	if !ok || s.m != m {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.moved || s.id.IsZero() {
		return ""
	}
	return s.key
}

// UserSessions lists the live sessions bound to userID (see Session.Login),
// the most recently used first. Called with a request's context (inside
// Handler), it marks that request's session Current.
//
// With Config.Tokens no server knows a user's tokens: it lists only the
// request's own session, if it belongs to userID. On a store without a
// per-user index it returns an error wrapping ErrUnsupported.
func (m *Manager) UserSessions(ctx context.Context, userID string) ([]Info, error) {
	now := m.cfg.Now()
	if m.tokens != nil {
		s, ok := ctx.Value(ctxKey{}).(*Session)
		if !ok || s.m != m {
			return []Info{}, nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.load()
		if s.id.IsZero() || s.user != userID || userID == "" {
			return []Info{}, nil
		}
		return []Info{m.infoOf(s.key, &s.st, s.rec.Expires, s.key)}, nil
	}
	if m.userIndex == nil {
		return nil, fmt.Errorf("session: listing a user's sessions: %w", ErrUnsupported)
	}
	entries, err := m.userIndex.ListUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("%w: list user: %w", ErrStore, err)
	}
	current := m.currentKey(ctx)
	infos := make([]Info, 0, len(entries))
	for _, e := range entries {
		if in, ok := m.info(e.Key, e.Record, current, now); ok {
			infos = append(infos, in)
		}
	}
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), b.Created.Compare(a.Created), cmp.Compare(a.Handle, b.Handle))
	})
	return infos, nil
}

// DestroyUser ends every session bound to userID, on every instance ("log
// out everywhere"), and returns how many it ended. Requests of those
// sessions that are still running cannot bring them back. It returns an
// error wrapping ErrUnsupported if the store has no per-user index.
//
// With Config.Tokens it revokes every token of the user whose session was
// created or logged in up to now (Session.Login starts a new one), and
// returns -1: how many tokens that ends is unknown, since no server keeps
// them (as with http.Request.ContentLength, -1 means unknown).
//
// It sweeps the index twice: a login that was renewing one of the user's
// sessions during the first sweep may have moved it to a key the sweep had
// passed, and the second sweep ends it.
func (m *Manager) DestroyUser(ctx context.Context, userID string) (int, error) {
	if m.tokens != nil {
		if err := m.tokens.RevokeUser(ctx, userID, m.cfg.Now()); err != nil {
			return 0, fmt.Errorf("%w (%w): revoke user: %w", ErrStore, ErrToken, err)
		}
		m.event(ctx, EventUserRevoked, "", -1, nil)
		return -1, nil
	}
	if m.userIndex == nil {
		return 0, fmt.Errorf("session: destroying a user's sessions: %w", ErrUnsupported)
	}
	total := 0
	for range 2 {
		n, err := m.userIndex.DeleteUser(ctx, userID)
		total += n
		if err != nil {
			return total, fmt.Errorf("%w: delete user: %w", ErrStore, err)
		}
	}
	m.event(ctx, EventUserRevoked, "", total, nil)
	return total, nil
}

// DestroyHandle ends the session named by an Info.Handle, if it is one of
// userID's ("log out that device"). A handle that names no live session of
// userID (unknown, ended, or another user's) is ErrUnknownHandle and ends
// nothing. It looks the handle up in the user's index, so it needs a store
// with one (else an error wrapping ErrUnsupported); with Config.Tokens it
// returns ErrUnsupported too (end the request's own session with
// Session.Destroy).
//
// Ending the request's own session this way leaves its client's token in
// place (a later request simply has no session); use Session.Destroy for
// it, which also clears the token.
func (m *Manager) DestroyHandle(ctx context.Context, userID, handle string) error {
	if m.tokens != nil {
		return fmt.Errorf("session: destroying a session by handle: %w", ErrUnsupported)
	}
	if m.userIndex == nil {
		return fmt.Errorf("session: destroying a session by handle: %w", ErrUnsupported)
	}
	if userID == "" || len(handle) != 16 {
		return ErrUnknownHandle
	}
	entries, err := m.userIndex.ListUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("%w: list user: %w", ErrStore, err)
	}
	now := m.cfg.Now()
	for _, e := range entries {
		if subtle.ConstantTimeCompare([]byte(handleOf(e.Key)), []byte(handle)) != 1 {
			continue
		}
		if !e.Record.Expires.After(now) || e.Record.UserID != userID {
			break
		}
		if err := m.deleteFollowing(ctx, e.Key, e.Record.Version); err != nil {
			return fmt.Errorf("%w: delete: %w", ErrStore, err)
		}
		m.event(ctx, EventDestroyed, e.Key, 0, nil)
		return nil
	}
	return ErrUnknownHandle
}

// deleteFollowing deletes the record under key, and, if it was renewed
// since it was read at version (a compare-and-delete conflict), the record
// it was renewed to, so that a concurrent Login or Renew does not save
// the session from its end.
func (m *Manager) deleteFollowing(ctx context.Context, key string, version uint64) error {
	err := m.cfg.Store.Delete(ctx, key, version)
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	for range maxHops {
		rec, err := m.cfg.Store.Load(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := m.cfg.Store.Delete(ctx, key, 0); err != nil {
			return err
		}
		next, ok := movedTo(rec.Data)
		if !ok {
			return nil
		}
		key = next
	}
	return fmt.Errorf("session: renewed more than %d times meanwhile", maxHops)
}

// DestroyOthers ends every session of the session's user but this one ("log
// out my other devices", as after a password change: OWASP ASVS 5.0 V7.4.3,
// V7.5.2) and returns how many it ended. A session without a user has no
// others: 0.
//
// With Config.Tokens it revokes every token of the user that was created
// or logged in up to now, this one included, and logs this session in
// again (a new ID and token, same content, Created reset to now); it
// returns -1 (unknown). Call it before the response starts. On a store
// without a per-user index it returns an error wrapping ErrUnsupported.
func (s *Session) DestroyOthers() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.err != nil {
		return 0, s.err
	}
	if s.user == "" {
		return 0, nil
	}
	m := s.m
	ctx := s.ctx()
	if m.tokens != nil {
		if s.headerSent {
			return 0, errTooLate
		}
		cutoff := m.cfg.Now().Truncate(time.Millisecond)
		if err := m.tokens.RevokeUser(ctx, s.user, cutoff); err != nil {
			return 0, fmt.Errorf("%w (%w): revoke user: %w", ErrStore, ErrToken, err)
		}
		// A login just after the cutoff: this session's next token is not
		// revoked, every earlier one is.
		s.do(s.loginOp(s.user, cutoff.Add(time.Millisecond))) // cannot fail
		s.renew = true
		m.event(ctx, EventUserRevoked, "", -1, nil)
		return -1, nil
	}
	if m.userIndex == nil {
		return 0, fmt.Errorf("session: destroying a user's other sessions: %w", ErrUnsupported)
	}
	if s.degraded {
		return 0, fmt.Errorf("%w: the store was unavailable when the session was loaded", ErrStore)
	}
	keep := s.key
	if s.id.IsZero() {
		keep = "" // logged in by this request and not yet saved: every stored session is another
	}
	total := 0
	// Twice, as DestroyUser: a session renewed during the first pass is
	// found under its new key by the second.
	for range 2 {
		entries, err := m.userIndex.ListUser(ctx, s.user)
		if err != nil {
			return total, fmt.Errorf("%w: list user: %w", ErrStore, err)
		}
		for _, e := range entries {
			if e.Key == keep || e.Record.UserID != s.user {
				continue
			}
			if err := m.deleteFollowing(ctx, e.Key, e.Record.Version); err != nil {
				return total, fmt.Errorf("%w: delete: %w", ErrStore, err)
			}
			total++
			m.event(ctx, EventDestroyed, e.Key, 0, nil)
		}
	}
	m.event(ctx, EventUserRevoked, "", total, nil)
	return total, nil
}

// AuthenticatedAt returns when the user last logged in on this session
// (Session.Login), or the zero time if the session is not logged in. See
// Manager.RequireRecentLogin.
func (s *Session) AuthenticatedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.user == "" {
		return time.Time{}
	}
	return s.st.meta.authAt
}

// LoggedInWithin reports whether the session's user logged in on it no
// longer than d ago.
func (s *Session) LoggedInWithin(d time.Duration) bool {
	at := s.AuthenticatedAt()
	return !at.IsZero() && s.m != nil && s.m.cfg.Now().Sub(at) <= d
}
