package redisstore

import (
	"strings"
	"testing"
	"time"
)

// oddKeys are keys that must not collide with each other nor break the
// hash tag: braces, bytes outside printable ASCII, the escape marker, and
// keys that look like the escaped form of others.
var oddKeys = []string{
	"a b", "ключ", "{tag}", "{tag}x", "x{tag}", "}", "{", "{}", "a:b", "a*b?", "/", "%2F",
	"\x00\xff", "\x00\xff\x01", "\x00", "~", "~AP8", "~fg", "K", "k", "k\x00", "k ", "\n", "\\",
	"AP8", "YSBi", "~YSBi", strings.Repeat("k", 512), strings.Repeat("\xff", 512),
	"Jt0TN2s3a8Z7bYc4qPx9LmRwVvUeHiGfDdSsAaQqWw1", // a session-manager key: base64url of SHA-256
}

func TestTag_injective(t *testing.T) {
	seen := make(map[string]string)
	for _, k := range oddKeys {
		tg := tag(k)
		if other, ok := seen[tg]; ok {
			t.Errorf("tag(%q) = tag(%q) = %q; want distinct", k, other, tg)
		}
		seen[tg] = k
		checkTag(t, k, tg)
	}
}

// checkTag reports unless tg is a valid hash tag: printable, no braces,
// and the key itself when the key is plain.
func checkTag(t *testing.T, key, tg string) {
	t.Helper()
	if tg == "" || strings.ContainsAny(tg, "{} ") {
		t.Errorf("tag(%q) = %q; want a non-empty tag without braces or spaces", key, tg)
	}
	for i := 0; i < len(tg); i++ {
		if tg[i] < 0x21 || tg[i] > 0x7e {
			t.Errorf("tag(%q) = %q: byte %#x is not printable ASCII", key, tg, tg[i])
			break
		}
	}
	if isPlainTag(key) != (tg == key) {
		t.Errorf("tag(%q) = %q: plain keys must be kept, others escaped", key, tg)
	}
}

func TestKeyNames(t *testing.T) {
	s := &Store{prefix: "sk:"}
	if got, want := s.dataKey("abc"), "sk:s:{abc}"; got != want {
		t.Errorf("dataKey(abc): got %q; want %q", got, want)
	}
	if got, want := s.dataKey("{tag}"), "sk:s:{~e3RhZ30}"; got != want {
		t.Errorf("dataKey({tag}): got %q; want %q", got, want)
	}
	for _, k := range oddKeys {
		dk := s.dataKey(k)
		if strings.Count(dk, "{") != 1 || strings.Count(dk, "}") != 1 || !strings.HasSuffix(dk, "}") {
			t.Errorf("dataKey(%q) = %q: want exactly one {tag} at the end", k, dk)
		}
	}
	ik := s.indexKey("alice@example.com")
	if strings.Contains(ik, "alice") || !strings.HasPrefix(ik, "sk:u:{") || !strings.HasSuffix(ik, "}") {
		t.Errorf("indexKey(alice@example.com) = %q: want sk:u:{<hash>} without the user ID", ik)
	}
	if s.indexKey("a") == s.indexKey("b") {
		t.Error("indexKey(a) == indexKey(b)")
	}
}

func FuzzTag(f *testing.F) {
	for i, k := range oddKeys {
		f.Add(k, oddKeys[(i+1)%len(oddKeys)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == "" || b == "" {
			return
		}
		ta, tb := tag(a), tag(b)
		if (a == b) != (ta == tb) {
			t.Errorf("tag(%q) = %q, tag(%q) = %q: want equal exactly when the keys are", a, ta, b, tb)
		}
		checkTag(t, a, ta)
	})
}

func TestHorizon(t *testing.T) {
	// Never before the expiry, whatever the clock says.
	for _, d := range []int64{-3_600_000, -1, 0, 1, 1000, 3_600_000} {
		exp := time.Now().UnixMilli() + d
		h := horizon(exp)
		if h < exp {
			t.Errorf("horizon(now%+dms) = %d; want at least %d", d, h, exp)
		}
		if d > 0 && h < exp+d-50 {
			t.Errorf("horizon(now%+dms) = %d; want about %d (twice the remaining lifetime)", d, h, exp+d)
		}
	}
	// Never past what the record header holds.
	if h := horizon(maxMillis - 1); h != maxMillis {
		t.Errorf("horizon(maxMillis-1) = %d; want %d", h, maxMillis)
	}
}
