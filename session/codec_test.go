package session

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCodec_roundTrip(t *testing.T) {
	st := state{created: time.UnixMilli(1_900_000_000_123), remember: true, values: map[string]value{}}
	for k, v := range map[string]any{"s": "x", "": "empty key", "i": -1, "b": false, "j": []int{1}, "raw": []byte{}} {
		val, err := encodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		st.values[k] = val
	}
	got, err := decodeState(encodeState(&st))
	if err != nil {
		t.Fatal(err)
	}
	if !got.created.Equal(st.created) || got.remember != st.remember || len(got.values) != len(st.values) {
		t.Fatalf("got %+v; want %+v", got, st)
	}
	for k, v := range st.values {
		if g := got.values[k]; g.tag != v.tag || !bytes.Equal(g.raw, v.raw) {
			t.Fatalf("value %q: got %+v; want %+v", k, g, v)
		}
	}
}

func TestCodec_corrupt(t *testing.T) {
	good := encodeState(&state{created: time.UnixMilli(1), values: map[string]value{"k": {tagString, []byte("v")}}})
	for name, data := range map[string][]byte{
		"empty":         nil,
		"wrong version": {9},
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"huge count":    {formatV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad tag":       {formatV1, 0, 0, 1, 1, 'k', 'Z', 0},
	} {
		if _, err := decodeState(data); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: got %v; want errCorrupt", name, err)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState(&state{created: time.UnixMilli(1), values: map[string]value{"k": {tagString, []byte("v")}}}))
	f.Add(encodeState(&state{values: map[string]value{"n": {tagInt, []byte{2}}, "b": {tagBool, []byte{1}}}}))
	f.Add([]byte{formatV1, 0, 0, 0})
	f.Add(encodeState(&state{values: map[string]value{"l": {tagStrs, []byte{2, 1, 'a', 0}}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeState(data)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap errCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := decodeState(encodeState(&st))
		if err != nil || len(again.values) != len(st.values) || !again.created.Equal(st.created) {
			t.Fatalf("re-encoding changed the state: %v", err)
		}
		for _, v := range st.values {
			var anyv any
			decodeValue(v, &anyv) // must not panic
		}
	})
}

// Lists of strings (a cart) take a binary fast path, and still read
// through JSON into other types.
func TestCodec_stringList(t *testing.T) {
	for _, in := range [][]string{{}, {"a"}, {"", "sku-10001", "ünï"}, {"x", "", "yz", strings.Repeat("w", 300), "v"}} {
		v, err := encodeValue(in)
		if err != nil {
			t.Fatal(err)
		}
		if v.tag != tagStrs {
			t.Fatalf("tag %q; want %q", v.tag, tagStrs)
		}
		var got []string
		if err := decodeValue(v, &got); err != nil || !slices.Equal(got, in) {
			t.Fatalf("decode %q: got %q, %v", in, got, err)
		}
		var anyv []any
		if err := decodeValue(v, &anyv); err != nil || len(anyv) != len(in) {
			t.Fatalf("decode %q into []any: got %v, %v", in, anyv, err)
		}
	}
	if v, _ := encodeValue([]string(nil)); v.tag != tagJSON || string(v.raw) != "null" {
		t.Errorf("nil list: got %q %s; want JSON null", v.tag, v.raw)
	}
	for name, raw := range map[string][]byte{
		"count over length": {5, 1, 'a'},
		"truncated string":  {1, 3, 'a'},
		"trailing":          {1, 1, 'a', 'b'},
		"empty":             {},
	} {
		var got []string
		if err := decodeValue(value{tagStrs, raw}, &got); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: got %v; want errCorrupt", name, err)
		}
	}
}
