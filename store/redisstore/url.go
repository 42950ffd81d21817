package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ParseURL returns the Config that a Redis URL describes. The forms are:
//
//	redis://[[user][:password]@]host[:port][,host[:port]...][/db][?option=value&...]
//	rediss://...                          the same over TLS
//	redis-sentinel://[[user][:password]@]host[:port][,host[:port]...]/master[/db][?...]
//	rediss-sentinel://...                 the same over TLS (to Sentinels and servers)
//
// One host is a standalone server or a node of a cluster (detected); several
// hosts are nodes of one Redis Cluster. In the sentinel forms the hosts are
// the Sentinels and the path names the master set (or use ?master=name).
// Ports default to 6379, or 26379 for Sentinels. IPv6 hosts go in brackets.
// The user and password, percent-encoded, are those of the Redis servers.
//
// Options (each at most once; any other is an error):
//
//	db=N                  database number, instead of the path's /db
//	key_prefix=P          Config.KeyPrefix
//	timeout=D             Config.Timeout, a Go duration such as 500ms
//	dial_timeout=D        Config.DialTimeout
//	master=NAME           the master set (sentinel forms only)
//	sentinel_username=U   Config.SentinelUsername (sentinel forms only)
//	sentinel_password=P   Config.SentinelPassword (sentinel forms only)
//	near_cache=B          true: a near cache (Config.NearCache) with its defaults
//	near_cache_max_age=D  NearCache.MaxAge (implies near_cache=true)
//	near_cache_max_entries=N  NearCache.MaxEntries (implies near_cache=true)
//
// For example "redis://127.0.0.1:6379/0", "rediss://:secret@cache.example:6380",
// "redis://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000" (a cluster) and
// "redis-sentinel://s1,s2,s3/mymaster?sentinel_password=x".
func ParseURL(s string) (Config, error) {
	var cfg Config
	fail := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("redisstore: URL: "+format, a...)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return fail("no scheme; want redis://, rediss://, redis-sentinel:// or rediss-sentinel://")
	}
	var useTLS, sentinel bool
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		useTLS = true
	case "redis-sentinel":
		sentinel = true
	case "rediss-sentinel":
		useTLS, sentinel = true, true
	default:
		return fail("unknown scheme %q; want redis, rediss, redis-sentinel or rediss-sentinel", scheme)
	}
	// The host list may hold commas, which net/url does not accept in a
	// host: cut it out, and let net/url parse the rest around a placeholder.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if strings.Contains(tail, "@") {
		// A '/', '?' or '#' inside the password cut the URL early: never
		// quote any part of it, which may be the password itself.
		return fail("the user and password must be percent-encoded ('/', '?', '#' and '@' as %%2F, %%3F, %%23, %%40)")
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse("redis://" + userinfo + "placeholder" + tail)
	if err != nil {
		return fail("%v", redactErr(err))
	}
	if u.Fragment != "" || strings.Contains(tail, "#") {
		return fail("a fragment (#...) is not allowed")
	}

	defPort := "6379"
	if sentinel {
		defPort = "26379"
	}
	if hosts == "" {
		return fail("no host")
	}
	for _, h := range strings.Split(hosts, ",") {
		addr, err := hostPort(h, defPort)
		if err != nil {
			return fail("%v", err)
		}
		cfg.Addrs = append(cfg.Addrs, addr)
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("bad query: %v", err)
	}
	get := func(name string) (string, bool, error) {
		vs, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(vs) > 1 {
			return "", false, fmt.Errorf("option %s given %d times", name, len(vs))
		}
		return vs[0], true, nil
	}
	for name := range q {
		switch name {
		case "db", "key_prefix", "timeout", "dial_timeout", "near_cache", "near_cache_max_age", "near_cache_max_entries":
		case "master", "sentinel_username", "sentinel_password":
			if !sentinel {
				return fail("option %s is only for the sentinel schemes", name)
			}
		default:
			return fail("unknown option %q", name)
		}
	}

	// Path: /db, or /master[/db] for Sentinel.
	var dbText string
	var haveDB bool
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if u.Path == "" || u.Path == "/" {
		segs = nil
	}
	if sentinel && len(segs) > 0 {
		cfg.SentinelMaster = segs[0]
		segs = segs[1:]
	}
	switch len(segs) {
	case 0:
	case 1:
		dbText, haveDB = segs[0], true
	default:
		return fail("path %q has too many parts", u.Path)
	}
	if v, ok, err := get("db"); err != nil {
		return fail("%v", err)
	} else if ok {
		if haveDB {
			return fail("database given both in the path and as db=")
		}
		dbText, haveDB = v, true
	}
	if haveDB {
		n, err := strconv.Atoi(dbText)
		if err != nil || n < 0 {
			return fail("database %q is not a non-negative integer", dbText)
		}
		cfg.DB = n
	}
	if v, ok, err := get("master"); err != nil {
		return fail("%v", err)
	} else if ok {
		if cfg.SentinelMaster != "" && cfg.SentinelMaster != v {
			return fail("master set given both in the path (%q) and as master= (%q)", cfg.SentinelMaster, v)
		}
		cfg.SentinelMaster = v
	}
	if sentinel && cfg.SentinelMaster == "" {
		return fail("a sentinel URL needs the master set name: redis-sentinel://host/master")
	}
	if cfg.KeyPrefix, _, err = get("key_prefix"); err != nil {
		return fail("%v", err)
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"timeout", &cfg.Timeout}, {"dial_timeout", &cfg.DialTimeout}} {
		v, ok, err := get(d.name)
		if err != nil {
			return fail("%v", err)
		}
		if !ok {
			continue
		}
		if *d.dst, err = time.ParseDuration(v); err != nil {
			return fail("option %s: %v", d.name, err)
		}
	}
	if err := parseNearCache(get, &cfg); err != nil {
		return fail("%v", err)
	}
	if cfg.SentinelUsername, _, err = get("sentinel_username"); err != nil {
		return fail("%v", err)
	}
	if cfg.SentinelPassword, _, err = get("sentinel_password"); err != nil {
		return fail("%v", err)
	}
	if useTLS {
		// ServerName stays empty: each connection then verifies the host
		// it dials, which is right for every node of a cluster too.
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if _, err := cfg.normalized(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// hostPort returns h as host:port, adding def when h has no port.
func hostPort(h, def string) (string, error) {
	if h == "" {
		return "", errors.New("empty host in the host list")
	}
	var host, port string
	switch {
	case strings.HasPrefix(h, "["):
		if strings.HasSuffix(h, "]") {
			host, port = h[1:len(h)-1], def
		} else {
			var err error
			if host, port, err = net.SplitHostPort(h); err != nil {
				return "", fmt.Errorf("host %q: %v", h, err)
			}
		}
	case strings.Count(h, ":") > 1:
		return "", fmt.Errorf("host %q: an IPv6 address must be in brackets", h)
	case strings.Contains(h, ":"):
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			return "", fmt.Errorf("host %q: %v", h, err)
		}
	default:
		host, port = h, def
	}
	if host == "" || strings.ContainsAny(host, "[]@/?#% ") {
		return "", fmt.Errorf("host %q is not a valid host name or address", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return "", fmt.Errorf("host %q: port %q is not a number from 1 to 65535", h, port)
	}
	return net.JoinHostPort(host, port), nil
}

// redactErr returns err without the URL that net/url puts in its errors,
// which may hold a password.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseNearCache reads the near_cache options of a URL into cfg.
func parseNearCache(get func(string) (string, bool, error), cfg *Config) error {
	var nc NearCache
	on := false
	if v, ok, err := get("near_cache"); err != nil {
		return err
	} else if ok {
		if on, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("option near_cache: %q is not true or false", v)
		}
		if !on {
			return nil
		}
	}
	if v, ok, err := get("near_cache_max_age"); err != nil {
		return err
	} else if ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("option near_cache_max_age: %q is not a positive duration", v)
		}
		nc.MaxAge, on = d, true
	}
	if v, ok, err := get("near_cache_max_entries"); err != nil {
		return err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("option near_cache_max_entries: %q is not a positive integer", v)
		}
		nc.MaxEntries, on = n, true
	}
	if on {
		cfg.NearCache = &nc
	}
	return nil
}
