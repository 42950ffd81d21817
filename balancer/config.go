package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit/session/sid"
)

// Defaults of Config and HealthCheck.
const (
	DefaultSessionCookie      = "__Host-session"
	DefaultAffinityCookie     = "sk_affinity"
	DefaultHealthPath         = "/healthz"
	DefaultHealthInterval     = 2 * time.Second
	DefaultHealthTimeout      = 1 * time.Second
	DefaultRise               = 2
	DefaultFall               = 3
	DefaultEjectFor           = 10 * time.Second
	DefaultBackendIdleTimeout = 4 * time.Second
	DefaultDrainTimeout       = 10 * time.Minute
	DefaultSessionWindow      = 10 * time.Minute
	DefaultMaxBodyBytes       = 32 << 20
	MinAffinityKeyLen         = 32 // bytes of an affinity cookie's HMAC key
)

// Errors returned by New and the node methods. Test them with errors.Is.
var (
	ErrConfig       = errors.New("balancer: invalid configuration")
	ErrNodeExists   = errors.New("balancer: node already exists")
	ErrNodeNotFound = errors.New("balancer: no such node")
	ErrClosed       = errors.New("balancer: closed")
)

// Backend is one node: a name and the base URL the balancer proxies to.
type Backend struct {
	// Name is the node's name, and the route tag its session IDs carry:
	// 1 to 64 ASCII letters, digits, '-' and '_' (sid.CheckRoute).
	Name string `json:"name"`

	// URL is the node's base URL, http or https, with a host and without
	// a query or fragment. A path is prefixed to every proxied path.
	URL string `json:"url"`
}

// check validates b and returns its parsed URL.
func (b Backend) check() (*url.URL, error) {
	if b.Name == "" {
		return nil, fmt.Errorf("%w: a backend has no name", ErrConfig)
	}
	if err := sid.CheckRoute(b.Name); err != nil {
		return nil, fmt.Errorf("%w: backend name %q: want 1 to 64 ASCII letters, digits, '-' or '_'", ErrConfig, b.Name)
	}
	u, err := url.Parse(b.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: backend %s: URL %q: %v", ErrConfig, b.Name, b.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: backend %s: URL %q: want http(s)://host[:port][/path]", ErrConfig, b.Name, b.URL)
	}
	return u, nil
}

// AffinityCookie configures the balancer's own affinity cookie, for apps
// whose session cookies carry no sessionkit route tag. Its value is
// "<key>.<node id>.<mac>": a random 128-bit key (the rendezvous-hashing key
// when the user must be re-homed), an opaque node id derived from the node's
// name with the HMAC key, and an HMAC-SHA256 over both, checked in constant
// time. It reveals neither the node's name nor its address.
type AffinityCookie struct {
	// Enabled turns the cookie on. Default off: sessionkit apps are routed
	// by the route tag of their session cookie.
	Enabled bool

	// Name of the cookie; default DefaultAffinityCookie.
	Name string

	// Key signs the cookie: at least MinAffinityKeyLen bytes. Balancer
	// instances that must accept each other's cookies need the same key.
	// Default: a random key, so cookies do not survive a restart.
	Key []byte

	// Insecure drops the Secure attribute, for plain-HTTP development.
	// Default: Secure.
	Insecure bool

	// SameSite; default http.SameSiteLaxMode.
	SameSite http.SameSite

	// Path; default "/".
	Path string
}

// HealthCheck configures the active health checks.
type HealthCheck struct {
	// Path is requested with GET on every node; a 2xx or 3xx answer within
	// Timeout passes. Default DefaultHealthPath.
	Path string

	// Interval between two rounds of checks. Default DefaultHealthInterval;
	// negative: no background checks (call Balancer.CheckHealth).
	Interval time.Duration

	// Timeout of one check. Default DefaultHealthTimeout.
	Timeout time.Duration

	// Rise is the number of consecutive passed checks that bring a down
	// node back; Fall the number of failures that take it down. Defaults
	// DefaultRise and DefaultFall.
	Rise, Fall int
}

// Config configures a Balancer. The zero value of every field means its
// default; New copies the Config and never modifies the caller's.
type Config struct {
	// Backends are the initial nodes. Names must be unique. Default none:
	// nodes can be added later with AddNode (until then every request is
	// answered 503).
	Backends []Backend

	// SessionCookie names the app's session cookie, whose value's route
	// tag selects the node (sessionkit session IDs, or any value of the
	// form "<43 base64url characters>.<route>", like Tomcat's jvmRoute).
	// Default DefaultSessionCookie, "__Host-session", the cookie
	// sessionkit's session.Cookie sets by default. A name with the
	// "__Host-" prefix is read first, then the same name without it (the
	// cookie of an app that does not add the prefix, such as serve with
	// --insecure-cookie, or of an earlier sessionkit), as session.Cookie
	// reads them.
	SessionCookie string

	// Affinity configures the balancer's own affinity cookie.
	Affinity AffinityCookie

	// SharedSessions states the failure policy. True: sessions live in a
	// shared store or in tokens, so a re-homed user keeps their session.
	// False (default): sessions live in the nodes' memory, so each re-homed
	// session is counted as lost.
	SharedSessions bool

	// LoadFactor bounds the load of new sessions and re-homes: a node with
	// more than LoadFactor times the average number of requests in flight
	// is passed over. Default 0: no bound. Otherwise at least 1 (1.25 is
	// a common choice).
	LoadFactor float64

	// Health configures the active health checks.
	Health HealthCheck

	// EjectFor is how long a connection error keeps a node out of the
	// rotation, unless a health check passes earlier. Default
	// DefaultEjectFor.
	EjectFor time.Duration

	// DrainTimeout is the drain deadline when Drain is given none (and of
	// the admin API's drain without "timeout"). Default DefaultDrainTimeout.
	DrainTimeout time.Duration

	// SessionWindow is the window of the per-node session counts that
	// Nodes reports: distinct affinity keys seen on the node in the last
	// SessionWindow/2 to SessionWindow. Default DefaultSessionWindow.
	SessionWindow time.Duration

	// MaxBodyBytes limits request bodies; a larger one is cut off and the
	// request fails. Default DefaultMaxBodyBytes; negative: no limit.
	MaxBodyBytes int64

	// TrustForwarded keeps the X-Forwarded-For, -Host and -Proto headers
	// the client sent (appending to X-Forwarded-For), for a balancer
	// behind another trusted proxy. Default false: they are replaced.
	TrustForwarded bool

	// BackendIdleTimeout is how long a keep-alive connection to a node may
	// stay idle before the balancer closes it. Both engines notice an idle
	// connection that the node has closed before they reuse it, but keep
	// this shorter than the nodes' own keep-alive timeout all the same: a
	// node that closes an idle connection just as the balancer sends a
	// request on it fails that request, and a POST, which is never sent
	// twice, then gets 502. Default
	// DefaultBackendIdleTimeout (4s, under the 5s of Node.js and Apache).
	// With a Transport of your own, set its idle timeout there; this one
	// applies to the default transport and to the fast server.
	BackendIdleTimeout time.Duration

	// Transport carries the proxied requests and the health checks.
	// Default NewTransport(), with BackendIdleTimeout as its
	// IdleConnTimeout.
	Transport http.RoundTripper

	// Observer receives the balancer's events (requests, affinity,
	// retries, ejections, node changes), for metrics: see Observer.
	// Default nil: no events, at no cost.
	Observer Observer

	// Logger receives node state changes, ejections, admin changes and
	// proxy errors; never a session ID. Default: discard.
	Logger *slog.Logger

	// Now is the clock of ejections, drain deadlines and session counts.
	// Default time.Now.
	Now func() time.Time
}

// FieldError is a Config field whose value New refuses. It wraps
// ErrConfig; a program that sets the field from its own input (a flag,
// a file) can name that input instead of the field.
type FieldError struct {
	Field string // the Config field, such as "LoadFactor" or "Affinity.Key"
	Value string // the value, as the message shows it; "" for a key
	Why   string // what is wrong with it
	Other string // another field the value conflicts with, or ""
}

func (e *FieldError) Error() string {
	msg := fmt.Sprintf("%v: %s", ErrConfig, e.Field)
	if e.Value != "" {
		msg += " " + e.Value
	}
	msg += ": " + e.Why
	if e.Other != "" {
		msg += " (" + e.Other + ")"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrConfig) true.
func (e *FieldError) Unwrap() error { return ErrConfig }

const cookieNameRule = "not a valid cookie name: want letters, digits and !#$%&'*+-.^_`|~"

// withDefaults returns a copy of c with its defaults filled in, or an
// error wrapping ErrConfig (a *FieldError for a field of its own).
func (c Config) withDefaults() (Config, error) {
	c.Backends = append([]Backend(nil), c.Backends...)
	c.Affinity.Key = append([]byte(nil), c.Affinity.Key...)
	if c.SessionCookie == "" {
		c.SessionCookie = DefaultSessionCookie
	}
	if !validCookieName(c.SessionCookie) {
		return c, &FieldError{Field: "SessionCookie", Value: fmt.Sprintf("%q", c.SessionCookie), Why: cookieNameRule}
	}
	a := &c.Affinity
	if a.Name == "" {
		a.Name = DefaultAffinityCookie
	}
	if !validCookieName(a.Name) {
		return c, &FieldError{Field: "Affinity.Name", Value: fmt.Sprintf("%q", a.Name), Why: cookieNameRule}
	}
	if a.Enabled && (a.Name == c.SessionCookie || a.Name == strings.TrimPrefix(c.SessionCookie, "__Host-")) {
		return c, &FieldError{Field: "Affinity.Name", Value: fmt.Sprintf("%q", a.Name), Why: "the session cookie has the same name", Other: "SessionCookie"}
	}
	if len(a.Key) != 0 && len(a.Key) < MinAffinityKeyLen {
		return c, &FieldError{Field: "Affinity.Key", Why: fmt.Sprintf("%d bytes; want at least %d", len(a.Key), MinAffinityKeyLen)}
	}
	if a.SameSite == 0 {
		a.SameSite = http.SameSiteLaxMode
	}
	if a.SameSite == http.SameSiteNoneMode && a.Insecure {
		return c, fmt.Errorf("%w: Affinity.SameSite None needs a Secure cookie", ErrConfig)
	}
	if a.Path == "" {
		a.Path = "/"
	}
	h := &c.Health
	if h.Path == "" {
		h.Path = DefaultHealthPath
	}
	if h.Path[0] != '/' {
		return c, &FieldError{Field: "Health.Path", Value: fmt.Sprintf("%q", h.Path), Why: "must start with '/'"}
	}
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Timeout < 0 {
		return c, fmt.Errorf("%w: Health.Timeout must be positive", ErrConfig)
	}
	if h.Rise == 0 {
		h.Rise = DefaultRise
	}
	if h.Fall == 0 {
		h.Fall = DefaultFall
	}
	if h.Rise < 0 || h.Fall < 0 {
		return c, fmt.Errorf("%w: Health.Rise and Health.Fall must be positive", ErrConfig)
	}
	if c.LoadFactor != 0 && !(c.LoadFactor >= 1) { // also rejects NaN
		return c, &FieldError{Field: "LoadFactor", Value: fmt.Sprint(c.LoadFactor), Why: "want 0 (no bound) or at least 1"}
	}
	for _, d := range []*time.Duration{&c.EjectFor, &c.DrainTimeout, &c.SessionWindow, &c.BackendIdleTimeout} {
		if *d < 0 {
			return c, fmt.Errorf("%w: EjectFor, DrainTimeout, SessionWindow and BackendIdleTimeout must be positive", ErrConfig)
		}
	}
	if c.BackendIdleTimeout == 0 {
		c.BackendIdleTimeout = DefaultBackendIdleTimeout
	}
	if c.EjectFor == 0 {
		c.EjectFor = DefaultEjectFor
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.SessionWindow == 0 {
		c.SessionWindow = DefaultSessionWindow
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Transport == nil {
		t := NewTransport()
		t.IdleConnTimeout = c.BackendIdleTimeout
		c.Transport = t
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// validCookieName reports whether name is an RFC 6265 token.
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
			return false
		}
	}
	return true
}
