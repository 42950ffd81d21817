package session

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Format 1, written by the releases before the account metadata, still
// reads: the same session, with no metadata.
func TestCodec_readsFormat1(t *testing.T) {
	// flags 1 (remember), created 1 ms, one value "k" = string "v"
	v1 := []byte{formatV1, 1, 2, 1, 1, 'k', tagString, 1, 'v'}
	st, err := decodeState(v1)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := st.values.get("k")
	if !st.remember || !st.created.Equal(time.UnixMilli(1)) || !ok || string(v.raw) != "v" || st.meta != (meta{}) {
		t.Errorf("format 1 read as %+v", st)
	}
}

func TestCodec_roundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 6, smallValues, smallValues + 1, 3 * smallValues} {
		st := state{created: time.UnixMilli(1_900_000_000_123), remember: true}
		if n%2 == 1 {
			st.meta = meta{authAt: time.UnixMilli(1_900_000_000_124), saved: time.UnixMilli(1_900_000_000_999),
				client: "Firefox on Linux", addr: "2001:db8::/48"}
		}
		in := map[string]any{"s": "x", "": "empty key", "i": -1, "b": false, "j": []int{1}, "raw": []byte{}}
		for i := len(in); i < n; i++ {
			in[fmt.Sprintf("k%d", i)] = i
		}
		for k, v := range in {
			if st.values.len() == n {
				break
			}
			val, err := encodeValue(v)
			if err != nil {
				t.Fatal(err)
			}
			st.values.set(k, val)
		}
		got, err := decodeState(encodeState(&st, formatV3))
		if err != nil {
			t.Fatal(err)
		}
		if !got.created.Equal(st.created) || got.remember != st.remember || got.values.len() != n ||
			!got.meta.authAt.Equal(st.meta.authAt) || !got.meta.saved.Equal(st.meta.saved) ||
			got.meta.client != st.meta.client || got.meta.addr != st.meta.addr {
			t.Fatalf("%d values: got %+v; want %+v", n, got, st)
		}
		st.values.each(func(k string, v value) {
			if g, ok := got.values.get(k); !ok || g.tag != v.tag || !bytes.Equal(g.raw, v.raw) {
				t.Fatalf("%d values: value %q: got %+v, %v; want %+v", n, k, g, ok, v)
			}
		})
	}
}

// TestValues checks the small-slice and map forms of values against a map.
func TestValues(t *testing.T) {
	var vs values
	want := map[string]value{}
	check := func(step string) {
		t.Helper()
		if vs.len() != len(want) {
			t.Fatalf("%s: len %d; want %d", step, vs.len(), len(want))
		}
		for k, w := range want {
			if g, ok := vs.get(k); !ok || g.tag != w.tag {
				t.Fatalf("%s: get(%q) = %+v, %v; want %+v", step, k, g, ok, w)
			}
		}
		n := 0
		vs.each(func(k string, v value) {
			n++
			if w, ok := want[k]; !ok || w.tag != v.tag {
				t.Fatalf("%s: each gave %q = %+v; want %+v, %v", step, k, v, w, ok)
			}
		})
		if n != len(want) {
			t.Fatalf("%s: each gave %d values; want %d", step, n, len(want))
		}
		if _, ok := vs.get("absent"); ok {
			t.Fatalf("%s: get(absent) found a value", step)
		}
	}
	for round := range 2 {
		for i := range 3 * smallValues {
			k, v := fmt.Sprintf("k%d", i%(2*smallValues)), value{tag: byte('a' + i%26)}
			vs.set(k, v)
			want[k] = v
			check(fmt.Sprintf("round %d, set %d", round, i))
			if i%5 == 4 {
				d := fmt.Sprintf("k%d", (i/2)%(2*smallValues))
				vs.del(d)
				delete(want, d)
				check(fmt.Sprintf("round %d, delete %q", round, d))
			}
		}
		vs.clear()
		clear(want)
		check("clear")
	}
}

func TestCodec_corrupt(t *testing.T) {
	good := encodeState(&state{created: time.UnixMilli(1), values: valuesOf(map[string]value{"k": {tagString, []byte("v")}})}, formatV3)
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
	f.Add(encodeState(&state{created: time.UnixMilli(1), values: valuesOf(map[string]value{"k": {tagString, []byte("v")}})}, formatV3))
	f.Add(encodeState(&state{values: valuesOf(map[string]value{"n": {tagInt, []byte{2}}, "b": {tagBool, []byte{1}}})}, formatV3))
	f.Add([]byte{formatV1, 0, 0, 0})
	f.Add(encodeState(&state{values: valuesOf(map[string]value{"l": {tagStrs, []byte{2, 1, 'a', 0}}})}, formatV3))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeState(data)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap errCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := decodeState(encodeState(&st, formatV3))
		if err != nil || again.values.len() != st.values.len() || !again.created.Equal(st.created) {
			t.Fatalf("re-encoding changed the state: %v", err)
		}
		st.values.each(func(k string, v value) {
			if g, ok := again.values.get(k); !ok || g.tag != v.tag || !bytes.Equal(g.raw, v.raw) {
				t.Fatalf("re-encoding changed value %q: got %+v, %v; want %+v", k, g, ok, v)
			}
			var anyv any
			decodeValue(v, &anyv) // must not panic
		})
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

func valuesOf(m map[string]value) values {
	var vs values
	for k, v := range m {
		vs.set(k, v)
	}
	return vs
}

// The previous release's records (format 1, before the account metadata),
// kept as it wrote them, still read: every value, with no metadata.
func TestCodec_previousReleaseFixture(t *testing.T) {
	raw, err := os.ReadFile("testdata/format1-v0-before-metadata.hex")
	if err != nil {
		t.Fatal(err)
	}
	data, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeState(data)
	if err != nil {
		t.Fatalf("the previous release's record: %v", err)
	}
	var cart []string
	var s string
	var i int
	var b bool
	var j map[string]int
	var r []byte
	for k, dst := range map[string]any{"cart": &cart, "s": &s, "i": &i, "b": &b, "j": &j, "raw": &r} {
		v, ok := st.values.get(k)
		if !ok {
			t.Fatalf("value %q missing", k)
		}
		if err := decodeValue(v, dst); err != nil {
			t.Fatalf("value %q: %v", k, err)
		}
	}
	if !st.created.Equal(time.UnixMilli(1_900_000_000_123)) || !st.remember || st.meta != (meta{}) ||
		!slices.Equal(cart, []string{"tea", "milk"}) || s != "text" || i != 42 || !b || j["n"] != 1 || !bytes.Equal(r, []byte{1, 2}) {
		t.Errorf("read %+v: cart %v s %q i %d b %t j %v raw %v", st, cart, s, i, b, j, r)
	}
	// Written again in format 1, it is the same bytes' content: what the
	// previous release reads.
	again := encodeState(&st, formatV1)
	if again[0] != formatV1 {
		t.Fatalf("format 1 written as %d", again[0])
	}
	if st2, err := decodeState(again); err != nil || st2.values.len() != st.values.len() {
		t.Errorf("format 1 round trip: %v, %d values", err, st2.values.len())
	}
}
