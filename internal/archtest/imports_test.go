package archtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/sessionkit/sessionkit"

// rule says which of the module's packages, and which third-party modules,
// a package may import (outside its tests). Patterns ending in "/..." match
// a whole subtree.
type rule struct {
	own        []string
	thirdParty []string
}

// rules is the architecture (docs/architecture.md). A package without a
// rule fails the test: a new package must say where it sits.
var rules = map[string]rule{
	"store":                {},
	"session/sid":          {},
	"store/storetest":      {own: []string{"store", "internal/testclock"}},
	"store/memstore":       {own: []string{"store"}},
	"store/redisstore":     {own: []string{"store", "store/nearcache"}, thirdParty: []string{"github.com/redis/rueidis/..."}},
	"store/pgstore":        {own: []string{"store"}, thirdParty: []string{"github.com/jackc/pgx/v5/..."}},
	"store/breaker":        {own: []string{"store"}},
	"store/migrate":        {own: []string{"store"}},
	"store/nearcache":      {own: []string{"store"}},
	"store/memcachedstore": {own: []string{"store", "store/breaker"}, thirdParty: []string{"github.com/bradfitz/gomemcache/..."}},
	"store/natsstore":      {own: []string{"store"}, thirdParty: []string{"github.com/nats-io/..."}},
	"store/olricstore":     {own: []string{"store"}, thirdParty: []string{"github.com/olric-data/olric/...", "github.com/redis/go-redis/v9", "github.com/hashicorp/memberlist"}},
	"sessionmetrics": {own: []string{"session", "store", "store/breaker", "store/memstore", "store/nearcache"},
		thirdParty: []string{"github.com/prometheus/client_golang/..."}},
	"sessiontrace": {own: []string{"session", "store"}, thirdParty: []string{"go.opentelemetry.io/otel/..."}},
	"session":      {own: []string{"store", "session/sid"}},
	"token": {own: []string{"session", "session/sid", "store"},
		thirdParty: []string{"github.com/golang-jwt/jwt/v5", "golang.org/x/crypto/..."}},
	"internal/refapp": {own: []string{"session", "session/sid", "store"}},
	"cmd/sessionkit/internal/cli": {own: []string{"session", "session/sid", "store", "store/breaker", "store/migrate", "internal/refapp", "sessionmetrics",
		"balancer", "cmd/sessionkit/internal/lab", "cmd/sessionkit/internal/strategy", "token"},
		thirdParty: []string{"github.com/prometheus/client_golang/..."}},
	"balancer": {own: []string{"session/sid"}, thirdParty: []string{"github.com/valyala/fasthttp"}},
	"cmd/sessionkit/internal/lab": {own: []string{"balancer", "internal/refapp", "session", "store", "store/breaker", "store/migrate",
		"cmd/sessionkit/internal/strategy"}},
	"cmd/sessionkit/internal/strategy": {own: []string{"session", "store", "store/breaker", "store/memstore", "store/nearcache",
		"store/redisstore", "store/pgstore", "store/memcachedstore", "store/natsstore", "store/olricstore", "token"},
		// go-redis only to route its process-wide logger (Olric's client's) to the node's logger.
		thirdParty: []string{"github.com/redis/go-redis/v9"}},
	"internal/accounttest": {own: []string{"session", "store"}},
	"internal/testenv":     {},
	"internal/testclock":   {},
	"internal/archtest":    {},
	"cmd/sessionkit":       {own: []string{"cmd/sessionkit/internal/cli"}},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

// apart are the modules outside the architecture: the router integrations,
// the examples and the benchmarks (which import the peers they measure).
var apart = []string{"integrations/...", "examples/...", "bench/..."}

// goList runs go list in the repository's workspace (go.work), whatever
// GOWORK the test runs under, so that every module's packages are seen.
func goList(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(repoRoot(t), "go.work"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return out
}

// repoRoot is the directory of the root module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if filepath.Base(gomod) != "go.mod" {
		t.Fatalf("go env GOMOD = %q; want the root module's go.mod", gomod)
	}
	return filepath.Dir(gomod)
}

func TestImportArrows(t *testing.T) {
	out := goList(t, "-json=ImportPath,Imports", module+"/...")
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		seen++
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if matchAny(apart, rel) {
			continue
		}
		r, ok := rules[rel]
		if !ok {
			t.Errorf("package %s has no import rule: add it to rules and to docs/architecture.md", rel)
			continue
		}
		for _, imp := range p.Imports {
			if msg := check(r, imp); msg != "" {
				t.Errorf("%s imports %s: %s", rel, imp, msg)
			}
		}
	}
	if seen < 5 {
		t.Fatalf("go list saw %d packages; want the whole module", seen)
	}
}

func check(r rule, imp string) string {
	switch {
	case imp == module || strings.HasPrefix(imp, module+"/"):
		rel := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
		if !matchAny(r.own, rel) {
			return "not allowed by the architecture"
		}
	case strings.Contains(strings.Split(imp, "/")[0], "."):
		if !matchAny(r.thirdParty, imp) {
			return "third-party imports belong in their adapter package"
		}
	}
	return ""
}

func matchAny(patterns []string, p string) bool {
	for _, pat := range patterns {
		if base, ok := strings.CutSuffix(pat, "/..."); ok {
			if p == base || strings.HasPrefix(p, base+"/") {
				return true
			}
		} else if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

func TestCheck(t *testing.T) {
	r := rule{own: []string{"store", "store/x/..."}, thirdParty: []string{"github.com/redis/rueidis/..."}}
	tests := []struct {
		imp  string
		want bool
	}{
		{"fmt", true},
		{"net/http", true},
		{module + "/store", true},
		{module + "/store/x/y", true},
		{module + "/session", false},
		{"github.com/redis/rueidis", true},
		{"github.com/redis/rueidis/internal/cmds", true},
		{"github.com/prometheus/client_golang/prometheus", false},
	}
	for _, tt := range tests {
		if got := check(r, tt.imp) == ""; got != tt.want {
			t.Errorf("check(%q) allowed = %v; want %v", tt.imp, got, tt.want)
		}
	}
}
