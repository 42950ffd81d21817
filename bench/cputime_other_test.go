//go:build !unix

package bench

import "testing"

// cpuClock reports nothing where getrusage is missing (see
// cputime_unix_test.go).
type cpuClock struct{}

func startCPU() cpuClock           { return cpuClock{} }
func (cpuClock) report(*testing.B) {}
