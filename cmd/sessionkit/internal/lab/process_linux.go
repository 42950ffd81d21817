package lab

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd's process when the lab's ends,
// however it ends (SIGKILL included).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
