package cli_test

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/cli"
	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/lab"
	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
)

// syncBuffer is a bytes.Buffer safe for concurrent use, so that a test can
// read what a running command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a fake environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// run runs Main to completion (the commands it is used with end by
// themselves) and returns its exit status and output.
func run(t *testing.T, e env, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	code = cli.Main(context.Background(), args, &out, &errb, e.get)
	return code, out.String(), errb.String()
}

// oneLine checks that s is exactly one line that starts with prefix and
// contains every part.
func oneLine(t *testing.T, s, prefix string, parts ...string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
		t.Errorf("stderr %q; want exactly one line", s)
	}
	if !strings.HasPrefix(s, prefix) {
		t.Errorf("stderr %q; want it to start with %q", s, prefix)
	}
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("stderr %q; want it to contain %q", s, p)
		}
	}
}

func TestMain_usage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		toStdout   bool
		wantStderr string
	}{
		{"no args", nil, 2, false, ""},
		{"--help", []string{"--help"}, 0, true, ""},
		{"-h", []string{"-h"}, 0, true, ""},
		{"help", []string{"help"}, 0, true, ""},
		{"help help", []string{"help", "help"}, 0, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d; want %d", code, tc.code)
			}
			usage, other := stdout, stderr
			if !tc.toStdout {
				usage, other = stderr, stdout
			}
			if other != "" {
				t.Errorf("unexpected output %q", other)
			}
			for _, want := range []string{"Usage:", "sessionkit <command>", "serve", "run one node of the reference app", "help"} {
				if !strings.Contains(usage, want) {
					t.Errorf("usage %q does not mention %q", usage, want)
				}
			}
		})
	}
}

func TestMain_unknownCommand(t *testing.T) {
	code, stdout, stderr := run(t, nil, "bogus")
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	if want := "sessionkit: unknown command \"bogus\" (run 'sessionkit --help')\n"; stderr != want {
		t.Errorf("stderr %q; want %q", stderr, want)
	}

	code, _, stderr = run(t, nil, "help", "bogus")
	if code != 2 {
		t.Errorf("help bogus: exit %d; want 2", code)
	}
	oneLine(t, stderr, "sessionkit help: ", `"bogus"`)
}

func TestServe_badFlag(t *testing.T) {
	code, stdout, stderr := run(t, nil, "serve", "--bogus")
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	if want := "sessionkit serve: flag provided but not defined: -bogus (see 'sessionkit serve --help')\n"; stderr != want {
		t.Errorf("stderr %q; want %q", stderr, want)
	}
}

func TestServe_badCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		parts []string
	}{
		{"missing value", []string{"--addr"}, []string{"flag needs an argument: -addr"}},
		{"bad duration", []string{"--idle-timeout", "soon"}, []string{"-idle-timeout", "soon"}},
		{"bad int", []string{"--max-sessions", "many"}, []string{"-max-sessions"}},
		{"positional", []string{"extra"}, []string{`unexpected argument "extra"`}},
		{"positional after flags", []string{"--node", "a", "b"}, []string{`unexpected argument "b"`}},
		{"unknown strategy", []string{"--strategy", "x"},
			[]string{`invalid --strategy "x": want one of memory, token, redis, postgres, memcached, olric, nats`}},
		{"token without keys", []string{"--strategy", "token"}, []string{"--strategy token needs --keys FILE"}},
		{"bad token format", []string{"--strategy", "token", "--keys", "k.json", "--token-format", "paseto"},
			[]string{`invalid --token-format "paseto"`, "sealed or jwt"}},
		{"bad revocations", []string{"--strategy", "token", "--keys", "k.json", "--revocations", "disk"},
			[]string{`invalid --revocations "disk"`}},
		{"zero revocation refresh", []string{"--strategy", "token", "--keys", "k.json", "--revocation-refresh", "0s"},
			[]string{"invalid --revocation-refresh", "positive"}},
		{"bad node", []string{"--node", "n 1"}, []string{`invalid --node "n 1"`}},
		{"node with dot", []string{"--node", "a.b"}, []string{`invalid --node "a.b"`}},
		{"empty node", []string{"--node", ""}, []string{`invalid --node ""`}},
		{"long node", []string{"--node", strings.Repeat("n", 65)}, []string{"invalid --node"}},
		{"bad addr", []string{"--addr", "nonsense"}, []string{`invalid --addr "nonsense"`, "missing port"}},
		{"zero idle timeout", []string{"--idle-timeout", "0"}, []string{"invalid --idle-timeout", "positive"}},
		{"negative lifetime", []string{"--lifetime", "-1h"}, []string{"invalid --lifetime", "positive"}},
		{"negative max sessions", []string{"--max-sessions", "-1"}, []string{"invalid --max-sessions"}},
		{"bad log level", []string{"--log-level", "loud"}, []string{`invalid --log-level "loud"`, "debug, info, warn, error"}},
		{"negative user sessions", []string{"--max-user-sessions", "-2"}, []string{`invalid --max-user-sessions "-2"`}},
		{"bad limit policy", []string{"--max-user-sessions-policy", "lru"}, []string{`invalid --max-user-sessions-policy "lru"`, "evict or refuse"}},
		{"bad client ip", []string{"--client-ip", "yes"}, []string{`invalid --client-ip "yes"`, "off, network or full"}},
		{"bad record format", []string{"--record-format", "2"}, []string{`invalid --record-format "2"`, "want 3, or 1"}},
		{"migrate from itself", []string{"--strategy", "redis", "--migrate-from", "redis"}, []string{`invalid --migrate-from "redis"`, "--strategy itself"}},
		{"migrate into memory", []string{"--migrate-from", "redis"}, []string{"--strategy memory keeps no shared store"}},
		{"migrate from memory", []string{"--strategy", "redis", "--migrate-from", "memory"}, []string{"memory is empty once it restarts"}},
		{"migrate from tokens without keys", []string{"--strategy", "redis", "--migrate-from", "token"}, []string{`invalid --migrate-from "token"`, "--strategy token needs --keys FILE"}},
		{"migrate from an unknown strategy", []string{"--strategy", "redis", "--migrate-from", "disk"}, []string{`invalid --migrate-from "disk"`, "want one of"}},
		{"migrate from a cluster member", []string{"--strategy", "redis", "--migrate-from", "nats", "--cluster-addr", "127.0.0.1:17000"},
			[]string{"reach the old cluster as a client"}},
		{"old strategy's flag without migrating", []string{"--strategy", "postgres", "--redis", "redis://x"},
			[]string{"--redis is used only with"}},
		{"user limit with tokens", []string{"--strategy", "token", "--keys", "k.json", "--max-user-sessions", "3"},
			[]string{"--max-user-sessions cannot be enforced with --strategy token"}},
		// Flags the strategy does not use.
		{"cluster addr without a cluster strategy", []string{"--cluster-addr", "127.0.0.1:17000"},
			[]string{"--cluster-addr is used only with --strategy nats or olric", "here: --strategy memory"}},
		{"keys without tokens", []string{"--strategy", "redis", "--keys", "k.json"},
			[]string{"--keys is used only with --strategy token", "here: --strategy redis"}},
		{"redis without redis", []string{"--strategy", "postgres", "--redis", "redis://127.0.0.1:6379"},
			[]string{"--redis is used only with --strategy redis, or --strategy token with --revocations redis"}},
		{"redis with memory revocations", []string{"--strategy", "token", "--keys", "k.json", "--redis", "redis://x"},
			[]string{"--redis is used only", "here: --strategy token with --revocations memory"}},
		{"nats url with an embedded node", []string{"--strategy", "nats", "--cluster-addr", "127.0.0.1:17000", "--nats", "nats://x"},
			[]string{"--nats is used only with --strategy nats without --cluster-addr"}},
		{"peers without cluster addr", []string{"--strategy", "olric", "--peers", "127.0.0.1:17001"},
			[]string{"--peers is used only with --strategy nats or olric and --cluster-addr"}},
		{"data dir for olric", []string{"--strategy", "olric", "--cluster-addr", "127.0.0.1:17000", "--data-dir", "d"},
			[]string{"--data-dir is used only with --strategy nats and --cluster-addr"}},
		{"remove dead after without a cluster", []string{"--strategy", "nats", "--remove-dead-after", "30s"},
			[]string{"--remove-dead-after is used only with --strategy nats and --cluster-addr"}},
		{"negative remove dead after", []string{"--strategy", "nats", "--cluster-addr", "127.0.0.1:17000", "--remove-dead-after", "-1s"},
			[]string{`invalid --remove-dead-after "-1s"`, "0 (never) or positive"}},
		{"max sessions without memory", []string{"--strategy", "postgres", "--max-sessions", "10"},
			[]string{"--max-sessions is used only with --strategy memory"}},
		{"fail open on memory", []string{"--fail-open"}, []string{"--fail-open is used only with"}},
		{"token format without tokens", []string{"--token-format", "jwt"}, []string{"--token-format is used only with --strategy token"}},
		{"near cache on memory", []string{"--near-cache"},
			[]string{"--near-cache is used only with --strategy redis, nats or postgres", "here: --strategy memory"}},
		{"near cache on memcached", []string{"--strategy", "memcached", "--near-cache"},
			[]string{"--near-cache is used only with --strategy redis, nats or postgres", "here: --strategy memcached"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, nil, append([]string{"serve"}, tc.args...)...)
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
			}
			oneLine(t, stderr, "sessionkit serve: ", tc.parts...)
		})
	}
}

// A flag the strategy does not use is refused on the command line but
// ignored in the environment, which often serves nodes of several
// strategies: here the error is the bad log level's.
func TestServe_unusedFlagFromEnvironment(t *testing.T) {
	code, _, stderr := run(t, env{"SESSIONKIT_CLUSTER_ADDR": "127.0.0.1:17000", "SESSIONKIT_KEYS": "k.json"},
		"serve", "--log-level", "loud")
	if code != 2 {
		t.Errorf("exit %d; want 2", code)
	}
	oneLine(t, stderr, "sessionkit serve: ", `invalid --log-level "loud"`)
}

func TestServe_help(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"serve", "-h"}, {"help", "serve"}} {
		code, stdout, stderr := run(t, env{"SESSIONKIT_ADDR": "bad"}, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		for _, want := range []string{
			"Usage: sessionkit serve [flags]",
			"--strategy NAME", "SESSIONKIT_STRATEGY", "memory, token, redis, postgres, memcached, olric, nats",
			"--node NAME", "SESSIONKIT_NODE", "(default n1;",
			"--addr HOST:PORT", "SESSIONKIT_ADDR", "(default 127.0.0.1:8080;",
			"--idle-timeout DURATION", "SESSIONKIT_IDLE_TIMEOUT", "(default 30m;",
			"--lifetime DURATION", "SESSIONKIT_LIFETIME", "(default 12h;",
			"--max-sessions COUNT", "SESSIONKIT_MAX_SESSIONS", "(default 1000000;",
			"--insecure-cookie\n", "SESSIONKIT_INSECURE_COOKIE", "(default false;",
			"--log-level LEVEL", "SESSIONKIT_LOG_LEVEL", "(default info;",
			"GET /metrics", "Prometheus",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v: help does not mention %q:\n%s", args, want, stdout)
			}
		}
	}
}

func TestServe_badEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  env
		want string
	}{
		{"duration", env{"SESSIONKIT_IDLE_TIMEOUT": "soon"},
			`sessionkit serve: invalid SESSIONKIT_IDLE_TIMEOUT "soon": want a duration such as 90s, 30m or 12h` + "\n"},
		{"int", env{"SESSIONKIT_MAX_SESSIONS": "lots"},
			`sessionkit serve: invalid SESSIONKIT_MAX_SESSIONS "lots": want an integer` + "\n"},
		{"bool", env{"SESSIONKIT_INSECURE_COOKIE": "maybe"},
			`sessionkit serve: invalid SESSIONKIT_INSECURE_COOKIE "maybe": want true or false` + "\n"},
		{"strategy", env{"SESSIONKIT_STRATEGY": "x"},
			`sessionkit serve: invalid SESSIONKIT_STRATEGY "x": want one of memory, token, redis, postgres, memcached, olric, nats` + "\n"},
		{"node", env{"SESSIONKIT_NODE": "a b"},
			`sessionkit serve: invalid SESSIONKIT_NODE "a b": want at most 64 ASCII letters, digits, '-' or '_'` + "\n"},
		{"addr", env{"SESSIONKIT_ADDR": "nope"},
			`sessionkit serve: invalid SESSIONKIT_ADDR "nope": missing port in address; want host:port, such as 127.0.0.1:8080 or :8080` + "\n"},
		{"log level", env{"SESSIONKIT_LOG_LEVEL": "verbose"},
			`sessionkit serve: invalid SESSIONKIT_LOG_LEVEL "verbose": want one of debug, info, warn, error` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.env, "serve")
			if code != 2 || stderr != tc.want {
				t.Errorf("exit %d, stderr %q; want 2, %q", code, stderr, tc.want)
			}
		})
	}

	// A flag on the command line wins, even over a bad variable.
	code, _, stderr := run(t, env{"SESSIONKIT_STRATEGY": "x", "SESSIONKIT_ADDR": "nope"},
		"serve", "--strategy", "token", "--addr", "127.0.0.1:0")
	oneLine(t, stderr, "sessionkit serve: ", "--strategy token needs --keys FILE")
	if code != 2 {
		t.Errorf("exit %d; want 2", code)
	}
}

// TestStrategies_registry checks that serve and lab accept exactly the
// strategies of the registry (package strategy), and that their --help
// lists them and serve's declares every strategy's flags.
func TestStrategies_registry(t *testing.T) {
	names := strategy.Names()
	_, help, _ := run(t, nil, "serve", "--help")
	m := regexp.MustCompile(`name of the session strategy: (.*)\n`).FindStringSubmatch(help)
	if m == nil || m[1] != strings.Join(names, ", ") {
		t.Errorf("serve --help lists the strategies %q; want %q", m, strings.Join(names, ", "))
	}
	for _, fl := range strategy.Flags() {
		if !strings.Contains(help, "\n  --"+fl.Name+" ") && !strings.Contains(help, "\n  --"+fl.Name+"\n") {
			t.Errorf("serve --help does not declare --%s", fl.Name)
		}
	}
	_, help, _ = run(t, nil, "lab", "--help")
	if want := "(default " + strings.Join(lab.Strategies, ",") + ";"; !strings.Contains(help, want) {
		t.Errorf("lab --help does not say %q", want)
	}
	for _, name := range names { // the lab's default rows hold every strategy
		if !slices.Contains(lab.Strategies, name) {
			t.Errorf("lab's default rows %v lack the strategy %s", lab.Strategies, name)
		}
	}
	for _, name := range append(names, "couchbase", "Memory") {
		known := slices.Contains(names, name)
		// serve checks --strategy before --addr, lab --strategies before
		// --faults: the second error means the name was accepted.
		_, _, stderr := run(t, nil, "serve", "--strategy", name, "--addr", "nonsense")
		if accepted := strings.Contains(stderr, `invalid --addr "nonsense"`); accepted != known {
			t.Errorf("serve --strategy %s: %q; want it accepted: %v", name, stderr, known)
		}
		_, _, stderr = run(t, nil, "lab", "--strategies", name, "--faults", "disk")
		if accepted := strings.Contains(stderr, `unknown fault "disk"`); accepted != known {
			t.Errorf("lab --strategies %s: %q; want it accepted: %v", name, stderr, known)
		}
	}
}
