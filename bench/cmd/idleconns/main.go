// Command idleconns measures what an idle keep-alive TLS connection costs a
// server: it opens -n connections to -addr, sends one GET on each and reads
// the answer, then holds them all open and idle until interrupted. Read the
// server's memory before and after (for Portico, Go's own accounting on the
// admin listener: curl '127.0.0.1:9090/debug/pprof/heap?debug=1&gc=1' and
// compare HeapInuse and Stack; for any server, VmRSS in /proc/PID/status)
// and divide by -n. Loopback only.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "the server's TLS address (loopback)")
	host := flag.String("host", "localhost", "SNI and Host of the requests")
	n := flag.Int("n", 2000, "connections to open and hold")
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
		c, err := tls.DialWithDialer(d, "tcp", *addr, &tls.Config{InsecureSkipVerify: true, ServerName: *host, NextProtos: []string{"http/1.1"}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "idleconns:", err)
			os.Exit(1)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
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
