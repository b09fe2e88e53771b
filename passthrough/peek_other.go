//go:build !linux

package passthrough

import "net"

// peekClientHello cannot peek here: the ClientHello is read and replayed
// (there are no event loops to keep the socket for).
func peekClientHello(*net.TCPConn, []byte) (string, error) { return "", errNoPeek }
