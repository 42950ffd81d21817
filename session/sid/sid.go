package sid

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Sizes of the ID's parts.
const (
	RandomBytes = 32 // 256 bits from crypto/rand
	RandomLen   = 43 // RandomBytes in unpadded base64url
	MaxRouteLen = 64 // longest route tag
	MaxLen      = RandomLen + 1 + MaxRouteLen
	KeyLen      = 43 // length of Key: SHA-256 in unpadded base64url
	redactedLen = 8  // characters of the key shown by Redacted
	routeSep    = '.'
)

// Errors returned by Parse and New. Test them with errors.Is.
var (
	ErrMalformed = errors.New("sid: malformed session ID")
	ErrRoute     = errors.New("sid: invalid route tag")
)

var enc = base64.RawURLEncoding

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// ID is a parsed session ID: 256 random bits and an optional route tag.
// The zero value is not a valid ID (IsZero reports it). IDs are comparable
// values, safe to copy and to share between goroutines.
type ID struct {
	random string // RandomLen characters of base64url
	route  string // "" or a valid route tag
	key    string // the store key, derived from random
}

// New returns a fresh ID with 256 bits from crypto/rand, tagged with route
// ("" for none). It fails only on an invalid route tag.
func New(route string) (ID, error) {
	if err := CheckRoute(route); err != nil {
		return ID{}, err
	}
	var b [RandomBytes]byte
	rand.Read(b[:]) // never returns an error; it crashes the program irrecoverably instead
	return ID{random: enc.EncodeToString(b[:]), route: route, key: keyOf(&b)}, nil
}

// Parse parses the text form "<random>" or "<random>.<route>". It accepts
// only the canonical encoding of exactly 256 bits, so every ID has one text
// form. Any other input is ErrMalformed or ErrRoute; Parse never panics.
func Parse(s string) (ID, error) {
	if len(s) > MaxLen {
		return ID{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrMalformed, len(s), MaxLen)
	}
	random, route := s, ""
	if i := strings.IndexByte(s, routeSep); i >= 0 {
		random, route = s[:i], s[i+1:]
		if err := CheckRoute(route); err != nil {
			return ID{}, err
		}
		if route == "" {
			return ID{}, fmt.Errorf("%w: empty route tag after '.'", ErrRoute)
		}
	}
	if len(random) != RandomLen {
		return ID{}, fmt.Errorf("%w: random part is %d characters, want %d", ErrMalformed, len(random), RandomLen)
	}
	var b [RandomBytes]byte
	var src [RandomLen]byte // decoding from a stack copy avoids an allocation
	copy(src[:], random)
	if n, err := enc.Decode(b[:], src[:]); err != nil || n != RandomBytes {
		return ID{}, fmt.Errorf("%w: random part is not base64url", ErrMalformed)
	}
	// 43 characters carry 258 bits: the last character's 2 low bits are
	// padding, which RawURLEncoding ignores. Reject non-zero padding so that
	// two strings never name one session.
	if strings.IndexByte(alphabet, random[RandomLen-1])&3 != 0 {
		return ID{}, fmt.Errorf("%w: non-canonical base64url", ErrMalformed)
	}
	return ID{random: random, route: route, key: keyOf(&b)}, nil
}

func keyOf(random *[RandomBytes]byte) string {
	sum := sha256.Sum256(random[:])
	var buf [KeyLen]byte // encoding into a stack array leaves one allocation, the string
	enc.Encode(buf[:], sum[:])
	return string(buf[:])
}

// CheckRoute reports whether tag is a valid route tag: at most MaxRouteLen
// bytes of ASCII letters, digits, '-' and '_'. The empty tag is valid and
// means "no route".
func CheckRoute(tag string) error {
	if len(tag) > MaxRouteLen {
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrRoute, len(tag), MaxRouteLen)
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: byte %q at %d; want letters, digits, '-' or '_'", ErrRoute, c, i)
		}
	}
	return nil
}

// RouteOf returns the route tag of a session ID's text form without
// validating the random part: the balancer's fast path. It returns "" if s
// has no valid route tag.
func RouteOf(s string) string {
	i := strings.LastIndexByte(s, routeSep)
	if i < 0 || len(s) > MaxLen {
		return ""
	}
	tag := s[i+1:]
	if tag == "" || CheckRoute(tag) != nil {
		return ""
	}
	return tag
}

// String returns the text form: "<random>" or "<random>.<route>". This is
// the secret that identifies the session; never log it (use Redacted or
// pass the ID to slog, which calls LogValue).
func (id ID) String() string {
	if id.route == "" {
		return id.random
	}
	return id.random + string(routeSep) + id.route
}

// Route returns the route tag, or "" if there is none.
func (id ID) Route() string { return id.route }

// WithRoute returns the same session under another route tag. The store key
// does not change, so the session keeps its data.
func (id ID) WithRoute(route string) (ID, error) {
	if err := CheckRoute(route); err != nil {
		return ID{}, err
	}
	return ID{random: id.random, route: route, key: id.key}, nil
}

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id.random == "" }

// Equal reports whether id and other name the same session (route tags are
// ignored). It runs in constant time with respect to the random parts.
func (id ID) Equal(other ID) bool {
	return subtle.ConstantTimeCompare([]byte(id.random), []byte(other.random)) == 1
}

// Key returns the store key: the unpadded base64url SHA-256 of the random
// part, KeyLen characters. A dump of the store therefore reveals no live ID,
// and the route tag does not change the key. The zero ID has no key ("").
func (id ID) Key() string { return id.key }

// Redacted returns a short, non-secret name of the session for logs: the
// first characters of its store key. It cannot be turned back into the ID.
func (id ID) Redacted() string { return RedactKey(id.Key()) }

// RedactKey shortens a store key for logs.
func RedactKey(key string) string {
	if len(key) > redactedLen {
		return key[:redactedLen]
	}
	return key
}

// LogValue implements slog.LogValuer so that logging an ID never prints it.
func (id ID) LogValue() slog.Value { return slog.StringValue(id.Redacted()) }

// Format implements fmt.Formatter: %v and %s print the redacted form, so a
// stray fmt call does not leak the secret. Use String for the real value.
func (id ID) Format(f fmt.State, verb rune) { fmt.Fprint(f, id.Redacted()) }
