// Package testenv tells tests where the services they need are: an
// address from an environment variable or its default, checked by dialing
// it. When a service is missing, a test on a developer's machine is skipped
// with the reason; when the CI environment variable is set, it fails, so a
// CI run never passes by skipping.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CI reports whether the tests run in CI (the CI environment variable is
// set and not "false" or "0").
func CI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Missing skips t with reason, or fails it when running in CI.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if CI() {
		t.Fatalf("required in CI: %s", reason)
	}
	t.Skip(reason)
}

// TCPAddr returns the host:port in the environment variable env, or def,
// after checking that something listens there.
func TCPAddr(t testing.TB, env, def string) string {
	t.Helper()
	addr := os.Getenv(env)
	if addr == "" {
		addr = def
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Missing(t, fmt.Sprintf("no service at %s (set %s): %v", addr, env, err))
		return ""
	}
	c.Close()
	return addr
}

// Command returns the path of the program name, which the test needs.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, fmt.Sprintf("%s is not installed (scripts/test installs it)", name))
		return ""
	}
	return p
}

var sessionkitBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Sessionkit returns the path of a sessionkit executable built from this
// checkout (go build of github.com/sessionkit/sessionkit/cmd/sessionkit),
// once per test process: for tests that run `sessionkit serve` nodes as
// processes, as the lab does. It is built without the test's own flags
// (-race): its processes are measured as users run them. A test binary
// started again as sessionkit would be the race-instrumented test binary,
// several times slower. Call RemoveBuilt at the end of TestMain.
func Sessionkit(t testing.TB) string {
	t.Helper()
	b := &sessionkitBin
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "sessionkit-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "sessionkit")
		cmd := exec.Command("go", "build", "-o", b.path, "github.com/sessionkit/sessionkit/cmd/sessionkit")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build sessionkit: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// RemoveBuilt removes what Sessionkit built.
func RemoveBuilt() {
	if sessionkitBin.dir != "" {
		os.RemoveAll(sessionkitBin.dir)
	}
}
