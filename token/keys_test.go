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
		"unknown field":   strings.Replace(string(good), `"keys"`, `"extra": 1, "keys"`, 1),
		"unknown alg":     strings.Replace(string(good), `"XC20P"`, `"none"`, 1),
		"HS256 short key": `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"AAAA"}]}`,
		"bad kid":         `{"sessionkit_key_ring":1,"keys":[{"kid":"../../etc/passwd","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"upper-case kid":  `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789ABCDEF","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"padded key":      `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `="}]}`,
		"no created":      `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"duplicate kid":   `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","retired":"2030-01-02T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"},{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
		"two current":     `{"sessionkit_key_ring":1,"keys":[{"kid":"0123456789abcdef","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"},{"kid":"0123456789abcdee","alg":"HS256","created":"2030-01-01T00:00:00Z","key":"` + strings.Repeat("A", 43) + `"}]}`,
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
