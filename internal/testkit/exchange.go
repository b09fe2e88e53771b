package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Exchanger sends one fixed request at a time on a keep-alive connection
// and reads each answer to the end of its Content-Length, without
// allocating, so that allocation counts in a benchmark are the server's.
type Exchanger struct {
	conn net.Conn
	req  []byte
	buf  []byte
}

// NewExchanger returns an Exchanger sending req on conn.
func NewExchanger(conn net.Conn, req []byte) *Exchanger {
	return &Exchanger{conn: conn, req: req, buf: make([]byte, 16<<10)}
}

var (
	headEnd       = []byte("\r\n\r\n")
	contentLength = []byte("\r\nContent-Length: ")
	status200     = []byte("HTTP/1.1 200 ")
)

// Exchange sends the request and reads its response, which must be a 200
// with a Content-Length and nothing after its body.
func (x *Exchanger) Exchange() error {
	if _, err := x.conn.Write(x.req); err != nil {
		return err
	}
	n := 0
	for {
		if n == len(x.buf) {
			return errors.New("testkit: response larger than the buffer")
		}
		m, err := x.conn.Read(x.buf[n:])
		if err != nil {
			return err
		}
		n += m
		end := bytes.Index(x.buf[:n], headEnd)
		if end < 0 {
			continue
		}
		i := bytes.Index(x.buf[:end], contentLength)
		if i < 0 || !bytes.HasPrefix(x.buf, status200) {
			return fmt.Errorf("testkit: response %q", x.buf[:n])
		}
		cl := 0
		for _, d := range x.buf[i+len(contentLength) : end] {
			if d == '\r' {
				break
			}
			cl = cl*10 + int(d-'0')
		}
		switch {
		case n == end+4+cl:
			return nil
		case n > end+4+cl:
			return fmt.Errorf("testkit: bytes after the response: %q", x.buf[:n])
		}
	}
}

// ProcessCPU is the user and system CPU time the process has used: with
// wall time mostly loopback latency, it is what a benchmark over loopback
// reports as cpu-ns/op.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
