package session

import (
	"context"
	"errors"
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
	tokens        TokenCodec  // the stateless strategy, or nil
	format        byte        // the record format written (Config.RecordFormat)
	prevTokens    TokenCodec  // Config.Previous.Tokens, or nil
	prevStore     store.Store // Config.Previous.Store, or nil
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
	m := &Manager{cfg: c, redact: newRedactor(), tokens: c.Tokens, format: formatV3}
	if c.RecordFormat == 1 {
		m.format = formatV1
	}
	if p := c.Previous; p != nil {
		m.prevTokens, m.prevStore = p.Tokens, p.Store
	}
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

// client returns the label and address of the client of s's request that
// a session keeps (see meta).
func (m *Manager) client(s *Session) (label, addr string) {
	if s.req == nil {
		return "", ""
	}
	return clientLabel(s.req.UserAgent()), clientAddr(m.cfg.ClientIP, m.cfg.ClientAddr, s.req)
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
	case errors.Is(err, store.ErrTooLarge):
		// The session outgrew what the store holds: sending it again
		// will not help.
		status, msg = http.StatusRequestEntityTooLarge, "session too large for the session store"
	case errors.Is(err, ErrStore):
		status, msg = http.StatusServiceUnavailable, "session store unavailable, please retry"
	case errors.Is(err, ErrTooManySessions):
		status, msg = http.StatusConflict, "too many sessions: log out on another device first"
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
