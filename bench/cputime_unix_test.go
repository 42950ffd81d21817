//go:build unix

package bench

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock measures the CPU time the whole process uses (user and
// system, every thread, the garbage collector's included). On a machine
// shared with other work, the wall-clock ns/op of a benchmark grows with
// the others' load, while the CPU time it takes per operation varies much
// less: report both.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{processCPU()} }

// report adds cpu-ns/op, the CPU time since startCPU over b.N. Call it
// after the b.Loop loop.
func (c cpuClock) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
