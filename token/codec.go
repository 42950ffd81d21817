package token

import (
	"context"
	"errors"
	"time"

	"github.com/sessionkit/sessionkit/session"
)

// Codec is the stateless strategy for session.Config.Tokens: a Format
// (Sealed for cookies, JWT for interop) and the Revocations that every
// token is checked against. Safe for concurrent use; immutable.
type Codec struct {
	f   Format
	rev *Revocations
}

var _ session.TokenCodec = (*Codec)(nil)

// NewCodec returns a Codec. Both arguments are required: a stateless
// session that cannot be revoked cannot be logged out.
func NewCodec(f Format, rev *Revocations) (*Codec, error) {
	if f == nil || rev == nil {
		return nil, errors.New("token: NewCodec needs a Format and Revocations")
	}
	return &Codec{f: f, rev: rev}, nil
}

// Seal returns the token of c.
func (c *Codec) Seal(cl Claims) (string, error) { return c.f.Seal(cl) }

// Open returns the claims of a valid token that is not revoked. Every
// rejection wraps ErrInvalid.
func (c *Codec) Open(tok string) (Claims, error) {
	cl, err := c.f.Open(tok)
	if err != nil {
		return Claims{}, err
	}
	if c.rev.Revoked(cl) {
		return Claims{}, invalid("revoked")
	}
	return cl, nil
}

// Revoke revokes the session of cl.ID (see Revocations.Revoke).
func (c *Codec) Revoke(ctx context.Context, cl Claims) error { return c.rev.Revoke(ctx, cl) }

// RevokeUser revokes userID's sessions (see Revocations.RevokeUser).
func (c *Codec) RevokeUser(ctx context.Context, userID string, before time.Time) error {
	return c.rev.RevokeUser(ctx, userID, before)
}
