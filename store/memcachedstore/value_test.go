package memcachedstore

import (
	"bytes"
	"slices"
	"testing"
)

func TestRecord_roundTrip(t *testing.T) {
	for _, r := range []record{
		{version: 1, expires: 1, data: []byte{}},
		{version: maxVersion - 1, expires: 1 << 50, horizon: 1 << 51, user: "alice", data: []byte("data")},
		{version: 42, expires: 1700000000000, user: string(make([]byte, 300)), data: bytes.Repeat([]byte{0}, 1000)},
	} {
		b := appendRecord(nil, r)
		if len(b) != recordLen(r.user, r.data) {
			t.Errorf("recordLen: got %d; want %d", recordLen(r.user, r.data), len(b))
		}
		got, err := parseRecord(b)
		if err != nil {
			t.Fatalf("parseRecord(appendRecord(%+v)): %v", r, err)
		}
		if got.version != r.version || got.expires != r.expires || got.horizon != r.horizon || got.user != r.user || !bytes.Equal(got.data, r.data) {
			t.Errorf("round trip: got %+v; want %+v", got, r)
		}
	}
}

func TestParseRecord_malformed(t *testing.T) {
	good := appendRecord(nil, record{version: 7, expires: 1000, user: "bob", data: []byte("x")})
	zeroVersion := slices.Clone(good)
	copy(zeroVersion[1:9], make([]byte, 8))
	longUser := slices.Clone(good)
	longUser[recordHeader] = 100
	for name, b := range map[string][]byte{
		"Empty":       nil,
		"Short":       good[:recordHeader],
		"Format":      append([]byte{'u'}, good[1:]...),
		"ZeroVersion": zeroVersion,
		"UserPastEnd": longUser,
		"Index":       appendIndex(nil, []entry{{"k", 1}}),
	} {
		if r, err := parseRecord(b); err == nil {
			t.Errorf("parseRecord(%s): got %+v, nil; want an error", name, r)
		}
	}
}

func TestIndex_roundTrip(t *testing.T) {
	es := []entry{{"a", 1}, {string(make([]byte, 600)), 1 << 40}, {"\x00~ x", 5}}
	got, err := parseIndex(appendIndex(nil, es))
	if err != nil || !slices.Equal(got, es) {
		t.Errorf("parseIndex(appendIndex(%v)): got %v, %v", es, got, err)
	}
	if got, err := parseIndex([]byte{indexFormat}); err != nil || len(got) != 0 {
		t.Errorf("parseIndex(empty index): got %v, %v; want none, nil", got, err)
	}
	for _, b := range [][]byte{nil, {'r'}, {indexFormat, 1, 'k'}, {indexFormat, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if got, err := parseIndex(b); err == nil {
			t.Errorf("parseIndex(%q): got %v, nil; want an error", b, got)
		}
	}
}

// FuzzParseRecord feeds parseRecord what a server could send back: it must
// never panic, and whatever it accepts must encode back to the same bytes.
func FuzzParseRecord(f *testing.F) {
	f.Add(appendRecord(nil, record{version: 1, expires: 2, horizon: 3, user: "u", data: []byte("d")}))
	f.Add(appendRecord(nil, record{version: 9, expires: 2}))
	f.Add([]byte("r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if r.version == 0 || r.expires < 0 || r.horizon < 0 {
			t.Fatalf("parseRecord(%q) accepted %+v", b, r)
		}
		if again := appendRecord(nil, r); !bytes.Equal(again, b) {
			// A uvarint may have a longer, non-canonical encoding; the
			// fields must still survive another round.
			r2, err := parseRecord(again)
			if err != nil || r2.version != r.version || r2.user != r.user || !bytes.Equal(r2.data, r.data) {
				t.Fatalf("re-encoding %q: got %+v, %v; want %+v", b, r2, err, r)
			}
		}
	})
}

// FuzzParseIndex feeds parseIndex what a server could send back.
func FuzzParseIndex(f *testing.F) {
	f.Add(appendIndex(nil, []entry{{"key", 1}, {"other", 2}}))
	f.Add([]byte{indexFormat})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseIndex(b)
		if err != nil {
			return
		}
		got, err := parseIndex(appendIndex(nil, es))
		if err != nil || !slices.Equal(got, es) {
			t.Fatalf("re-encoding the index %q: got %v, %v; want %v", b, got, err, es)
		}
	})
}
