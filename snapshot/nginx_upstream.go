package snapshot

import (
	"strconv"
	"strings"
	"time"

	"portico.dev/portico/routing"
)

// This file reads the annotations of the backend connection's failures:
// proxy-connect-timeout and proxy-next-upstream with its tries and
// timeout, onto the route's Timeouts.Connect and Retry (the model an
// HTTPRoute's retry uses, with ingress-nginx's classes in Retry.Next).

const (
	// nginxDefaultTries is ingress-nginx's proxy-next-upstream-tries.
	nginxDefaultTries = 3
	// nginxMaxTries bounds the tries of one request: nginx's 0 means no
	// limit, which a backend that fails fast would turn into a loop.
	nginxMaxTries = 10

	nextUpstreamNote = "the conditions listed are retried at once on the endpoint load balancing picks next (which may be the same one, as in ingress-nginx), and a POST, LOCK or PATCH only when its connect failed unless non_idempotent is listed, as nginx does; a request body over --retry-body-limit is sent once, where nginx buffers it to retry; a try whose connect fails also tries one more endpoint, as Portico does on every route, off included. Without the annotation Portico moves only a failed connect to the next endpoint, once, where ingress-nginx's default (error timeout, 3 tries) also retries a connection closed or timed out before the response header"
	nextTriesNote    = "0, nginx's no limit, and values above 10 are read as 10; without proxy-next-upstream its default error timeout applies"
)

// nginxNext is what the proxy-next-upstream annotations ask for.
type nginxNext struct {
	// set: one of the three annotations applies.
	set bool
	// conditions: proxy-next-upstream was read (else error timeout).
	conditions bool
	off        bool
	next       routing.NextUpstream
	codes      []int
	tries      int
}

// nextUpstreamCodes are the http_* conditions, by their status.
var nextUpstreamCodes = map[string]int{
	"http_500": 500, "http_502": 502, "http_503": 503, "http_504": 504,
	"http_403": 403, "http_404": 404, "http_429": 429,
}

// applyUpstream reads proxy-connect-timeout and the proxy-next-upstream
// annotations.
func (nc *nginxConfig) applyUpstream(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "proxy-connect-timeout":
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 24*3600 {
			return f.invalidf("%q is not a number of seconds from 1 to 86400; --upstream-dial-timeout applies", raw), true
		}
		nc.connectTimeout = time.Duration(n) * time.Second
	case "proxy-next-upstream":
		var next routing.NextUpstream
		var codes []int
		off := false
		for _, c := range strings.Fields(v) {
			switch c {
			case "error":
				next.Error = true
			case "timeout":
				next.Timeout = true
			case "invalid_header":
				next.InvalidHeader = true
			case "non_idempotent":
				next.NonIdempotent = true
			case "off":
				off = true
			default:
				code, ok := nextUpstreamCodes[c]
				if !ok {
					return f.invalidf("%q is not a list of error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent or off (%q is none of them); the annotation is ignored", raw, c), true
				}
				codes = append(codes, code)
			}
		}
		if len(strings.Fields(v)) == 0 {
			return f.invalidf("the value is empty; the annotation is ignored"), true
		}
		if off && len(strings.Fields(v)) > 1 {
			return f.invalidf("%q lists off with other conditions; the annotation is ignored", raw), true
		}
		n := nc.nextRules()
		n.conditions, n.off, n.codes = true, off, codes
		n.next.Error, n.next.Timeout, n.next.InvalidHeader, n.next.NonIdempotent = next.Error, next.Timeout, next.InvalidHeader, next.NonIdempotent
	case "proxy-next-upstream-tries":
		t, err := strconv.Atoi(v)
		if err != nil || t < 0 {
			return f.invalidf("%q is not a whole number of tries (0 for no limit); the annotation is ignored", raw), true
		}
		if t >= 1 && t <= nginxMaxTries {
			f.Verdict, f.Note = NginxExact, ""
		} else {
			t = nginxMaxTries
		}
		nc.nextRules().tries = t
	case "proxy-next-upstream-timeout":
		t, err := strconv.Atoi(v)
		if err != nil || t < 0 || t > 24*3600 {
			return f.invalidf("%q is not a number of seconds from 0 to 86400; the annotation is ignored", raw), true
		}
		nc.nextRules().next.Within = time.Duration(t) * time.Second
	default:
		return f, false
	}
	return f, true
}

func (nc *nginxConfig) nextRules() *nginxNext {
	if nc.nextUpstream == nil {
		nc.nextUpstream = &nginxNext{tries: nginxDefaultTries}
	}
	nc.nextUpstream.set = true
	return nc.nextUpstream
}

// finishRetry turns the proxy-next-upstream annotations into the routes'
// retry policy: none for off, one try, or nothing to retry, so those
// routes keep the plain forwarding path.
func (nc *nginxConfig) finishRetry() {
	n := nc.nextUpstream
	if n == nil || !n.set || n.off {
		return
	}
	if !n.conditions {
		// ingress-nginx's default proxy-next-upstream.
		n.next.Error, n.next.Timeout = true, true
	}
	if n.tries <= 1 || (!n.next.Error && !n.next.Timeout && !n.next.InvalidHeader && len(n.codes) == 0) {
		return
	}
	next := n.next
	nc.retry = &routing.Retry{Codes: n.codes, Attempts: n.tries - 1, Next: &next}
}
