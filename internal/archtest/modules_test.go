package archtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// modules says which third-party modules each of the repository's modules
// may require directly (its go.mod's requirements without "// indirect"),
// by directory relative to the repository root. A user pays in their module
// graph for what their modules require, tests included, so the core module
// requires nothing and each adapter only its engine. A module without an
// entry fails the test; "*" allows anything (the command and the modules
// kept apart from the library). Of sessionkit's own modules, a library
// module requires the core only: an adapter that required another (say
// sessionmetrics the balancer, for a test) would hand its users that
// one's dependencies too.
var modules = map[string][]string{
	".":                    {},
	"store/redisstore":     {"github.com/redis/rueidis"},
	"store/pgstore":        {"github.com/jackc/pgx/v5"},
	"store/memcachedstore": {"github.com/bradfitz/gomemcache"},
	"store/natsstore":      {"github.com/nats-io/nats-server/v2", "github.com/nats-io/nats.go"},
	"store/olricstore":     {"github.com/olric-data/olric", "github.com/redis/go-redis/v9", "github.com/hashicorp/memberlist"},
	"token":                {"github.com/golang-jwt/jwt/v5", "golang.org/x/crypto"},
	"balancer":             {"github.com/valyala/fasthttp"},
	"sessionmetrics":       {"github.com/prometheus/client_golang"},
	"sessiontrace":         {"go.opentelemetry.io/otel", "go.opentelemetry.io/otel/trace", "go.opentelemetry.io/otel/sdk"},
	"cmd/sessionkit":       {"*"},
	"integrations":         {"*"},
	"examples":             {"*"},
	"bench":                {"*"},
}

type goMod struct {
	Module  struct{ Path string }
	Require []struct {
		Path     string
		Version  string
		Indirect bool
	}
	Replace []struct {
		Old struct{ Path string }
		New struct{ Path string }
	}
}

func TestModuleRequirements(t *testing.T) {
	root := repoRoot(t)
	var work struct{ Use []struct{ DiskPath string } }
	readJSON(t, root, &work, "go", "work", "edit", "-json", filepath.Join(root, "go.work"))
	if len(work.Use) < len(modules) {
		t.Errorf("go.work uses %d modules; want the %d of this test's table", len(work.Use), len(modules))
	}
	for _, u := range work.Use {
		dir := filepath.ToSlash(filepath.Clean(u.DiskPath))
		allowed, ok := modules[dir]
		if !ok {
			t.Errorf("module %s has no entry in modules: add it, and to docs/architecture.md", dir)
			continue
		}
		var m goMod
		readJSON(t, filepath.Join(root, dir), &m, "go", "mod", "edit", "-json")
		if want := module + strings.TrimPrefix("/"+dir, "/."); m.Module.Path != want {
			t.Errorf("%s/go.mod declares module %s; want %s (the import path users already have)", dir, m.Module.Path, want)
		}
		for _, r := range m.Require {
			if strings.HasPrefix(r.Path, module+"/") && !contains(allowed, "*") {
				t.Errorf("module %s requires %s: a library module requires no sessionkit module but the core", dir, r.Path)
			}
			if r.Indirect || r.Path == module || strings.HasPrefix(r.Path, module+"/") {
				continue
			}
			if !contains(allowed, "*") && !contains(allowed, r.Path) {
				t.Errorf("module %s requires %s: a third-party module belongs only in the adapter that wraps it", dir, r.Path)
			}
		}
		// Every sessionkit module a module requires is replaced by its
		// directory, so that go mod tidy and GOWORK=off builds use this
		// checkout, never a published version.
		replaced := map[string]string{}
		for _, r := range m.Replace {
			replaced[r.Old.Path] = r.New.Path
		}
		for _, r := range m.Require {
			if r.Path != module && !strings.HasPrefix(r.Path, module+"/") {
				continue
			}
			to, ok := replaced[r.Path]
			target := filepath.Join(root, strings.TrimPrefix(strings.TrimPrefix(r.Path, module), "/"))
			if !ok || filepath.Clean(filepath.Join(root, dir, to)) != target {
				t.Errorf("module %s requires %s without a replace to its directory in this repository", dir, r.Path)
			}
		}
	}
}

func readJSON(t *testing.T, dir string, v any, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v in %s: %v", name, args, dir, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
