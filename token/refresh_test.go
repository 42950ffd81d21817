package token_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

func newRefresher(t *testing.T, c *clock, onReuse func(context.Context, string)) *token.Refresher {
	t.Helper()
	r, err := token.NewRefresher(token.RefreshConfig{Store: newMem(t, c), Now: c.Now, OnReuse: onReuse})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRefresh(t *testing.T, r *token.Refresher, tok string) string {
	t.Helper()
	user, next, err := r.Refresh(t.Context(), tok)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if user != "alice" || next == "" || next == tok {
		t.Fatalf("Refresh: user %q, next %q; want alice and a new token", user, next)
	}
	return next
}

// Each token works once; its successor works; a chain of rotations keeps
// the user.
func TestRefresher_rotation(t *testing.T) {
	c := newClock()
	r := newRefresher(t, c, nil)
	tok, err := r.Issue(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c.Advance(time.Minute)
		tok = mustRefresh(t, r, tok)
	}
}

// A token used again after the grace window means theft: the whole family
// is revoked, the newest token included, and OnReuse hears of it.
func TestRefresher_reuseRevokesFamily(t *testing.T) {
	c := newClock()
	var reused []string
	r := newRefresher(t, c, func(_ context.Context, user string) { reused = append(reused, user) })
	first, _ := r.Issue(t.Context(), "alice")
	second := mustRefresh(t, r, first)
	third := mustRefresh(t, r, second)
	other, _ := r.Issue(t.Context(), "alice") // another device: another family

	c.Advance(token.DefaultRefreshGrace + time.Millisecond)
	if _, _, err := r.Refresh(t.Context(), first); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("reused token: got %v; want ErrInvalid", err)
	}
	if len(reused) != 1 || reused[0] != "alice" {
		t.Errorf("OnReuse calls %v; want [alice]", reused)
	}
	if _, _, err := r.Refresh(t.Context(), third); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("the family's newest token after a reuse: got %v; want ErrInvalid", err)
	}
	mustRefresh(t, r, other)
}

// Within the grace window a used token gets another successor: two tabs
// refreshing at once both keep working.
func TestRefresher_graceWindow(t *testing.T) {
	c := newClock()
	r := newRefresher(t, c, nil)
	tok, _ := r.Issue(t.Context(), "alice")
	a := mustRefresh(t, r, tok)
	c.Advance(token.DefaultRefreshGrace)
	b := mustRefresh(t, r, tok)
	if a == b {
		t.Fatal("both tabs got the same token")
	}
	mustRefresh(t, r, a)
	mustRefresh(t, r, b)
}

// Concurrent refreshes of one token all succeed (they fall in the grace
// window) and none revokes the family.
func TestRefresher_concurrent(t *testing.T) {
	c := newClock()
	r := newRefresher(t, c, nil)
	tok, _ := r.Issue(t.Context(), "alice")
	var wg sync.WaitGroup
	nexts := make([]string, 8)
	errs := make([]error, 8)
	for i := range nexts {
		wg.Go(func() { _, nexts[i], errs[i] = r.Refresh(context.Background(), tok) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	for _, n := range nexts {
		mustRefresh(t, r, n)
	}
}

func TestRefresher_expiryAndRevoke(t *testing.T) {
	c := newClock()
	r := newRefresher(t, c, nil)
	tok, _ := r.Issue(t.Context(), "alice")
	c.Advance(token.DefaultRefreshIdle + time.Second)
	if _, _, err := r.Refresh(t.Context(), tok); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("after the idle timeout: got %v; want ErrInvalid", err)
	}
	tok, _ = r.Issue(t.Context(), "alice")
	for range 6 { // keep it in use: the family still ends after its lifetime
		c.Advance(6 * 24 * time.Hour)
		if _, next, err := r.Refresh(t.Context(), tok); err == nil {
			tok = next
		}
	}
	if _, _, err := r.Refresh(t.Context(), tok); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("after the family's lifetime: got %v; want ErrInvalid", err)
	}
	tok, _ = r.Issue(t.Context(), "alice")
	if err := r.Revoke(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Refresh(t.Context(), tok); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("after Revoke: got %v; want ErrInvalid", err)
	}
	for _, bad := range []string{"", "skr1_", "x", "skr1_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if _, _, err := r.Refresh(t.Context(), bad); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("Refresh(%q): got %v; want ErrInvalid", bad, err)
		}
	}
}

func TestRefresher_config(t *testing.T) {
	c := newClock()
	for name, cfg := range map[string]token.RefreshConfig{
		"no store":       {},
		"negative grace": {Store: newMem(t, c), Grace: -time.Second},
		"grace too long": {Store: newMem(t, c), Grace: 2 * time.Minute},
	} {
		if _, err := token.NewRefresher(cfg); err == nil {
			t.Errorf("%s: got nil; want an error", name)
		}
	}
}
