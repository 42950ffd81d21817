package sid

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := New("n1")
		if err != nil {
			t.Fatal(err)
		}
		s := id.String()
		if len(s) != RandomLen+3 || !strings.HasSuffix(s, ".n1") {
			t.Fatalf("got %q; want 43 characters + \".n1\"", s)
		}
		if seen[s] {
			t.Fatalf("New returned %q twice", s)
		}
		seen[s] = true
		back, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(New()) = %v", err)
		}
		if back != id {
			t.Fatalf("got %#v; want %#v", back, id)
		}
	}
	if _, err := New("bad tag"); !errors.Is(err, ErrRoute) {
		t.Fatalf("got %v; want ErrRoute", err)
	}
}

func TestParse(t *testing.T) {
	valid := strings.Repeat("A", RandomLen-1) + "A" // 32 zero bytes, canonical
	nonCanonical := strings.Repeat("A", RandomLen-1) + "B"
	tests := []struct {
		name, in  string
		wantErr   error
		wantRoute string
	}{
		{"plain", valid, nil, ""},
		{"with route", valid + ".node-1_a", nil, "node-1_a"},
		{"empty", "", ErrMalformed, ""},
		{"short", valid[:42], ErrMalformed, ""},
		{"long", valid + "A", ErrMalformed, ""},
		{"not base64url", strings.Repeat("+", RandomLen), ErrMalformed, ""},
		{"padding", valid[:40] + "===", ErrMalformed, ""},
		{"non-canonical last char", nonCanonical, ErrMalformed, ""},
		{"empty route", valid + ".", ErrRoute, ""},
		{"two dots", valid + ".a.b", ErrRoute, ""},
		{"route with space", valid + ".a b", ErrRoute, ""},
		{"route too long", valid + "." + strings.Repeat("r", MaxRouteLen+1), ErrMalformed, ""},
		{"route max", valid + "." + strings.Repeat("r", MaxRouteLen), nil, strings.Repeat("r", MaxRouteLen)},
		{"unicode", strings.Repeat("é", 22), ErrMalformed, ""},
		{"nul", valid[:42] + "\x00", ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v; want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				if !id.IsZero() {
					t.Fatalf("got %#v with error; want zero ID", id)
				}
				return
			}
			if id.Route() != tt.wantRoute {
				t.Fatalf("route = %q; want %q", id.Route(), tt.wantRoute)
			}
			if id.String() != tt.in {
				t.Fatalf("String() = %q; want %q", id.String(), tt.in)
			}
		})
	}
}

func TestKey(t *testing.T) {
	id, _ := New("n1")
	other, _ := id.WithRoute("n2")
	if id.Key() != other.Key() {
		t.Fatalf("re-tagging changed the key: %q vs %q", id.Key(), other.Key())
	}
	if len(id.Key()) != KeyLen {
		t.Fatalf("len(Key) = %d; want %d", len(id.Key()), KeyLen)
	}
	if strings.Contains(id.Key(), id.String()[:RandomLen]) || id.Key() == id.String()[:RandomLen] {
		t.Fatal("key reveals the random part")
	}
	if !id.Equal(other) {
		t.Fatal("Equal ignores route tags: got false")
	}
	third, _ := New("n1")
	if id.Equal(third) || id.Key() == third.Key() {
		t.Fatal("two fresh IDs are equal or share a key")
	}
	if (ID{}).Key() != "" {
		t.Fatal("zero ID has a key")
	}
}

func TestNeverPrintsSecret(t *testing.T) {
	id, _ := New("n1")
	secret := id.String()[:RandomLen]
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("hello", "sid", id)
	out := buf.String() + fmt.Sprintf("%v %s %+v %#v", id, id, id, id)
	if strings.Contains(out, secret) || strings.Contains(out, secret[:16]) {
		t.Fatalf("output contains the ID: %s", out)
	}
	if !strings.Contains(out, id.Redacted()) {
		t.Fatalf("output %q lacks the redacted form %q", out, id.Redacted())
	}
}

func TestRouteOf(t *testing.T) {
	id, _ := New("web-3")
	tests := map[string]string{
		id.String():                      "web-3",
		id.String()[:43]:                 "",
		"x.y":                            "y",
		"garbage.":                       "",
		"a.b c":                          "",
		strings.Repeat("a", 200) + ".n1": "",
	}
	for in, want := range tests {
		if got := RouteOf(in); got != want {
			t.Errorf("RouteOf(%q) = %q; want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	id, _ := New("n1")
	f.Add(id.String())
	f.Add(id.String()[:43])
	f.Add("")
	f.Add(".")
	f.Add(strings.Repeat("A", 43) + ".x")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		route := RouteOf(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRoute) {
				t.Fatalf("Parse(%q) error %v wraps neither sentinel", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("Parse(%q).String() = %q: not one text form", s, id.String())
		}
		if route != id.Route() {
			t.Fatalf("RouteOf(%q) = %q; Parse says %q", s, route, id.Route())
		}
		if len(id.Key()) != KeyLen {
			t.Fatalf("bad key length for %q", s)
		}
	})
}

func BenchmarkParseKey(b *testing.B) {
	id, _ := New("n1")
	s := id.String()
	b.ReportAllocs()
	for b.Loop() {
		id, _ := Parse(s)
		_ = id.Key()
	}
}
