package http1

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

var (
	// errBodyClosed is what a read after the handler returned gets, as
	// net/http's "invalid Read on closed Body".
	errBodyClosed = errors.New("http: invalid Read on closed Body")
	errChunkSize  = errors.New("http1: malformed chunk size line")
	errChunkData  = errors.New("http1: chunk data not followed by CRLF")
	errChunkLine  = errors.New("http1: chunk size line too long")
)

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4 << 10

// bodyReader is a request body: Content-Length or chunked framing read from
// the connection's buffer and then the connection. One is allocated per
// request that has a body, so that a reader kept past its request cannot
// read the next one's bytes.
type bodyReader struct {
	c         *conn
	mu        sync.Mutex
	chunked   bool
	remaining int64 // bytes left in the body (length) or the chunk (chunked)
	// For chunked: inChunk is true between a chunk's size line and its
	// data's CRLF.
	inChunk bool
	trailer http.Header
	started bool // the head deadline has been cleared
	eof     bool
	err     error // sticky framing or read error
	closed  bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !b.started {
		b.started = true
		b.c.resp.writeContinue()
		if err := b.c.clearHeadDeadline(); err != nil {
			b.err = err
			return 0, err
		}
	}
	n, err := b.read(p)
	if err != nil && err != io.EOF {
		b.err = err
		if b.c.rerr == nil {
			b.c.rerr = err
		}
	}
	if err == io.EOF {
		b.eof = true
		b.c.bodyEOF()
	}
	return n, err
}

func (b *bodyReader) read(p []byte) (int, error) {
	if !b.chunked {
		if b.remaining == 0 {
			return 0, io.EOF
		}
		n, err := b.c.readData(p, b.remaining)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	for {
		if b.inChunk {
			if b.remaining > 0 {
				n, err := b.c.readData(p, b.remaining)
				b.remaining -= int64(n)
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				if n > 0 || err != nil {
					return n, err
				}
				continue
			}
			// The CRLF after the chunk's data.
			if err := b.c.need(2, maxChunkLine); err != nil {
				return 0, err
			}
			if b.c.buf[b.c.r] != '\r' || b.c.buf[b.c.r+1] != '\n' {
				return 0, errChunkData
			}
			b.c.r += 2
			b.inChunk = false
		}
		line, err := b.c.readLine(maxChunkLine)
		if err != nil {
			return 0, err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			if err := b.readTrailers(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		b.remaining = size
		b.inChunk = true
	}
}

// parseChunkSize parses a chunk-size line without its CRLF: 1 to 15 hex
// digits, then optionally extensions, which are skipped but must be made of
// field-value characters (no CR, LF or other controls).
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i == 15 {
			return 0, errChunkSize
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, errChunkSize
	}
	rest := line[i:]
	if len(rest) > 0 {
		// BWS before ";" is allowed by RFC 9112 section 7.1.1.
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		if j == len(rest) || rest[j] != ';' {
			return 0, errChunkSize
		}
		for _, c := range rest {
			if !fieldValueChar(c) {
				return 0, errChunkSize
			}
		}
	}
	return n, nil
}

// readTrailers reads the trailer section after the last chunk, bounded by
// MaxHeaderBytes, parsed like header fields; declared fields go into
// Request.Trailer, others are dropped.
func (b *bodyReader) readTrailers() error {
	limit := b.c.srv.maxHeaderBytes()
	total := 0
	for {
		line, err := b.c.readLine(limit - total + 2)
		if err != nil {
			if err == errChunkLine {
				return errTrailerInvalid
			}
			return err
		}
		total += len(line) + 2
		if total > limit {
			return errTrailerInvalid
		}
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errTrailerInvalid
		}
		s := string(line)
		name, value, ok := strings.Cut(s, ":")
		if !ok || !isToken(name) {
			return errTrailerInvalid
		}
		for i := 0; i < len(value); i++ {
			if !fieldValueChar(value[i]) {
				return errTrailerInvalid
			}
		}
		key := http.CanonicalHeaderKey(name)
		if _, declared := b.trailer[key]; declared {
			b.trailer[key] = append(b.trailer[key], trimOWS(value))
		}
	}
}

// close ends the body when the response is done: a body the handler left
// unread is discarded up to maxDrain so the connection can carry the next
// request. It reports whether the connection is still in step.
func (b *bodyReader) close(keep bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	ok := b.eof
	if !ok && keep && b.err == nil && !b.c.resp.continueOwed() {
		// The client was told to continue (or did not ask): it is sending.
		// Bounded like a head: a client that stops sending is not waited
		// for.
		b.started = true
		if b.c.nc.SetReadDeadline(time.Now().Add(b.c.srv.readHeaderTimeout())) != nil {
			b.closed = true
			return false
		}
		var scratch [512]byte
		budget := maxDrain
		for budget > 0 {
			n, err := b.read(scratch[:min(len(scratch), budget)])
			budget -= n
			if err == io.EOF {
				ok = true
				break
			}
			if err != nil {
				break
			}
		}
	}
	b.closed = true
	return ok
}

// Close is a no-op for the handler, as net/http's: the server closes the
// body when the response is done.
func (b *bodyReader) Close() error { return nil }

// readData reads up to max bytes of body data from the buffer, or when it
// is empty straight from the connection into p.
func (c *conn) readData(p []byte, max int64) (int, error) {
	if int64(len(p)) > max {
		p = p[:max]
	}
	if c.r < c.w {
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	if len(p) < len(c.buf)/2 {
		// Small reads go through the buffer, which then holds what follows.
		c.r, c.w = 0, 0
		if err := c.fill(len(c.buf)); err != nil {
			return 0, err
		}
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, nil
	}
	return c.nc.Read(p)
}

// need makes at least n bytes available in the buffer.
func (c *conn) need(n, limit int) error {
	for c.w-c.r < n {
		if err := c.fill(max(limit, len(c.buf))); err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readLine returns the next CRLF-terminated line without its CRLF, at most
// limit bytes with it; a bare LF or CR is an error. The returned slice
// aliases the buffer until the next read.
func (c *conn) readLine(limit int) ([]byte, error) {
	scan := 0
	for {
		b := c.buf[c.r:c.w]
		for i := scan; i < len(b); i++ {
			switch b[i] {
			case '\n':
				if i == 0 || b[i-1] != '\r' {
					return nil, errChunkSize
				}
				c.r += i + 1
				return b[:i-1], nil
			case '\r':
				if i+1 < len(b) && b[i+1] != '\n' {
					return nil, errChunkSize
				}
			}
		}
		if len(b) >= limit {
			return nil, errChunkLine
		}
		scan = max(len(b)-1, 0)
		if err := c.fill(max(limit, len(c.buf))); err != nil {
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}
