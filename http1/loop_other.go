//go:build !linux

package http1

import (
	"crypto/tls"
	"net"
)

// Event loops exist on Linux only; elsewhere every connection is served
// the goroutine way.

type loopState struct{}

type h2conn struct{}

func (s *Server) toLoopH2(*conn, *loopConn, *tls.Conn) bool { return false }

type loopConn struct{ net.Conn }

func (s *Server) loopConnFor(net.Conn) *loopConn { return nil }

func (s *Server) toLoop(*conn, *loopConn, *tls.Conn) bool { return false }

func (c *conn) closeFromOutside(bool) { c.nc.Close() }

// EventLoopCounts is zero where there are no event loops.
func EventLoopCounts() LoopCounts { return LoopCounts{} }
