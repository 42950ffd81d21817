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
