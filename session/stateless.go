package session

import (
	"context"
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

// TokenCodec is the stateless strategy's extension point (Config.Tokens):
// it turns a session into a self-contained token that the client holds,
// and back, and remembers which tokens were revoked. Package token
// implements it (sealed tokens and signed JWTs over a key ring, with
// revocations kept in a shared store). Implementations must be safe for
// concurrent use.
type TokenCodec interface {
	// Seal returns the token that carries c. It fails if c cannot be
	// sealed; a token over the codec's size limit is a *TokenSizeError.
	Seal(c TokenClaims) (string, error)

	// Open returns the claims of a token Seal made, if it is authentic,
	// unexpired and not revoked. Every other token is an error (a Manager
	// treats it as "no session"). It is called on every request that uses
	// its session, so it must not wait on the network.
	Open(token string) (TokenClaims, error)

	// Revoke makes every token with the ID c.ID invalid until c.Expires,
	// and if c.Family is set every token of that family too, on every
	// instance sharing the codec's revocation store (within the codec's
	// documented propagation delay).
	Revoke(ctx context.Context, c TokenClaims) error

	// RevokeUser makes every token of userID whose AuthTime is not after
	// before invalid ("log out everywhere").
	RevokeUser(ctx context.Context, userID string, before time.Time) error
}

// TokenClaims is what a stateless token carries.
type TokenClaims struct {
	// ID is the session ID (package sid's format). Renew and Login give a
	// session a new one.
	ID string
	// Family names the session across renewals: its ID when it was
	// created or last logged in. Destroy revokes the family, so that a
	// token renewed elsewhere before the revocation arrived is revoked too;
	// Renew revokes only the old ID; Login starts a new family and revokes
	// the old one. Empty means the same as ID.
	Family string
	// UserID is the bound user, or "".
	UserID string
	// AuthTime is when the session was created or last logged in: the
	// start of its absolute lifetime, kept across re-issued tokens, and
	// what RevokeUser compares.
	AuthTime time.Time
	// Issued is when this token was made; Expires when it stops working
	// (the session's idle or absolute end, whichever comes first).
	Issued  time.Time
	Expires time.Time
	// Data is the session's content in the Manager's own encoding,
	// opaque to the codec.
	Data []byte
}

// MaxSetCookieBytes is the largest Set-Cookie header value the Manager
// sends (RFC 6265 section 6.1 asks browsers to keep cookies of at least
// 4096 bytes, name, value and attributes together; larger ones may be
// dropped without a word). With the stateless strategy a session whose
// token would be larger fails to save with a *TokenSizeError. The Header
// transport has the same limit on the token itself.
const MaxSetCookieBytes = 4096

// loadStateless reads the session from a stateless token.
func (s *Session) loadStateless(tok string) (sid.ID, store.Record, state, bool) {
	c, err := s.m.tokens.Open(tok)
	if err != nil {
		// Details for the server only; the client just has no session.
		s.m.logDebug("session: ignoring token", "len", len(tok), "err", err)
		return sid.ID{}, store.Record{}, state{}, false
	}
	id, err := sid.Parse(c.ID)
	if err != nil {
		s.m.logDebug("session: ignoring token with an unreadable ID", "err", err)
		return sid.ID{}, store.Record{}, state{}, false
	}
	rec := store.Record{Data: c.Data, Version: 1, Expires: c.Expires, UserID: c.UserID}
	st, ok := s.check(id, rec)
	s.family = c.Family
	if s.family == "" {
		s.family = c.ID
	}
	return id, rec, st, ok
}

// commitStateless is commit for the stateless strategy: every change, and
// every due extension, is a new token.
func (s *Session) commitStateless(now time.Time) error {
	changed := len(s.ops) > 0 || s.renew
	if s.id.IsZero() && len(s.ops) == 0 {
		if s.destroyed {
			s.destroyed = false
			s.sendClear()
		}
		return nil
	}
	if !changed && !s.retag && !s.persistChanged && !s.m.touchDue(&s.st, s.rec.Expires, now) {
		return nil
	}
	if s.headerSent {
		if changed {
			return errTooLate
		}
		return nil // an extension can wait for the next request
	}
	id, old, created := s.id, s.id, s.id.IsZero()
	if created || s.renew {
		id = s.newID()
	}
	family, login := s.family, s.loggedIn()
	if created || login {
		family = id.String()
	}
	rec := s.record(now, 1)
	tok, err := s.m.tokens.Seal(TokenClaims{
		ID: id.String(), Family: family, UserID: s.user, AuthTime: s.st.created,
		Issued: now, Expires: rec.Expires, Data: rec.Data,
	})
	if err != nil {
		return fmt.Errorf("%w: seal: %w", ErrToken, err)
	}
	maxAge := time.Duration(0)
	if s.m.persistent(&s.st) {
		maxAge = rec.Expires.Sub(now)
	}
	if n := tokenHeaderLen(s.m.cfg.Transport, tok, maxAge); n > MaxSetCookieBytes {
		return &TokenSizeError{Size: n, Limit: MaxSetCookieBytes}
	}
	if !created && s.renew {
		// The old token must stop working, as an old ID does in a store;
		// after a login, with every token of its family.
		old := TokenClaims{ID: old.String(), UserID: s.rec.UserID, Expires: s.rec.Expires}
		if login {
			old.Family, old.Expires = s.family, s.deadline()
		}
		err := s.m.tokens.Revoke(s.ctx(), old)
		if err != nil {
			return fmt.Errorf("%w (%w): revoke the renewed token: %w", ErrStore, ErrToken, err)
		}
	}
	s.id, s.key, s.rec, s.family = id, id.Key(), rec, family
	s.ops, s.renew, s.destroyed = s.ops[:0], false, false
	s.sendTokenValue(now, tok)
	s.dropAdopted()
	switch {
	case created:
		s.m.event(s.ctx(), EventCreated, s.key, 0, nil)
	case !id.Equal(old):
		s.m.event(s.ctx(), EventRenewed, old.Key(), 0, nil)
	}
	return nil
}

// deadline returns the end of the session's absolute lifetime: no token
// of its family lives longer, so neither need its revocation.
func (s *Session) deadline() time.Time {
	_, life := s.m.timeouts(s.st.remember)
	return s.st.created.Add(life)
}

// loggedIn reports whether this request called Login.
func (s *Session) loggedIn() bool {
	for i := range s.ops {
		if s.ops[i].kind == opUser {
			return true
		}
	}
	return false
}

// destroyStateless revokes the session's tokens: its family.
func (s *Session) destroyStateless() error {
	err := s.m.tokens.Revoke(s.ctx(), TokenClaims{ID: s.id.String(), Family: s.family, UserID: s.rec.UserID, Expires: s.deadline()})
	if err != nil {
		return fmt.Errorf("%w (%w): revoke: %w", ErrStore, ErrToken, err)
	}
	return nil
}

// tokenHeaderLen returns the bytes tok takes in the response header that
// carries it: the whole Set-Cookie value for a Cookie, the token otherwise.
func tokenHeaderLen(t Transport, tok string, maxAge time.Duration) int {
	c, ok := t.(Cookie)
	if !ok {
		return len(tok)
	}
	// The attributes other than Domain and Path take at most 150 bytes
	// (Expires, Max-Age, and the flags): far from the limit, skip building
	// the header.
	if len(c.Name)+len(tok)+len(c.Domain)+len(c.Path)+200 < MaxSetCookieBytes {
		return len(c.Name) + len(tok) + 1
	}
	ck := c.cookie(tok)
	if maxAge > 0 {
		ck.MaxAge = max(int(maxAge/time.Second), 1)
		ck.Expires = time.Now().Add(maxAge).UTC()
	}
	return len(ck.String())
}
