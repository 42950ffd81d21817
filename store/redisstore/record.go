package redisstore

import (
	"errors"
	"math"
	"time"

	"github.com/sessionkit/sessionkit/store"
)

// The stored form of a record: one Redis string, a header of fixed-width
// decimal fields (so that the scripts read them with GETRANGE and
// string.sub, and Touch rewrites the expiry in place with SETRANGE),
// then the user ID, then the data:
//
//	[0, 20)        version, zero-padded
//	[20, 35)       expiry, Unix ms, zero-padded (also the key's PEXPIREAT)
//	[35, 50)       index horizon, Unix ms, zero-padded; 0 for an unbound record
//	[50, 60)       length n of the user ID, zero-padded; 0 for unbound
//	[60, 60+n)     user ID
//	[60+n, end)    data
//
// Versions are below 2^63, so at most 19 digits; 15 digits of milliseconds
// reach the year 33658, and times are clamped to [1, maxMillis].
const (
	offVersion = 0
	offExpires = 20
	offHorizon = 35
	offUserLen = 50
	headerLen  = 60

	versionDigits = offExpires - offVersion
	msDigits      = offHorizon - offExpires
	userLenDigits = headerLen - offUserLen

	maxMillis = 999_999_999_999_999
)

var errMalformed = errors.New("malformed record")

// clampMillis returns the Unix ms of t within [1, maxMillis]: the range the
// header holds and that PXAT and PEXPIREAT accept (1 is long past, so the
// key expires at once).
func clampMillis(ms int64) int64 { return min(max(ms, 1), maxMillis) }

// appendPadded appends v in decimal, zero-padded to width digits. v must
// fit.
func appendPadded(b []byte, v uint64, width int) []byte {
	n := len(b)
	b = append(b, make([]byte, width)...) // no allocation when b has room
	putPadded(b[n:], v)
	return b
}

// putPadded writes v in decimal into all of dst, zero-padded.
func putPadded(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// parsePadded parses a field written by putPadded: decimal digits only,
// of a value that fits in a uint64.
func parsePadded(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' || v > (math.MaxUint64-uint64(c-'0'))/10 {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// appendRecord appends the stored form of a record to b.
func appendRecord(b []byte, version uint64, expires, horizon int64, user string, data []byte) []byte {
	b = appendPadded(b, version, versionDigits)
	b = appendPadded(b, uint64(expires), msDigits)
	b = appendPadded(b, uint64(horizon), msDigits)
	b = appendPadded(b, uint64(len(user)), userLenDigits)
	b = append(b, user...)
	return append(b, data...)
}

// recordLen is the length of the stored form of a record.
func recordLen(user string, data []byte) int { return headerLen + len(user) + len(data) }

// parseRecord decodes the stored form of a record. Data aliases b.
func parseRecord(b []byte) (store.Record, error) {
	if len(b) < headerLen {
		return store.Record{}, errMalformed
	}
	v, ok1 := parsePadded(b[offVersion:offExpires])
	e, ok2 := parsePadded(b[offExpires:offHorizon])
	n, ok3 := parsePadded(b[offUserLen:headerLen])
	if !ok1 || !ok2 || !ok3 || v == 0 || v >= maxVersion || n > uint64(len(b)-headerLen) {
		return store.Record{}, errMalformed
	}
	rec := store.Record{Version: v, Expires: time.UnixMilli(int64(e))}
	if n > 0 {
		rec.UserID = string(b[headerLen : headerLen+n])
	}
	rec.Data = b[headerLen+n:]
	return rec, nil
}
