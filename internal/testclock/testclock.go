// Package testclock is a fake clock for tests: time moves only when a test
// calls Advance, so expiry, idle timeouts, rotation and breaker periods are
// tested without sleeping.
package testclock

import (
	"sync/atomic"
	"time"
)

// Clock is a fake clock. Its methods are safe for concurrent use, so Now
// can be handed to code under test that calls it from several goroutines.
type Clock struct{ ns atomic.Int64 }

// New returns a Clock that reads start until it is advanced.
func New(start time.Time) *Clock {
	c := new(Clock)
	c.ns.Store(start.UnixNano())
	return c
}

// Now returns the clock's time, in UTC. Its method value c.Now fits every
// Config.Now field of sessionkit.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward by d (back, if d is negative).
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
