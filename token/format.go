package token

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sessionkit/sessionkit/session"
)

// Claims is what a token carries: a session's ID, user, times and content
// (see session.TokenClaims).
type Claims = session.TokenClaims

// Format seals or signs Claims into a token and opens it again: Sealed
// and JWT. Implementations are safe for concurrent use.
type Format interface {
	// Seal returns the token for c, made with the ring's key current
	// when c was issued (Ring.CurrentAt(c.Issued)). A token over
	// Config.MaxLen is a *session.TokenSizeError.
	Seal(c Claims) (string, error)
	// Open returns the claims of a token if it is authentic, of this
	// format and purpose, and within its validity; any other token is an
	// error that wraps ErrInvalid.
	Open(tok string) (Claims, error)
}

// ErrInvalid is wrapped by every rejection of a token: forged, tampered,
// expired, not yet valid, revoked, of another purpose or format, with an
// unknown key, over the size limit, malformed. Tell clients only this
// (sessionkit's Manager turns it into "no session"); the wrapping error's
// text, with the reason, is for the server's logs.
var ErrInvalid = errors.New("token: invalid token")

// invalid returns an error wrapping ErrInvalid with a reason for logs.
func invalid(reason string) error { return &InvalidError{Reason: reason} }

// InvalidError is the error of a rejected token. Its Reason is for the
// server's logs only.
type InvalidError struct {
	Reason string
	Err    error // the underlying error, if any
}

func (e *InvalidError) Error() string {
	if e.Err != nil {
		return "token: invalid token: " + e.Reason + ": " + e.Err.Error()
	}
	return "token: invalid token: " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the underlying error.
func (e *InvalidError) Unwrap() error { return e.Err }

// Defaults of Config.
const (
	DefaultPurpose  = "session"
	DefaultIssuer   = "sessionkit"
	DefaultMaxLen   = 4096
	DefaultLeeway   = 5 * time.Second
	MaxLeeway       = 60 * time.Second
	DefaultLifetime = session.DefaultRememberLifetime
)

// Config configures a Format. Ring is required; every other zero field
// means its documented default. NewSealed and NewJWT copy it.
type Config struct {
	// Ring holds the keys. Sealed uses its XC20P keys, JWT its EdDSA,
	// ES256 and HS256 keys; keys of the other kind are ignored, and the
	// keys that sign now or later (the current one and any published
	// ahead, see Ring.RotateAt) must be of the format's kind. Required.
	Ring *Ring

	// Purpose binds tokens to one use: a token made for one purpose is
	// never accepted for another (the sealed format authenticates it as
	// associated data; a JWT carries it in its "typ" header as
	// "<purpose>+jwt"). Default DefaultPurpose ("session"). ASCII letters,
	// digits, '-', '_' and '.'.
	Purpose string

	// Issuer and Audience are the JWT's "iss" and "aud", written into
	// every token and required to match exactly when one is opened.
	// Defaults DefaultIssuer and the same as Issuer. The sealed format
	// ignores them: its purpose and key bind it already.
	Issuer   string
	Audience string

	// Leeway tolerates clock skew between instances when checking "exp",
	// "iat" and "nbf". Default DefaultLeeway (5s); at most MaxLeeway
	// (60s); negative is an error.
	Leeway time.Duration

	// MaxLen is the longest token Open looks at; longer ones are rejected
	// before any decoding. Default DefaultMaxLen (4096, the most a cookie
	// may hold). Seal refuses to make a token longer than MaxLen, with a
	// *session.TokenSizeError.
	MaxLen int

	// MaxLifetime is the longest validity (exp minus iat) a token may
	// claim; Open rejects longer ones. Default DefaultLifetime (30 days,
	// session.DefaultRememberLifetime).
	MaxLifetime time.Duration

	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults(sealed bool) (Config, error) {
	if c.Ring == nil {
		return c, errors.New("token: Config.Ring is required")
	}
	if c.Purpose == "" {
		c.Purpose = DefaultPurpose
	}
	for i := 0; i < len(c.Purpose); i++ {
		b := c.Purpose[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.') || i >= 64 {
			return c, fmt.Errorf("token: Config.Purpose %q: want at most 64 ASCII letters, digits, '-', '_' or '.'", c.Purpose)
		}
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = c.Issuer
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = DefaultLeeway
	case c.Leeway < 0:
		return c, fmt.Errorf("token: Config.Leeway is negative (%v)", c.Leeway)
	case c.Leeway > MaxLeeway:
		return c, fmt.Errorf("token: Config.Leeway %v is over the limit of %v", c.Leeway, MaxLeeway)
	}
	if c.MaxLen == 0 {
		c.MaxLen = DefaultMaxLen
	}
	if c.MaxLen < 0 {
		return c, fmt.Errorf("token: Config.MaxLen is negative (%d)", c.MaxLen)
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultLifetime
	}
	if c.MaxLifetime < 0 {
		return c, fmt.Errorf("token: Config.MaxLifetime is negative (%v)", c.MaxLifetime)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	kind := "JWT (EdDSA, ES256, HS256)"
	if sealed {
		kind = "sealed (XC20P)"
	}
	cur := c.Ring.Current()
	if cur == nil {
		return c, fmt.Errorf("token: the key ring has no current key; rotate it to add one")
	}
	if cur.Alg.sealed() != sealed {
		return c, fmt.Errorf("token: the key ring's current key %s is %s, not a %s key", cur.ID, cur.Alg, kind)
	}
	// Every key that signs now or later must be of the format's kind.
	now := c.Now()
	for _, k := range c.Ring.keys {
		if k.signs() && (k.Retired.IsZero() || k.Retired.After(now)) && k.Alg.sealed() != sealed {
			return c, fmt.Errorf("token: the key ring's key %s, which signs until %s, is %s, not a %s key",
				k.ID, k.Retired.Format(time.RFC3339), k.Alg, kind)
		}
	}
	return c, nil
}

// signingKey returns the key that seals or signs c: the ring's key
// current when c was issued (its Issued time, or now if that is zero),
// so that a retired key never makes a token issued after its retirement
// and a key published ahead of its activation (Ring.RotateAt) starts
// signing at the activation by itself, with no new Format.
func signingKey(cfg *Config, c *Claims) *Key {
	t := c.Issued
	if t.IsZero() {
		t = cfg.Now()
	}
	return cfg.Ring.CurrentAt(t)
}

// checkTimes applies the validity rules shared by both formats: exp in the
// future (with leeway), iat not in the future, nbf (if any) not in the
// future, the lifetime bounded, and a retired key only for tokens issued
// before it was retired.
func checkTimes(cfg *Config, k *Key, iat, exp, nbf time.Time) error {
	now := cfg.Now()
	switch {
	case !now.Before(exp.Add(cfg.Leeway)):
		return invalid("expired")
	case iat.After(now.Add(cfg.Leeway)):
		return invalid("issued in the future")
	case !nbf.IsZero() && nbf.After(now.Add(cfg.Leeway)):
		return invalid("not valid yet (nbf)")
	case exp.Sub(iat) > cfg.MaxLifetime:
		return invalid("lifetime over the limit")
	case !exp.After(iat):
		return invalid("expires before it was issued")
	case !k.Retired.IsZero() && iat.After(k.Retired.Add(cfg.Leeway)):
		return invalid("issued after its key was retired")
	}
	return nil
}

// ringKeys returns the ring's keys of one kind.
func ringKeys(r *Ring, sealed bool) []*Key {
	return slices.DeleteFunc(r.Keys(), func(k *Key) bool { return k.Alg.sealed() != sealed })
}
