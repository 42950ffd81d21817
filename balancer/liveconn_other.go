//go:build !unix

package balancer

// peekSupported is false where the liveness check is not implemented: a
// pooled connection is then used without it.
const peekSupported = false

func peekAlive(uintptr) bool { return true }
