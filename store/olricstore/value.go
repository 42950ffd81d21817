package olricstore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kinds of stored value, the first byte of every value.
const (
	kindRecord    = 'R' // a record with its data inline
	kindChunked   = 'C' // a record whose data is in chunks
	kindTombstone = 'T' // a deleted record: its last version, kept until the record would have gone
	kindChunk     = 'P' // one piece of a chunked record's data
)

// header is kind (1) + physical expiry in unix ms (8). Records and
// tombstones then hold version (8) + logical expiry in unix ms (8) +
// uvarint user ID length + user ID.
const headerLen = 9

// maxShortKey is the longest store key kept as it is in the Olric key;
// Olric keys must be shorter than 256 bytes.
const maxShortKey = 200

// olricKey maps a store key to its Olric key: "k" + the key when short,
// otherwise "h" + base64url(SHA-256(key)). Chunks use "c"; the prefixes keep
// the spaces apart.
func olricKey(key string) string {
	if len(key) <= maxShortKey {
		return "k" + key
	}
	sum := sha256.Sum256([]byte(key))
	return "h" + base64.RawURLEncoding.EncodeToString(sum[:])
}

func chunkKey(id [16]byte, n int) string {
	return "c" + hex.EncodeToString(id[:]) + ":" + strconv.Itoa(n)
}

// value is a decoded record or tombstone.
type value struct {
	kind     byte
	physical int64 // Olric expiry, unix ms
	version  uint64
	expires  int64 // logical expiry, unix ms
	userID   string
	data     []byte // kindRecord
	chunkID  [16]byte
	chunks   int // kindChunked
	size     int // kindChunked: total data length
}

// found reports whether v is a record (not a tombstone nor nothing).
func (v *value) isRecord() bool { return v.kind == kindRecord || v.kind == kindChunked }

// live reports whether v is a record that has not expired at now.
func (v *value) live(now time.Time) bool {
	return v.isRecord() && v.expires > now.UnixMilli()
}

var errCorrupt = errors.New("olricstore: corrupt value")

func encodeHeader(b []byte, kind byte, physical int64) []byte {
	b = append(b, kind)
	return binary.BigEndian.AppendUint64(b, uint64(physical))
}

func (v *value) encode() []byte {
	n := headerLen + 16 + binary.MaxVarintLen64 + len(v.userID) + len(v.data) + 32
	b := encodeHeader(make([]byte, 0, n), v.kind, v.physical)
	b = binary.BigEndian.AppendUint64(b, v.version)
	b = binary.BigEndian.AppendUint64(b, uint64(v.expires))
	b = binary.AppendUvarint(b, uint64(len(v.userID)))
	b = append(b, v.userID...)
	switch v.kind {
	case kindRecord:
		b = append(b, v.data...)
	case kindChunked:
		b = append(b, v.chunkID[:]...)
		b = binary.AppendUvarint(b, uint64(v.chunks))
		b = binary.AppendUvarint(b, uint64(v.size))
	}
	return b
}

// physicalExpiry reads the Olric expiry of any stored value.
func physicalExpiry(b []byte) (int64, error) {
	if len(b) < headerLen {
		return 0, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(b[1:headerLen])), nil
}

func decodeValue(b []byte) (value, error) {
	var v value
	if len(b) < headerLen+16 {
		return v, fmt.Errorf("%w: %d bytes", errCorrupt, len(b))
	}
	v.kind = b[0]
	switch v.kind {
	case kindRecord, kindChunked, kindTombstone:
	default:
		return v, fmt.Errorf("%w: kind %q", errCorrupt, v.kind)
	}
	v.physical = int64(binary.BigEndian.Uint64(b[1:9]))
	v.version = binary.BigEndian.Uint64(b[9:17])
	v.expires = int64(binary.BigEndian.Uint64(b[17:25]))
	b = b[25:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return v, fmt.Errorf("%w: user ID", errCorrupt)
	}
	v.userID = string(b[k : k+int(n)])
	b = b[k+int(n):]
	switch v.kind {
	case kindRecord:
		v.data = b
	case kindChunked:
		if len(b) < 16 {
			return v, fmt.Errorf("%w: chunk reference", errCorrupt)
		}
		copy(v.chunkID[:], b)
		b = b[16:]
		c, k := binary.Uvarint(b)
		if k <= 0 || c == 0 || c > 1<<20 {
			return v, fmt.Errorf("%w: chunk count", errCorrupt)
		}
		s, k2 := binary.Uvarint(b[k:])
		if k2 <= 0 || s > 1<<40 {
			return v, fmt.Errorf("%w: chunked size", errCorrupt)
		}
		v.chunks, v.size = int(c), int(s)
	}
	return v, nil
}

// encodeChunk and decodeChunk frame one piece of a chunked record.
func encodeChunk(physical int64, data []byte) []byte {
	b := encodeHeader(make([]byte, 0, headerLen+len(data)), kindChunk, physical)
	return append(b, data...)
}

func decodeChunk(b []byte) ([]byte, error) {
	if len(b) < headerLen || b[0] != kindChunk {
		return nil, errCorrupt
	}
	return b[headerLen:], nil
}
