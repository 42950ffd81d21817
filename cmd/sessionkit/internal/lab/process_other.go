//go:build !linux

package lab

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child with its
// parent; the lab kills its children itself when it ends normally or on
// Ctrl-C.
func dieWithParent(*exec.Cmd) {}
