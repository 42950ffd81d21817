package session

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/store"
)

// Previous is the strategy a Manager replaces (Config.Previous): the
// token codec a store-backed Manager takes sessions over from, or the
// store a token Manager takes them over from. Exactly one field is set,
// the one of the other kind than the Manager's own.
type Previous struct {
	// Tokens is the codec of the tokens the clients still hold: its key
	// ring (to open them) and its revocations (so that a token revoked
	// before the switch stays revoked). For a Manager with Config.Store.
	Tokens TokenCodec
	// Store is the store the clients' session IDs name. For a Manager
	// with Config.Tokens.
	Store store.Store
}

func (p *Previous) check(c *Config) error {
	switch {
	case p.Tokens != nil && p.Store != nil:
		return errors.New("session: Config.Previous: set Tokens or Store, not both")
	case p.Tokens != nil && c.Tokens != nil:
		return errors.New("session: Config.Previous.Tokens is for a Manager with a Store (the tokens it replaces); this one has Tokens")
	case p.Store != nil && c.Store != nil:
		return errors.New("session: Config.Previous.Store is for a Manager with Tokens; to move from one store to another, wrap them with store/migrate")
	case p.Tokens == nil && p.Store == nil:
		return errors.New("session: Config.Previous: set Tokens or Store")
	}
	return nil
}

// adoptedMarkKey is the store key that records that the token session id
// was taken over by the store: no session key (43 base64url characters)
// contains a colon.
func adoptedMarkKey(id sid.ID) string {
	h := sha256.Sum256([]byte(id.Key()))
	return "session-adopted:" + base64.RawURLEncoding.EncodeToString(h[:])
}

// adoptedMark is the data of an adoptedMarkKey record.
var adoptedMark = []byte{0xff, 'a', 'd', 'o', 'p', 't', 'e', 'd'}

// adoptToken takes over a session that arrives as a token of
// Config.Previous.Tokens (a Manager with a Store). The token's session
// becomes a store record under the key of its own session ID, created
// with a create-only compare-and-set so that concurrent requests carrying
// the token (on any instance) make one record and all apply their changes
// to it; the client then gets the session ID as its token. A mark, kept
// as long as the token lives, records the takeover, so that a session
// destroyed afterwards is not taken over again from the same token.
func (s *Session) adoptToken(tok string) (sid.ID, store.Record, state, bool) {
	none := func() (sid.ID, store.Record, state, bool) { return sid.ID{}, store.Record{}, state{}, false }
	c, err := s.m.prevTokens.Open(tok)
	if err != nil {
		s.m.logDebug("session: ignoring a token of the previous strategy", "len", len(tok), "err", err)
		return none()
	}
	id, err := sid.Parse(c.ID)
	if err != nil {
		return none()
	}
	ctx := s.ctx()
	key := id.Key()
	for range 2 {
		rec, err := s.m.cfg.Store.Load(ctx, key)
		switch {
		case err == nil: // taken over already, here or on another instance
			st, ok := s.check(id, rec)
			s.retag = ok // the client still holds the token: send it the ID
			return id, rec, st, ok
		case !errors.Is(err, store.ErrNotFound):
			s.err = fmt.Errorf("%w: load a session taken over from a token: %w", ErrStore, err)
			return none()
		}
		switch _, err := s.m.cfg.Store.Load(ctx, adoptedMarkKey(id)); {
		case err == nil:
			return none() // taken over, then destroyed: the token names no session
		case !errors.Is(err, store.ErrNotFound):
			s.err = fmt.Errorf("%w: load a session taken over from a token: %w", ErrStore, err)
			return none()
		}
		rec = store.Record{Data: c.Data, Expires: c.Expires, UserID: c.UserID}
		st, ok := s.check(id, rec)
		if !ok {
			return none()
		}
		v, err := s.m.cfg.Store.Save(ctx, key, rec)
		if errors.Is(err, store.ErrConflict) {
			continue // another request took it over first: read its record
		}
		if err != nil {
			s.err = fmt.Errorf("%w: take over a session from a token: %w", ErrStore, err)
			return none()
		}
		mark := store.Record{Data: adoptedMark, Expires: c.Expires}
		if _, life := s.m.timeouts(st.remember); st.created.Add(life).After(mark.Expires) {
			mark.Expires = st.created.Add(life) // the token's family may be re-issued until then
		}
		if _, err := s.m.cfg.Store.Save(ctx, adoptedMarkKey(id), mark); err != nil && !errors.Is(err, store.ErrConflict) {
			s.m.cfg.Logger.Warn("session: could not mark a session taken over from a token", "session", s.m.redact.name(key), "err", err)
		}
		rec.Version = v
		s.retag = true
		s.m.event(ctx, EventAdopted, key, 0, nil)
		return id, rec, st, true
	}
	return none()
}

// adoptStored takes over a session that arrives as the ID of a session in
// Config.Previous.Store (a Manager with Tokens): its content becomes a
// token, which the commit sends, and the stored record is deleted once the
// token is made (see commitStateless), so that it cannot be taken over
// twice. Concurrent requests of the session that read the record before
// that each make a token, and the client keeps the last: as between any
// two concurrent requests of a token session, one's changes may be lost.
func (s *Session) adoptStored(tok string) (sid.ID, store.Record, state, bool) {
	none := func() (sid.ID, store.Record, state, bool) { return sid.ID{}, store.Record{}, state{}, false }
	id, err := sid.Parse(tok)
	if err != nil {
		return none()
	}
	rec, err := s.m.prevStore.Load(s.ctx(), id.Key())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return none()
	case err != nil:
		s.err = fmt.Errorf("%w: load a session of the previous store: %w", ErrStore, err)
		return none()
	}
	st, ok := s.check(id, rec)
	if !ok {
		return none()
	}
	s.family = id.String()
	s.adoptedKey, s.adoptedVersion = id.Key(), rec.Version
	s.retag = true // a token must replace the ID
	s.m.event(s.ctx(), EventAdopted, id.Key(), 0, nil)
	return id, rec, st, true
}

// dropAdopted deletes the previous store's record of a session that now
// lives in a token.
func (s *Session) dropAdopted() {
	if s.adoptedKey == "" {
		return
	}
	key := s.adoptedKey
	s.adoptedKey = ""
	if err := s.m.prevStore.Delete(s.ctx(), key, s.adoptedVersion); err != nil && !errors.Is(err, store.ErrConflict) {
		s.m.cfg.Logger.Warn("session: could not delete a session moved into a token; it expires by itself",
			"session", s.m.redact.name(key), "err", err)
	}
}
