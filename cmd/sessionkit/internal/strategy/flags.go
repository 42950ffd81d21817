package strategy

import (
	"fmt"
	"time"
)

// Settings are the settings of every strategy: the values of serve's
// flags that the entries declare (see Flags), each field named after its
// flag. Defaults returns the flags' defaults; the zero value is not that.
type Settings struct {
	// MaxSessions bounds the sessions a memory node holds (--max-sessions);
	// 0: no bound. Default memstore.DefaultMaxEntries (1,000,000).
	MaxSessions int

	// Keys is the token strategy's key-ring file (--keys); required by
	// it, no default.
	Keys string
	// KeysReload is how often the key-ring file is re-read
	// (--keys-reload); 0: only on SIGHUP. Default DefaultKeysReload (5s).
	KeysReload time.Duration
	// TokenFormat is "sealed" or "jwt" (--token-format); default "sealed".
	TokenFormat string
	// Revocations is where token revocations are kept, "memory" or
	// "redis" (--revocations); default "memory".
	Revocations string
	// RevocationRefresh is how often a node re-reads the revocation list
	// (--revocation-refresh); default token.DefaultRefreshInterval (2s).
	RevocationRefresh time.Duration

	// RedisURL is the Redis of the redis strategy and of token
	// revocations in Redis (--redis); default DefaultRedisURL.
	RedisURL string
	// PostgresURL is the PostgreSQL of the postgres strategy (--postgres);
	// default DefaultPostgresURL.
	PostgresURL string
	// MemcachedAddrs are the Memcached servers of the memcached strategy,
	// host:port,... (--memcached); default DefaultMemcachedAddrs.
	MemcachedAddrs string

	// OlricAddrs are members of an Olric cluster run apart, host:port,...
	// (--olric), for the olric strategy without ClusterAddr; default
	// DefaultOlricAddrs.
	OlricAddrs string
	// NATSURL is a NATS server with JetStream (--nats), for the nats
	// strategy without ClusterAddr; default DefaultNATSURL.
	NATSURL string
	// ClusterAddr, if set, makes the node run an embedded NATS node or
	// Olric member whose cluster (gossip) listener is this host:port
	// (--cluster-addr); default "": connect to NATSURL or OlricAddrs.
	ClusterAddr string
	// Peers are the other nodes' cluster addresses, host:port,... (--peers);
	// default none.
	Peers string
	// OlricAddr is the embedded Olric member's own host:port (--olric-addr);
	// default "": the ClusterAddr host with its port plus one.
	OlricAddr string
	// DataDir is the embedded NATS node's JetStream directory (--data-dir);
	// default "": a new temporary directory, removed when the node closes.
	DataDir string
	// RemoveDeadAfter is how long an embedded NATS cluster waits before it
	// removes a silent member (--remove-dead-after); default
	// natsstore.DefaultRemoveDeadAfter, 0 never.
	RemoveDeadAfter time.Duration

	// NearCache keeps recently used sessions in the node's memory, kept
	// coherent by the store's change feed (--near-cache); default false.
	NearCache bool
}

// FlagSet is where a Flag declares itself: the part of serve's flag set
// the strategies use. As in package flag, a `quoted` word in a usage
// string names the flag's argument.
type FlagSet interface {
	String(p *string, name, def, usage string)
	Int(p *int, name string, def int, usage string)
	Duration(p *time.Duration, name string, def time.Duration, usage string)
	Bool(p *bool, name string, def bool, usage string)
}

// Flag is one of serve's flags that a strategy reads.
type Flag struct {
	// Name is the flag's name, without dashes.
	Name string
	// When says with which strategies, and settings, the flag applies,
	// for the message refusing it elsewhere: "--strategy memory".
	When string

	define func(fs FlagSet, name string, s *Settings)
}

// Define declares the flag on fs, with its default and usage, bound to
// its field of s.
func (f *Flag) Define(fs FlagSet, s *Settings) { f.define(fs, f.Name, s) }

// Flags returns the flags of every strategy, each once, in the
// registry's order (each strategy's flags in turn).
func Flags() []*Flag {
	var out []*Flag
	seen := map[string]bool{}
	for _, st := range registry {
		for _, f := range st.Flags {
			if !seen[f.Name] {
				seen[f.Name] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// Defaults returns the settings serve runs with when no flag is given:
// every flag's default.
func Defaults() Settings {
	var s Settings
	for _, f := range Flags() {
		f.Define(defaults{}, &s)
	}
	return s
}

// defaults is a FlagSet that only stores each flag's default.
type defaults struct{}

func (defaults) String(p *string, _, def, _ string)                               { *p = def }
func (defaults) Int(p *int, _ string, def int, _ string)                          { *p = def }
func (defaults) Duration(p *time.Duration, _ string, def time.Duration, _ string) { *p = def }
func (defaults) Bool(p *bool, _ string, def bool, _ string)                       { *p = def }

// FlagError is a flag's value that Check refuses: serve reports it with
// the flag's name, or the environment variable it came from.
type FlagError struct {
	Flag  string // the flag's name, without dashes
	Value string // the value, as given
	Why   string // what is wanted instead: "want sealed or jwt"
}

func (e *FlagError) Error() string { return fmt.Sprintf("invalid --%s %q: %s", e.Flag, e.Value, e.Why) }

// nearCacheFlag is --near-cache, read by the strategies whose store reports
// its changes.
var nearCacheFlag = &Flag{Name: "near-cache", When: "--strategy redis, nats or postgres",
	define: func(fs FlagSet, name string, s *Settings) {
		fs.Bool(&s.NearCache, name, false,
			"keep recently used sessions in this node's memory, kept coherent by the\n"+
				"        store's change feed, so that most reads make no round trip to the store;\n"+
				"        a logout on another node is honoured within the feed's delay (at most\n"+
				"        1s if the feed breaks silently)")
	}}
