package upstream

import "io"

// headLimiter sits between a backend connection and its bufio.Reader.
// While armed, it hands out at most a budget of bytes, so the response
// head (informational responses included) is read up to a bound instead of
// whatever http.ReadResponse would accept; once the head is read it is
// disarmed and the body streams through unbounded. Bytes of the body read
// ahead along with the head count against the budget, which is why the
// budget is reset for every request rather than carried over.
type headLimiter struct {
	r      io.Reader
	budget int
	armed  bool
}

func (l *headLimiter) Read(p []byte) (int, error) {
	if !l.armed {
		return l.r.Read(p)
	}
	if l.budget <= 0 {
		return 0, errResponseHeaderTooLarge
	}
	if len(p) > l.budget {
		p = p[:l.budget]
	}
	n, err := l.r.Read(p)
	l.budget -= n
	return n, err
}

// arm starts a head read with budget bytes. The bytes already buffered in
// the conn's reader were read under an earlier budget, and a pooled
// connection has none.
func (l *headLimiter) arm(budget int) {
	if l != nil {
		l.budget, l.armed = budget, true
	}
}

func (l *headLimiter) disarm() {
	if l != nil {
		l.armed = false
	}
}
