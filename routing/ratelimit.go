package routing

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"portico.dev/portico/internal/unset"
)

// RateLimit bounds what one client address may ask of a route: requests
// per second and per minute, each with a burst, and requests in flight at
// once. The ingress-nginx limit-rps, limit-rpm, limit-burst-multiplier,
// limit-connections and limit-allowlist annotations translate to it; as
// there, the counts are per replica and per client address (the address
// Admission's ranges are checked against), and a request over a limit is
// answered 503.
//
// A RateLimit holds the clients' counters, which must outlive snapshots:
// the builder hands a route the RateLimit of the previous snapshot when
// its configuration is unchanged (Carry), so a configuration change
// elsewhere does not reset anyone's budget.
type RateLimit struct {
	RateLimitConfig
	clients *clientTable
}

// RateLimitConfig is what a RateLimit enforces.
type RateLimitConfig struct {
	// PerSecond and PerMinute are sustained request rates; zero is no
	// limit. Each lets through, at once, one request and a burst of its
	// rate times BurstMultiplier more, as nginx's limit_req with burst and
	// nodelay does.
	PerSecond, PerMinute int
	// BurstMultiplier scales the bursts; ingress-nginx's default is 5.
	BurstMultiplier int
	// Connections bounds the requests of one client in flight at once;
	// zero is no limit.
	Connections int
	// Exempt lists client addresses no limit applies to.
	Exempt []netip.Prefix
	// MaxClients bounds the client addresses counted at once; a client
	// beyond it takes the place of one whose budget is full again, or of
	// any when none is (nginx's zone evicts the least recently used).
	MaxClients int
}

// DefaultMaxRateLimitClients is MaxClients when a configuration leaves it
// zero: at most about 5 MB of counters (up to 300 bytes a client, with
// both rates) for a limited Ingress under an attack from that many
// addresses, as ingress-nginx's 5 MB zones.
const DefaultMaxRateLimitClients = 16384

const tooManyRequestsBody = "503 Service Unavailable: too many requests from your address to this route\n"

// NewRateLimit returns a RateLimit enforcing cfg, with no client counted.
func NewRateLimit(cfg RateLimitConfig) *RateLimit {
	if cfg.BurstMultiplier <= 0 {
		cfg.BurstMultiplier = 1
	}
	unset.Default(&cfg.MaxClients, DefaultMaxRateLimitClients)
	return &RateLimit{RateLimitConfig: cfg, clients: newClientTable(cfg.MaxClients)}
}

// Carry returns prev when it enforces the same configuration as l, so
// that the clients' counters survive a rebuild, and l otherwise.
func (l *RateLimit) Carry(prev *RateLimit) *RateLimit {
	if prev != nil && prev.String() == l.String() {
		return prev
	}
	return l
}

func (l *RateLimit) String() string {
	var parts []string
	if l.PerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%d/s", l.PerSecond))
	}
	if l.PerMinute > 0 {
		parts = append(parts, fmt.Sprintf("%d/min", l.PerMinute))
	}
	if l.PerSecond > 0 || l.PerMinute > 0 {
		parts = append(parts, fmt.Sprintf("burst x%d", l.BurstMultiplier))
	}
	if l.Connections > 0 {
		parts = append(parts, fmt.Sprintf("%d in flight", l.Connections))
	}
	if len(l.Exempt) > 0 {
		parts = append(parts, "exempt "+joinPrefixes(l.Exempt))
	}
	parts = append(parts, fmt.Sprintf("max %d clients", l.MaxClients))
	return "limit " + strings.Join(parts, " ")
}

// admit counts a request of client at now. It returns false when a limit
// refuses it; otherwise the caller ends the request with done(entry).
func (l *RateLimit) admit(client netip.Addr, now time.Time) (*clientBudget, bool) {
	if inPrefixes(client, l.Exempt) {
		return nil, true
	}
	return l.clients.admit(client, now, &l.RateLimitConfig)
}

// done ends a request admit let through.
func (l *RateLimit) done(b *clientBudget) {
	if b != nil && l.Connections > 0 {
		l.clients.release(b)
	}
}

// clientBudget is one client's counters.
type clientBudget struct {
	perSecond, perMinute *rate.Limiter
	inFlight             int
}

// rested reports whether the budget is what a new client gets: nothing in
// flight and every bucket full, so forgetting it changes nothing.
func (b *clientBudget) rested(now time.Time) bool {
	return b.inFlight == 0 &&
		(b.perSecond == nil || b.perSecond.TokensAt(now) >= float64(b.perSecond.Burst())) &&
		(b.perMinute == nil || b.perMinute.TokensAt(now) >= float64(b.perMinute.Burst()))
}

// clientTable is the clients' budgets, bounded. One mutex: only limited
// routes take it, and only for a few map and bucket operations.
type clientTable struct {
	mu      sync.Mutex
	max     int
	budgets map[netip.Addr]*clientBudget
}

func newClientTable(max int) *clientTable {
	return &clientTable{max: max, budgets: make(map[netip.Addr]*clientBudget)}
}

func (t *clientTable) admit(client netip.Addr, now time.Time, cfg *RateLimitConfig) (*clientBudget, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.budgets[client]
	if b == nil {
		if len(t.budgets) >= t.max {
			t.evict(now)
		}
		b = &clientBudget{}
		if cfg.PerSecond > 0 {
			b.perSecond = rate.NewLimiter(rate.Limit(cfg.PerSecond), cfg.PerSecond*cfg.BurstMultiplier+1)
		}
		if cfg.PerMinute > 0 {
			b.perMinute = rate.NewLimiter(rate.Limit(float64(cfg.PerMinute)/60), cfg.PerMinute*cfg.BurstMultiplier+1)
		}
		t.budgets[client] = b
	}
	if cfg.Connections > 0 && b.inFlight >= cfg.Connections {
		return nil, false
	}
	// Both buckets must have a token before either is spent, so that a
	// request refused per minute costs nothing per second.
	if b.perSecond != nil && b.perSecond.TokensAt(now) < 1 || b.perMinute != nil && b.perMinute.TokensAt(now) < 1 {
		return nil, false
	}
	if b.perSecond != nil {
		b.perSecond.AllowN(now, 1)
	}
	if b.perMinute != nil {
		b.perMinute.AllowN(now, 1)
	}
	if cfg.Connections > 0 {
		b.inFlight++
	}
	return b, true
}

func (t *clientTable) release(b *clientBudget) {
	t.mu.Lock()
	b.inFlight--
	t.mu.Unlock()
}

// evict makes room for one client, looking at a bounded sample of the
// budgets (map iteration starts at a random place), so a table kept full
// by an attack costs each new client the same small amount: it forgets the
// rested budgets in the sample, or else the first idle one, or else the
// first one.
func (t *clientTable) evict(now time.Time) {
	const sample = 32
	var idle, first netip.Addr
	seen, freed := 0, false
	for addr, b := range t.budgets {
		if seen++; seen > sample {
			break
		}
		switch {
		case b.rested(now):
			delete(t.budgets, addr)
			freed = true
		case b.inFlight == 0 && !idle.IsValid():
			idle = addr
		case !first.IsValid():
			first = addr
		}
	}
	switch {
	case freed:
	case idle.IsValid():
		delete(t.budgets, idle)
	case first.IsValid():
		delete(t.budgets, first)
	}
}
