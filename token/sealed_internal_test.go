package token

import (
	"crypto/rand"
	"testing"
)

// encodeString writes what base64.RawURLEncoding.EncodeToString writes,
// for every length across several of its 192-byte pieces.
func TestEncodeString(t *testing.T) {
	b := make([]byte, 3*192+5)
	rand.Read(b)
	for n := range len(b) + 1 {
		if got, want := encodeString(b[:n]), b64.EncodeToString(b[:n]); got != want {
			t.Fatalf("%d bytes: got %q; want %q", n, got, want)
		}
	}
}
