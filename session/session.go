package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

// Session is the session of one HTTP request, returned by From. Its methods
// are safe for concurrent use by the request's goroutines. The session is
// loaded from the store on first use; changes are kept as a list of
// key-level operations and saved when the response starts (see
// Manager.Handler). If another request saved the same session meanwhile, the
// save is a compare-and-set conflict: the session is reloaded and this
// request's operations are applied again on top, so concurrent requests that
// change different keys, or that change one key through Update, all survive.
type Session struct {
	m    *Manager
	req  *http.Request
	w    responseWriter
	rctx requestContext

	mu        sync.Mutex
	storeCtx  context.Context // see ctx
	loaded    bool
	err       error        // a load or destroy failure, reported at commit
	id        sid.ID       // zero while the session is not stored
	rec       store.Record // the stored record this session was read from
	st        state        // the current content
	user      string       // the bound user
	ops       []op         // changes not yet saved
	renew     bool         // give the session a new ID at commit
	retag     bool         // the ID was re-tagged with this node's route
	destroyed bool         // Destroy ended the stored session
	degraded  bool         // the store failed and Config.FailOpen is set
}

type opKind uint8

const (
	opSet opKind = iota
	opDelete
	opClear
	opUpdate
	opUser
	opRemember
)

// op is one change to a session, replayed on a reloaded copy after a
// compare-and-set conflict.
type op struct {
	kind opKind
	key  string
	val  value
	fn   func(old value, ok bool) (value, error)
	user string
	flag bool
}

// load reads the session on first use. Any token that does not name a live
// session (absent, malformed, tampered, oversized, expired) gives a new,
// empty session; a store failure is kept in s.err.
func (s *Session) load() {
	if s.loaded {
		return
	}
	s.loaded = true
	id, rec, st, ok := s.loadToken()
	if !ok {
		s.fresh()
		return
	}
	s.id, s.rec, s.st, s.user = id, rec, st, rec.UserID
	if r := s.m.cfg.Route; r != "" && id.Route() != r {
		s.id, _ = id.WithRoute(r) // r was validated by New
		s.retag = true
	}
}

func (s *Session) loadToken() (sid.ID, store.Record, state, bool) {
	tok := s.m.cfg.Transport.Token(s.req)
	if tok == "" {
		return sid.ID{}, store.Record{}, state{}, false
	}
	id, err := sid.Parse(tok)
	if err != nil {
		s.m.logDebug("session: ignoring unreadable token", "len", len(tok), "err", err)
		return sid.ID{}, store.Record{}, state{}, false
	}
	rec, err := s.m.cfg.Store.Load(s.req.Context(), id.Key())
	if err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
		case s.m.cfg.FailOpen:
			s.degraded = true
			s.m.cfg.Logger.Warn("session: store failed; continuing with a degraded session", "err", err)
		default:
			s.err = fmt.Errorf("%w: load: %w", ErrStore, err)
		}
		return sid.ID{}, store.Record{}, state{}, false
	}
	st, ok := s.check(id, rec)
	return id, rec, st, ok
}

// check decodes a loaded record and reports whether it is a live session.
func (s *Session) check(id sid.ID, rec store.Record) (state, bool) {
	now := s.m.cfg.Now()
	if !rec.Expires.After(now) {
		return state{}, false
	}
	st, err := decodeState(rec.Data)
	if err != nil {
		s.m.cfg.Logger.Error("session: ignoring unreadable session", "sid", id, "err", err)
		return state{}, false
	}
	if _, life := s.m.timeouts(st.remember); !st.created.Add(life).After(now) {
		return state{}, false
	}
	return st, true
}

// fresh makes s a new, empty, unsaved session.
func (s *Session) fresh() {
	s.id = sid.ID{}
	s.rec = store.Record{}
	s.st = state{created: s.m.cfg.Now().Truncate(time.Millisecond), values: map[string]value{}}
	s.user = ""
}

// ctx is the context of store writes: the request's, minus its
// cancellation, so that a client hanging up does not lose the changes it
// asked for.
func (s *Session) ctx() context.Context {
	if s.storeCtx == nil {
		s.storeCtx = context.WithoutCancel(s.req.Context())
	}
	return s.storeCtx
}

// do applies o to the current content and records it for replay.
func (s *Session) do(o op) error {
	if err := s.st.apply(&o, &s.user); err != nil {
		return err
	}
	s.ops = append(s.ops, o)
	return nil
}

func (st *state) apply(o *op, user *string) error {
	switch o.kind {
	case opSet:
		st.values[o.key] = o.val
	case opDelete:
		delete(st.values, o.key)
	case opClear:
		clear(st.values)
	case opUpdate:
		old, ok := st.values[o.key]
		v, err := o.fn(old, ok)
		if err != nil {
			return err
		}
		st.values[o.key] = v
	case opUser:
		*user = o.user
	case opRemember:
		st.remember = o.flag
	}
	return nil
}

// Err reports why the session could not be loaded (an error wrapping
// ErrStore or ErrNoManager), or nil. A session that failed to load reads as
// empty, saves nothing, and its request is answered by Config.ErrorHandler.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.err
}

// Get decodes the value stored under key into dst, a non-nil pointer, and
// reports whether there was one. Strings, []byte, int, int64 and bool decode
// directly; other types go through encoding/json.
func (s *Session) Get(key string, dst any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.err != nil {
		return false, s.err
	}
	v, ok := s.st.values[key]
	if !ok {
		return false, nil
	}
	return true, decodeValue(v, dst)
}

// Value returns the value stored under key as a T. It returns the zero T and
// false if there is none, if it does not decode into a T, or if the session
// failed to load (see Session.Err).
func Value[T any](s *Session, key string) (T, bool) {
	var v T
	ok, err := s.Get(key, &v)
	if err != nil || !ok {
		var zero T
		return zero, false
	}
	return v, true
}

// Has reports whether the session holds a value under key.
func (s *Session) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	_, ok := s.st.values[key]
	return ok
}

// Keys returns the session's keys in sorted order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	keys := make([]string, 0, len(s.st.values))
	for k := range s.st.values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Set stores v under key. Strings, []byte, int, int64 and bool are stored
// as they are; other values are encoded with encoding/json, and an error is
// returned if that fails.
func (s *Session) Set(key string, v any) error {
	val, err := encodeValue(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.do(op{kind: opSet, key: key, val: val})
}

// Update replaces the value under key by fn(old), where old is the current
// value (the zero T if there is none). Unlike a Get followed by a Set, it
// survives concurrent requests: after a conflict, fn runs again on the value
// the other request saved. fn must therefore depend only on its argument,
// and may run more than once.
func Update[T any](s *Session, key string, fn func(old T) T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.do(op{kind: opUpdate, key: key, fn: func(old value, ok bool) (value, error) {
		var cur T
		if ok {
			if err := decodeValue(old, &cur); err != nil {
				return value{}, err
			}
		}
		return encodeValue(fn(cur))
	}})
}

// Delete removes the value under key, if any.
func (s *Session) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if _, ok := s.st.values[key]; ok {
		s.do(op{kind: opDelete, key: key}) // cannot fail
	}
}

// Pop is Get followed by Delete: the flash-message idiom.
func (s *Session) Pop(key string, dst any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.err != nil {
		return false, s.err
	}
	v, ok := s.st.values[key]
	if !ok {
		return false, nil
	}
	s.do(op{kind: opDelete, key: key}) // cannot fail
	return true, decodeValue(v, dst)
}

// PopValue is Value followed by Delete.
func PopValue[T any](s *Session, key string) (T, bool) {
	var v T
	ok, err := s.Pop(key, &v)
	if err != nil || !ok {
		var zero T
		return zero, false
	}
	return v, true
}

// Clear removes every value. The session itself, its user and its ID stay.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	s.do(op{kind: opClear}) // cannot fail
}

// Login binds the session to userID and gives it a new ID when it is saved,
// so that an ID planted before login is worthless (session fixation,
// OWASP ASVS V7.2). The session can then be listed and destroyed with the
// user's other sessions (Manager.UserSessions, Manager.DestroyUser).
func (s *Session) Login(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	s.do(op{kind: opUser, user: userID}) // cannot fail
	s.renew = true
}

// UserID returns the user the session is bound to, or "".
func (s *Session) UserID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.user
}

// Renew gives the session a new ID when it is saved, keeping its content;
// the old ID stops working. Call it on every privilege change (Login does).
func (s *Session) Renew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	s.renew = true
}

// RememberMe switches the session between a browser session (false, the
// default) and a persistent one that survives browser restarts and uses
// Config.RememberIdleTimeout and Config.RememberLifetime.
func (s *Session) RememberMe(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	s.do(op{kind: opRemember, flag: on}) // cannot fail
}

// Destroy ends the session now, in the store, so that its ID no longer
// works on any instance; the response clears the client's token (with the
// cookie transport, also `Clear-Site-Data: "cookies"` and
// `Cache-Control: no-store`). Values set after Destroy start a new session.
// A failure is returned and also reported to Config.ErrorHandler.
func (s *Session) Destroy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.degraded {
		// The real session may still live in the store: a logout that
		// cannot reach it must not pretend to have ended it.
		s.err = fmt.Errorf("%w: destroy: the store was unavailable when the session was loaded", ErrStore)
	}
	if s.err != nil {
		return s.err
	}
	if !s.id.IsZero() {
		if err := s.m.cfg.Store.Delete(s.ctx(), s.id.Key(), 0); err != nil {
			s.err = fmt.Errorf("%w: delete: %w", ErrStore, err)
			return s.err
		}
	}
	s.fresh()
	s.ops, s.renew, s.retag, s.destroyed = nil, false, false, true
	return nil
}

// Degraded reports whether the store failed to load this session and the
// Manager fails open (Config.FailOpen): the session reads as empty and its
// changes will not be saved.
func (s *Session) Degraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.degraded
}

// IsNew reports whether the session is not (yet) stored: the request
// carried no live session.
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.id.IsZero()
}

// Created returns when the session was created.
func (s *Session) Created() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.st.created
}

// Handle returns the session's Info.Handle, or "" while it is not stored.
func (s *Session) Handle() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	return s.id.Key()
}

// Save saves the session now rather than when the response starts, so that
// the handler can act on the error. Later changes are saved again as usual.
func (s *Session) Save() error {
	return s.commit()
}

// commit saves what this request changed and sets the client's token. It
// runs before the response header is sent.
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
	switch {
	case s.degraded:
		s.ops = s.ops[:0] // the store is down: keep the client's real session
		return nil
	case s.id.IsZero() && len(s.ops) == 0:
		if s.destroyed {
			s.destroyed = false
			s.sendClear()
		}
		return nil
	case s.id.IsZero():
		return s.create(now)
	case len(s.ops) > 0 || s.renew:
		return s.save(now)
	default:
		s.touch(now)
		return nil
	}
}

// record returns the record to save for the current content.
func (s *Session) record(now time.Time, version uint64) store.Record {
	return store.Record{
		Data:    encodeState(&s.st),
		Version: version,
		Expires: s.m.expiry(&s.st, now),
		UserID:  s.user,
	}
}

// saved records a successful save of rec under id.
func (s *Session) saved(id sid.ID, rec store.Record, version uint64, now time.Time, sendToken bool) {
	rec.Version = version
	s.id, s.rec = id, rec
	s.ops, s.renew, s.destroyed = s.ops[:0], false, false
	if sendToken || s.retag || s.m.persistent(&s.st) {
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
	id := s.newID()
	rec := s.record(now, 0)
	v, err := s.m.cfg.Store.Save(s.ctx(), id.Key(), rec)
	if err != nil {
		return fmt.Errorf("%w: create: %w", ErrStore, err)
	}
	s.saved(id, rec, v, now, true)
	return nil
}

func (s *Session) save(now time.Time) error {
	if s.renew {
		return s.saveRenewed(now)
	}
	for attempt := 0; ; attempt++ {
		rec := s.record(now, s.rec.Version)
		v, err := s.m.cfg.Store.Save(s.ctx(), s.id.Key(), rec)
		if err == nil {
			s.saved(s.id, rec, v, now, false)
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: save: %w", ErrStore, err)
		}
		if attempt >= s.m.cfg.MaxRetries {
			return fmt.Errorf("%w: gave up after %d attempts", ErrConflict, attempt+1)
		}
		if ended, err := s.reload(attempt); ended || err != nil {
			return err
		}
	}
}

// saveRenewed moves the session to a new ID: it creates the new record,
// then deletes the old one with a compare-and-delete, so that a change
// another request saved under the old ID in between is merged, not lost.
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
		err = s.m.cfg.Store.Delete(ctx, s.id.Key(), s.rec.Version)
		if err == nil {
			s.saved(id, rec, version, now, true)
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			s.dropRecord(id, version)
			return fmt.Errorf("%w: renew: %w", ErrStore, err)
		}
		if attempt >= s.m.cfg.MaxRetries {
			s.dropRecord(id, version)
			return fmt.Errorf("%w: renew gave up after %d attempts", ErrConflict, attempt+1)
		}
		if ended, err := s.reload(attempt); ended || err != nil {
			s.dropRecord(id, version)
			return err
		}
	}
}

// dropRecord deletes a record this request created and cannot use.
func (s *Session) dropRecord(id sid.ID, version uint64) {
	if version == 0 {
		return
	}
	if err := s.m.cfg.Store.Delete(s.ctx(), id.Key(), 0); err != nil {
		s.m.cfg.Logger.Warn("session: could not delete an unused record; it will expire", "sid", id, "err", err)
	}
}

// reload re-reads the session after a conflict and replays this request's
// operations on it. ended reports that the session was destroyed (or has
// expired) meanwhile: then this request's changes are discarded, as if it
// had finished just before the destroy, and the session reads as new.
func (s *Session) reload(attempt int) (ended bool, err error) {
	backoff(attempt)
	rec, err := s.m.cfg.Store.Load(s.ctx(), s.id.Key())
	if errors.Is(err, store.ErrNotFound) {
		s.endedMeanwhile()
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: reload: %w", ErrStore, err)
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

// endedMeanwhile drops this request's changes to a session that another
// request destroyed. The client's token is left alone: the request that
// destroyed the session, or renewed it, has answered with the right one.
func (s *Session) endedMeanwhile() {
	s.m.logDebug("session: destroyed by another request; discarding this request's changes", "sid", s.id)
	s.fresh()
	s.ops, s.renew, s.retag = s.ops[:0], false, false
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
		if s.retag {
			s.sendToken(now)
		}
		return
	}
	exp := s.m.expiry(&s.st, now)
	var err error
	if s.m.toucher != nil {
		err = s.m.toucher.Touch(s.ctx(), s.id.Key(), exp)
	} else {
		rec := s.rec
		rec.Expires = exp
		var v uint64
		if v, err = s.m.cfg.Store.Save(s.ctx(), s.id.Key(), rec); err == nil {
			s.rec.Version = v
		}
	}
	switch {
	case err == nil:
		s.rec.Expires = exp
		if s.retag || s.m.persistent(&s.st) {
			s.sendToken(now)
		}
	case errors.Is(err, store.ErrConflict):
		// Another request saved the session, which extended it too.
	case errors.Is(err, store.ErrNotFound):
		s.endedMeanwhile()
	default:
		// The session stays valid until its current expiry; a failed
		// extension is not worth failing the request.
		s.m.cfg.Logger.Warn("session: could not extend expiry", "sid", s.id, "err", err)
	}
	s.retag = false
}

func (s *Session) sendToken(now time.Time) {
	var maxAge time.Duration
	if s.m.persistent(&s.st) {
		maxAge = s.rec.Expires.Sub(now)
	}
	h := s.w.ResponseWriter.Header()
	s.m.cfg.Transport.SetToken(s.w.ResponseWriter, s.id.String(), maxAge)
	if s.m.cookie {
		h.Add("Vary", "Cookie")
	}
	s.retag = false
}

func (s *Session) sendClear() {
	w := s.w.ResponseWriter
	s.m.cfg.Transport.ClearToken(w)
	w.Header().Set("Cache-Control", "no-store")
	if s.m.cookie && !s.m.cfg.DisableClearSiteData {
		w.Header().Set("Clear-Site-Data", `"cookies"`)
	}
}
