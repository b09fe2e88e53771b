package upstream

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// fastParse runs the fast parser on raw as a connection's buffered bytes.
func fastParse(raw, method string) (*http.Response, *bufio.Reader) {
	br := bufio.NewReaderSize(strings.NewReader(raw), 64<<10)
	_, _ = br.Peek(1) // fill the buffer, as roundTrip's Peek does
	c := &conn{br: br}
	return c.parseBufferedHead(method, nil), br
}

func TestParseBufferedHead(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		fast      bool
	}{
		{"common", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", true},
		{"empty reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", true},
		{"repeated field", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", true},
		{"lower-case names", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-thing:  v \r\n\r\nok", true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", true},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nstream", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", false},
		{"length list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", false},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", false},
		{"trailer", "HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"informational", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false},
		{"204", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false},
		{"bare CR in value", "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n", false},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n", false},
		{"no space after status", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false},
		{"head not all buffered", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, br := fastParse(tc.raw, http.MethodGet)
			if (resp != nil) != tc.fast {
				t.Fatalf("fast path taken: %v, want %v", resp != nil, tc.fast)
			}
			if resp == nil {
				if br.Buffered() != len(tc.raw) {
					t.Fatalf("the fallback found %d bytes buffered, want all %d", br.Buffered(), len(tc.raw))
				}
				return
			}
			want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tc.raw)), nil)
			if err != nil {
				t.Fatalf("net/http refuses what the fast path took: %v", err)
			}
			sameResponse(t, resp, want)
			body, err := io.ReadAll(resp.Body)
			wantBody, _ := io.ReadAll(want.Body)
			if err != nil || string(body) != string(wantBody) {
				t.Errorf("body %q, %v; want %q", body, err, wantBody)
			}
		})
	}
}

// TestParseBufferedHeadHEAD: a response to HEAD has a length but no body,
// so it is left to net/http.
func TestParseBufferedHeadHEAD(t *testing.T) {
	if resp, _ := fastParse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", http.MethodHead); resp != nil {
		t.Fatal("the fast path took a response to HEAD")
	}
}

func sameResponse(t testing.TB, got, want *http.Response) {
	t.Helper()
	if got.StatusCode != want.StatusCode || got.Status != want.Status || got.ContentLength != want.ContentLength || got.Close != want.Close {
		t.Errorf("got %d %q length %d close %v, net/http %d %q length %d close %v",
			got.StatusCode, got.Status, got.ContentLength, got.Close, want.StatusCode, want.Status, want.ContentLength, want.Close)
	}
	if !reflect.DeepEqual(map[string][]string(got.Header), map[string][]string(want.Header)) {
		t.Errorf("header %q, net/http %q", got.Header, want.Header)
	}
}

// FuzzResponseHead: whatever the fast parser takes, net/http parses to the
// same status, length, close and fields, so the fast path is never laxer.
func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nX:  a \r\nX: b\r\n\r\n",
		"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 302 \r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		resp, _ := fastParse(raw, http.MethodGet)
		if resp == nil {
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
		if err != nil {
			t.Fatalf("the fast path took %q, net/http refuses it: %v", raw, err)
		}
		sameResponse(t, resp, want)
	})
}

// TestParseBufferedHeadAllocs: two allocations per response, the head
// string and the value slice.
func TestParseBufferedHeadAllocs(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"
	sr := strings.NewReader(raw)
	br := bufio.NewReaderSize(sr, 4096)
	c := &conn{br: br}
	allocs := testing.AllocsPerRun(100, func() {
		sr.Reset(raw)
		br.Reset(sr)
		_, _ = br.Peek(1)
		if resp := c.parseBufferedHead(http.MethodGet, nil); resp == nil {
			t.Fatal("not parsed")
		}
	})
	if allocs > 2 {
		t.Errorf("%v allocations per response, want at most 2", allocs)
	}
}
