package passthrough

import (
	"net"

	"golang.org/x/sys/unix"
)

// peekClientHello looks at the ClientHello at the start of c's bytes
// without taking them from the socket (recv with MSG_PEEK), within c's
// read deadline, into buf, which bounds its size, and returns its SNI.
// Go's poller is edge-triggered: a peek that finds no new byte waits for
// the next arrival instead of spinning on bytes already there.
func peekClientHello(c *net.TCPConn, buf []byte) (string, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return "", errNoPeek
	}
	have := 0
	for {
		var (
			n    int
			perr error
		)
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, _, perr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
				if perr != unix.EINTR {
					break
				}
			}
			if perr == unix.EAGAIN || perr == nil && n > 0 && n == have {
				return false // nothing new: wait for the next bytes
			}
			return true
		})
		if err != nil {
			return "", err
		}
		if perr != nil {
			return "", perr
		}
		if n == 0 {
			return "", errHelloIncomplete // the client closed first
		}
		have = n
		sni, err := parsePeeked(buf[:n])
		if err == errHelloIncomplete && n < len(buf) {
			continue
		}
		return sni, err
	}
}
