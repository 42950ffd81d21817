package archtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUserModuleGraphs builds, as a user would, small programs that import
// the core and one adapter of this checkout (through replace lines) and
// counts the third-party modules in their module graph (go list -m all),
// against a program that imports only the adapter's engine at the version
// the adapter requires. What a user pays for sessionkit is the difference.
func TestUserModuleGraphs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds module graphs with go mod tidy")
	}
	root := repoRoot(t)
	cases := []struct {
		name    string
		modules []string // nested sessionkit modules the program requires
		imports []string // sessionkit packages it imports
		engine  []string // packages of the engine alone
		slack   int      // third-party modules allowed beyond the engine's graph
	}{
		{"memstore", nil, []string{"session", "store/memstore"}, nil, 0},
		{"redisstore", []string{"store/redisstore"}, []string{"session", "store/redisstore"},
			[]string{"github.com/redis/rueidis"}, 0},
		{"pgstore", []string{"store/pgstore"}, []string{"session", "store/pgstore"},
			[]string{"github.com/jackc/pgx/v5/pgxpool"}, 0},
		{"memcachedstore", []string{"store/memcachedstore"}, []string{"session", "store/memcachedstore"},
			[]string{"github.com/bradfitz/gomemcache/memcache"}, 0},
		{"token", []string{"token"}, []string{"session", "token"},
			[]string{"github.com/golang-jwt/jwt/v5", "golang.org/x/crypto/chacha20poly1305"}, 0},
		{"balancer", []string{"balancer"}, []string{"balancer"}, []string{"github.com/valyala/fasthttp"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var imports []string
			replace := map[string]string{module: root}
			for _, m := range c.modules {
				replace[module+"/"+m] = filepath.Join(root, m)
			}
			for _, p := range c.imports {
				imports = append(imports, module+"/"+p)
			}
			ours := graph(t, imports, replace, nil)
			engine := 0
			if len(c.engine) > 0 {
				// The engine at the versions the adapter requires.
				var m goMod
				readJSON(t, filepath.Join(root, c.modules[0]), &m, "go", "mod", "edit", "-json")
				var pins []string
				for _, r := range m.Require {
					if !r.Indirect && !strings.HasPrefix(r.Path, module) {
						pins = append(pins, r.Path+"@"+requireVersion(m, r.Path))
					}
				}
				engine = len(graph(t, c.engine, nil, pins))
			}
			t.Logf("%s: %d third-party modules (the engine alone: %d): %s", c.name, len(ours), engine, strings.Join(ours, " "))
			if len(ours) > engine+c.slack {
				t.Errorf("a program importing %v has %d third-party modules in its graph; want at most %d (the engine's %d + %d)",
					c.imports, len(ours), engine+c.slack, engine, c.slack)
			}
		})
	}
}

func requireVersion(m goMod, path string) string {
	for _, r := range m.Require {
		if r.Path == path {
			return r.Version
		}
	}
	return "latest"
}

// graph makes a module that imports the packages, with the replace lines
// and required versions given, tidies it, and returns the third-party
// modules of go list -m all.
func graph(t *testing.T, imports []string, replace map[string]string, pins []string) []string {
	t.Helper()
	dir := t.TempDir()
	var src, mod strings.Builder
	mod.WriteString("module example.com/user\n\ngo 1.26.0\n")
	for from, to := range replace {
		fmt.Fprintf(&mod, "replace %s => %s\n", from, to)
		fmt.Fprintf(&mod, "require %s v0.0.0-00010101000000-000000000000\n", from)
	}
	src.WriteString("package main\n\nimport (\n")
	for _, p := range imports {
		fmt.Fprintf(&src, "\t_ %q\n", p)
	}
	src.WriteString(")\n\nfunc main() {}\n")
	write(t, filepath.Join(dir, "go.mod"), mod.String())
	write(t, filepath.Join(dir, "main.go"), src.String())
	for _, pin := range pins {
		run(t, dir, "go", "mod", "edit", "-require="+pin)
	}
	run(t, dir, "go", "mod", "tidy")
	var third []string
	for _, line := range strings.Split(strings.TrimSpace(run(t, dir, "go", "list", "-m", "all")), "\n") {
		path := strings.Fields(line)[0]
		if path != "example.com/user" && path != module && !strings.HasPrefix(path, module+"/") {
			third = append(third, path)
		}
	}
	return third
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
