package memcachedstore

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// The stored form of a record, one Memcached item:
//
//	[0]        format byte 'r'
//	[1, 9)     version, big-endian uint64, never 0
//	[9, 17)    expiry, Unix ms, big-endian int64
//	[17, 25)   index horizon, Unix ms, big-endian int64; 0 for an unbound record
//	uvarint    length n of the user ID, then the user ID
//	the rest   data
//
// The stored form of a user's index, one Memcached item:
//
//	[0]        format byte 'u'
//	entries    each: uvarint key length, the store key, horizon (Unix ms, 8 bytes)
//
// Both are read from the server, so parseRecord and parseIndex treat them as
// untrusted: they reject any input that does not decode exactly (fuzzed in
// FuzzParseRecord and FuzzParseIndex).
const (
	recordFormat = 'r'
	indexFormat  = 'u'
	recordHeader = 25
)

var errMalformed = errors.New("malformed item")

// record is a decoded record item.
type record struct {
	version uint64
	expires int64 // Unix ms
	horizon int64 // Unix ms; 0: unbound, or no index entry known
	user    string
	data    []byte // aliases the item's value
}

// appendRecord appends the stored form of r to b.
func appendRecord(b []byte, r record) []byte {
	b = append(b, recordFormat)
	b = binary.BigEndian.AppendUint64(b, r.version)
	b = binary.BigEndian.AppendUint64(b, uint64(r.expires))
	b = binary.BigEndian.AppendUint64(b, uint64(r.horizon))
	b = binary.AppendUvarint(b, uint64(len(r.user)))
	b = append(b, r.user...)
	return append(b, r.data...)
}

// recordLen is the length of the stored form of r.
func recordLen(user string, data []byte) int {
	return recordHeader + uvarintLen(uint64(len(user))) + len(user) + len(data)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// parseRecord decodes the stored form of a record. data aliases b.
func parseRecord(b []byte) (record, error) {
	if len(b) < recordHeader || b[0] != recordFormat {
		return record{}, errMalformed
	}
	r := record{
		version: binary.BigEndian.Uint64(b[1:9]),
		expires: int64(binary.BigEndian.Uint64(b[9:17])),
		horizon: int64(binary.BigEndian.Uint64(b[17:25])),
	}
	n, w := binary.Uvarint(b[recordHeader:])
	if w <= 0 || r.version == 0 || r.version >= maxVersion || r.expires < 0 || r.horizon < 0 ||
		n > uint64(len(b)-recordHeader-w) {
		return record{}, errMalformed
	}
	rest := b[recordHeader+w:]
	r.user = string(rest[:n])
	r.data = rest[n:]
	return r, nil
}

// entry is one key of a user's index and its horizon (Unix ms): the index
// covers the key's record until then.
type entry struct {
	key     string
	horizon int64
}

// appendIndex appends the stored form of an index to b.
func appendIndex(b []byte, es []entry) []byte {
	b = append(b, indexFormat)
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(len(e.key)))
		b = append(b, e.key...)
		b = binary.BigEndian.AppendUint64(b, uint64(e.horizon))
	}
	return b
}

// parseIndex decodes the stored form of an index.
func parseIndex(b []byte) ([]entry, error) {
	if len(b) == 0 || b[0] != indexFormat {
		return nil, errMalformed
	}
	b = b[1:]
	var es []entry
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n == 0 || n > uint64(len(b)-w) || uint64(len(b)-w)-n < 8 {
			return nil, errMalformed
		}
		b = b[w:]
		e := entry{key: string(b[:n]), horizon: int64(binary.BigEndian.Uint64(b[n : n+8]))}
		if e.horizon < 0 {
			return nil, errMalformed
		}
		es = append(es, e)
		b = b[n+8:]
	}
	return es, nil
}

// millis returns t in Unix ms, at least 0.
func millis(t time.Time) int64 { return max(t.UnixMilli(), 0) }

// maxVersion bounds the versions the store issues: a new record starts at
// a random version in [1, 2^62] and each replace adds one.
const maxVersion = math.MaxInt64
