package session

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

// tombstoneTTL is how long a renewed session's old record keeps pointing
// to the new one, so that requests that loaded the old record before the
// renew can still merge their changes (see saveRenewed).
const tombstoneTTL = time.Minute

// maxHops bounds how many renewals a request follows when it saves.
const maxHops = 8

// errTooLate is returned when a session would need a new token after the
// response header has gone out.
var errTooLate = errors.New("session: the response has started, so a new session ID cannot reach the client; " +
	"create, log in or renew before writing the response (or call Session.Save first)")

// commit saves what this request changed and sets the client's token. It
// runs before the response header is sent, and again for changes made
// after it.
func (s *Session) commit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded || s.m == nil {
		return s.err
	}
	if s.err != nil {
		return s.err
	}
	now := s.m.cfg.Now()
	if s.m.tokens != nil {
		return s.commitStateless(now)
	}
	needsToken := (s.id.IsZero() && len(s.ops) > 0) || s.renew
	switch {
	case s.degraded && len(s.ops) > 0:
		return fmt.Errorf("%w: the store was unavailable when the session was loaded; changes not saved", ErrStore)
	case s.degraded:
		return nil
	case needsToken && s.headerSent:
		return errTooLate
	case s.id.IsZero() && len(s.ops) == 0:
		if s.destroyed {
			s.destroyed = false
			s.sendClear()
		}
		return nil
	case s.id.IsZero():
		return s.limited(now, s.create)
	case len(s.ops) > 0 || s.renew:
		return s.limited(now, s.save)
	default:
		s.touch(now)
		return nil
	}
}

// record returns the record to save for the current content.
func (s *Session) record(now time.Time, version uint64) store.Record {
	s.st.meta.saved = now.Truncate(time.Millisecond)
	return store.Record{
		Data:    encodeState(&s.st, s.m.format),
		Version: version,
		Expires: s.m.expiry(&s.st, now),
		UserID:  s.user,
	}
}

// saved records a successful save of rec under id.
func (s *Session) saved(id sid.ID, rec store.Record, version uint64, now time.Time, newToken bool) {
	rec.Version = version
	s.id, s.key, s.rec = id, id.Key(), rec
	s.ops, s.renew, s.destroyed = s.ops[:0], false, false
	if newToken || s.retag || s.persistChanged || s.m.persistent(&s.st) {
		s.sendToken(now)
	}
}

func (s *Session) newID() sid.ID {
	id, err := sid.New(s.m.cfg.Route)
	if err != nil {
		panic(err) // unreachable: New validated the route
	}
	return id
}

func (s *Session) create(now time.Time) error {
	if s.st.meta.client == "" && s.st.meta.addr == "" {
		s.st.meta.client, s.st.meta.addr = s.m.client(s)
	}
	id := s.newID()
	rec := s.record(now, 0)
	v, err := s.m.cfg.Store.Save(s.ctx(), id.Key(), rec)
	if err != nil {
		return fmt.Errorf("%w: create: %w", ErrStore, err)
	}
	s.saved(id, rec, v, now, true)
	s.m.event(s.ctx(), EventCreated, s.key, 0, nil)
	return nil
}

func (s *Session) save(now time.Time) error {
	if s.renew && !s.moved {
		return s.saveRenewed(now)
	}
	for attempt := 0; ; attempt++ {
		rec := s.record(now, s.rec.Version)
		v, err := s.m.cfg.Store.Save(s.ctx(), s.key, rec)
		if err == nil {
			if s.moved {
				// Saved into the record another request renewed this
				// session to: its token is that request's to send.
				rec.Version = v
				s.rec, s.ops, s.renew = rec, s.ops[:0], false
				return nil
			}
			s.saved(s.id, rec, v, now, false)
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: save: %w", ErrStore, err)
		}
		if attempt >= s.m.cfg.MaxRetries {
			s.m.event(s.ctx(), EventConflictGaveUp, s.key, attempt+1, nil)
			return fmt.Errorf("%w: gave up after %d attempts", ErrTooManyConflicts, attempt+1)
		}
		s.m.event(s.ctx(), EventConflictRetried, s.key, attempt+1, nil)
		if ended, err := s.reload(attempt); ended || err != nil {
			return err
		}
	}
}

// saveRenewed moves the session to a new ID: it creates the new record,
// then replaces the old one, by compare-and-set, with a tombstone that
// points to the new one. A change another request saved under the old ID
// in between makes that compare-and-set fail: it is merged into the new
// record and the step retried. A request that loaded the old record and
// saves after the renew finds the tombstone and saves into the new record
// instead (see reload); anyone presenting the old ID afterwards has no
// session.
func (s *Session) saveRenewed(now time.Time) error {
	ctx := s.ctx()
	id := s.newID()
	var version uint64
	for attempt := 0; ; attempt++ {
		rec := s.record(now, version)
		v, err := s.m.cfg.Store.Save(ctx, id.Key(), rec)
		if err != nil {
			s.dropRecord(id, version)
			return fmt.Errorf("%w: renew: %w", ErrStore, err)
		}
		version = v
		tomb := store.Record{Data: encodeMoved(id.Key()), Version: s.rec.Version, Expires: now.Add(tombstoneTTL)}
		_, err = s.m.cfg.Store.Save(ctx, s.key, tomb)
		if err == nil {
			s.moved = false
			s.saved(id, rec, version, now, true)
			s.m.event(ctx, EventRenewed, s.key, 0, nil)
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			s.dropRecord(id, version)
			return fmt.Errorf("%w: renew: %w", ErrStore, err)
		}
		if attempt >= s.m.cfg.MaxRetries {
			s.dropRecord(id, version)
			s.m.event(ctx, EventConflictGaveUp, s.key, attempt+1, nil)
			return fmt.Errorf("%w: renew gave up after %d attempts", ErrTooManyConflicts, attempt+1)
		}
		s.m.event(ctx, EventConflictRetried, s.key, attempt+1, nil)
		ended, err := s.reload(attempt)
		if ended || err != nil {
			s.dropRecord(id, version)
			return err
		}
		if s.moved {
			// Another request renewed the session first; this one's
			// changes went into that record, and its new ID is not needed.
			s.dropRecord(id, version)
			return s.save(now)
		}
	}
}

// dropRecord deletes a record this request created and cannot use.
func (s *Session) dropRecord(id sid.ID, version uint64) {
	if version == 0 {
		return
	}
	if err := s.m.cfg.Store.Delete(s.ctx(), id.Key(), 0); err != nil {
		s.m.cfg.Logger.Warn("session: could not delete an unused record; it will expire",
			"session", s.m.redact.name(id.Key()), "err", err)
	}
}

// reload re-reads the session after a conflict, following renewals, and
// replays this request's operations on it. ended reports that the session
// was destroyed (or has expired) meanwhile: then this request's changes are
// discarded, as if it had finished just before the destroy, and the
// session reads as new.
func (s *Session) reload(attempt int) (ended bool, err error) {
	backoff(attempt)
	for hop := 0; ; hop++ {
		rec, err := s.m.cfg.Store.Load(s.ctx(), s.key)
		if errors.Is(err, store.ErrNotFound) {
			s.endedMeanwhile()
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("%w: reload: %w", ErrStore, err)
		}
		if next, ok := movedTo(rec.Data); ok {
			if hop >= maxHops {
				return false, fmt.Errorf("%w: renewed more than %d times during one request", ErrTooManyConflicts, maxHops)
			}
			s.key, s.moved = next, true
			continue
		}
		st, ok := s.check(s.id, rec)
		if !ok {
			s.endedMeanwhile()
			return true, nil
		}
		s.rec, s.st, s.user = rec, st, rec.UserID
		for i := range s.ops {
			if err := s.st.apply(&s.ops[i], &s.user); err != nil {
				return false, err
			}
		}
		return false, nil
	}
}

// endedMeanwhile drops this request's changes to a session that another
// request destroyed. The client's token is left alone: the request that
// destroyed the session has answered with the right one.
func (s *Session) endedMeanwhile() {
	s.m.logDebug("session: destroyed by another request; discarding this request's changes",
		"session", s.m.redact.name(s.key))
	s.fresh()
	s.ops, s.renew, s.retag, s.moved = s.ops[:0], false, false, false
}

// backoff waits a little, with jitter, before a retry.
func backoff(attempt int) {
	if attempt == 0 {
		return
	}
	d := time.Duration(rand.Int64N(int64(50*time.Microsecond) << min(attempt, 8)))
	time.Sleep(d)
}

// touch extends the expiry of an unchanged session when it is due.
func (s *Session) touch(now time.Time) {
	if !s.m.touchDue(&s.st, s.rec.Expires, now) {
		if s.retag && !s.headerSent {
			s.sendToken(now)
		}
		return
	}
	exp := s.m.expiry(&s.st, now)
	var err error
	if s.m.toucher != nil {
		err = s.m.toucher.Touch(s.ctx(), s.key, s.rec.Version, exp)
	} else {
		rec := s.rec
		rec.Expires = exp
		var v uint64
		if v, err = s.m.cfg.Store.Save(s.ctx(), s.key, rec); err == nil {
			s.rec.Version = v
		}
	}
	switch {
	case err == nil:
		s.rec.Expires = exp
		if (s.retag || s.m.persistent(&s.st)) && !s.headerSent {
			s.sendToken(now)
		}
	case errors.Is(err, store.ErrConflict):
		// Another request saved the session, which extended it too.
	case errors.Is(err, store.ErrNotFound):
		s.endedMeanwhile()
	default:
		// The session stays valid until its current expiry; a failed
		// extension is not worth failing the request.
		s.m.cfg.Logger.Warn("session: could not extend expiry", "session", s.m.redact.name(s.key), "err", err)
	}
	s.retag = false
}

// destroy deletes the stored session, following renewals made since it
// was loaded, so that a logout racing a login still ends the session.
func (s *Session) destroy() error {
	return s.m.deleteFollowing(s.ctx(), s.key, s.rec.Version)
}

func (s *Session) sendToken(now time.Time) { s.sendTokenValue(now, s.id.String()) }

// sendTokenValue sends tok, the session's token: its ID, or with
// Config.Tokens the whole sealed session.
func (s *Session) sendTokenValue(now time.Time, tok string) {
	var maxAge time.Duration
	if s.m.persistent(&s.st) {
		maxAge = s.rec.Expires.Sub(now)
	}
	w := s.w.ResponseWriter
	s.m.cfg.Transport.SetToken(w, tok, maxAge)
	h := w.Header()
	// A response that hands out a session token must never be stored by a
	// shared cache.
	h.Set("Cache-Control", "no-store")
	if s.m.cookie && !s.varySent {
		h.Add("Vary", "Cookie")
		s.varySent = true
	}
	s.retag, s.persistChanged = false, false
}

func (s *Session) sendClear() {
	w := s.w.ResponseWriter
	s.m.cfg.Transport.ClearToken(w)
	w.Header().Set("Cache-Control", "no-store")
	if v := s.m.clearSiteData; v != "" {
		w.Header().Set("Clear-Site-Data", v)
	}
}
