package redisstore_test

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/store/redisstore"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
		want redisstore.Config
		tls  bool
	}{
		{"Plain", "redis://127.0.0.1:6379", redisstore.Config{Addrs: []string{"127.0.0.1:6379"}}, false},
		{"DefaultPort", "redis://cache.local", redisstore.Config{Addrs: []string{"cache.local:6379"}}, false},
		{"DB", "redis://h:1/3", redisstore.Config{Addrs: []string{"h:1"}, DB: 3}, false},
		{"DBOption", "redis://h:1?db=4", redisstore.Config{Addrs: []string{"h:1"}, DB: 4}, false},
		{"TrailingSlash", "redis://h/", redisstore.Config{Addrs: []string{"h:6379"}}, false},
		{"Auth", "redis://user:p%40ss%3Aword@h:1/0",
			redisstore.Config{Addrs: []string{"h:1"}, Username: "user", Password: "p@ss:word"}, false},
		{"PasswordOnly", "redis://:secret@h", redisstore.Config{Addrs: []string{"h:6379"}, Password: "secret"}, false},
		{"TLS", "rediss://:secret@h:6380", redisstore.Config{Addrs: []string{"h:6380"}, Password: "secret"}, true},
		{"IPv6", "redis://[::1]:7000,[::1]", redisstore.Config{Addrs: []string{"[::1]:7000", "[::1]:6379"}}, false},
		{"Cluster", "redis://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3",
			redisstore.Config{Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:6379"}}, false},
		{"Options", "redis://h?key_prefix=app:sess:&timeout=500ms&dial_timeout=3s",
			redisstore.Config{Addrs: []string{"h:6379"}, KeyPrefix: "app:sess:", Timeout: 500 * time.Millisecond, DialTimeout: 3 * time.Second}, false},
		{"Sentinel", "redis-sentinel://s1,s2:26380/mymaster",
			redisstore.Config{Addrs: []string{"s1:26379", "s2:26380"}, SentinelMaster: "mymaster"}, false},
		{"SentinelDB", "redis-sentinel://:pw@s1/mymaster/2?sentinel_username=su&sentinel_password=sp",
			redisstore.Config{Addrs: []string{"s1:26379"}, SentinelMaster: "mymaster", DB: 2, Password: "pw",
				SentinelUsername: "su", SentinelPassword: "sp"}, false},
		{"SentinelMasterOption", "redis-sentinel://s1?master=mymaster&db=1",
			redisstore.Config{Addrs: []string{"s1:26379"}, SentinelMaster: "mymaster", DB: 1}, false},
		{"SentinelTLS", "rediss-sentinel://s1/m", redisstore.Config{Addrs: []string{"s1:26379"}, SentinelMaster: "m"}, true},
		{"UpperScheme", "REDIS://h", redisstore.Config{Addrs: []string{"h:6379"}}, false},
		{"NearCache", "redis://h?near_cache=true", redisstore.Config{Addrs: []string{"h:6379"}, NearCache: &redisstore.NearCache{}}, false},
		{"NearCacheOff", "redis://h?near_cache=false", redisstore.Config{Addrs: []string{"h:6379"}}, false},
		{"NearCacheSettings", "redis://h?near_cache_max_age=250ms&near_cache_max_entries=5000",
			redisstore.Config{Addrs: []string{"h:6379"}, NearCache: &redisstore.NearCache{MaxAge: 250 * time.Millisecond, MaxEntries: 5000}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := redisstore.ParseURL(tc.url)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tc.url, err)
			}
			if (got.TLS != nil) != tc.tls {
				t.Errorf("ParseURL(%q).TLS: got %v; want TLS %v", tc.url, got.TLS, tc.tls)
			}
			got.TLS = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseURL(%q):\ngot  %+v\nwant %+v", tc.url, got, tc.want)
			}
		})
	}
}

func TestParseURL_errors(t *testing.T) {
	for _, u := range []string{
		"", "127.0.0.1:6379", "http://h", "redis://", "redis://h:0", "redis://h:65536", "redis://h:x",
		"redis://h:+1", "redis://::1", "redis://h,,g", "redis://h/x", "redis://h/-1", "redis://h/1/2",
		"redis://h/1?db=2", "redis://h?db=1&db=2", "redis://h?bogus=1", "redis://h?master=m",
		"redis://h?timeout=soon", "redis://h?key_prefix={x}", "redis://h#frag", "redis-sentinel://s1",
		"redis-sentinel://s1/a?master=b", "redis-sentinel://s1/m/1/2", "redis://h%zz", "redis://a b",
		"redis://h?near_cache=maybe", "redis://h?near_cache_max_age=-1s", "redis://h?near_cache_max_entries=0",
		"redis://h?near_cache=1&near_cache=1",
	} {
		if cfg, err := redisstore.ParseURL(u); err == nil {
			t.Errorf("ParseURL(%q): got %+v, nil error; want an error", u, cfg)
		} else if !strings.HasPrefix(err.Error(), "redisstore: ") {
			t.Errorf("ParseURL(%q) error %q: want it to start with %q", u, err, "redisstore: ")
		}
	}
}

// TestParseURL_noPasswordInErrors checks that a parse error does not repeat
// the password.
func TestParseURL_noPasswordInErrors(t *testing.T) {
	for _, u := range []string{"redis://user:hunter2@h:x", "redis://:hunter2@h/1?bogus=1", "redis://:hunter2%zz@h"} {
		_, err := redisstore.ParseURL(u)
		if err == nil {
			t.Errorf("ParseURL(%q): got nil error; want one", u)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q) error %q: contains the password", u, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379/0", "rediss://u:p@h:1?timeout=1s", "redis://a,b:2,[::1]:3",
		"redis-sentinel://s1,s2/m/1?sentinel_password=x", "rediss-sentinel://s?master=m", "redis://h?db=1", "redis://h?near_cache_max_age=1s&near_cache=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := redisstore.ParseURL(s)
		if err != nil {
			return
		}
		if len(cfg.Addrs) == 0 {
			t.Fatalf("ParseURL(%q): no addresses", s)
		}
		for _, a := range cfg.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				t.Fatalf("ParseURL(%q): address %q: %v", s, a, err)
			}
		}
		if cfg.DB < 0 || strings.ContainsAny(cfg.KeyPrefix, "{}") {
			t.Fatalf("ParseURL(%q): invalid config %+v", s, cfg)
		}
	})
}

// TestParseURL_unescapedPassword: a password holding '/', '?' or '#' cuts
// the URL early; the error must not quote it.
func TestParseURL_unescapedPassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:hunter2/x@h:6379",
		"redis://:hunt?er2@h:6379",
		"redis://user:6379/x@h",
		"redis-sentinel://u:pa#ss@s1,s2/mymaster",
	} {
		_, err := redisstore.ParseURL(u)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded; want an error", u)
			continue
		}
		for _, secret := range []string{"hunter2", "hunt", "er2", "ss@s1"} {
			if strings.Contains(u, secret) && strings.Contains(err.Error(), secret) {
				t.Errorf("ParseURL(%q) error %q quotes the password", u, err)
			}
		}
	}
}
