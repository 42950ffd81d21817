package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// The Lua scripts. Each one touches exactly one key, passed in KEYS[1], so
// that it is valid in Redis Cluster: a session hash and a user index live in
// different hash slots, usually on different nodes, and no script ever spans
// both. Versions and user IDs are compared as strings (Lua numbers are
// doubles, exact only to 2^53); only millisecond times, well below 2^53, are
// handled as numbers.
//
// Session hash fields: d data, v version (decimal), u user ID ("" unbound),
// e expiry (Unix ms, also the key's PEXPIREAT), x index horizon (Unix ms):
// the user index named by u is known to hold this key with a score of at
// least x. A write or touch whose new expiry e exceeds x must first raise
// the index, so that every live bound record is always covered by its index
// entry (see doc.go, "User index").

// scriptSave is the compare-and-set of Save.
//
//	KEYS[1] session hash
//	ARGV[1] expected version, "0" if the key must not exist
//	ARGV[2] new version
//	ARGV[3] data
//	ARGV[4] user ID, "" for unbound
//	ARGV[5] expiry, Unix ms
//	ARGV[6] index horizon just written for ARGV[4], Unix ms, or "0"
//
// It returns 1 when it wrote the record, 0 on a version conflict (nothing
// written) and 2 when the record is bound to a user whose index does not
// cover the new expiry yet (nothing written: raise the index, then call again
// with ARGV[6] set).
const scriptSave = `
local f = redis.call('HMGET', KEYS[1], 'v', 'u', 'x')
if ARGV[1] == '0' then
	if f[1] then return 0 end
elseif f[1] ~= ARGV[1] then
	return 0
end
local x = ARGV[6]
if ARGV[4] == '' then
	x = '0'
else
	if f[2] == ARGV[4] and f[3] and tonumber(f[3]) > tonumber(x) then x = f[3] end
	if tonumber(ARGV[5]) > tonumber(x) then return 2 end
end
redis.call('HSET', KEYS[1], 'd', ARGV[3], 'v', ARGV[2], 'u', ARGV[4], 'e', ARGV[5], 'x', x)
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
return 1
`

// scriptTouch moves the expiry of a live record.
//
//	KEYS[1] session hash
//	ARGV[1] new expiry, Unix ms
//	ARGV[2] expected version, "0" for any
//	ARGV[3] user whose index was just raised, or ""
//	ARGV[4] index horizon just written for ARGV[3], Unix ms, or "0"
//
// It returns 1 when it moved the expiry, 0 if there is no live record, 3 if
// the stored version is not the expected one (nothing written), and the
// record's user ID (a string) when that user's index must first be raised
// to cover the new expiry (nothing written: call again with ARGV[3] and
// ARGV[4] set).
const scriptTouch = `
local f = redis.call('HMGET', KEYS[1], 'v', 'u', 'x')
if not f[1] then return 0 end
if ARGV[2] ~= '0' and f[1] ~= ARGV[2] then return 3 end
local u = f[2] or ''
if u ~= '' and tonumber(ARGV[1]) > tonumber(f[3] or '0') then
	if u ~= ARGV[3] then return u end
	redis.call('HSET', KEYS[1], 'x', ARGV[4])
end
redis.call('HSET', KEYS[1], 'e', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`

// scriptDeleteVersion is the compare-and-delete of Delete.
//
//	KEYS[1] session hash
//	ARGV[1] expected version
//
// It returns 1 if it deleted the record, 0 if the stored version (or its
// absence) did not match.
const scriptDeleteVersion = `
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
	redis.call('UNLINK', KEYS[1])
	return 1
end
return 0
`

// scriptDeleteUser deletes a record only if it is still bound to the user.
//
//	KEYS[1] session hash
//	ARGV[1] user ID
//
// It returns 1 if it deleted a live record, 0 otherwise.
const scriptDeleteUser = `
if redis.call('HGET', KEYS[1], 'u') == ARGV[1] then
	redis.call('UNLINK', KEYS[1])
	return 1
end
return 0
`

// scriptIndexAdd raises a session's entry in its user's index.
//
//	KEYS[1] user index (ZSET of session keys scored by horizon, Unix ms)
//	ARGV[1] session key (the caller's key, not the hash name)
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
