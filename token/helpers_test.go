package token_test

import (
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/session/sid"
	"github.com/sessionkit/sessionkit/token"
)

// clock is the tests' fake clock.
type clock = testclock.Clock

func newClock() *clock { return testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) }

func mustKey(t testing.TB, alg token.Alg, now time.Time) *token.Key {
	t.Helper()
	k, err := token.NewKey(alg, now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t testing.TB, keys ...*token.Key) *token.Ring {
	t.Helper()
	r, err := token.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newFormat returns the format of alg over a new one-key ring.
func newFormat(t testing.TB, alg token.Alg, c *clock) (token.Format, *token.Ring) {
	t.Helper()
	r := mustRing(t, mustKey(t, alg, c.Now()))
	return mustFormat(t, token.Config{Ring: r, Now: c.Now}), r
}

func mustFormat(t testing.TB, cfg token.Config) token.Format {
	t.Helper()
	var (
		f   token.Format
		err error
	)
	if cur := cfg.Ring.Current(); cur != nil && cur.Alg == token.XC20P {
		f, err = token.NewSealed(cfg)
	} else {
		f, err = token.NewJWT(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// claims returns typical claims issued at now.
func claims(t testing.TB, now time.Time) token.Claims {
	t.Helper()
	id, err := sid.New("n1")
	if err != nil {
		t.Fatal(err)
	}
	return token.Claims{
		ID: id.String(), UserID: "alice", AuthTime: now.Add(-time.Minute).Truncate(time.Second),
		Issued: now.Truncate(time.Second), Expires: now.Add(30 * time.Minute).Truncate(time.Second),
		Data: []byte("\x01session content"),
	}
}

func mustSeal(t testing.TB, f token.Format, c token.Claims) string {
	t.Helper()
	tok, err := f.Seal(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
