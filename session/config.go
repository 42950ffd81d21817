package session

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

// Default timeouts: NIST SP 800-63B's reauthentication bounds for AAL2
// (30 minutes idle, 12 hours in all) for ordinary sessions, and a week idle
// within 30 days for remember-me sessions (OWASP ASVS 5.0 V7.3 asks for both
// bounds, set by the application's risk).
const (
	DefaultIdleTimeout         = 30 * time.Minute
	DefaultLifetime            = 12 * time.Hour
	DefaultRememberIdleTimeout = 7 * 24 * time.Hour
	DefaultRememberLifetime    = 30 * 24 * time.Hour
	DefaultMaxRetries          = 16
)

// Config configures a Manager. Exactly one of Store and Tokens is
// required; every other zero field means its documented default. New
// copies the Config, so changing it afterwards has no effect on the
// Manager.
type Config struct {
	// Store holds the sessions: the stateful strategies (memory, Redis,
	// PostgreSQL, ...).
	Store store.Store

	// Tokens switches the Manager to the stateless strategy: the whole
	// session travels in the client's token, sealed or signed by Tokens
	// (see package token), and no store holds it. The API is the same,
	// with three differences: every change or extension of a session sends
	// a new token; two concurrent requests of one session that both change
	// it are not merged (the client keeps the token it received last, so
	// one request's changes are lost); and Manager.UserSessions and
	// Manager.DestroyHandle return ErrUnsupported (DestroyUser works, by
	// revocation). Destroy, Renew and Login revoke the old tokens through
	// Tokens (see TokenClaims.Family).
	// A session whose token would exceed MaxSetCookieBytes fails to save
	// with a *TokenSizeError.
	Tokens TokenCodec

	// Transport carries the session token; default Cookie{} (a Secure,
	// HttpOnly, SameSite=Lax cookie named "session"). Use Header{} for APIs.
	Transport Transport

	// IdleTimeout ends a session after this long without a request that
	// uses it; default DefaultIdleTimeout. Lifetime ends it this long after
	// it was created, whatever its activity; default DefaultLifetime.
	IdleTimeout time.Duration
	Lifetime    time.Duration

	// RememberIdleTimeout and RememberLifetime replace IdleTimeout and
	// Lifetime for sessions marked with Session.RememberMe; defaults
	// DefaultRememberIdleTimeout and DefaultRememberLifetime.
	RememberIdleTimeout time.Duration
	RememberLifetime    time.Duration

	// Persist makes every session's token persistent (a cookie with
	// Max-Age), not only remember-me sessions. Default false: a browser
	// session cookie, gone when the browser closes.
	Persist bool

	// TouchInterval is how stale a session's expiry may get before a request
	// that changed nothing extends it; default a tenth of the idle timeout.
	// Requests in between cost no store write, at the price of ending idle
	// sessions up to TouchInterval early.
	TouchInterval time.Duration

	// Route is the route tag put on new session IDs, usually the node's
	// name, for balancers that route by it (see package sid). A request
	// whose ID carries another tag is answered with the ID re-tagged for
	// this node. Default "": no tag.
	Route string

	// MaxRetries bounds how often a save that lost a compare-and-set race is
	// merged and retried before the request fails with ErrTooManyConflicts; default
	// DefaultMaxRetries.
	MaxRetries int

	// ErrorHandler answers a request whose session could not be loaded or
	// saved. It runs before any of the handler's response has been sent,
	// and replaces that response. Errors wrap ErrStore (and the store's
	// error, such as store.ErrUnavailable from an open circuit breaker),
	// ErrTooManyConflicts or ErrNoManager. Default: log the error and answer 503
	// with Retry-After (the breaker's, or 1 second) and a short text body
	// for store failures and conflicts, 409 for ErrTooManySessions, 413 for
	// a session larger than the store holds (store.ErrTooLarge), 500
	// otherwise.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// FailOpen keeps the site up while the store is down: a request whose
	// session cannot be loaded continues with a fresh session whose
	// Degraded method reports true. A degraded session reads as empty, is
	// never saved, and leaves the client's token alone, so the real session
	// is back once the store is. Failures to save or destroy still go to
	// ErrorHandler. Default false: such requests are answered by
	// ErrorHandler.
	FailOpen bool

	// Logger receives errors and notable events. Session IDs never appear in
	// it, only their redacted form. Default: discard.
	Logger *slog.Logger

	// ClearSiteData lists the Clear-Site-Data types a logout (Destroy)
	// answers with, for the cookie transport. Nil means `"cache"`: the
	// browser drops pages cached for the logged-out user. An empty, non-nil
	// slice sends no header. Add "cookies" only if every cookie of the
	// whole registrable domain (sibling subdomains included) may go.
	ClearSiteData []string

	// MaxSessionsPerUser bounds how many live sessions one user may hold
	// at once (OWASP ASVS 5.0 V7.1.2). A Session.Login that would exceed
	// it ends the user's least recently used sessions or is refused,
	// as SessionLimit says. Default 0: no limit. It needs a store with a
	// per-user index (store.UserIndex): New refuses it otherwise, and with
	// Tokens (no server knows a user's tokens). See
	// docs/account-sessions.md for what each store guarantees.
	MaxSessionsPerUser int

	// SessionLimit is what a Login beyond MaxSessionsPerUser does; default
	// EvictLeastRecent.
	SessionLimit LimitPolicy

	// ClientIP says whether a session keeps its client's IP address, for
	// Manager.UserSessions; default ClientIPOff. The address is taken at
	// creation and at each Login, from ClientAddr.
	ClientIP ClientIP

	// ClientAddr returns the IP address of a request's client, for
	// ClientIP. Default: the host of Request.RemoteAddr. Behind a proxy or
	// balancer, return the address it reports (such as the last entry of
	// X-Forwarded-For that your own proxy added); never trust a header the
	// client could set.
	ClientAddr func(*http.Request) string

	// RecordFormat is the encoding of the sessions this Manager writes (in
	// a store's records, or inside tokens): 0 or 3 for the current one,
	// 1 for the one of releases before the account metadata (Info's
	// LastSeen, Authenticated, Client and IP), which they can read.
	// Every format is read whatever this setting. During a rolling upgrade
	// from such a release, run the new release with 1 until no old
	// instance is left, then with the default (docs/migration.md).
	// Sessions written in format 1 carry no metadata: a devices page
	// shows them without it until they are next written in format 3.
	RecordFormat int

	// Previous is the strategy this Manager replaces, so that switching
	// from tokens to a store, or back, logs nobody out: a request whose
	// token this Manager's own strategy does not know is read with
	// Previous and its session carried on in this Manager's strategy.
	// With a Store, a token of Previous.Tokens (still valid, and not
	// revoked by its revocations) becomes a store record under its own
	// session ID, and the client gets that ID; with Tokens, the ID of a
	// live Previous.Store session becomes a token, and the record is
	// deleted. Default nil. See docs/migration.md.
	Previous *Previous

	// Observer receives session events and the store's calls, for
	// metrics and traces. Default nil: none.
	Observer Observer

	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Store == nil && c.Tokens == nil:
		return c, errors.New("session: Config.Store (or Config.Tokens, for the stateless strategy) is required")
	case c.Store != nil && c.Tokens != nil:
		return c, errors.New("session: Config.Store and Config.Tokens are exclusive: set one")
	case c.Tokens != nil && c.FailOpen:
		return c, errors.New("session: Config.FailOpen has no meaning with Config.Tokens (there is no store to fail)")
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.RememberIdleTimeout == 0 {
		c.RememberIdleTimeout = DefaultRememberIdleTimeout
	}
	if c.RememberLifetime == 0 {
		c.RememberLifetime = DefaultRememberLifetime
	}
	if c.TouchInterval == 0 {
		c.TouchInterval = c.IdleTimeout / 10
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"IdleTimeout", c.IdleTimeout}, {"Lifetime", c.Lifetime},
		{"RememberIdleTimeout", c.RememberIdleTimeout}, {"RememberLifetime", c.RememberLifetime},
		{"TouchInterval", c.TouchInterval},
	} {
		if d.v < 0 {
			return c, fmt.Errorf("session: Config.%s is negative (%v)", d.name, d.v)
		}
	}
	if c.MaxRetries < 0 {
		return c, fmt.Errorf("session: Config.MaxRetries is negative (%d)", c.MaxRetries)
	}
	if err := c.checkLimit(); err != nil {
		return c, err
	}
	if c.Previous != nil {
		if err := c.Previous.check(&c); err != nil {
			return c, err
		}
	}
	if c.RecordFormat != 0 && c.RecordFormat != 1 && c.RecordFormat != 3 {
		return c, fmt.Errorf("session: Config.RecordFormat %d: want 0 (the current format), 1 or 3", c.RecordFormat)
	}
	if c.ClientIP > ClientIPFull {
		return c, fmt.Errorf("session: Config.ClientIP %d is not a ClientIP setting", c.ClientIP)
	}
	if err := sid.CheckRoute(c.Route); err != nil {
		return c, fmt.Errorf("session: Config.Route: %w", err)
	}
	switch t := c.Transport.(type) {
	case nil:
		ck, _ := Cookie{}.withDefaults()
		c.Transport = ck
	case Cookie:
		ck, err := t.withDefaults()
		if err != nil {
			return c, err
		}
		c.Transport = ck
	case *Cookie:
		if t == nil {
			t = &Cookie{}
		}
		ck, err := t.withDefaults()
		if err != nil {
			return c, err
		}
		c.Transport = ck
	case Header:
		c.Transport = t.withDefaults()
	case *Header:
		if t == nil {
			t = &Header{}
		}
		c.Transport = t.withDefaults()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
