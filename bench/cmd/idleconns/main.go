// Command idleconns measures what an idle keep-alive TLS connection costs a
// server: it opens -n connections to -addr, sends one GET on each and reads
// the answer, then holds them all open and idle until interrupted. Read the
// server's memory before and after (for Portico, Go's own accounting on the
// admin listener: curl '127.0.0.1:9090/debug/pprof/heap?debug=1&gc=1' and
// compare HeapInuse and Stack; for any server, VmRSS in /proc/PID/status)
// and divide by -n. With -h2 the connections speak HTTP/2 (one stream
// each), and stay open as an HTTP/2 client keeps them: answering the
// server's PINGs. Loopback only.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "the server's TLS address (loopback)")
	host := flag.String("host", "localhost", "SNI and Host of the requests")
	n := flag.Int("n", 2000, "connections to open and hold")
	h2 := flag.Bool("h2", false, "speak HTTP/2 instead of HTTP/1.1")
	flag.Parse()
	h, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(h).IsLoopback() {
		fmt.Fprintln(os.Stderr, "idleconns: -addr must be a loopback address")
		os.Exit(2)
	}
	conns := make([]*tls.Conn, 0, *n)
	req := []byte("GET / HTTP/1.1\r\nHost: " + *host + "\r\n\r\n")
	for range *n {
		d := &net.Dialer{Timeout: 10 * time.Second}
		proto := "http/1.1"
		if *h2 {
			proto = "h2"
		}
		c, err := tls.DialWithDialer(d, "tcp", *addr, &tls.Config{InsecureSkipVerify: true, ServerName: *host, NextProtos: []string{proto}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "idleconns:", err)
			os.Exit(1)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if *h2 {
			if err := h2Exchange(c, *host); err != nil {
				fmt.Fprintln(os.Stderr, "idleconns:", err)
				os.Exit(1)
			}
			conns = append(conns, c)
			continue
		}
		if _, err := c.Write(req); err != nil {
			fmt.Fprintln(os.Stderr, "idleconns:", err)
			os.Exit(1)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "idleconns:", err)
			os.Exit(1)
		}
		resp.Body.Close()
		_ = c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	fmt.Printf("%d connections open and idle; interrupt to close them\n", len(conns))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	<-stop
	for _, c := range conns {
		c.Close()
	}
}

// h2Exchange opens an HTTP/2 connection on c, sends one GET and reads its
// response, then leaves a goroutine answering the server's SETTINGS and
// PINGs, as a client holding the connection would.
func h2Exchange(c *tls.Conn, host string) error {
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		return err
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return err
	}
	var mu sync.Mutex
	answer := func(f http2.Frame) {
		mu.Lock()
		defer mu.Unlock()
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		answer(f)
		if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
			break
		}
	}
	_ = c.SetDeadline(time.Time{})
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			answer(f)
		}
	}()
	return nil
}
