//go:build unix && !linux

package redisserver

import "syscall"

// sysProcAttr puts the child in its own process group, so a terminal's
// Ctrl-C reaches only the parent, which then stops the child in order.
// Without Pdeathsig the child outlives a parent that is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
