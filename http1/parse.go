package http1

import (
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// headError is a request the engine refuses: status is the answer, reason
// goes to the debug log only.
type headError struct {
	status int
	reason string
}

func (e *headError) Error() string { return e.reason }

func badRequest(reason string) *headError {
	return &headError{status: http.StatusBadRequest, reason: reason}
}

// Errors without details are preallocated: a scanner's garbage should not
// cost an allocation per refusal.
var (
	errBareLF         = badRequest("bare LF in request head")
	errBareCR         = badRequest("bare CR in request head")
	errRequestLine    = badRequest("malformed request line")
	errMethod         = badRequest("method is not a token")
	errTarget         = badRequest("invalid request target")
	errVersion        = badRequest("malformed HTTP version")
	errVersionUnsupp  = &headError{status: http.StatusHTTPVersionNotSupported, reason: "unsupported HTTP version"}
	errObsFold        = badRequest("obsolete line folding")
	errFieldName      = badRequest("invalid header field name")
	errFieldValue     = badRequest("invalid header field value")
	errNoColon        = badRequest("header field without colon")
	errContentLength  = badRequest("invalid Content-Length")
	errCLDiffer       = badRequest("differing Content-Length fields")
	errTECount        = badRequest("several Transfer-Encoding fields")
	errTEHTTP10       = badRequest("Transfer-Encoding in an HTTP/1.0 request")
	errTEUnsupported  = &headError{status: http.StatusNotImplemented, reason: "unsupported transfer coding"}
	errCLAndTE        = badRequest("both Content-Length and Transfer-Encoding")
	errHostMissing    = badRequest("missing required Host header")
	errHostDuplicate  = badRequest("too many Host headers")
	errHostInvalid    = badRequest("malformed Host header")
	errHeadTooLarge   = &headError{status: http.StatusRequestHeaderFieldsTooLarge, reason: "request head too large"}
	errExpectation    = &headError{status: http.StatusExpectationFailed, reason: "unsupported expectation"}
	errTrailerInvalid = badRequest("invalid trailer section")
)

// tchar reports the token characters of RFC 9110 section 5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// fieldValueChar is VCHAR, obs-text, SP and HTAB.
func fieldValueChar(c byte) bool {
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

// headEnd scans b[from:] for the end of a request head and returns the
// offset just past its empty line, or -1 when more bytes are needed. It
// rejects a bare LF, and a CR not followed by LF, as soon as they are seen.
// Leading empty lines are not allowed either (RFC 9112 section 2.2 permits
// ignoring one; rejecting is the stricter reading and no client sends them
// after a request we answered).
func headEnd(b []byte, from int) (int, *headError) {
	for i := from; i < len(b); i++ {
		switch b[i] {
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return -1, errBareLF
			}
			// An empty line: CRLF right after the previous CRLF.
			if i >= 3 && b[i-2] == '\n' && b[i-3] == '\r' {
				return i + 1, nil
			}
			if i == 1 {
				return -1, errRequestLine
			}
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return -1, errBareCR
			}
		}
	}
	return -1, nil
}

// resumeScan returns where headEnd may resume after scanning b up to n
// without finding an end: it backs up over a trailing CR, LF or CRLF.
func resumeScan(n int) int {
	if n < 3 {
		return 0
	}
	return n - 3
}

// requestHead is a parsed request head. Its strings are substrings of one
// string holding the whole head, so parsing allocates once.
type requestHead struct {
	method, target, proto string
	major, minor          int

	host          string
	hostCount     int
	contentLength int64 // -1 when not given
	chunked       bool
	close         bool
	expectCont    bool
	trailerNames  string // value of the Trailer field(s), comma-joined
	hasTrailer    bool
	upgrade       bool // Connection: upgrade and Upgrade present
}

// headerSink receives header fields: the engine's pooled map, or nil
// fields for tests that only parse.
type headerSink struct {
	h     http.Header
	arena []string
	// canon is scratch space for canonicalizing a name.
	canon []byte
}

func (s *headerSink) reset(h http.Header) {
	clear(h)
	s.h = h
	clear(s.arena)
	s.arena = s.arena[:0]
}

// add stores value under the canonical form of name. A first value takes a
// one-element slice of the arena, with capacity one so that a second value
// appends into fresh memory rather than over the next field.
func (s *headerSink) add(name, value string) string {
	key := s.canonical(name)
	if vv, ok := s.h[key]; ok {
		s.h[key] = append(vv, value)
		return key
	}
	i := len(s.arena)
	s.arena = append(s.arena, value)
	s.h[key] = s.arena[i : i+1 : i+1]
	return key
}

// commonKeys interns canonical names, so that a non-canonical spelling of a
// frequent field (as HTTP/1.1 clients in lower case send) costs no
// allocation.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Authorization", "Cache-Control", "Connection", "Content-Disposition", "Content-Encoding",
		"Content-Length", "Content-Type", "Cookie", "Date", "Etag", "Expect", "Forwarded", "From",
		"Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
		"Keep-Alive", "Max-Forwards", "Origin", "Pragma", "Priority", "Proxy-Authorization", "Range",
		"Referer", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User",
		"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"Traceparent", "Tracestate", "Baggage", "Grpc-Timeout", "Dnt",
	} {
		m[k] = k
	}
	return m
}()

// canonical returns http.CanonicalHeaderKey(name) for a token name,
// without allocating when name is already canonical or a common field.
func (s *headerSink) canonical(name string) string {
	upper := true
	ok := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			ok = false
			break
		}
		upper = c == '-'
	}
	if ok {
		return name
	}
	s.canon = append(s.canon[:0], name...)
	upper = true
	for i, c := range s.canon {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		s.canon[i] = c
		upper = c == '-'
	}
	if k, ok := commonKeys[string(s.canon)]; ok {
		return k
	}
	return string(s.canon)
}

// parseRequestHead parses head, a complete request head including its final
// empty line, into rh and the fields into sink. It accepts only what RFC
// 9112 allows and repairs nothing.
func parseRequestHead(head string, rh *requestHead, sink *headerSink) *headError {
	*rh = requestHead{contentLength: -1}
	// The request line.
	eol := strings.IndexByte(head, '\n')
	if eol < 1 {
		return errRequestLine
	}
	line := head[:eol-1]
	rest := head[eol+1:]
	sp1 := strings.IndexByte(line, ' ')
	if sp1 < 0 {
		return errRequestLine
	}
	rh.method = line[:sp1]
	if !isToken(rh.method) {
		return errMethod
	}
	sp2 := strings.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return errRequestLine
	}
	sp2 += sp1 + 1
	rh.target = line[sp1+1 : sp2]
	rh.proto = line[sp2+1:]
	if rh.target == "" {
		return errRequestLine
	}
	for i := 0; i < len(rh.target); i++ {
		c := rh.target[i]
		if c <= 0x20 || c >= 0x7f || c == '#' {
			return errTarget
		}
	}
	switch rh.proto {
	case "HTTP/1.1":
		rh.major, rh.minor = 1, 1
	case "HTTP/1.0":
		rh.major, rh.minor = 1, 0
	default:
		p := rh.proto
		if len(p) == 8 && strings.HasPrefix(p, "HTTP/") && isDigit(p[5]) && p[6] == '.' && isDigit(p[7]) {
			return errVersionUnsupp
		}
		return errVersion
	}

	// Header fields.
	var (
		clValue     string
		teCount     int
		connection  bool
		keepAlive   bool
		closeToken  bool
		upgradeTok  bool
		haveUpgrade bool
		expect      string
		haveExpect  bool
	)
	for {
		eol := strings.IndexByte(rest, '\n')
		if eol < 1 {
			return errRequestLine // unreachable for heads from headEnd
		}
		line := rest[:eol-1]
		rest = rest[eol+1:]
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return errNoColon
		}
		name := line[:colon]
		if !isToken(name) {
			return errFieldName
		}
		value := line[colon+1:]
		for i := 0; i < len(value); i++ {
			if !fieldValueChar(value[i]) {
				return errFieldValue
			}
		}
		value = trimOWS(value)
		key := name
		if sink != nil {
			key = sink.add(name, value)
		} else {
			key = http.CanonicalHeaderKey(name)
		}
		switch key {
		case "Host":
			rh.hostCount++
			rh.host = value
		case "Content-Length":
			if !allDigits(value) || len(value) > 18 {
				return errContentLength
			}
			if clValue != "" && clValue != value {
				return errCLDiffer
			}
			clValue = value
		case "Transfer-Encoding":
			teCount++
			if teCount > 1 {
				return errTECount
			}
			if !strings.EqualFold(value, "chunked") {
				if value == "" {
					return badRequest("empty Transfer-Encoding")
				}
				return errTEUnsupported
			}
			rh.chunked = true
		case "Connection":
			connection = true
			for tok := range strings.SplitSeq(value, ",") {
				tok = trimOWS(tok)
				switch {
				case strings.EqualFold(tok, "close"):
					closeToken = true
				case strings.EqualFold(tok, "keep-alive"):
					keepAlive = true
				case strings.EqualFold(tok, "upgrade"):
					upgradeTok = true
				}
			}
		case "Upgrade":
			haveUpgrade = true
		case "Expect":
			if haveExpect {
				expect = "," // several Expect fields: not just 100-continue
			} else {
				expect = value
			}
			haveExpect = true
		case "Trailer":
			if rh.hasTrailer {
				rh.trailerNames += "," + value
			} else {
				rh.trailerNames = value
			}
			rh.hasTrailer = true
		}
	}
	_ = connection

	if rh.chunked && rh.minor == 0 {
		return errTEHTTP10
	}
	if rh.chunked && clValue != "" {
		return errCLAndTE
	}
	if clValue != "" {
		var n int64
		for i := 0; i < len(clValue); i++ {
			n = n*10 + int64(clValue[i]-'0')
		}
		rh.contentLength = n
	}
	if rh.hostCount > 1 {
		return errHostDuplicate
	}
	if rh.hostCount == 0 && rh.minor == 1 {
		return errHostMissing
	}
	if rh.hostCount == 1 && !httpguts.ValidHostHeader(rh.host) {
		return errHostInvalid
	}
	if rh.minor == 0 {
		rh.close = !keepAlive || closeToken
	} else {
		rh.close = closeToken
	}
	rh.upgrade = upgradeTok && haveUpgrade
	if haveExpect {
		if !strings.EqualFold(expect, "100-continue") || rh.minor == 0 {
			return errExpectation
		}
		rh.expectCont = true
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseTarget fills u from a request target as net/http does: CONNECT's
// authority-form becomes a URL with only Host, "*" and absolute-form go
// through url.ParseRequestURI, and origin-form takes a fast path when the
// path needs no unescaping and would be escaped the same way, which is
// what url.ParseRequestURI would produce, without allocating.
func parseTarget(method, target string, u *url.URL) error {
	*u = url.URL{}
	if method == http.MethodConnect && target[0] != '/' {
		p, err := url.ParseRequestURI("http://" + target)
		if err != nil {
			return err
		}
		if p.Path != "" || p.RawQuery != "" || p.User != nil {
			return errTarget
		}
		*u = url.URL{Host: p.Host}
		return nil
	}
	if target[0] == '/' {
		path, query, hasQuery := strings.Cut(target, "?")
		if plainPath(path) {
			u.Path = path
			u.RawQuery = query
			u.ForceQuery = hasQuery && query == ""
			return nil
		}
	}
	p, err := url.ParseRequestURI(target)
	if err != nil {
		return err
	}
	*u = *p
	return nil
}

// plainPath reports a path that unescapes to itself and that url.URL
// would escape to itself: no '%', only characters EscapedPath leaves alone.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~$&+,;=:@/", c) >= 0:
		default:
			return false
		}
	}
	return true
}
