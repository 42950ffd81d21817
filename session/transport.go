package session

import (
	"errors"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Transport carries the session token between server and client: a cookie
// for browsers (Cookie, the default) or a request header for APIs (Header).
// Implementations must be safe for concurrent use.
type Transport interface {
	// Token returns the token the request carries, or "" if none. It must
	// not fail: anything unreadable is "no token".
	Token(r *http.Request) string
	// SetToken tells the client to present token from now on. With maxAge
	// > 0 the client keeps it that long, across browser restarts (a
	// persistent cookie); with 0 it keeps it until the browser closes.
	SetToken(w http.ResponseWriter, token string, maxAge time.Duration)
	// ClearToken tells the client to forget its token.
	ClearToken(w http.ResponseWriter)
}

// Cookie is the cookie transport. Its zero value is the safe default: a
// cookie named "__Host-session", HttpOnly, Secure, SameSite=Lax, Path=/,
// host-only (no Domain). Whether it outlives the browser session is the
// Manager's choice (Config.Persist and Session.RememberMe).
//
// The "__Host-" prefix (OWASP ASVS 5.0 V3.3.1) makes browsers refuse the
// cookie unless it is Secure, host-only and Path=/, so a sibling subdomain
// (or a plain-HTTP page of the same host) can neither plant nor shadow it.
// It is added to Name whenever the cookie qualifies: Secure (Insecure
// false), no Domain, Path "/" or unset, and NoHostPrefix false. Browsers
// send Secure cookies to http://localhost and http://127.0.0.1 too, so
// local development over plain HTTP keeps working; other hosts without TLS
// need Insecure, which drops the prefix with the Secure attribute.
//
// Upgrading from a version that named the cookie without the prefix logs
// nobody out: a request without the prefixed cookie is read from the
// unprefixed one, the next new token is set under the prefixed name, and
// ClearToken (a logout) expires both.
type Cookie struct {
	// Name of the cookie, without the prefix; default "session". A Name
	// that already starts with "__Host-" must meet the prefix's rules (New
	// checks this); one starting with "__Secure-" gets no other prefix.
	Name string
	// NoHostPrefix keeps Name as it is on a cookie that qualifies for the
	// "__Host-" prefix (for a front end or proxy that reads the cookie by
	// its plain name). Default false: the prefix is added.
	NoHostPrefix bool

	// Domain; default "" (host-only, the safest).
	Domain string
	// Path; default "/".
	Path string
	// SameSite; default http.SameSiteLaxMode.
	SameSite http.SameSite

	// Insecure drops the Secure attribute, for plain-HTTP development on a
	// host other than localhost. Default false: cookies are Secure.
	Insecure bool
	// ScriptAccessible drops HttpOnly. Default false: scripts cannot read
	// the cookie.
	ScriptAccessible bool
	// Partitioned sets the Partitioned attribute (CHIPS), for sessions in
	// third-party iframes. Default false.
	Partitioned bool

	// attrs is the Set-Cookie header after "name=value" for a session
	// cookie, as net/http writes it, computed once by withDefaults.
	attrs string
	// legacy is the name without the prefix withDefaults added, read when
	// the prefixed cookie is absent and expired by ClearToken.
	legacy string
}

var _ Transport = Cookie{}

func (c Cookie) withDefaults() (Cookie, error) {
	if c.Name == "" {
		c.Name = "session"
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.legacy == "" && !c.NoHostPrefix && !c.Insecure && c.Domain == "" && c.Path == "/" &&
		!strings.HasPrefix(c.Name, "__Host-") && !strings.HasPrefix(c.Name, "__Secure-") {
		c.legacy, c.Name = c.Name, "__Host-"+c.Name
	}
	if c.SameSite == 0 || c.SameSite == http.SameSiteDefaultMode {
		c.SameSite = http.SameSiteLaxMode
	}
	if strings.HasPrefix(c.Name, "__Host-") && (c.Insecure || c.Path != "/" || c.Domain != "") {
		return c, errors.New("session: a __Host- cookie must be Secure, with Path=/ and no Domain")
	}
	if strings.HasPrefix(c.Name, "__Secure-") && c.Insecure {
		return c, errors.New("session: a __Secure- cookie must be Secure")
	}
	if c.SameSite == http.SameSiteNoneMode && c.Insecure {
		return c, errors.New("session: SameSite=None requires a Secure cookie")
	}
	if !validCookieName(c.Name) {
		return c, errors.New("session: invalid cookie name " + c.Name)
	}
	c.attrs = ""
	if h := c.cookie("x").String(); strings.HasPrefix(h, c.Name+"=x") {
		c.attrs = h[len(c.Name)+2:]
	}
	return c, nil
}

// plainToken reports whether every byte of v is a base64url letter or a
// dot: a cookie value net/http would write as it is. A table lookup, not
// range tests: on random base64 the tests' branches mispredict about once
// a byte, which cost microseconds per token.
func plainToken(v string) bool {
	for i := 0; i < len(v); i++ {
		if !plainTokenByte[v[i]] {
			return false
		}
	}
	return v != ""
}

var plainTokenByte = func() (t [256]bool) {
	for b := range t {
		t[b] = 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
	}
	return t
}()

func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// Token returns the value of the first non-empty cookie with the
// configured name or, if there is none, with the name it had before the
// "__Host-" prefix was added (see Cookie). It parses the Cookie header
// without allocating.
func (c Cookie) Token(r *http.Request) string {
	if c.Name == "" {
		c, _ = c.withDefaults()
	}
	var legacy string
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(textproto.TrimString(part), "=")
			if !ok || (k != c.Name && (k != c.legacy || c.legacy == "")) {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			switch {
			case v == "":
			case k == c.Name:
				return v
			case legacy == "":
				legacy = v
			}
		}
	}
	return legacy
}

// SetToken sets the cookie.
func (c Cookie) SetToken(w http.ResponseWriter, token string, maxAge time.Duration) {
	if maxAge <= 0 && c.attrs != "" && plainToken(token) {
		// What http.SetCookie would write, without checking again the
		// attributes New checked and a value that needs no sanitizing.
		w.Header().Add("Set-Cookie", c.Name+"="+token+c.attrs)
		return
	}
	ck := c.cookie(token)
	if maxAge > 0 {
		ck.MaxAge = max(int(maxAge/time.Second), 1)
		ck.Expires = time.Now().Add(maxAge).UTC() // for clients that ignore Max-Age
	}
	http.SetCookie(w, ck)
}

// ClearToken expires the cookie, and the unprefixed one of an earlier
// version (see Cookie).
func (c Cookie) ClearToken(w http.ResponseWriter) {
	if c.Name == "" {
		c, _ = c.withDefaults()
	}
	ck := c.cookie("")
	ck.Expires = time.Unix(1, 0)
	ck.MaxAge = -1
	http.SetCookie(w, ck)
	if c.legacy != "" {
		ck.Name = c.legacy
		http.SetCookie(w, ck)
	}
}

func (c Cookie) cookie(value string) *http.Cookie {
	return &http.Cookie{
		Name:        c.Name,
		Value:       value,
		Path:        c.Path,
		Domain:      c.Domain,
		Secure:      !c.Insecure,
		HttpOnly:    !c.ScriptAccessible,
		SameSite:    c.SameSite,
		Partitioned: c.Partitioned,
	}
}

// Header is the header transport for APIs. Its zero value reads
// "Authorization: Bearer <token>" and answers new tokens in the
// "Session-Token" response header.
type Header struct {
	// Name of the request header; default "Authorization", read with the
	// Bearer scheme. Any other header carries the bare token.
	Name string
	// Response names the response header that carries a new or renewed
	// token; default "Session-Token". A cleared token is sent as an empty
	// value.
	Response string
}

var _ Transport = Header{}

func (h Header) withDefaults() Header {
	if h.Name == "" {
		h.Name = "Authorization"
	}
	if h.Response == "" {
		h.Response = "Session-Token"
	}
	h.Name = http.CanonicalHeaderKey(h.Name)
	h.Response = http.CanonicalHeaderKey(h.Response)
	return h
}

// Token returns the token of the request header.
func (h Header) Token(r *http.Request) string {
	h = h.withDefaults()
	v := strings.TrimSpace(r.Header.Get(h.Name))
	if h.Name != "Authorization" {
		return v
	}
	const scheme = "bearer "
	if len(v) > len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) {
		return strings.TrimSpace(v[len(scheme):])
	}
	return ""
}

// SetToken sets the response header.
func (h Header) SetToken(w http.ResponseWriter, token string, _ time.Duration) {
	w.Header().Set(h.withDefaults().Response, token)
}

// ClearToken sends the response header with an empty value.
func (h Header) ClearToken(w http.ResponseWriter) {
	w.Header().Set(h.withDefaults().Response, "")
}
