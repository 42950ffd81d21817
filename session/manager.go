package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Manager loads and saves the sessions of HTTP requests. Create one with New
// and wrap handlers with its Handler method. A Manager is safe for
// concurrent use and immutable after New.
type Manager struct {
	cfg           Config
	redact        redactor // names sessions in logs and events
	cookie        bool     // the transport is a Cookie
	clearSiteData string   // the Clear-Site-Data header of a logout, or ""
	toucher       store.Toucher
	userIndex     store.UserIndex
	tokens        TokenCodec // the stateless strategy, or nil
}

// New returns a Manager for cfg. It copies cfg and fills in defaults; it
// returns an error, never panics, on an invalid Config.
func New(cfg Config) (*Manager, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.Observer != nil && c.Store != nil {
		c.Store = observe(c.Store, c.Observer)
	}
	m := &Manager{cfg: c, redact: newRedactor(), tokens: c.Tokens}
	_, m.cookie = c.Transport.(Cookie)
	if m.cookie {
		m.clearSiteData = clearSiteData(c.ClearSiteData)
	}
	if m.tokens != nil {
		return m, nil
	}
	m.toucher, _ = c.Store.(store.Toucher)
	m.userIndex, _ = c.Store.(store.UserIndex)
	return m, nil
}

type ctxKey struct{}

// requestContext is the request's context with its Session as a value: a
// context.WithValue that lives inside the Session, saving an allocation.
type requestContext struct {
	context.Context
	s *Session
}

func (c *requestContext) Value(key any) any {
	if key == (ctxKey{}) {
		return c.s
	}
	return c.Context.Value(key)
}

// Handler returns middleware that gives every request a Session (see From).
// The session is loaded on first use, so a request that never uses it costs
// no store call, and saved just before the response's header is sent (or
// when the handler returns), so that a store error can still be answered by
// Config.ErrorHandler and a new token can still be set.
func (m *Manager) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &Session{m: m}
		s.rctx = requestContext{Context: r.Context(), s: s}
		r = r.WithContext(&s.rctx)
		s.req = r
		s.w = responseWriter{ResponseWriter: w, s: s}
		next.ServeHTTP(&s.w, r)
		s.w.finish()
	})
}

// From returns the session of a request that passed through
// Manager.Handler. For any other request it returns a session whose Err is
// ErrNoManager and which saves nothing. It never returns nil.
func From(r *http.Request) *Session {
	return FromContext(r.Context())
}

// FromContext is From for a request's context.
func FromContext(ctx context.Context) *Session {
	if s, ok := ctx.Value(ctxKey{}).(*Session); ok {
		return s
	}
	return &Session{loaded: true, err: ErrNoManager}
}

// Info describes one session of a user, as listed by UserSessions.
type Info struct {
	// Handle names the session without revealing its ID (it is the store
	// key), for DestroyHandle and for marking the current session (see
	// Session.Handle).
	Handle     string
	Created    time.Time
	Expires    time.Time
	RememberMe bool
}

// UserSessions lists the live sessions bound to userID (see Session.Login).
// It returns an error wrapping ErrUnsupported if the store has no per-user
// index, and with Config.Tokens (no server knows a user's tokens).
func (m *Manager) UserSessions(ctx context.Context, userID string) ([]Info, error) {
	if m.userIndex == nil {
		return nil, fmt.Errorf("session: listing a user's sessions: %w", ErrUnsupported)
	}
	entries, err := m.userIndex.ListUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("%w: list user: %w", ErrStore, err)
	}
	infos := make([]Info, 0, len(entries))
	for _, e := range entries {
		st, err := decodeState(e.Record.Data)
		if err != nil {
			m.cfg.Logger.Error("session: skipping unreadable session", "session", m.redact.name(e.Key), "err", err)
			continue
		}
		infos = append(infos, Info{Handle: e.Key, Created: st.created, Expires: e.Record.Expires, RememberMe: st.remember})
	}
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

// DestroyHandle ends the session named by an Info.Handle, if it belongs to
// userID ("log out that device"). Checking the owner keeps a handle taken
// from one user's list from ending another user's session. With
// Config.Tokens it returns an error wrapping ErrUnsupported.
func (m *Manager) DestroyHandle(ctx context.Context, userID, handle string) error {
	if m.tokens != nil {
		return fmt.Errorf("session: destroying a session by handle: %w", ErrUnsupported)
	}
	rec, err := m.cfg.Store.Load(ctx, handle)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidKey):
		return ErrUnknownHandle
	case err != nil:
		return fmt.Errorf("%w: load: %w", ErrStore, err)
	case rec.UserID != userID || userID == "":
		return ErrUnknownHandle
	}
	if err := m.cfg.Store.Delete(ctx, handle, 0); err != nil {
		return fmt.Errorf("%w: delete: %w", ErrStore, err)
	}
	m.event(ctx, EventDestroyed, handle, 0, nil)
	return nil
}

func clearSiteData(types []string) string {
	if types == nil {
		return `"cache"`
	}
	quoted := make([]string, len(types))
	for i, t := range types {
		quoted[i] = strconv.Quote(t)
	}
	return strings.Join(quoted, ", ")
}

// timeouts returns the idle timeout and lifetime for a session.
func (m *Manager) timeouts(remember bool) (idle, life time.Duration) {
	if remember {
		return m.cfg.RememberIdleTimeout, m.cfg.RememberLifetime
	}
	return m.cfg.IdleTimeout, m.cfg.Lifetime
}

// expiry returns when a session used at now ends: IdleTimeout after now,
// but never after its absolute deadline.
func (m *Manager) expiry(st *state, now time.Time) time.Time {
	idle, life := m.timeouts(st.remember)
	exp := now.Add(idle)
	if deadline := st.created.Add(life); exp.After(deadline) {
		exp = deadline
	}
	return exp.Truncate(time.Millisecond)
}

// touchDue reports whether an unchanged session should have its expiry
// moved: its last extension is more than TouchInterval old and its
// absolute deadline is still ahead.
func (m *Manager) touchDue(st *state, expires, now time.Time) bool {
	idle, life := m.timeouts(st.remember)
	if !expires.Before(st.created.Add(life).Truncate(time.Millisecond)) {
		return false
	}
	return now.Sub(expires.Add(-idle)) >= m.cfg.TouchInterval
}

func (m *Manager) persistent(st *state) bool { return m.cfg.Persist || st.remember }

func (m *Manager) handleError(w http.ResponseWriter, r *http.Request, err error) {
	if m.cfg.ErrorHandler != nil {
		m.cfg.ErrorHandler(w, r, err)
		return
	}
	m.cfg.Logger.Error("session: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Cache-Control", "no-store")
	status, msg := http.StatusInternalServerError, "session error"
	switch {
	case errors.Is(err, ErrTooManyConflicts):
		status, msg = http.StatusServiceUnavailable, "session changed concurrently, please retry"
	case errors.Is(err, ErrStore):
		status, msg = http.StatusServiceUnavailable, "session store unavailable, please retry"
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter(err)/time.Second)))
	}
	http.Error(w, msg, status)
}

// RetryAfter returns how long a client should wait before retrying after
// err: the wait an open circuit breaker reports (an error in err's chain
// with a RetryAfter() time.Duration method), or one second.
func RetryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return max(ra.RetryAfter(), time.Second)
	}
	return time.Second
}

func (m *Manager) logDebug(msg string, args ...any) {
	m.cfg.Logger.Debug(msg, args...)
}
