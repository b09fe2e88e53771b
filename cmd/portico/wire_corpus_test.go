package main

import (
	"bufio"
	"bytes"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"sigs.k8s.io/yaml"
)

// TestSmugglingCorpus replays the request-smuggling corpus under
// testdata/smuggling against the whole gateway, with recording backends
// behind both the app Service and the legacy fallback.
//
// Each case states what must happen to one crafted request:
//
//   - reject: the client gets one of rejectStatuses (or, over HTTP/2, a
//     stream reset or GOAWAY), or the connection is closed without an
//     answer, and no complete request reaches a backend. The gateway
//     streams bodies, so a body framing error found after the head was
//     forwarded leaves an incomplete request at the backend: that is
//     tolerated only if the gateway then closes that backend connection,
//     which the test waits for.
//   - forward: the backends receive exactly the listed requests (method,
//     target, Host, body, and any header checks), nothing more, not even a
//     stray byte; each went to the backend that the route table picks for
//     the target and Host the backend saw (routing and forwarding agree);
//     and the client gets each backend's own answer, in order.
//
// After every case a sentinel request on a fresh connection must get its
// own answer, which catches a backend connection left out of step.
func TestSmugglingCorpus(t *testing.T) {
	cases := loadCorpus(t, filepath.Join("testdata", "smuggling"))
	e := startEnv(t)
	rec := &corpusRecorder{}
	app := startRawBackend(t, rec.serve("app"))
	legacy := startRawBackend(t, rec.serve("legacy"))
	e.republish(func() {
		e.write("services.yaml", manifestService("app", app.port())+"---\n"+manifestService("legacy-fallback", legacy.port()))
	})
	for i, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			start := rec.mark()
			var got clientResult
			if tc.H2 != nil {
				got = replayH2(t, e, tc)
			} else {
				got = replayH1(t, e, tc)
			}
			sentinel := fmt.Sprintf("/api/__sentinel__/%d", i)
			sentinelErr := sendSentinel(e, sentinel)
			events, partial := rec.since(start)

			r := &caseReport{tc: tc, got: got, events: events, partial: partial}
			if sentinelErr != nil {
				r.fail("after the case, a new request (GET %s) did not get its own answer: %v", sentinel, sentinelErr)
			}
			if tc.Expect == "reject" || (tc.OrReject && got.rejected() && len(events) == 0) {
				r.checkReject(rec)
			} else {
				r.checkForward(rec)
			}
			if len(r.problems) > 0 {
				t.Error(r.String())
			} else {
				t.Logf("%s: the client got:%s; %d request(s) forwarded, %d incomplete one(s) cut off",
					tc.Name, strings.ReplaceAll(got.String(), "\n   ", ""), len(events), len(partial))
			}
		})
	}
}

// rejectStatuses are the answers that count as a refusal. 417, 421 and 505
// are the refusals RFC 9110 names for an unmet Expect, a Host for another
// connection and an unsupported version.
var rejectStatuses = []int{400, 404, 405, 408, 413, 414, 417, 421, 431, 501, 505}

// corpusCase is one file of testdata/smuggling.
type corpusCase struct {
	// file is the case's file name without extension, the subtest name.
	file   string
	Name   string `json:"name"`
	Source string `json:"source"`
	// Why explains the expected outcome, for the reader of a failure.
	Why string `json:"why"`
	// Listener is https (the default, SNI app.example.test, ALPN
	// http/1.1 or h2) or http.
	Listener string `json:"listener"`
	// Request is the raw HTTP/1.1 bytes with escapes (\r \n \t \0 \xHH
	// \\); the file's own line breaks are not part of it.
	Request string `json:"request"`
	// H2 replaces Request for an HTTP/2 case.
	H2 *h2Request `json:"h2"`
	// Expect is reject or forward.
	Expect string `json:"expect"`
	// OrReject: the RFC allows a refusal as well as the forward described.
	OrReject bool          `json:"or_reject"`
	Forward  []forwardSpec `json:"forward"`
	// Closed: after answering, the gateway must close the connection.
	Closed bool `json:"closed"`
	// NetHTTP, when set, replaces Forward and Closed under the net/http
	// front end (--http1-engine=net/http), for the few requests it cannot
	// tell apart and so answers more cautiously than the portico engine.
	NetHTTP *corpusOutcome `json:"net_http"`
}

// corpusOutcome is an expected forward and close, for corpusCase.NetHTTP.
type corpusOutcome struct {
	Forward []forwardSpec `json:"forward"`
	Closed  bool          `json:"closed"`
}

type h2Request struct {
	// Headers are sent in order, as given, through HPACK: pseudo-headers
	// included, nothing checked or lower-cased.
	Headers [][2]string `json:"headers"`
	// Data frames; the last carries END_STREAM. Without any, HEADERS
	// carries END_STREAM.
	Data []string `json:"data"`
}

type forwardSpec struct {
	Backend string `json:"backend"`
	Method  string `json:"method"`
	Target  string `json:"target"`
	Host    string `json:"host"`
	Body    string `json:"body"`
	// Headers must be present at the backend with exactly these values
	// (an empty value: must be absent).
	Headers map[string]string `json:"headers"`
	// Forbid: the backend must not see this value in this field, as a
	// header or a trailer, whatever the case of the name.
	Forbid map[string]string `json:"forbid"`
}

func loadCorpus(t *testing.T, dir string) []corpusCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", dir, err)
	}
	var cases []corpusCase
	names := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tc corpusCase
		if err := yaml.UnmarshalStrict(data, &tc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if tc.NetHTTP != nil && os.Getenv("PORTICO_TEST_HTTP1_ENGINE") == "net/http" {
			tc.Forward, tc.Closed = tc.NetHTTP.Forward, tc.NetHTTP.Closed
		}
		if err := tc.normalize(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if prev, dup := names[tc.Name]; dup {
			t.Fatalf("%s: name %q already used by %s", f, tc.Name, prev)
		}
		names[tc.Name] = f
		tc.file = strings.TrimSuffix(filepath.Base(f), ".yaml")
		cases = append(cases, tc)
	}
	return cases
}

func (tc *corpusCase) normalize() error {
	var err error
	unescape := func(s string) string {
		u, uerr := unescapeCorpus(s)
		if uerr != nil && err == nil {
			err = uerr
		}
		return u
	}
	if tc.Name == "" || tc.Source == "" {
		return errors.New("name and source are required")
	}
	if tc.Listener == "" {
		tc.Listener = "https"
	}
	if tc.Listener != "https" && tc.Listener != "http" {
		return fmt.Errorf("listener %q: want http or https", tc.Listener)
	}
	switch {
	case tc.H2 != nil && tc.Request != "", tc.H2 == nil && tc.Request == "":
		return errors.New("exactly one of request and h2 is required")
	case tc.H2 != nil && tc.Listener != "https":
		return errors.New("h2 cases run on the https listener")
	}
	tc.Request = unescape(strings.ReplaceAll(tc.Request, "\n", ""))
	if tc.H2 != nil {
		for i := range tc.H2.Headers {
			tc.H2.Headers[i][1] = unescape(tc.H2.Headers[i][1])
		}
		for i := range tc.H2.Data {
			tc.H2.Data[i] = unescape(tc.H2.Data[i])
		}
	}
	switch tc.Expect {
	case "reject":
		if len(tc.Forward) > 0 || tc.OrReject {
			return errors.New("a reject case lists no forward")
		}
	case "forward":
		if len(tc.Forward) == 0 {
			return errors.New("a forward case lists what the backend receives")
		}
	default:
		return fmt.Errorf("expect %q: want reject or forward", tc.Expect)
	}
	for i := range tc.Forward {
		f := &tc.Forward[i]
		if f.Backend != "app" && f.Backend != "legacy" {
			return fmt.Errorf("forward backend %q: want app or legacy", f.Backend)
		}
		f.Target, f.Host, f.Body = unescape(f.Target), unescape(f.Host), unescape(f.Body)
		for k, v := range f.Headers {
			f.Headers[k] = unescape(v)
		}
		for k, v := range f.Forbid {
			f.Forbid[k] = unescape(v)
		}
	}
	return err
}

// unescapeCorpus turns the escapes of corpus strings into bytes.
func unescapeCorpus(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("dangling backslash in %q", s)
		}
		i++
		switch s[i] {
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) {
				return "", fmt.Errorf("short \\x escape in %q", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad \\x escape in %q", s)
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("unknown escape \\%c in %q", s[i], s)
		}
	}
	return b.String(), nil
}

// backendEvent is one complete request a backend parsed.
type backendEvent struct {
	backend string
	req     *http.Request
	body    string
	// raw is the bytes the request was read from.
	raw string
}

// corpusRecorder logs what both backends received.
type corpusRecorder struct {
	mu     sync.Mutex
	events []backendEvent
	conns  []*recordedConn
}

// recordedConn is one backend connection and how much of it was parsed
// into complete requests.
type recordedConn struct {
	backend  string
	c        *rawConn
	consumed int
	// done is closed when the connection ended: read error or close.
	done chan struct{}
}

// serve answers every complete request with "METHOD TARGET" as body, so the
// client can tell which request an answer belongs to.
func (rec *corpusRecorder) serve(backend string) func(*rawConn) {
	return func(c *rawConn) {
		rc := &recordedConn{backend: backend, c: c, done: make(chan struct{})}
		defer close(rc.done)
		rec.mu.Lock()
		rec.conns = append(rec.conns, rc)
		rec.mu.Unlock()
		for {
			req, body, err := c.readRequest()
			if err != nil {
				return
			}
			received := c.received()
			end := len(received) - c.br.Buffered()
			rec.mu.Lock()
			rec.events = append(rec.events, backendEvent{backend: backend, req: req, body: string(body), raw: received[rc.consumed:end]})
			rc.consumed = end
			rec.mu.Unlock()
			answer := req.Method + " " + req.RequestURI
			resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", backend, len(answer))
			if req.Method != http.MethodHead {
				resp += answer
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

type recorderMark struct{ events int }

func (rec *corpusRecorder) mark() recorderMark {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return recorderMark{events: len(rec.events)}
}

// partialRequest is bytes a backend connection holds that do not (yet) make
// a complete request.
type partialRequest struct {
	conn *recordedConn
	raw  string
}

// since returns the requests received after m other than sentinels, and
// the bytes not forming a complete request on any connection.
func (rec *corpusRecorder) since(m recorderMark) ([]backendEvent, []partialRequest) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var events []backendEvent
	for _, ev := range rec.events[m.events:] {
		if !strings.HasPrefix(ev.req.RequestURI, "/api/__sentinel__/") {
			events = append(events, ev)
		}
	}
	var partial []partialRequest
	for _, rc := range rec.conns {
		if raw := rc.c.received()[rc.consumed:]; raw != "" {
			partial = append(partial, partialRequest{conn: rc, raw: raw})
		}
	}
	return events, partial
}

// forget marks the bytes of p as seen, so later cases do not report them.
func (rec *corpusRecorder) forget(p partialRequest) {
	rec.mu.Lock()
	p.conn.consumed += len(p.raw)
	rec.mu.Unlock()
}

// clientResult is what the client got.
type clientResult struct {
	responses []clientResponse
	// closed: the connection ended (EOF or reset) before all expected
	// answers arrived.
	closed bool
	// h2Reset and h2GoAway: the stream was reset or the connection sent
	// GOAWAY before a final answer.
	h2Reset, h2GoAway string
	// keptOpen is set for a case that wants the connection closed after
	// its answers, when a further request on it was still answered.
	keptOpen string
	err      error
}

type clientResponse struct {
	status  int
	backend string
	body    string
}

func (g clientResult) rejected() bool {
	if len(g.responses) == 0 {
		return g.closed || g.h2Reset != "" || g.h2GoAway != ""
	}
	return slices.Contains(rejectStatuses, g.responses[0].status)
}

func (g clientResult) String() string {
	var b strings.Builder
	for _, r := range g.responses {
		fmt.Fprintf(&b, "\n    %d from %q: %q", r.status, r.backend, truncate(r.body, 200))
	}
	if len(g.responses) == 0 {
		b.WriteString("\n    no answer")
	}
	if g.closed {
		b.WriteString("\n    then the connection was closed")
	}
	if g.h2Reset != "" {
		b.WriteString("\n    RST_STREAM " + g.h2Reset)
	}
	if g.h2GoAway != "" {
		b.WriteString("\n    GOAWAY " + g.h2GoAway)
	}
	if g.keptOpen != "" {
		b.WriteString("\n    connection kept open: " + g.keptOpen)
	}
	if g.err != nil {
		fmt.Fprintf(&b, "\n    client error: %v", g.err)
	}
	return b.String()
}

// replayH1 writes the case's bytes on a new connection and reads as many
// answers as requests are expected to be forwarded (one for a reject).
func replayH1(t *testing.T, e *env, tc corpusCase) clientResult {
	var c net.Conn
	if tc.Listener == "http" {
		c = e.dialHTTP()
	} else {
		c = e.dialHTTPS("app.example.test")
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var got clientResult
	if _, err := io.WriteString(c, tc.Request); err != nil {
		got.err = err
		got.closed = true
		return got
	}
	br := bufio.NewReader(c)
	want := max(len(tc.Forward), 1)
	for range want {
		method := "GET"
		if len(got.responses) < len(tc.Forward) {
			method = tc.Forward[len(got.responses)].Method
		}
		resp, err := readFinalResponse(br, method)
		if err != nil {
			got.closed, got.err = !isTimeout(err), err
			return got
		}
		got.responses = append(got.responses, resp)
		if tc.Expect == "reject" && resp.status != http.StatusOK {
			break
		}
	}
	if tc.Closed && !got.closed {
		// A further request on a connection the gateway should have
		// closed: an answer of any kind means it was still being read.
		_, err := io.WriteString(c, "GET /__after__ HTTP/1.1\r\nHost: legacy.example.test\r\n\r\n")
		if err == nil {
			if resp, err := readFinalResponse(br, "GET"); err == nil {
				got.keptOpen = fmt.Sprintf("a further request was answered %d %q", resp.status, truncate(resp.body, 80))
			} else if isTimeout(err) {
				got.keptOpen = "a further request got no answer, but the connection stayed open"
			}
		}
	}
	return got
}

func readFinalResponse(br *bufio.Reader, method string) (clientResponse, error) {
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return clientResponse{}, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return clientResponse{}, err
		}
		if resp.StatusCode >= 200 {
			return clientResponse{status: resp.StatusCode, backend: resp.Header.Get("X-Backend"), body: string(body)}, nil
		}
	}
}

// replayH2 sends the case's one request on stream 1 of a new HTTP/2
// connection, building frames and HPACK by hand so that anything, valid or
// not, can be sent.
func replayH2(t *testing.T, e *env, tc corpusCase) clientResult {
	cfg := e.tlsConfig("app.example.test")
	cfg.NextProtos = []string{"h2"}
	c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN negotiated %q, want h2", p)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var got clientResult
	fr := http2.NewFramer(c, c)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, h := range tc.H2.Headers {
		_ = enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	_, err = io.WriteString(c, http2.ClientPreface)
	if err == nil {
		err = fr.WriteSettings()
	}
	if err == nil {
		err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: len(tc.H2.Data) == 0, EndHeaders: true})
	}
	for i, d := range tc.H2.Data {
		if err == nil {
			err = fr.WriteData(1, i == len(tc.H2.Data)-1, []byte(d))
		}
	}
	if err != nil {
		got.closed, got.err = true, err
		return got
	}
	dec := hpack.NewDecoder(4096, nil)
	var resp *clientResponse
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			got.closed, got.err = !isTimeout(err), err
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			got.h2GoAway = fmt.Sprintf("%v %q", f.ErrCode, f.DebugData())
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				got.h2Reset = f.ErrCode.String()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				got.err = err
				break
			}
			if f.StreamID != 1 {
				continue
			}
			r := clientResponse{}
			for _, hf := range fields {
				switch hf.Name {
				case ":status":
					r.status, _ = strconv.Atoi(hf.Value)
				case "x-backend":
					r.backend = hf.Value
				}
			}
			if r.status >= 200 {
				resp = &r
			}
			if f.StreamEnded() && resp != nil {
				got.responses = append(got.responses, *resp)
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && resp != nil {
				resp.body += string(f.Data())
				if len(f.Data()) > 0 {
					_ = fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				}
				if f.StreamEnded() {
					got.responses = append(got.responses, *resp)
				}
			}
		}
		if len(got.responses) > 0 || got.h2Reset != "" || got.h2GoAway != "" || got.err != nil {
			break
		}
	}
	return got
}

// sendSentinel sends a request for target on a new connection and checks
// that the answer is the app backend's answer to it.
func sendSentinel(e *env, target string) error {
	c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https,
		&stdtls.Config{RootCAs: e.ca.pool, ServerName: "app.example.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: app.example.test\r\n\r\n"); err != nil {
		return err
	}
	resp, err := readFinalResponse(bufio.NewReader(c), "GET")
	if err != nil {
		return err
	}
	if want := "GET " + target; resp.status != 200 || resp.body != want || resp.backend != "app" {
		return fmt.Errorf("got %d from %q: %q, want 200 from app: %q", resp.status, resp.backend, truncate(resp.body, 200), want)
	}
	return nil
}

// caseReport collects the problems of one case and formats them with
// everything needed to understand them.
type caseReport struct {
	tc       corpusCase
	got      clientResult
	events   []backendEvent
	partial  []partialRequest
	problems []string
}

func (r *caseReport) fail(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *caseReport) String() string {
	var b strings.Builder
	tc := r.tc
	fmt.Fprintf(&b, "case %s: %q\n  source: %s\n", tc.file, tc.Name, tc.Source)
	if tc.H2 != nil {
		fmt.Fprintf(&b, "  sent over HTTP/2: headers %q, data %q\n", tc.H2.Headers, tc.H2.Data)
	} else {
		fmt.Fprintf(&b, "  sent on %s: %q\n", tc.Listener, tc.Request)
	}
	switch {
	case tc.Expect == "reject":
		b.WriteString("  expected: reject (one of " + fmt.Sprint(rejectStatuses) + ", a reset or a close; no complete request at any backend)\n")
	default:
		fmt.Fprintf(&b, "  expected: forward of %d request(s)", len(tc.Forward))
		if tc.OrReject {
			b.WriteString(", or a reject")
		}
		b.WriteString("\n")
		for _, f := range tc.Forward {
			fmt.Fprintf(&b, "    to %s: %s %q Host %q body %q", f.Backend, f.Method, f.Target, f.Host, f.Body)
			if len(f.Headers) > 0 {
				fmt.Fprintf(&b, " headers %q", f.Headers)
			}
			if len(f.Forbid) > 0 {
				fmt.Fprintf(&b, " never %q", f.Forbid)
			}
			b.WriteString("\n")
		}
	}
	if tc.Closed {
		b.WriteString("    and the connection closed after the answer\n")
	}
	if tc.Why != "" {
		fmt.Fprintf(&b, "  why: %s\n", strings.TrimSpace(tc.Why))
	}
	b.WriteString("  problems:\n")
	for _, p := range r.problems {
		b.WriteString("    - " + p + "\n")
	}
	b.WriteString("  the client got:" + r.got.String() + "\n")
	b.WriteString("  the backends received:\n")
	if len(r.events) == 0 && len(r.partial) == 0 {
		b.WriteString("    nothing\n")
	}
	for _, ev := range r.events {
		fmt.Fprintf(&b, "    %s, a complete request: %q\n", ev.backend, truncate(ev.raw, 600))
	}
	for _, p := range r.partial {
		fmt.Fprintf(&b, "    %s, bytes that are no complete request: %q\n", p.conn.backend, truncate(p.raw, 600))
	}
	return b.String()
}

func (r *caseReport) checkReject(rec *corpusRecorder) {
	if !r.got.rejected() {
		r.fail("the client was not refused")
	}
	for _, ev := range r.events {
		r.fail("%s received a complete request: %s %q Host %q", ev.backend, ev.req.Method, ev.req.RequestURI, ev.req.Host)
	}
	for _, p := range r.partial {
		select {
		case <-p.conn.done:
		case <-time.After(10 * time.Second):
			r.fail("%s holds an incomplete request on a connection the gateway did not close", p.conn.backend)
		}
		rec.forget(p)
	}
}

func (r *caseReport) checkForward(rec *corpusRecorder) {
	tc := r.tc
	if len(r.events) != len(tc.Forward) {
		r.fail("the backends received %d complete request(s), want %d", len(r.events), len(tc.Forward))
	}
	for _, p := range r.partial {
		r.fail("%s holds bytes beyond the forwarded request(s)", p.conn.backend)
		// Reported here; later cases start from a clean slate.
		rec.forget(p)
	}
	for i, ev := range r.events {
		if routed := routeOf(ev.req); routed != ev.backend {
			r.fail("request %d went to %s, but its target %q and Host %q as the backend saw them belong to %s: routing and forwarding disagree",
				i+1, ev.backend, ev.req.RequestURI, ev.req.Host, routed)
		}
		if i >= len(tc.Forward) {
			continue
		}
		f := tc.Forward[i]
		got := fmt.Sprintf("%s %s %q Host %q body %q", ev.backend, ev.req.Method, ev.req.RequestURI, ev.req.Host, ev.body)
		want := fmt.Sprintf("%s %s %q Host %q body %q", f.Backend, f.Method, f.Target, f.Host, f.Body)
		if got != want {
			r.fail("request %d: got %s, want %s", i+1, got, want)
		}
		for name, v := range f.Headers {
			vals := fieldValues(ev.req.Header, name)
			switch {
			case v == "" && len(vals) > 0:
				r.fail("request %d: %s must not be forwarded, got %q", i+1, name, vals)
			case v != "" && !slices.Equal(vals, []string{v}):
				r.fail("request %d: %s: got %q, want [%q]", i+1, name, vals, v)
			}
		}
		for name, v := range f.Forbid {
			for _, h := range []http.Header{ev.req.Header, ev.req.Trailer} {
				for _, got := range fieldValues(h, name) {
					if strings.Contains(got, v) {
						r.fail("request %d: the client's %s %q reached the backend: %s: %q", i+1, name, v, name, got)
					}
				}
			}
		}
	}
	if len(r.got.responses) != len(tc.Forward) {
		r.fail("the client got %d answer(s), want %d", len(r.got.responses), len(tc.Forward))
	}
	for i, resp := range r.got.responses {
		if i >= len(tc.Forward) {
			break
		}
		f := tc.Forward[i]
		want := f.Method + " " + f.Target
		if f.Method == http.MethodHead {
			want = ""
		}
		if resp.status != 200 || resp.backend != f.Backend || resp.body != want {
			r.fail("answer %d: got %d from %q: %q, want 200 from %s: %q", i+1, resp.status, resp.backend, truncate(resp.body, 200), f.Backend, want)
		}
	}
	if r.got.keptOpen != "" {
		r.fail("the connection was kept open: %s", r.got.keptOpen)
	}
}

// fieldValues returns the values of every field named name, whatever the
// case or canonical form of the name.
func fieldValues(h http.Header, name string) []string {
	var out []string
	for k, vv := range h {
		if strings.EqualFold(k, name) {
			out = append(out, vv...)
		}
	}
	return out
}

// routeOf is the backend the test manifests route a request to, judged
// from what the backend received, read as loosely as any backend might:
// percent-escapes decoded (%2F included), dot segments resolved, query and
// fragment cut, Host case and port ignored.
func routeOf(r *http.Request) string {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	target := r.RequestURI
	if u, err := url.Parse(target); err == nil && u.IsAbs() {
		target = u.RequestURI()
		host = strings.ToLower(u.Hostname())
	}
	target, _, _ = strings.Cut(target, "#")
	target, _, _ = strings.Cut(target, "?")
	if p, err := url.PathUnescape(target); err == nil {
		target = p
	}
	p := path.Clean("/" + target)
	if strings.HasSuffix(target, "/") && p != "/" {
		p += "/"
	}
	switch {
	case host == "app.example.test":
		if p == "/api" || strings.HasPrefix(p, "/api/") || p == "/ws" || p == "/login" {
			return "app"
		}
	case strings.HasSuffix(host, ".apps.example.test") && !strings.Contains(strings.TrimSuffix(host, ".apps.example.test"), "."):
		return "app"
	}
	return "legacy"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
