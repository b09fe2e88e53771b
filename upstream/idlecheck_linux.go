package upstream

import (
	"syscall"
	"unsafe"
)

// peekFunc returns the function conn.idleState runs on the raw socket: one
// recvfrom(MSG_PEEK|MSG_DONTWAIT) of one byte, which neither blocks nor
// consumes anything. It is built once per connection, and peeks into the
// connection's own byte, so the check allocates nothing.
func peekFunc(c *conn) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(&c.peekBuf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EAGAIN:
			c.peeked = idleQuiet
		case errno != 0 || n == 0:
			c.peeked = idleClosed // a reset, or the backend's FIN
		default:
			c.peeked = idlePending
		}
		// Done: never wait for readiness, the answer is wanted now.
		return true
	}
}
