package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// appendPayload appends the JWT payload of c: "iss", "aud", "sub" (if
// any), "jti", "sid" (if not the ID), integer "iat" and "exp",
// "auth_time" with milliseconds (a NumericDate may have a fraction) and
// "sk", the session's content in standard padded base64 (if any). The
// bytes are those encoding/json writes for a struct of these fields
// (TestJWT_sameAsGolangJWT compares them).
func appendPayload(b []byte, iss, aud string, c *Claims) []byte {
	b = append(b, `{"iss":`...)
	b = appendJSONString(b, iss)
	b = append(b, `,"aud":`...)
	b = appendJSONString(b, aud)
	if c.UserID != "" {
		b = append(b, `,"sub":`...)
		b = appendJSONString(b, c.UserID)
	}
	b = append(b, `,"jti":`...)
	b = appendJSONString(b, c.ID)
	if c.Family != "" && c.Family != c.ID {
		// OpenID Connect's session ID claim: stable across renewals.
		b = append(b, `,"sid":`...)
		b = appendJSONString(b, c.Family)
	}
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.Issued.Unix(), 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Expires.Unix(), 10)
	b = append(b, `,"auth_time":`...)
	b = appendMillis(b, c.AuthTime.UnixMilli())
	if len(c.Data) > 0 {
		b = append(b, `,"sk":"`...)
		b = base64.StdEncoding.AppendEncode(b, c.Data)
		b = append(b, '"')
	}
	return append(b, '}')
}

// payloadLen bounds the length of appendPayload's output, for a buffer.
func payloadLen(iss, aud string, c *Claims) int {
	return 128 + len(iss) + len(aud) + len(c.UserID) + len(c.ID) + len(c.Family) + base64.StdEncoding.EncodedLen(len(c.Data))
}

// appendMillis appends ms milliseconds as seconds with three decimals.
func appendMillis(b []byte, ms int64) []byte {
	u := uint64(ms)
	if ms < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1000, 10)
	frac := u % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendJSONString appends s as encoding/json writes a string: printable
// ASCII other than '"', '\\', '<', '>' and '&' as is, anything else
// through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jwtIn is a JWT's payload as Open reads it (UnmarshalJSON), recording
// which claims it had. golang-jwt decodes it through UnmarshalJSON but
// does not validate it: Open does (see JWT).
type jwtIn struct {
	noClaimGetters
	iss, aud, sub, jti, sid []byte // decoded, valid UTF-8; in the payload's buffer if they had no escapes
	iat, exp, nbf           int64
	authMS                  int64 // "auth_time" in milliseconds
	data                    []byte
	seen                    claimSet
}

// claimSet has one bit per claim.
type claimSet uint16

const (
	hasIss claimSet = 1 << iota
	hasAud
	hasSub
	hasJti
	hasSid
	hasIat
	hasExp
	hasNbf
	hasAuthTime
	hasData
)

// noClaimGetters satisfies golang-jwt's Claims interface, whose getters
// only its claims validation calls, which Open turns off.
type noClaimGetters struct{}

func (noClaimGetters) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (noClaimGetters) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (noClaimGetters) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (noClaimGetters) GetIssuer() (string, error)                   { return "", nil }
func (noClaimGetters) GetSubject() (string, error)                  { return "", nil }
func (noClaimGetters) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

var _ jwt.Claims = (*jwtIn)(nil)

// Errors of the claims decoder (wrapped in an InvalidError by Open).
var (
	errDuplicate    = errors.New("duplicate claim")
	errUnknownClaim = errors.New("unknown claim")
	errClaimsSyntax = errors.New("claims are not a flat JSON object")
	errClaimType    = errors.New("claim of the wrong type")
)

// UnmarshalJSON reads the payload strictly: one JSON object whose members
// are all known claims (names matched exactly: no other letter case, no
// escapes), each at most once, each of its type ("iss", "aud", "sub",
// "jti", "sid" strings; "iat", "exp", "nbf" integers; "auth_time" a
// number of at most 1e12 seconds; "sk" standard padded base64), and
// nothing after the object. It checks the syntax it relies on itself
// (encoding/json has validated the whole input before calling it too).
func (c *jwtIn) UnmarshalJSON(b []byte) error {
	*c = jwtIn{}
	s := scanner{b: b}
	if !s.byte('{') {
		return errClaimsSyntax
	}
	if !s.byte('}') {
		for {
			name, esc, ok := s.str()
			if !ok || !s.byte(':') {
				return errClaimsSyntax
			}
			if esc {
				return errUnknownClaim
			}
			if err := c.member(&s, name); err != nil {
				return err
			}
			if s.byte(',') {
				continue
			}
			if s.byte('}') {
				break
			}
			return errClaimsSyntax
		}
	}
	if s.ws(); s.i != len(b) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// member reads the value of claim name.
func (c *jwtIn) member(s *scanner, name []byte) error {
	var bit claimSet
	var str *[]byte
	var num *int64
	switch string(name) {
	case "iss":
		bit, str = hasIss, &c.iss
	case "aud":
		bit, str = hasAud, &c.aud
	case "sub":
		bit, str = hasSub, &c.sub
	case "jti":
		bit, str = hasJti, &c.jti
	case "sid":
		bit, str = hasSid, &c.sid
	case "iat":
		bit, num = hasIat, &c.iat
	case "exp":
		bit, num = hasExp, &c.exp
	case "nbf":
		bit, num = hasNbf, &c.nbf
	case "auth_time":
		bit = hasAuthTime
	case "sk":
		bit = hasData
	default:
		return errUnknownClaim
	}
	if c.seen&bit != 0 {
		return errDuplicate
	}
	c.seen |= bit
	switch {
	case num != nil:
		lit, ok := s.number()
		if !ok {
			return errClaimType
		}
		n, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil {
			return errors.New("claim is not an integer")
		}
		*num = n
	case bit == hasAuthTime:
		lit, ok := s.number()
		if !ok {
			return errClaimType
		}
		f, err := strconv.ParseFloat(string(lit), 64)
		if err != nil || math.Abs(f) > 1e12 {
			return errors.New("claim is not a time in seconds")
		}
		c.authMS = int64(math.Round(f * 1000))
	default:
		raw, esc, ok := s.str()
		if !ok {
			return errClaimType
		}
		if str != nil {
			if esc || !utf8.Valid(raw) {
				// encoding/json unescapes, and replaces invalid UTF-8 as
				// every Go JSON decoder does.
				q := make([]byte, 0, len(raw)+2)
				var v string
				if err := json.Unmarshal(append(append(append(q, '"'), raw...), '"'), &v); err != nil {
					return errClaimType
				}
				raw = []byte(v)
			}
			*str = raw
			return nil
		}
		// "sk": encoding/json's form of []byte, strictly.
		if esc {
			return errors.New("claim is not base64")
		}
		dst := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
		n, err := base64.StdEncoding.Strict().Decode(dst, raw)
		if err != nil {
			return errors.New("claim is not base64")
		}
		c.data = dst[:n]
	}
	return nil
}

// scanner reads the few JSON tokens a flat object of strings and numbers
// has, skipping whitespace before each.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (s *scanner) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str consumes a string and returns what is between its quotes, and
// whether it has escapes (which are checked only for their length: a
// string with escapes is decoded by encoding/json, which checks them).
func (s *scanner) str() (raw []byte, esc, ok bool) {
	if !s.byte('"') {
		return nil, false, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], esc, true
		case c == '\\':
			esc = true
			s.i += 2
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

// number consumes a number in JSON's grammar and returns it.
func (s *scanner) number() ([]byte, bool) {
	s.ws()
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch {
	case s.peek() == '0':
		s.i++
	case '1' <= s.peek() && s.peek() <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return nil, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

// digits consumes one or more digits.
func (s *scanner) digits() bool {
	start := s.i
	for '0' <= s.peek() && s.peek() <= '9' {
		s.i++
	}
	return s.i > start
}

// peek returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}
