package token

import (
	"errors"
	"sync/atomic"
)

// Switch is a Format that forwards to another Format, which Set replaces
// while tokens are being sealed and opened: how a server takes up a
// rotated key ring without a restart. Build the new Format over the new
// ring (NewSealed or NewJWT, with the same Config otherwise) and Set it;
// each Seal and Open uses the Format current when it starts. A ring
// rotated with Ring.Rotate keeps the previous keys, so the tokens they
// made still open after the Set. Safe for concurrent use.
type Switch struct {
	cur atomic.Pointer[formatRef]
}

type formatRef struct{ f Format }

var _ Format = (*Switch)(nil)

// NewSwitch returns a Switch forwarding to f, which must not be nil.
func NewSwitch(f Format) (*Switch, error) {
	s := &Switch{}
	if err := s.Set(f); err != nil {
		return nil, err
	}
	return s, nil
}

// Set makes f, which must not be nil, the Format of every later Seal and
// Open.
func (s *Switch) Set(f Format) error {
	if f == nil {
		return errors.New("token: Switch needs a Format")
	}
	s.cur.Store(&formatRef{f})
	return nil
}

// Format returns the current Format.
func (s *Switch) Format() Format { return s.cur.Load().f }

// Seal seals c with the current Format.
func (s *Switch) Seal(c Claims) (string, error) { return s.cur.Load().f.Seal(c) }

// Open opens tok with the current Format.
func (s *Switch) Open(tok string) (Claims, error) { return s.cur.Load().f.Open(tok) }
