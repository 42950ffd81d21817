package strategy

import (
	"context"
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit/store/redisstore"
)

// DefaultRedisURL is the default of --redis: the local Redis.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// redisStrategy is a centralized store: every node keeps its sessions in
// one Redis (standalone, Sentinel or Cluster), behind a circuit breaker.
var redisStrategy = Strategy{
	Name:    "redis",
	What:    "centralized: redisstore on one Redis, behind a circuit breaker",
	Shared:  true,
	Breaker: true,
	Flags:   []*Flag{redisFlag, nearCacheFlag},
	open: func(ctx context.Context, n *Node) (*Sessions, error) {
		rc, err := redisstore.ParseURL(n.Settings.RedisURL)
		if err != nil {
			return nil, err
		}
		return openRedis(ctx, n, rc)
	},
	testbed: redisTestbed,
	plan:    redisPlan,
}

var redisFlag = &Flag{Name: "redis", When: "--strategy redis, or --strategy token with --revocations redis",
	define: func(fs FlagSet, name string, s *Settings) {
		fs.String(&s.RedisURL, name, DefaultRedisURL,
			"Redis `url` for --strategy redis (and --revocations redis):\n"+
				"        redis://[user:pass@]host:port[/db], rediss:// for TLS, several hosts\n"+
				"        (redis://h1:p1,h2:p2,h3:p3) for a Redis Cluster, or\n"+
				"        redis-sentinel://s1:p1,s2:p2/master for Sentinel (see package redisstore)")
	}}

// openRedis opens node n's store on the Redis rc describes, behind a
// circuit breaker.
func openRedis(ctx context.Context, n *Node, rc redisstore.Config) (*Sessions, error) {
	if n.Timeout > 0 {
		rc.Timeout = n.Timeout
	}
	if n.Settings.NearCache {
		rc.NearCache = &redisstore.NearCache{}
	}
	st, err := redisstore.New(ctx, rc)
	if err != nil {
		return nil, err
	}
	return stored(n, st, true, nil)
}

// redisTestbed runs the nodes on one standalone Redis, reached through
// c.Proxy (the lab cuts the connections there), under a key prefix of
// their own.
func redisTestbed(ctx context.Context, c *TestbedConfig) (*Testbed, error) {
	url := c.Settings.RedisURL
	rc, err := redisstore.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSkip, err)
	}
	if len(rc.Addrs) != 1 || rc.SentinelMaster != "" {
		return nil, fmt.Errorf("%w: the lab runs on one standalone Redis (it cuts the connections to it), not %s", ErrSkip, url)
	}
	if err := reachable(ctx, rc.Addrs[0]); err != nil {
		return nil, err
	}
	addr, err := c.dialAddr(rc.Addrs[0])
	if err != nil {
		return nil, err
	}
	rc.Addrs = []string{addr}
	// Keys expire with the sessions (the lab's idle timeout), so a run
	// leaves nothing behind for long.
	rc.KeyPrefix = fmt.Sprintf("sessionkit-lab:%d:", time.Now().UnixNano())
	return &Testbed{open: func(ctx context.Context, _ int, n *Node) (*Sessions, error) {
		n.Settings = c.Settings
		return openRedis(ctx, n, rc)
	}}, nil
}
