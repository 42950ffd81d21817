package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// The stored form of a session (store.Record.Data):
//
//	byte     format version (3; 1 is read too)
//	uvarint  flags (bit 0: remember me)
//	varint   created, Unix milliseconds
//	varint   last login, Unix milliseconds; 0: never (format 3 only)
//	varint   last write, Unix milliseconds (format 3 only)
//	uvarint  client label length, label (format 3 only)
//	uvarint  client address length, address (format 3 only)
//	uvarint  number of values
//	per value: uvarint key length, key, tag byte, uvarint value length, value
//
// Format 3 added what the account pages show (Manager.UserSessions). A
// build older than it cannot read format 3: during a rolling upgrade from
// such a build, Config.RecordFormat 1 writes format 1 (see
// docs/migration.md, "Rolling upgrades").
//
// Values carry a tag so that the common types skip JSON entirely. The
// decoder copies the keys, all into one string, and aliases values into
// the record's data, which stores hand out read-only.

const (
	formatV1    = 1
	formatMoved = 2 // a tombstone: the session was renewed to the key that follows
	formatV3    = 3 // format 1 and the account metadata
)

// encodeMoved returns the tombstone left under a renewed session's old key.
func encodeMoved(newKey string) []byte { return append([]byte{formatMoved}, newKey...) }

// movedTo reports whether data is a tombstone, and the key it points to.
func movedTo(data []byte) (string, bool) {
	if len(data) < 2 || data[0] != formatMoved {
		return "", false
	}
	return string(data[1:]), true
}

// Value tags.
const (
	tagJSON   = 'j'
	tagString = 's'
	tagBytes  = 'b'
	tagInt    = 'i' // varint
	tagBool   = 't' // one byte, 0 or 1
	tagStrs   = 'l' // []string: uvarint count, then per string uvarint length and bytes
)

const flagRemember = 1 << 0

// errCorrupt is returned by decode for data it cannot read.
var errCorrupt = errors.New("session: corrupt session data")

// value is one encoded session value.
type value struct {
	tag byte
	raw []byte
}

// state is the decoded content of a session.
type state struct {
	created  time.Time
	remember bool
	meta     meta
	values   values
}

// meta is what Manager.UserSessions tells about a session besides its
// times of creation and expiry.
type meta struct {
	authAt time.Time // the last Login; zero if none
	saved  time.Time // the last write of the record
	client string    // a label of the client (see clientLabel), or ""
	addr   string    // the client's address (Config.ClientIP), or ""
}

// encodeState encodes st in format formatV3, or formatV1 (without the
// metadata) when format is formatV1.
func encodeState(st *state, format byte) []byte {
	n := 1 + 4*binary.MaxVarintLen64 + 3*binary.MaxVarintLen32 + len(st.meta.client) + len(st.meta.addr)
	st.values.each(func(k string, v value) {
		n += len(k) + len(v.raw) + 1 + 2*binary.MaxVarintLen32
	})
	b := make([]byte, 0, n)
	if format != formatV1 {
		format = formatV3
	}
	b = append(b, format)
	var flags uint64
	if st.remember {
		flags |= flagRemember
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendVarint(b, st.created.UnixMilli())
	if format == formatV3 {
		b = binary.AppendVarint(b, unixMilli(st.meta.authAt))
		b = binary.AppendVarint(b, unixMilli(st.meta.saved))
		b = binary.AppendUvarint(b, uint64(len(st.meta.client)))
		b = append(b, st.meta.client...)
		b = binary.AppendUvarint(b, uint64(len(st.meta.addr)))
		b = append(b, st.meta.addr...)
	}
	b = binary.AppendUvarint(b, uint64(st.values.len()))
	st.values.each(func(k string, v value) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = append(b, v.tag)
		b = binary.AppendUvarint(b, uint64(len(v.raw)))
		b = append(b, v.raw...)
	})
	return b
}

// decodeState parses data. It never panics; any malformed input is errCorrupt.
func decodeState(data []byte) (state, error) {
	var st state
	if len(data) == 0 || (data[0] != formatV1 && data[0] != formatV3) {
		return st, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	d := decoder{b: data[1:]}
	flags := d.uvarint()
	created := d.varint()
	if data[0] == formatV3 {
		st.meta.authAt = fromUnixMilli(d.varint())
		st.meta.saved = fromUnixMilli(d.varint())
		st.meta.client = string(d.bytes())
		st.meta.addr = string(d.bytes())
	}
	n := d.uvarint()
	if d.err != nil {
		return st, d.err
	}
	// Every value takes at least 3 bytes, which bounds n before allocating.
	if n > uint64(len(d.b))/3 {
		return st, fmt.Errorf("%w: %d values in %d bytes", errCorrupt, n, len(d.b))
	}
	st.remember = flags&flagRemember != 0
	st.created = time.UnixMilli(created)
	// A first pass checks the values and totals the keys' lengths, so
	// that the second can copy all the keys into one string.
	body, keyBytes := d.b, 0
	for i := uint64(0); i < n; i++ {
		k := d.bytes()
		tag := d.byte()
		d.bytes()
		if d.err != nil {
			return state{}, d.err
		}
		if !validTag(tag) {
			return state{}, fmt.Errorf("%w: unknown value tag %q", errCorrupt, tag)
		}
		keyBytes += len(k)
	}
	if len(d.b) != 0 {
		return state{}, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	var keys strings.Builder
	keys.Grow(keyBytes)
	if n <= smallValues {
		st.values.list = make([]entry, 0, n)
	}
	d = decoder{b: body}
	for i := uint64(0); i < n; i++ {
		start := keys.Len()
		keys.Write(d.bytes())
		tag := d.byte()
		raw := d.bytes()
		// Builder.String does not copy, and later writes only append to
		// the buffer Grow made: the key stays a substring of it.
		k := keys.String()[start:]
		st.values.set(k, value{tag: tag, raw: raw[:len(raw):len(raw)]})
	}
	return st, nil
}

// unixMilli is t in Unix milliseconds, 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromUnixMilli is unixMilli's inverse.
func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func validTag(t byte) bool {
	switch t {
	case tagJSON, tagString, tagBytes, tagInt, tagBool, tagStrs:
		return true
	}
	return false
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("tag")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// encodeValue encodes v. Strings, byte slices, ints and bools take a fast
// path; everything else is JSON.
func encodeValue(v any) (value, error) {
	switch x := v.(type) {
	case string:
		return value{tagString, []byte(x)}, nil
	case []byte:
		return value{tagBytes, append([]byte(nil), x...)}, nil
	case int:
		return value{tagInt, binary.AppendVarint(nil, int64(x))}, nil
	case int64:
		return value{tagInt, binary.AppendVarint(nil, x)}, nil
	case bool:
		if x {
			return value{tagBool, []byte{1}}, nil
		}
		return value{tagBool, []byte{0}}, nil
	case []string:
		if x == nil {
			break // JSON null, as before
		}
		n := binary.MaxVarintLen32
		for _, e := range x {
			n += binary.MaxVarintLen32 + len(e)
		}
		b := binary.AppendUvarint(make([]byte, 0, n), uint64(len(x)))
		for _, e := range x {
			b = binary.AppendUvarint(b, uint64(len(e)))
			b = append(b, e...)
		}
		return value{tagStrs, b}, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return value{}, fmt.Errorf("session: cannot encode %T: %w", v, err)
	}
	return value{tagJSON, raw}, nil
}

// decodeValue decodes v into dst, a non-nil pointer. Values decode into the
// pointer types of their tag directly; any other combination goes through
// JSON, so a value set as int can be read into a float64 or an any.
func decodeValue(v value, dst any) error {
	switch p := dst.(type) {
	case *string:
		if v.tag == tagString {
			*p = string(v.raw)
			return nil
		}
	case *[]byte:
		if v.tag == tagBytes {
			*p = append([]byte(nil), v.raw...)
			return nil
		}
	case *int64:
		if v.tag == tagInt {
			n, err := v.int()
			*p = n
			return err
		}
	case *int:
		if v.tag == tagInt {
			n, err := v.int()
			if n > math.MaxInt || n < math.MinInt {
				return fmt.Errorf("session: %d overflows int", n)
			}
			*p = int(n)
			return err
		}
	case *bool:
		if v.tag == tagBool {
			if len(v.raw) != 1 {
				return fmt.Errorf("%w: bool of %d bytes", errCorrupt, len(v.raw))
			}
			*p = v.raw[0] == 1
			return nil
		}
	case *[]string:
		if v.tag == tagStrs {
			l, err := v.strings()
			if err != nil {
				return err
			}
			*p = l
			return nil
		}
	}
	raw, err := v.json()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("session: cannot decode into %T: %w", dst, err)
	}
	return nil
}

func (v value) int() (int64, error) {
	n, k := binary.Varint(v.raw)
	if k <= 0 || k != len(v.raw) {
		return 0, fmt.Errorf("%w: bad integer", errCorrupt)
	}
	return n, nil
}

// strings decodes a tagStrs value.
func (v value) strings() ([]string, error) {
	d := decoder{b: v.raw}
	n := d.uvarint()
	// Every string takes at least one byte, which bounds n before allocating.
	if d.err != nil || n > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: bad string list", errCorrupt)
	}
	// One copy of the encoded list backs every string of it: one
	// allocation instead of one per string.
	all, size := string(d.b), len(d.b)
	l := make([]string, n)
	for i := range l {
		b := d.bytes()
		end := size - len(d.b)
		l[i] = all[end-len(b) : end]
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: bad string list", errCorrupt)
	}
	return l, nil
}

// json returns the value as JSON.
func (v value) json() ([]byte, error) {
	switch v.tag {
	case tagStrs:
		l, err := v.strings()
		if err != nil {
			return nil, err
		}
		return json.Marshal(l)
	case tagJSON:
		return v.raw, nil
	case tagString:
		return json.Marshal(string(v.raw))
	case tagBytes:
		return json.Marshal(v.raw)
	case tagInt:
		n, err := v.int()
		if err != nil {
			return nil, err
		}
		return json.Marshal(n)
	case tagBool:
		var b bool
		if err := decodeValue(v, &b); err != nil {
			return nil, err
		}
		return json.Marshal(b)
	}
	return nil, fmt.Errorf("%w: unknown value tag %q", errCorrupt, v.tag)
}
