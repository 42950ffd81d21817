package redisstore

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRecord_roundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint64
		expires int64
		user    string
		data    []byte
	}{
		{"Unbound", 1, 1_800_000_000_000, "", []byte("data")},
		{"Bound", 1 << 62, 1_800_000_000_123, "alice@example.com", []byte{0, 1, 2, 0xff}},
		{"EmptyData", math.MaxInt64 - 1, maxMillis, "u", nil},
		{"OddUser", 42, 1, "a\x00{}:\n" + strings.Repeat("ü", 300), []byte("x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendRecord(nil, tc.version, tc.expires, 7, tc.user, tc.data)
			if len(b) != recordLen(tc.user, tc.data) {
				t.Errorf("length: got %d; want %d", len(b), recordLen(tc.user, tc.data))
			}
			if h, ok := parsePadded(b[offHorizon:offUserLen]); !ok || h != 7 {
				t.Errorf("horizon field %q: got %d, %v; want 7", b[offHorizon:offUserLen], h, ok)
			}
			rec, err := parseRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Version != tc.version || !rec.Expires.Equal(time.UnixMilli(tc.expires)) ||
				rec.UserID != tc.user || !bytes.Equal(rec.Data, tc.data) {
				t.Errorf("got %+v; want version %d, expires %d, user %q, data %q", rec, tc.version, tc.expires, tc.user, tc.data)
			}
		})
	}
}

func TestRecord_malformed(t *testing.T) {
	good := appendRecord(nil, 5, 1_800_000_000_000, 0, "bob", []byte("d"))
	zeroVersion := appendRecord(nil, 0, 1_800_000_000_000, 0, "", nil)
	longUser := bytes.Clone(good)
	putPadded(longUser[offUserLen:headerLen], 5)
	notDigits := bytes.Clone(good)
	notDigits[offExpires+3] = 'x'
	for name, b := range map[string][]byte{
		"Empty": nil, "Short": good[:headerLen-1], "ZeroVersion": zeroVersion,
		"UserPastEnd": longUser, "NotDigits": notDigits,
	} {
		if rec, err := parseRecord(b); err == nil {
			t.Errorf("%s: got %+v; want an error", name, rec)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(appendRecord(nil, 5, 1_800_000_000_000, 9, "bob", []byte("data")))
	f.Add(appendRecord(nil, 1, 1, 0, "", nil))
	f.Add([]byte("00000000000000000001"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := parseRecord(b)
		if err != nil {
			return
		}
		again := appendRecord(nil, rec.Version, rec.Expires.UnixMilli(), 0, rec.UserID, rec.Data)
		if !bytes.Equal(again[offUserLen:], b[offUserLen:]) || !bytes.Equal(again[:offHorizon], b[:offHorizon]) {
			t.Errorf("parseRecord(%q) = %+v, which encodes as %q", b, rec, again)
		}
	})
}
