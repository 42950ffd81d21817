package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// Defaults of RefreshConfig.
const (
	DefaultRefreshLifetime = 30 * 24 * time.Hour
	DefaultRefreshIdle     = 7 * 24 * time.Hour
	DefaultRefreshGrace    = 10 * time.Second
	MaxRefreshGrace        = time.Minute
)

// refreshPrefix names refresh tokens: it keeps them apart from session
// tokens at a glance, and in Refresh before any store call.
const refreshPrefix = "skr1_"

// Store keys of refresh-token records.
const (
	refreshTokenKey  = "sessionkit/refresh/t/" // + base64url(SHA-256(token))
	refreshFamilyKey = "sessionkit/refresh/f/" // + family ID
)

// RefreshConfig configures a Refresher. Store is required; every other
// zero field means its documented default. NewRefresher copies it.
type RefreshConfig struct {
	// Store keeps the refresh tokens (only their SHA-256 hashes) and their
	// families, shared by every instance. Required.
	Store store.Store

	// Lifetime bounds a family: no token of it works this long after the
	// login that started it; default DefaultRefreshLifetime (30 days).
	// IdleTimeout ends a family whose newest token is unused this long;
	// default DefaultRefreshIdle (7 days).
	Lifetime    time.Duration
	IdleTimeout time.Duration

	// Grace is how long after a refresh token was used it may be used
	// again, getting another new token instead of revoking the family:
	// two tabs or a retried request refreshing at once. Default
	// DefaultRefreshGrace (10s); at most MaxRefreshGrace; negative is an
	// error.
	Grace time.Duration

	// OnReuse, if set, is called when a used refresh token is presented
	// after Grace: the family is revoked already, and the application may
	// also end the user's access tokens (for example with
	// Manager.DestroyUser). It runs in the request's goroutine.
	OnReuse func(ctx context.Context, userID string)

	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Refresher issues and rotates refresh tokens for API clients, which hold
// a short-lived access token (a session token, with session.Header and a
// short session.Config.IdleTimeout) and a long-lived refresh token to get
// the next one. Each refresh token works once: Refresh returns its
// successor, and a token presented again after the grace window means it
// was stolen (either the thief or the client used it first), so the whole
// family, every token descending from one login, is revoked. Tokens are
// random (256 bits) and kept server-side as hashes only. Safe for
// concurrent use; immutable.
type Refresher struct {
	cfg RefreshConfig
}

// NewRefresher returns a Refresher over cfg.Store.
func NewRefresher(cfg RefreshConfig) (*Refresher, error) {
	c := cfg
	if c.Store == nil {
		return nil, errors.New("token: RefreshConfig.Store is required")
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultRefreshLifetime
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultRefreshIdle
	}
	if c.Grace == 0 {
		c.Grace = DefaultRefreshGrace
	}
	switch {
	case c.Lifetime < 0 || c.IdleTimeout < 0:
		return nil, errors.New("token: RefreshConfig.Lifetime and IdleTimeout must not be negative")
	case c.Grace < 0 || c.Grace > MaxRefreshGrace:
		return nil, fmt.Errorf("token: RefreshConfig.Grace %v: want 0 to %v", c.Grace, MaxRefreshGrace)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Refresher{cfg: c}, nil
}

// refreshRecord is a refresh token's record:
//
//	byte     format (1)
//	byte     1 if the token has been used
//	varint   when it was first used, Unix milliseconds
//	varint   when its family ends, Unix milliseconds
//	uvarint  family ID length, family ID
//	rest     user ID
type refreshRecord struct {
	used      bool
	usedAt    time.Time
	familyEnd time.Time
	family    string
	user      string
}

func (r *refreshRecord) encode() []byte {
	b := []byte{1, 0}
	if r.used {
		b[1] = 1
	}
	b = binary.AppendVarint(b, r.usedAt.UnixMilli())
	b = binary.AppendVarint(b, r.familyEnd.UnixMilli())
	b = binary.AppendUvarint(b, uint64(len(r.family)))
	b = append(b, r.family...)
	return append(b, r.user...)
}

var errCorruptRefresh = errors.New("token: corrupt refresh-token record")

func decodeRefresh(b []byte) (refreshRecord, error) {
	var r refreshRecord
	if len(b) < 2 || b[0] != 1 || b[1] > 1 {
		return r, errCorruptRefresh
	}
	r.used = b[1] == 1
	b = b[2:]
	var ms [2]int64
	for i := range ms {
		v, n := binary.Varint(b)
		if n <= 0 {
			return r, errCorruptRefresh
		}
		ms[i], b = v, b[n:]
	}
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return r, errCorruptRefresh
	}
	r.usedAt, r.familyEnd = time.UnixMilli(ms[0]), time.UnixMilli(ms[1])
	r.family, r.user = string(b[n:n+int(l)]), string(b[n+int(l):])
	return r, nil
}

func newRefreshToken() string { return refreshPrefix + rand.Text() + rand.Text() }

func refreshKey(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return refreshTokenKey + base64.RawURLEncoding.EncodeToString(h[:])
}

// Issue starts a new family for userID (call it at login) and returns its
// first refresh token.
func (r *Refresher) Issue(ctx context.Context, userID string) (string, error) {
	if userID == "" {
		return "", errors.New("token: Issue: empty user ID")
	}
	now := r.cfg.Now()
	family := rand.Text()
	end := now.Add(r.cfg.Lifetime).Truncate(time.Millisecond)
	if _, err := r.cfg.Store.Save(ctx, refreshFamilyKey+family, store.Record{Data: []byte{0}, Expires: end}); err != nil {
		return "", fmt.Errorf("token: starting a refresh-token family: %w", err)
	}
	return r.save(ctx, refreshRecord{familyEnd: end, family: family, user: userID}, now)
}

// save stores a new, unused token of rec's family.
func (r *Refresher) save(ctx context.Context, rec refreshRecord, now time.Time) (string, error) {
	tok := newRefreshToken()
	exp := now.Add(r.cfg.IdleTimeout)
	if exp.After(rec.familyEnd) {
		exp = rec.familyEnd
	}
	rec.used, rec.usedAt = false, time.Time{}
	if _, err := r.cfg.Store.Save(ctx, refreshKey(tok), store.Record{Data: rec.encode(), Expires: exp}); err != nil {
		return "", fmt.Errorf("token: saving a refresh token: %w", err)
	}
	return tok, nil
}

// Refresh uses tok: it returns the user of its family and the token that
// replaces it. A token that is unknown, expired, of a revoked family, or
// used more than Grace ago is an error wrapping ErrInvalid; in the last
// case the whole family is revoked first. Store failures are other errors.
func (r *Refresher) Refresh(ctx context.Context, tok string) (userID, next string, err error) {
	if len(tok) != len(refreshPrefix)+52 || tok[:len(refreshPrefix)] != refreshPrefix {
		return "", "", invalid("not a refresh token")
	}
	key := refreshKey(tok)
	for attempt := 0; ; attempt++ {
		rec, err := r.cfg.Store.Load(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return "", "", invalid("unknown or expired refresh token")
		}
		if err != nil {
			return "", "", fmt.Errorf("token: reading a refresh token: %w", err)
		}
		rt, err := decodeRefresh(rec.Data)
		if err != nil {
			return "", "", &InvalidError{Reason: "refresh token", Err: err}
		}
		if revoked, err := r.familyRevoked(ctx, rt.family); err != nil {
			return "", "", err
		} else if revoked {
			return "", "", invalid("refresh-token family revoked")
		}
		now := r.cfg.Now()
		if rt.used {
			if now.Sub(rt.usedAt) <= r.cfg.Grace {
				next, err := r.save(ctx, rt, now) // a sibling for the other tab
				return rt.user, next, err
			}
			if err := r.revokeFamily(ctx, rt.family, rt.familyEnd); err != nil {
				return "", "", err
			}
			if r.cfg.OnReuse != nil {
				r.cfg.OnReuse(ctx, rt.user)
			}
			return "", "", invalid("refresh token reused: family revoked")
		}
		used := rt
		used.used, used.usedAt = true, now.Truncate(time.Millisecond)
		// Keep the used token's record for the grace window and reuse
		// detection until the family ends.
		_, err = r.cfg.Store.Save(ctx, key, store.Record{Data: used.encode(), Version: rec.Version, Expires: rt.familyEnd})
		if errors.Is(err, store.ErrConflict) && attempt < 4 {
			continue // another request used it at the same moment: decide again
		}
		if err != nil {
			return "", "", fmt.Errorf("token: using a refresh token: %w", err)
		}
		next, err := r.save(ctx, rt, now)
		return rt.user, next, err
	}
}

// Revoke revokes the family of tok (call it at logout), so that none of
// its tokens works any more. An unknown token is not an error.
func (r *Refresher) Revoke(ctx context.Context, tok string) error {
	rec, err := r.cfg.Store.Load(ctx, refreshKey(tok))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token: reading a refresh token: %w", err)
	}
	rt, err := decodeRefresh(rec.Data)
	if err != nil {
		return err
	}
	return r.revokeFamily(ctx, rt.family, rt.familyEnd)
}

func (r *Refresher) familyRevoked(ctx context.Context, family string) (bool, error) {
	rec, err := r.cfg.Store.Load(ctx, refreshFamilyKey+family)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, nil // ended or never existed
	case err != nil:
		return false, fmt.Errorf("token: reading a refresh-token family: %w", err)
	}
	return len(rec.Data) != 1 || rec.Data[0] != 0, nil
}

func (r *Refresher) revokeFamily(ctx context.Context, family string, end time.Time) error {
	for attempt := 0; ; attempt++ {
		rec, err := r.cfg.Store.Load(ctx, refreshFamilyKey+family)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("token: revoking a refresh-token family: %w", err)
		}
		_, err = r.cfg.Store.Save(ctx, refreshFamilyKey+family, store.Record{Data: []byte{1}, Version: rec.Version, Expires: end})
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 4 {
			return fmt.Errorf("token: revoking a refresh-token family: %w", err)
		}
	}
}
