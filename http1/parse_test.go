package http1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseHead runs the head scanner and parser over raw as the server does.
func parseHead(raw string) (*requestHead, http.Header, *headError) {
	end, herr := headEnd([]byte(raw), 0)
	if herr != nil {
		return nil, nil, herr
	}
	if end < 0 {
		return nil, nil, badRequest("incomplete head")
	}
	var rh requestHead
	sink := &headerSink{}
	h := http.Header{}
	sink.reset(h)
	if herr := parseRequestHead(raw[:end], &rh, sink); herr != nil {
		return nil, nil, herr
	}
	return &rh, h, nil
}

func TestParseRequestHeadValid(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		check     func(*requestHead, http.Header) bool
	}{
		{"simple", "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.method == "GET" && rh.target == "/a?b=c" && rh.minor == 1 && rh.host == "x" && rh.contentLength == -1 && !rh.close && len(h) == 1
		}},
		{"canonical keys", "GET / HTTP/1.1\r\nhost: x\r\nx-foo-bar: 1\r\nX-FOO-BAR: 2\r\nuser-agent: u\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return reflect.DeepEqual(h["X-Foo-Bar"], []string{"1", "2"}) && h.Get("User-Agent") == "u"
		}},
		{"ows trimmed, inner kept", "GET / HTTP/1.1\r\nHost: x\r\nX: \t a  b \t\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return h.Get("X") == "a  b"
		}},
		{"empty value", "GET / HTTP/1.1\r\nHost: x\r\nX:\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			vv, ok := h["X"]
			return ok && len(vv) == 1 && vv[0] == ""
		}},
		{"obs-text", "GET / HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return h.Get("X") == "caf\xc3\xa9"
		}},
		{"content length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.contentLength == 5
		}},
		{"identical content lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.contentLength == 5
		}},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.chunked && rh.contentLength == -1
		}},
		{"chunked any case", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.chunked
		}},
		{"http/1.0 closes", "GET / HTTP/1.0\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.minor == 0 && rh.close && rh.hostCount == 0
		}},
		{"http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return !rh.close
		}},
		{"connection close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.close
		}},
		{"expect continue", "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.expectCont
		}},
		{"trailer names", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: A\r\nTrailer: B\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.hasTrailer && rh.trailerNames == "A,B"
		}},
		{"lowercase method", "get / HTTP/1.1\r\nHost: x\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.method == "get"
		}},
		{"absolute form", "GET http://x/a HTTP/1.1\r\nHost: y\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.target == "http://x/a" && rh.host == "y"
		}},
		{"empty host on 1.1", "GET / HTTP/1.1\r\nHost:\r\n\r\n", func(rh *requestHead, h http.Header) bool {
			return rh.hostCount == 1 && rh.host == ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rh, h, herr := parseHead(tc.raw)
			if herr != nil {
				t.Fatalf("refused: %v", herr)
			}
			if !tc.check(rh, h) {
				t.Errorf("parsed %+v, header %q", *rh, h)
			}
		})
	}
}

func TestParseRequestHeadInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"bare LF ending a field", "GET / HTTP/1.1\r\nHost: x\n\r\n", 400},
		{"bare LF request line", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: x\r\n\r\n", 400},
		{"lowercase version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505},
		{"http/2.0", "PRI * HTTP/2.0\r\n\r\n", 505},
		{"method with slash", "GE/T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"target with DEL", "GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"target with obs-text", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nX\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400},
		{"NUL in name", "GET / HTTP/1.1\r\nHost: x\r\nX\x00: a\r\n\r\n", 400},
		{"VT in value", "GET / HTTP/1.1\r\nHost: x\r\nX: \x0bchunked\r\n\r\n", 400},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400},
		{"host with space", "GET / HTTP/1.1\r\nHost: x y\r\n\r\n", 400},
		{"cl empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400},
		{"cl plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400},
		{"cl negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400},
		{"cl hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n", 400},
		{"cl list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400},
		{"cl inner space", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", 400},
		{"cl overflow", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"cl differ", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
		{"cl and te", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te and cl", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
		{"te twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"te gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"te chunked, identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 501},
		{"te xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501},
		{"te empty", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 400},
		{"expect unknown", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continuex\r\n\r\n", 417},
		{"expect on 1.0", "POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 417},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rh, _, herr := parseHead(tc.raw)
			if herr == nil {
				t.Fatalf("accepted: %+v", *rh)
			}
			if herr.status != tc.status {
				t.Errorf("status %d (%s), want %d", herr.status, herr.reason, tc.status)
			}
		})
	}
}

func TestParseTargetMatchesParseRequestURI(t *testing.T) {
	targets := []string{
		"/", "/a/b", "/a?b=c", "/a?", "/a%20b", "/a%2Fb", "/a;b=c", "//x", "/~u/x.y_z-1", "/a'b", "/a\"b", "/a{b}", "/a|b",
		"/a?b=%zz", "*", "http://h/a?b", "http://h", "http://u@h/a", "https://h:443/a%2f",
	}
	for c := byte(0x21); c < 0x7f; c++ {
		if c != '#' && c != '%' && c != '?' {
			targets = append(targets, "/a"+string(c)+"b")
		}
	}
	for _, target := range targets {
		var u url.URL
		if err := parseTarget("GET", target, &u); err != nil {
			t.Errorf("%q: %v", target, err)
			continue
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Errorf("%q: ParseRequestURI: %v", target, err)
			continue
		}
		if !reflect.DeepEqual(u, *want) {
			t.Errorf("%q: got %#v, want %#v", target, u, *want)
		}
	}
}

// chunkedBody serves raw (a head, then a body) and returns what the
// handler read from the body, the trailers and its error.
func chunkedBody(t *testing.T, raw string) (string, http.Header, error) {
	t.Helper()
	type result struct {
		body    string
		err     error
		trailer http.Header
	}
	got := make(chan result, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		got <- result{string(b), err, r.Trailer.Clone()}
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	if cw, ok := c.(*net.TCPConn); ok {
		cw.CloseWrite()
	}
	r := <-got
	return r.body, r.trailer, r.err
}

func TestChunkedBodies(t *testing.T) {
	const head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-A\r\n\r\n"
	for _, tc := range []struct {
		name, body string
		want       string // "" with wantErr
		wantErr    bool
		trailer    string
	}{
		{"plain", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", false, ""},
		{"uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", false, ""},
		{"extensions", "5;a=b;c=\"d e\"\r\nhello\r\n0;x\r\n\r\n", "hello", false, ""},
		{"bws before extension", "5 ;a\r\nhello\r\n0\r\n\r\n", "hello", false, ""},
		{"trailer", "5\r\nhello\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n", "hello", false, "1"},
		{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"leading space", " 5\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"empty size", "\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"too many digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"size overflow", "fffffffffffffffff\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", "", true, ""},
		{"bare LF in extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"CR in extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"junk after size", "5x\r\nhello\r\n0\r\n\r\n", "", true, ""},
		{"data not followed by CRLF", "5\r\nhelloX\r\n0\r\n\r\n", "", true, ""},
		{"data followed by LF", "5\r\nhello\n0\r\n\r\n", "", true, ""},
		{"last chunk bare LF", "5\r\nhello\r\n0\n\r\n", "", true, ""},
		{"trailer obs-fold", "5\r\nhello\r\n0\r\nX-A: 1\r\n 2\r\n\r\n", "", true, ""},
		{"trailer bad name", "5\r\nhello\r\n0\r\nX A: 1\r\n\r\n", "", true, ""},
		{"truncated", "5\r\nhel", "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, tr, err := chunkedBody(t, head+tc.body)
			if tc.wantErr {
				if err == nil {
					t.Errorf("read %q without error", body)
				}
				return
			}
			if err != nil || body != tc.want {
				t.Errorf("got %q, %v; want %q", body, err, tc.want)
			}
			if tr.Get("X-A") != tc.trailer || tr.Get("X-B") != "" {
				t.Errorf("trailer %v", tr)
			}
		})
	}
}

func TestParseChunkSize(t *testing.T) {
	for line, want := range map[string]int64{"0": 0, "a": 10, "7fffffffffffffff": -1, "fffffffffffffff": 0xfffffffffffffff, "1;x=\"y\"": 1} {
		n, err := parseChunkSize([]byte(line))
		if want < 0 {
			if err == nil {
				t.Errorf("%q: accepted as %d", line, n)
			}
			continue
		}
		if err != nil || n != want {
			t.Errorf("%q: %d, %v", line, n, err)
		}
	}
}

// FuzzParseRequestHead checks that the parser never panics, that what it
// accepts has the shape RFC 9112 requires, and that net/http reads an
// accepted head the same way.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://h/p HTTP/1.0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		end, herr := headEnd([]byte(raw), 0)
		if herr != nil || end < 0 {
			return
		}
		head := raw[:end]
		var rh requestHead
		sink := &headerSink{}
		h := http.Header{}
		sink.reset(h)
		if parseRequestHead(head, &rh, sink) != nil {
			return
		}
		if strings.Contains(head, "\n\n") || bytes.ContainsAny([]byte(rh.target), " #\t") || !isToken(rh.method) {
			t.Fatalf("accepted %q", head)
		}
		if rh.chunked && rh.contentLength >= 0 {
			t.Fatalf("both framings accepted: %q", head)
		}
		for k := range h {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("key %q not canonical", k)
			}
		}
		// net/http must agree on what it also accepts.
		req, err := http.ReadRequest(bufioReader(head))
		if err != nil {
			return
		}
		if req.Method != rh.method || req.RequestURI != rh.target {
			t.Fatalf("net/http read %q %q, we read %q %q", req.Method, req.RequestURI, rh.method, rh.target)
		}
		if !rh.chunked && req.ContentLength != max(rh.contentLength, 0) && !(rh.contentLength < 0 && req.ContentLength == -1) {
			t.Fatalf("Content-Length: net/http %d, we %d: %q", req.ContentLength, rh.contentLength, head)
		}
	})
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
