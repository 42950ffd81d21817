package token_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/token"
)

func TestRing_fileRoundTrip(t *testing.T) {
	c := newClock()
	var keys []*token.Key
	for i, alg := range token.Algs() {
		k := mustKey(t, alg, c.Now().Add(time.Duration(i)*time.Hour))
		keys = append(keys, k)
	}
	r := mustRing(t, keys[0]) // one current key; the rest via Rotate
	var err error
	for _, alg := range token.Algs()[1:] {
		if r, err = r.Rotate(alg, c.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := token.ParseRing(data)
	if err != nil {
		t.Fatalf("ParseRing(Marshal()): %v", err)
	}
	again, _ := back.Marshal()
	if !bytes.Equal(data, again) {
		t.Errorf("the ring changed through a file round trip:\n%s\n%s", data, again)
	}
	if got, want := len(back.Keys()), len(token.Algs()); got != want {
		t.Errorf("got %d keys; want %d", got, want)
	}
	if back.Current().ID != r.Current().ID || back.Current().Alg != token.HS256 {
		t.Errorf("current key %s %s; want %s HS256", back.Current().ID, back.Current().Alg, r.Current().ID)
	}
}

func TestParseRing_rejects(t *testing.T) {
	c := newClock()
	r := mustRing(t, mustKey(t, token.XC20P, c.Now()))
	good, _ := r.Marshal()
	tests := map[string]string{
		"empty":           ``,
		"not JSON":        `nope`,
		"version 2":       strings.Replace(string(good), `"sessionkit_key_ring": 1`, `"sessionkit_key_ring": 2`, 1),
		"no version":      `{}`,
		"unknown field":   strings.Replace(string(good), `"keys"`, `"extra": 1, "keys"`, 1),
		"unknown alg":     strings.Replace(string(good), `"XC20P"`, `"none"`, 1),
		"HS256 short key": `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"AAAA"}]}`,
		"bad kid":         `{"sessionkit_key_ring":1,"keys":[{"kid":"../../etc/passwd","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"upper-case kid":  `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789ABCDEF","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"padded key":      `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `="}]}`,
		"no created":      `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"duplicate kid":   `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","retired":"2030-01-02T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"},{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"two current":     `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"},{"kid":"0123456789abcdee","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"overlapping":     `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","retired":"2030-01-03T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"},{"kid":"0123456789abcdee","alg":"HS256","created":"2030-01-02T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"trailing data":   string(good) + `{}`,
		"too large":       strings.Repeat(" ", token.MaxRingFileSize+1),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := token.ParseRing([]byte(data)); err == nil {
				t.Fatal("got nil; want an error")
			} else if strings.Contains(err.Error(), strings.Repeat("A", 43)) {
				t.Errorf("the error reveals the key: %v", err)
			}
		})
	}
}

// Rotation: the new key signs; tokens of the old one keep working until
// they expire; the old key accepts no token issued after its retirement;
// a second rotation long after drops it.
func TestRing_rotation(t *testing.T) {
	for _, alg := range []token.Alg{token.XC20P, token.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			r1 := mustRing(t, mustKey(t, alg, c.Now()))
			f1 := mustFormat(t, token.Config{Ring: r1, Now: c.Now})
			oldTok := mustSeal(t, f1, claims(t, c.Now()))

			c.Advance(time.Minute)
			r2, err := r1.Rotate("", c.Now(), 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if r2.Current().ID == r1.Current().ID || r2.Current().Alg != alg {
				t.Fatalf("Rotate kept the current key or changed its algorithm")
			}
			f2 := mustFormat(t, token.Config{Ring: r2, Now: c.Now})
			if _, err := f2.Open(oldTok); err != nil {
				t.Fatalf("a token of the retired key: %v", err)
			}
			newTok := mustSeal(t, f2, claims(t, c.Now()))
			if _, err := f2.Open(newTok); err != nil {
				t.Fatal(err)
			}
			if _, err := f1.Open(newTok); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("an instance with the old ring opened a new key's token: %v", err)
			}
			// A token claiming to be issued by the retired key after its
			// retirement (its holder kept signing) is refused.
			late := mustFormat(t, token.Config{Ring: r1, Now: c.Now})
			c.Advance(10 * time.Minute)
			lateTok := mustSeal(t, late, claims(t, c.Now()))
			if _, err := f2.Open(lateTok); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("retired key's token issued after retirement: %v", err)
			}

			c.Advance(25 * time.Hour)
			r3, err := r2.Rotate("", c.Now(), 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := r3.Lookup(r1.Current().ID); ok {
				t.Errorf("a key retired over keep ago is still in the ring")
			}
			if _, ok := r3.Lookup(r2.Current().ID); !ok {
				t.Errorf("the key retired just now was dropped")
			}
		})
	}
}

func TestWriteRingFile(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	r := mustRing(t, mustKey(t, token.XC20P, c.Now()))
	if err := token.WriteRingFile(path, r, true); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", fi.Mode().Perm())
	}
	if err := token.WriteRingFile(path, r, true); err == nil {
		t.Errorf("exclusive write over an existing file: got nil; want an error")
	}
	r2, _ := r.Rotate("", c.Now(), time.Hour)
	if err := token.WriteRingFile(path, r2, false); err != nil {
		t.Fatal(err)
	}
	back, err := token.ReadRingFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Current().ID != r2.Current().ID {
		t.Errorf("read back current key %s; want %s", back.Current().ID, r2.Current().ID)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files; want 1 (no temporary files left)", len(entries))
	}
}

// A key published ahead of its activation: CurrentAt gives the previous
// key until then and the new one from then on, Current the new one
// throughout; the activation is rounded up to a whole second.
func TestRing_CurrentAt(t *testing.T) {
	c := newClock()
	k1 := mustKey(t, token.EdDSA, c.Now())
	c.Advance(time.Hour)
	now := c.Now()
	activate := now.Add(10*time.Second + 300*time.Millisecond)
	r, err := mustRing(t, k1).RotateAt("", now, activate, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k2 := r.Current()
	if k2.ID == k1.ID || k2.Alg != token.EdDSA {
		t.Fatalf("Current after RotateAt: %s %s; want a new EdDSA key", k2.ID, k2.Alg)
	}
	at := now.Add(11 * time.Second) // rounded up, never earlier than asked
	if !k2.Created.Equal(at) {
		t.Errorf("the new key's Created %v; want %v", k2.Created, at)
	}
	if old, _ := r.Lookup(k1.ID); !old.Retired.Equal(at) {
		t.Errorf("the old key's Retired %v; want %v", old.Retired, at)
	}
	for _, tc := range []struct {
		name string
		t    time.Time
		want string
	}{
		{"before the old key was made", k1.Created.Add(-time.Minute), k1.ID},
		{"when the old key was made", k1.Created, k1.ID},
		{"at the rotation", now, k1.ID},
		{"just before the activation", at.Add(-time.Nanosecond), k1.ID},
		{"at the activation", at, k2.ID},
		{"after the activation", at.Add(time.Hour), k2.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.CurrentAt(tc.t); got == nil || got.ID != tc.want {
				t.Errorf("CurrentAt(%v) = %v; want key %s", tc.t, got, tc.want)
			}
		})
	}
	// Rotate, at once: from the rotation's second on, even in its middle.
	mid := at.Add(time.Hour + 500*time.Millisecond)
	r3, err := r.Rotate("", mid, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := r3.CurrentAt(mid); got.ID != r3.Current().ID {
		t.Errorf("Rotate at %v: CurrentAt then is %s; want the new key %s", mid, got.ID, r3.Current().ID)
	}
	if _, err := r.RotateAt("", now, now.Add(-time.Second), time.Hour); err == nil {
		t.Error("RotateAt with an activation before now: got nil; want an error")
	}
	if _, err := r.RotateAt("", now, now, 0); err == nil {
		t.Error("RotateAt with keep 0: got nil; want an error")
	}
}

// Rotating again before the first activation: a later activation chains
// the keys; an earlier one (here at once) supersedes the pending key,
// which never signs but stays to verify.
func TestRing_RotateAt_twiceBeforeActivation(t *testing.T) {
	c := newClock()
	k1 := mustKey(t, token.XC20P, c.Now())
	now := c.Now()
	r1, err := mustRing(t, k1).RotateAt("", now, now.Add(10*time.Second), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k2 := r1.Current()

	t.Run("later activation", func(t *testing.T) {
		r2, err := r1.RotateAt("", now.Add(time.Second), now.Add(20*time.Second), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		k3 := r2.Current()
		for _, tc := range []struct {
			after time.Duration
			want  string
		}{{0, k1.ID}, {9 * time.Second, k1.ID}, {10 * time.Second, k2.ID}, {19 * time.Second, k2.ID}, {20 * time.Second, k3.ID}} {
			if got := r2.CurrentAt(now.Add(tc.after)); got.ID != tc.want {
				t.Errorf("CurrentAt(now+%v) = %s; want %s", tc.after, got.ID, tc.want)
			}
		}
		if got, _ := r2.Lookup(k2.ID); !got.Retired.Equal(now.Add(20 * time.Second)) {
			t.Errorf("the pending key retires at %v; want now+20s", got.Retired)
		}
	})
	t.Run("at once", func(t *testing.T) {
		r2, err := r1.RotateAt("", now.Add(time.Second), now.Add(time.Second), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		k3 := r2.Current()
		for _, tc := range []struct {
			after time.Duration
			want  string
		}{{0, k1.ID}, {time.Second, k3.ID}, {10 * time.Second, k3.ID}, {time.Hour, k3.ID}} {
			if got := r2.CurrentAt(now.Add(tc.after)); got.ID != tc.want {
				t.Errorf("CurrentAt(now+%v) = %s; want %s", tc.after, got.ID, tc.want)
			}
		}
		if got, ok := r2.Lookup(k2.ID); !ok || got.Retired.After(got.Created) {
			t.Errorf("the superseded pending key: in the ring %v, Created %v, Retired %v; want kept, never signing",
				ok, got.Created, got.Retired)
		}
		if got, _ := r2.Lookup(k1.ID); !got.Retired.Equal(now.Add(time.Second)) {
			t.Errorf("the old key retires at %v; want now+1s (moved up)", got.Retired)
		}
		// The file keeps all this.
		data, err := r2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := token.ParseRing(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := back.CurrentAt(now.Add(5 * time.Second)); got.ID != k3.ID {
			t.Errorf("after a file round trip, CurrentAt(now+5s) = %s; want %s", got.ID, k3.ID)
		}
	})
}

// Keep counts from a key's retirement, which RotateAt may set in the
// future: the old key stays until keep after its activation.
func TestRing_RotateAt_keep(t *testing.T) {
	c := newClock()
	k1 := mustKey(t, token.HS256, c.Now())
	const keep = time.Hour
	r1, err := mustRing(t, k1).RotateAt("", c.Now(), c.Now().Add(10*time.Minute), keep)
	if err != nil {
		t.Fatal(err)
	}
	k2 := r1.Current()
	// 1h5m after the rotation, 55m after the retirement: kept.
	c.Advance(keep + 5*time.Minute)
	r2, err := r1.RotateAt("", c.Now(), c.Now().Add(10*time.Minute), keep)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r2.Lookup(k1.ID); !ok {
		t.Error("a key retired less than keep ago was dropped")
	}
	// 1h11m after its retirement: dropped; k2, retiring in the future, kept.
	c.Advance(16 * time.Minute)
	r3, err := r2.RotateAt("", c.Now(), c.Now().Add(10*time.Minute), keep)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r3.Lookup(k1.ID); ok {
		t.Error("a key retired over keep ago is still in the ring")
	}
	for _, k := range []*token.Key{k2, r2.Current()} {
		if _, ok := r3.Lookup(k.ID); !ok {
			t.Errorf("key %s, retired less than keep ago, was dropped", k.ID)
		}
	}
	if got := len(r3.Keys()); got != 3 {
		t.Errorf("%d keys; want 3", got)
	}
}

// NewRing: at most one key current at any instant.
func TestNewRing_periods(t *testing.T) {
	c := newClock()
	t0 := c.Now()
	key := func(created, retired time.Duration) *token.Key {
		k := *mustKey(t, token.XC20P, t0) // a copy, to set its times
		k.Created = t0.Add(created)
		if retired >= 0 {
			k.Retired = t0.Add(retired)
		}
		return &k
	}
	const never = -1
	for _, tc := range []struct {
		name string
		keys []*token.Key
		ok   bool
	}{
		{"one current", []*token.Key{key(0, never)}, true},
		{"one after the other", []*token.Key{key(0, 10), key(10, never)}, true},
		{"a future key", []*token.Key{key(0, time.Hour), key(time.Hour, never)}, true},
		{"chained", []*token.Key{key(0, 10), key(10, 20), key(20, never)}, true},
		{"never signed", []*token.Key{key(0, 5), key(10, 5), key(5, never)}, true},
		{"retired at its creation", []*token.Key{key(0, 0), key(0, never)}, true},
		{"two not retired", []*token.Key{key(0, never), key(10, never)}, false},
		{"overlap", []*token.Key{key(0, 20), key(10, never)}, false},
		{"inside another", []*token.Key{key(0, 30), key(10, 20), key(30, never)}, false},
		{"same period", []*token.Key{key(0, 10), key(0, 10), key(10, never)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := token.NewRing(tc.keys...)
			if tc.ok && err != nil {
				t.Fatalf("got %v; want a ring", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("got a ring with current keys %v; want an error", r.Keys())
			}
		})
	}
}

// A ring file of the format's first version, written before keys could
// be published ahead, reads as it did: the unretired key signs.
func TestParseRing_oldFile(t *testing.T) {
	secret := strings.Repeat("A", 43)
	data := `{"sessionkit_key_ring": 1, "keys": [
	  {"kid": "0123456789abcdef", "alg": "XC20P", "created": "2029-01-01T00:00:00Z", "retired": "2029-06-01T00:00:00Z", "key": "` + secret + `"},
	  {"kid": "0123456789abcdee", "alg": "XC20P", "created": "2029-06-01T00:00:00Z", "key": "` + secret + `"}]}`
	r, err := token.ParseRing([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if cur := r.Current(); cur.ID != "0123456789abcdee" {
		t.Errorf("Current %s; want 0123456789abcdee", cur.ID)
	}
	if cur := r.CurrentAt(newClock().Now()); cur.ID != "0123456789abcdee" {
		t.Errorf("CurrentAt(2030) %s; want 0123456789abcdee", cur.ID)
	}
}
