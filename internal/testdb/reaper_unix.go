//go:build unix

package testdb

import (
	"os/exec"
	"syscall"
)

// detach puts the reaper in its own process group, so that a ^C sent to
// the terminal's group reaches the tests and not the clean-up.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// alive reports whether process pid still runs and, where /proc tells, is
// the same process that started the container (pids are reused).
func alive(pid int, start string) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	if now := procStart(pid); start != "" && now != "" {
		return now == start
	}
	return true
}
