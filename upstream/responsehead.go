package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
)

// The common backend response (HTTP/1.1, a final status, a Content-Length,
// no Transfer-Encoding or Trailer) is parsed here instead of by
// http.ReadResponse, which spends about ten allocations per response (the
// header map, a slice per field, the status line, the Response, its body
// and transfer readers) and its textproto reader: a profile of the small
// workload put it at about 7% of Portico's CPU. This parser takes only the
// head already in the connection's buffer, accepts only what is
// unambiguously valid (RFC 9112 section 4 and 5: tokens for names, no
// whitespace before the colon, no obs-fold, CRLF only, no control bytes in
// values, exactly one well-formed Content-Length) and hands everything else
// to http.ReadResponse, which either parses it with its own rules or
// refuses it, so it can only make parsing stricter, never laxer. A response
// costs two allocations, the head as one string, whose substrings are the
// names and values, and one slice holding every value, or only the first
// when the inbound server lends the slice (valueLender).

// fastResponse is the reusable part of a connection's parsed responses.
type fastResponse struct {
	resp   http.Response
	header http.Header
	body   lengthBody
}

// readResponse reads the next response head on c for r, through the fast
// parser when it can. w may lend the slice of field values (see
// valueLender).
func (c *conn) readResponse(w http.ResponseWriter, r *http.Request) (*http.Response, error) {
	if resp := c.parseBufferedHead(r.Method, valueLenderOf(w)); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(c.br, r)
}

// valueLender is a ResponseWriter that lends storage for header values for
// as long as its request runs (the HTTP/1.1 engine's): the fields of a
// response are copied into its Header by reference (copyResponseHeader),
// so their values live exactly as long as that storage.
type valueLender interface {
	HeaderValues(n int) []string
}

// valueLenderOf finds a valueLender under w's wrappers, or returns nil.
func valueLenderOf(w http.ResponseWriter) valueLender {
	for range 8 {
		switch t := w.(type) {
		case valueLender:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// parseBufferedHead parses a response head that is wholly in c.br's buffer
// and consumes it, or returns nil, consuming nothing, when the response is
// not of the common kind described above.
func (c *conn) parseBufferedHead(method string, lender valueLender) *http.Response {
	if method == http.MethodHead {
		return nil // a length without a body
	}
	buf, _ := c.br.Peek(c.br.Buffered())
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		return nil
	}
	head := buf[:end+2] // every line with its CRLF
	status, fields, ok := scanResponseHead(head)
	if !ok {
		return nil
	}
	f := c.fast
	if f == nil {
		f = &fastResponse{header: make(http.Header, 16)}
		c.fast = f
	} else {
		clear(f.header)
	}
	s := string(head)
	var values []string
	if lender != nil {
		values = lender.HeaderValues(fields)
	} else {
		values = make([]string, fields)
	}
	contentLength := int64(-1)
	closeAfter := false
	line := s[len("HTTP/1.1 200 "):]
	line = line[indexCRLF(line)+2:]
	for i := 0; line != ""; i++ {
		eol := indexCRLF(line)
		colon := indexColon(line[:eol])
		name := textproto.CanonicalMIMEHeaderKey(line[:colon])
		value := trimOWS(line[colon+1 : eol])
		line = line[eol+2:]
		switch name {
		case "Content-Length":
			if contentLength >= 0 {
				return nil // two of them: let net/http decide
			}
			n, ok := parseContentLength(value)
			if !ok {
				return nil
			}
			contentLength = n
		case "Transfer-Encoding", "Trailer", "Pragma":
			// Pragma: net/http may add a Cache-Control for it.
			return nil
		case "Connection":
			if hasToken([]string{value}, "close") {
				closeAfter = true
			}
		}
		values[i] = value
		if prev, seen := f.header[name]; seen {
			f.header[name] = append(prev, value) // a repeated field: rare
		} else {
			f.header[name] = values[i : i+1 : i+1]
		}
	}
	if contentLength < 0 {
		return nil
	}
	if closeAfter {
		// As net/http does; the field is hop-by-hop anyway.
		delete(f.header, "Connection")
	}
	if _, err := c.br.Discard(end + 4); err != nil {
		return nil // cannot happen: the bytes are buffered
	}
	f.body = lengthBody{br: c.br, remaining: contentLength}
	f.resp = http.Response{
		Status:        s[len("HTTP/1.1 ") : len("HTTP/1.1 ")+indexCRLF(s[len("HTTP/1.1 "):])],
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        f.header,
		ContentLength: contentLength,
		Close:         closeAfter,
	}
	if contentLength == 0 {
		f.resp.Body = http.NoBody
	} else {
		f.resp.Body = &f.body
	}
	return &f.resp
}

var crlfcrlf = []byte("\r\n\r\n")

// scanResponseHead checks that head (status line and fields, each ending in
// CRLF) is a well-formed HTTP/1.1 head with a final status other than 204
// and 304, and counts its fields.
func scanResponseHead(head []byte) (status, fields int, ok bool) {
	const prefix = "HTTP/1.1 "
	if len(head) < len(prefix)+5 || string(head[:len(prefix)]) != prefix {
		return 0, 0, false
	}
	d := head[len(prefix):]
	if d[0] < '2' || d[0] > '5' || !isDigit(d[1]) || !isDigit(d[2]) || d[3] != ' ' {
		return 0, 0, false
	}
	status = int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	if status == http.StatusNoContent || status == http.StatusNotModified {
		return 0, 0, false
	}
	i := len(prefix) + 4
	for ; head[i] != '\r'; i++ { // the reason phrase
		if !isFieldValueByte(head[i]) {
			return 0, 0, false
		}
	}
	if head[i+1] != '\n' {
		return 0, 0, false
	}
	i += 2
	for i < len(head) {
		// field-name: a token, then ':' with no whitespace before it.
		start := i
		for i < len(head) && isTokenChar(head[i]) {
			i++
		}
		if i == start || i == len(head) || head[i] != ':' {
			return 0, 0, false
		}
		// field-value: visible bytes, SP, HTAB and obs-text, up to CRLF.
		for i++; i < len(head) && head[i] != '\r'; i++ {
			if !isFieldValueByte(head[i]) {
				return 0, 0, false
			}
		}
		if i+1 >= len(head) || head[i+1] != '\n' {
			return 0, 0, false
		}
		i += 2
		fields++
	}
	return status, fields, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseContentLength accepts 1 to 18 digits, nothing else.
func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if !isDigit(v[i]) {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

func indexCRLF(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' {
			return i // scanResponseHead saw an LF after every CR
		}
	}
	return len(s)
}

func indexColon(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return i
		}
	}
	return len(s)
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// lengthBody reads a body of known length from the connection's buffer.
type lengthBody struct {
	br        *bufio.Reader
	remaining int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		// The last bytes come with EOF, so the copy loop needs no extra
		// read to learn that the body is over.
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
