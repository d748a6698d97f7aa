package redisserver

import "syscall"

// sysProcAttr puts the child in its own process group, so a terminal's
// Ctrl-C reaches only the parent, which then stops the child in order, and
// asks the kernel to kill the child if the parent dies first. Pdeathsig
// fires when the OS thread that forked the child exits, not the process;
// Go ends a thread only when a goroutine locked to it with
// runtime.LockOSThread exits still locked, and code that does that can
// take the child down with the thread.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
