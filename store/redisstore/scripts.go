package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"

	"github.com/redis/rueidis"
)

// The Lua scripts. Each one touches exactly one key, passed in KEYS[1], so
// that it is valid in Redis Cluster: a session record and a user index live
// in different hash slots, usually on different nodes, and no script ever
// spans both. Versions and user IDs are compared as strings (Lua numbers
// are doubles, exact only to 2^53); only millisecond times, well below
// 2^53, are handled as numbers.
//
// A session record is a string laid out as record.go says: the version
// (bytes 1-20 in Lua's 1-based string.sub), the expiry (21-35), the index
// horizon (36-50), the user ID's length n (51-60), the user ID (61-60+n),
// the data. The horizon x says that the user index of the record's user is
// known to hold this key with a score of at least x. A write or touch
// whose new expiry exceeds x must first raise the index, so that every
// live bound record is always covered by its index entry (see doc.go,
// "User index").

// scriptSave is the compare-and-set of Save, for a record that replaces
// another (a new record is a SET NX).
//
//	KEYS[1] session record
//	ARGV[1] expected version (20 digits)
//	ARGV[2] the new record, its horizon field set to ARGV[5] (0 if unbound)
//	ARGV[3] expiry, Unix ms, for PXAT
//	ARGV[4] user ID, "" for unbound (the one in ARGV[2])
//	ARGV[5] index horizon just written for ARGV[4], Unix ms, or "0"
//
// It returns 1 when it wrote the record, 0 on a version conflict (nothing
// written) and 2 when the record is bound to a user whose index does not
// cover the new expiry yet (nothing written: raise the index, then call again
// with ARGV[5] set). A bound record whose stored horizon, for the same
// user, is beyond ARGV[5] keeps it.
const scriptSave = `
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 20) ~= ARGV[1] then return 0 end
local rec = ARGV[2]
if ARGV[4] ~= '' then
	local x = tonumber(ARGV[5])
	local n = #ARGV[4]
	if tonumber(string.sub(cur, 51, 60)) == n and string.sub(cur, 61, 60 + n) == ARGV[4] then
		local sx = string.sub(cur, 36, 50)
		if (tonumber(sx) or 0) > x then
			x = tonumber(sx)
			rec = string.sub(rec, 1, 35) .. sx .. string.sub(rec, 51)
		end
	end
	if tonumber(ARGV[3]) > x then return 2 end
end
redis.call('SET', KEYS[1], rec, 'PXAT', ARGV[3])
return 1
`

// scriptTouch moves the expiry of a live record, rewriting the header's
// expiry (and horizon) in place: the user ID and the data are not written.
//
//	KEYS[1] session record
//	ARGV[1] new expiry, Unix ms, 15 digits
//	ARGV[2] expected version (20 digits), "0" for any
//	ARGV[3] user whose index was just raised, or ""
//	ARGV[4] index horizon just written for ARGV[3], Unix ms, 15 digits, or "0"
//	ARGV[5] new expiry, Unix ms, for PEXPIREAT
//
// It returns 1 when it moved the expiry, 0 if there is no live record, 3 if
// the stored version is not the expected one (nothing written), and the
// record's user ID (a string) when that user's index must first be raised
// to cover the new expiry (nothing written: call again with ARGV[3] and
// ARGV[4] set).
const scriptTouch = `
local h = redis.call('GETRANGE', KEYS[1], 0, 59)
if #h < 60 then return 0 end
if ARGV[2] ~= '0' and string.sub(h, 1, 20) ~= ARGV[2] then return 3 end
local n = tonumber(string.sub(h, 51, 60)) or 0
if n > 0 and tonumber(ARGV[1]) > (tonumber(string.sub(h, 36, 50)) or 0) then
	local u = redis.call('GETRANGE', KEYS[1], 60, 59 + n)
	if u ~= ARGV[3] then return u end
	redis.call('SETRANGE', KEYS[1], 20, ARGV[1] .. ARGV[4])
else
	redis.call('SETRANGE', KEYS[1], 20, ARGV[1])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
return 1
`

// scriptDeleteVersion is the compare-and-delete of Delete.
//
//	KEYS[1] session record
//	ARGV[1] expected version (20 digits)
//
// It returns 1 if it deleted the record, 0 if the stored version (or its
// absence) did not match.
const scriptDeleteVersion = `
if redis.call('GETRANGE', KEYS[1], 0, 19) == ARGV[1] then
	redis.call('UNLINK', KEYS[1])
	return 1
end
return 0
`

// scriptDeleteUser deletes a record only if it is still bound to the user.
//
//	KEYS[1] session record
//	ARGV[1] user ID, not empty
//
// It returns 1 if it deleted a live record, 0 otherwise.
const scriptDeleteUser = `
local n = #ARGV[1]
if n == 0 or tonumber(redis.call('GETRANGE', KEYS[1], 50, 59)) ~= n then return 0 end
if redis.call('GETRANGE', KEYS[1], 60, 59 + n) == ARGV[1] then
	redis.call('UNLINK', KEYS[1])
	return 1
end
return 0
`

// scriptIndexAdd raises a session's entry in its user's index.
//
//	KEYS[1] user index (ZSET of session keys scored by horizon, Unix ms)
//	ARGV[1] session key (the caller's key, not the record's name)
//	ARGV[2] horizon, Unix ms
//
// Scores only grow (ZADD GT), so concurrent writers cannot lower each
// other's coverage. Every call removes the entries whose horizon has passed
// by the server's clock and sets the index to expire with its highest
// score, so an index never outlives its last entry.
const scriptIndexAdd = `
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('PEXPIREAT', KEYS[1], top[2]) end
return 1
`

// scriptIndexList returns the session keys of a user index whose horizon
// has not passed by the server's clock. It does not write.
//
//	KEYS[1] user index
const scriptIndexList = `
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`

// script is a Lua script run with EVALSHA, falling back to EVAL when the
// server does not have it cached (after a restart, a failover or SCRIPT
// FLUSH).
type script struct {
	lua *rueidis.Lua
	src string
	sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{lua: rueidis.NewLuaScript(src), src: src, sha: hex.EncodeToString(sum[:])}
}

// tracked returns src, a script that ends by writing KEYS[1] and
// returning 1, with a read of KEYS[1] before that return: with a near
// cache, Redis then tracks the key for the calling connection again (its
// own write, not reported to it under NOLOOP, dropped its tracking), so
// that the next change another node makes is reported. The read costs
// one dictionary lookup inside the script, and nothing on the wire.
func tracked(src string) string {
	const end = "\nreturn 1\n"
	if !strings.HasSuffix(src, end) {
		panic("redisstore: a tracked script must end with return 1")
	}
	return strings.TrimSuffix(src, end) + "\nredis.call('EXISTS', KEYS[1])" + end
}

var (
	luaSaveTracked  = newScript(tracked(scriptSave))
	luaTouchTracked = newScript(tracked(scriptTouch))
)

var (
	luaSave          = newScript(scriptSave)
	luaTouch         = newScript(scriptTouch)
	luaDeleteVersion = newScript(scriptDeleteVersion)
	luaDeleteUser    = newScript(scriptDeleteUser)
	luaIndexAdd      = newScript(scriptIndexAdd)
	luaIndexList     = newScript(scriptIndexList)
)

// exec runs the script on key: one EVALSHA, plus one EVAL only if the
// server answered NOSCRIPT.
func (sc *script) exec(ctx context.Context, c rueidis.Client, key string, args ...string) rueidis.RedisResult {
	return sc.lua.Exec(ctx, c, []string{key}, args)
}

// execEach runs the script once per key with the same args, pipelined in
// one DoMulti (which rueidis splits by node in a cluster). Calls answered
// NOSCRIPT are sent again with EVAL, in a second DoMulti.
func (sc *script) execEach(ctx context.Context, c rueidis.Client, keys []string, args ...string) []rueidis.RedisResult {
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = c.B().Evalsha().Sha1(sc.sha).Numkeys(1).Key(k).Arg(args...).Build()
	}
	res := c.DoMulti(ctx, cmds...)
	var again []int
	for i, r := range res {
		if e, ok := rueidis.IsRedisErr(r.Error()); ok && e.IsNoScript() {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return res
	}
	evals := make(rueidis.Commands, len(again))
	for j, i := range again {
		evals[j] = c.B().Eval().Script(sc.src).Numkeys(1).Key(keys[i]).Arg(args...).Build()
	}
	for j, r := range c.DoMulti(ctx, evals...) {
		res[again[j]] = r
	}
	return res
}
