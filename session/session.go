package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	key       string       // the store key of the record this session reads and writes
	rec       store.Record // the stored record this session was read from
	st        state        // the current content
	user      string       // the bound user
	ops       []op         // changes not yet saved
	renew     bool         // give the session a new ID at commit
	retag     bool         // the ID was re-tagged with this node's route
	destroyed bool         // Destroy ended the stored session
	degraded  bool         // the store failed and Config.FailOpen is set
	moved     bool         // another request renewed the session: key is its new record
	family    string       // Config.Tokens: TokenClaims.Family of the loaded token
	// headerSent: the response header has gone out; no token can be sent.
	headerSent     bool
	persistChanged bool // RememberMe changed: the token's lifetime must be re-sent
	varySent       bool
	// adoptedKey and adoptedVersion name the Config.Previous.Store record
	// of a session this request moved into a token (see adoptStored).
	adoptedKey     string
	adoptedVersion uint64
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
	at   time.Time // opUser: when the login happened
	flag bool
	// opUser: the client's label and address (see meta)
	client, addr string
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
	s.id, s.key, s.rec, s.st, s.user = id, id.Key(), rec, st, rec.UserID
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
	if s.m.tokens != nil {
		id, rec, st, ok := s.loadStateless(tok)
		if !ok && s.m.prevStore != nil {
			return s.adoptStored(tok)
		}
		return id, rec, st, ok
	}
	id, err := sid.Parse(tok)
	if err != nil {
		if s.m.prevTokens != nil {
			return s.adoptToken(tok)
		}
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
			s.m.event(s.req.Context(), EventDegraded, id.Key(), 0, err)
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
		s.m.event(s.req.Context(), EventExpired, id.Key(), 0, nil)
		return state{}, false
	}
	if _, moved := movedTo(rec.Data); moved {
		return state{}, false // the ID was renewed: the old one names no session
	}
	st, err := decodeState(rec.Data)
	if err != nil {
		s.m.cfg.Logger.Error("session: ignoring unreadable session", "session", s.m.redact.name(id.Key()), "err", err)
		return state{}, false
	}
	if _, life := s.m.timeouts(st.remember); !st.created.Add(life).After(now) {
		s.m.event(s.req.Context(), EventExpired, id.Key(), 0, nil)
		return state{}, false
	}
	return st, true
}

// fresh makes s a new, empty, unsaved session.
func (s *Session) fresh() {
	s.id, s.key = sid.ID{}, ""
	s.rec = store.Record{}
	s.st = state{created: s.m.cfg.Now().Truncate(time.Millisecond)}
	s.user, s.family = "", ""
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
		st.values.set(o.key, o.val)
	case opDelete:
		st.values.del(o.key)
	case opClear:
		st.values.clear()
	case opUpdate:
		old, ok := st.values.get(o.key)
		v, err := o.fn(old, ok)
		if err != nil {
			return err
		}
		st.values.set(o.key, v)
	case opUser:
		*user = o.user
		st.created = o.at
		st.meta.authAt = o.at
		st.meta.client, st.meta.addr = o.client, o.addr
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
	v, ok := s.st.values.get(key)
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
	_, ok := s.st.values.get(key)
	return ok
}

// Keys returns the session's keys in sorted order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	keys := make([]string, 0, s.st.values.len())
	s.st.values.each(func(k string, _ value) { keys = append(keys, k) })
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
// may run more than once, and must not call the Session (it runs under the
// Session's lock).
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
	if _, ok := s.st.values.get(key); ok {
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
	v, ok := s.st.values.get(key)
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
// OWASP ASVS V7.2). The absolute lifetime starts again from the login. The
// session can then be listed and destroyed with the user's other sessions
// (Manager.UserSessions, Manager.DestroyUser). Call it before the response
// starts: a new ID cannot reach the client afterwards.
func (s *Session) Login(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	s.do(s.loginOp(userID, s.m.cfg.Now().Truncate(time.Millisecond))) // cannot fail
	s.renew = true
}

// loginOp is the operation of a Login at at, from the request's client.
func (s *Session) loginOp(userID string, at time.Time) op {
	client, addr := s.m.client(s)
	return op{kind: opUser, user: userID, at: at, client: client, addr: addr}
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
	if s.st.remember != on {
		s.persistChanged = true
	}
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
	if !s.id.IsZero() && s.m.tokens != nil {
		if err := s.destroyStateless(); err != nil {
			s.err = err
			return s.err
		}
		s.dropAdopted()
		s.m.event(s.req.Context(), EventDestroyed, s.key, 0, nil)
	} else if !s.id.IsZero() {
		if err := s.destroy(); err != nil {
			s.err = fmt.Errorf("%w: delete: %w", ErrStore, err)
			return s.err
		}
		s.m.event(s.req.Context(), EventDestroyed, s.key, 0, nil)
	}
	s.fresh()
	s.ops, s.renew, s.retag, s.moved, s.destroyed = nil, false, false, false, true
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
	if s.moved || s.id.IsZero() {
		return ""
	}
	return handleOf(s.key)
}

// Save saves the session now rather than when the response starts, so that
// the handler can act on the error. Later changes are saved again as usual.
func (s *Session) Save() error {
	return s.commit()
}

// String returns a description of the session that names it only by its
// redacted form: printing a Session never reveals its ID.
func (s *Session) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.m == nil:
		return "session(detached)"
	case s.id.IsZero():
		return "session(new)"
	}
	return "session(" + s.id.Redacted() + ")"
}

// Format implements fmt.Formatter with String, for every verb.
func (s *Session) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// LogValue implements slog.LogValuer with String.
func (s *Session) LogValue() slog.Value { return slog.StringValue(s.String()) }
