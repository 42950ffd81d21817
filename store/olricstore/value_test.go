package olricstore

import (
	"bytes"
	"strings"
	"testing"
)

func TestValue_roundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    value
	}{
		{"record", value{kind: kindRecord, physical: 1700000000123, version: 42, expires: 1700000000000, userID: "alice", data: []byte("cart")}},
		{"empty record", value{kind: kindRecord, version: 1, data: []byte{}}},
		{"chunked", value{kind: kindChunked, physical: 5, version: 7, expires: 4, chunkID: [16]byte{1, 2, 3}, chunks: 3, size: 70000}},
		{"tombstone", value{kind: kindTombstone, physical: 9, version: 8, expires: 6, userID: "bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.v.encode()
			got, err := decodeValue(b)
			if err != nil {
				t.Fatalf("decode: got err %v; want nil", err)
			}
			if got.kind != tc.v.kind || got.physical != tc.v.physical || got.version != tc.v.version ||
				got.expires != tc.v.expires || got.userID != tc.v.userID || !bytes.Equal(got.data, tc.v.data) ||
				got.chunkID != tc.v.chunkID || got.chunks != tc.v.chunks || got.size != tc.v.size {
				t.Errorf("decode(encode(%+v)): got %+v", tc.v, got)
			}
			if p, err := physicalExpiry(b); err != nil || p != tc.v.physical {
				t.Errorf("physicalExpiry: got %d, %v; want %d, nil", p, err, tc.v.physical)
			}
		})
	}
}

func TestOlricKey(t *testing.T) {
	short, long := strings.Repeat("a", maxShortKey), strings.Repeat("a", maxShortKey+1)
	if got := olricKey(short); got != "k"+short {
		t.Errorf("olricKey(%d bytes): got %q; want the key behind k", len(short), got)
	}
	got := olricKey(long)
	if !strings.HasPrefix(got, "h") || len(got) >= 256 || got == olricKey(long+"b") {
		t.Errorf("olricKey(%d bytes): got %q; want h + a hash, short, distinct", len(long), got)
	}
}

// FuzzDecodeValue checks that no stored bytes make decoding panic, and
// that whatever decodes encodes back to a value that decodes the same.
func FuzzDecodeValue(f *testing.F) {
	f.Add((&value{kind: kindRecord, version: 1, userID: "u", data: []byte("x")}).encode())
	f.Add((&value{kind: kindChunked, version: 1, chunks: 2, size: 10}).encode())
	f.Add((&value{kind: kindTombstone, version: 3}).encode())
	f.Add([]byte{})
	f.Add(encodeIndex(5, []string{"a", "", "k\x00"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeValue(b)
		_, _ = physicalExpiry(b)
		_, _ = decodeChunk(b)
		if keys, err := decodeIndex(b); err == nil {
			again, err := decodeIndex(encodeIndex(1, keys))
			if err != nil || len(again) != len(keys) {
				t.Fatalf("decodeIndex(encodeIndex(%q)): got %q, %v", keys, again, err)
			}
		}
		if err != nil {
			return
		}
		again, err := decodeValue(v.encode())
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", v, err)
		}
		if again.kind != v.kind || again.version != v.version || again.userID != v.userID ||
			!bytes.Equal(again.data, v.data) || again.chunks != v.chunks || again.size != v.size {
			t.Fatalf("decode(encode(%+v)): got %+v", v, again)
		}
	})
}
