package tls

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestListenTCPKeepAlive checks that accepted client sockets get TCP
// keep-alive probes only when ClientTCPKeepAlive asks for them.
func TestListenTCPKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		wantOn    bool
		wantIdle  int
	}{
		{name: "off by default", keepAlive: 0},
		{name: "on with the limit", keepAlive: 45 * time.Second, wantOn: true, wantIdle: 45},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := ListenTCP("127.0.0.1:0", Limits{ClientTCPKeepAlive: tc.keepAlive})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			nc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			raw, err := nc.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var on, idle int
			var oerr, ierr error
			if err := raw.Control(func(fd uintptr) {
				on, oerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
				idle, ierr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
			}); err != nil || oerr != nil || ierr != nil {
				t.Fatal(err, oerr, ierr)
			}
			if (on != 0) != tc.wantOn {
				t.Errorf("SO_KEEPALIVE = %d, want on %v", on, tc.wantOn)
			}
			if tc.wantOn && idle != tc.wantIdle {
				t.Errorf("TCP_KEEPIDLE = %d, want %d", idle, tc.wantIdle)
			}
		})
	}
}
