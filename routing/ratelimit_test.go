package routing

import (
	"net/netip"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	admit := func(l *RateLimit, client netip.Addr, at time.Time) bool {
		_, ok := l.admit(client, at)
		return ok
	}

	t.Run("per second with burst", func(t *testing.T) {
		l := NewRateLimit(RateLimitConfig{PerSecond: 2, BurstMultiplier: 2})
		// nginx's limit_req burst=4 nodelay: one request and 4 more.
		for i := range 5 {
			if !admit(l, a, t0) {
				t.Fatalf("request %d of 1 + a burst of 4 refused", i+1)
			}
		}
		if admit(l, a, t0) {
			t.Fatal("sixth request at once admitted")
		}
		if !admit(l, b, t0) {
			t.Fatal("another client shares the first one's budget")
		}
		if !admit(l, a, t0.Add(500*time.Millisecond)) {
			t.Fatal("no token back after half a second at 2/s")
		}
		if admit(l, a, t0.Add(500*time.Millisecond)) {
			t.Fatal("two tokens back after half a second at 2/s")
		}
	})

	t.Run("per minute also bounds", func(t *testing.T) {
		l := NewRateLimit(RateLimitConfig{PerSecond: 10, PerMinute: 2, BurstMultiplier: 1})
		for range 3 {
			if !admit(l, a, t0) {
				t.Fatal("1 + the per-minute burst of 2 refused")
			}
		}
		if admit(l, a, t0.Add(time.Second)) {
			t.Fatal("a fourth request within the minute admitted")
		}
		if !admit(l, a, t0.Add(31*time.Second)) {
			t.Fatal("no token back after 30 s at 2/min")
		}
	})

	t.Run("refused per minute spends nothing per second", func(t *testing.T) {
		l := NewRateLimit(RateLimitConfig{PerSecond: 1, PerMinute: 1, BurstMultiplier: 1})
		for range 2 {
			if !admit(l, a, t0) {
				t.Fatal("1 + a burst of 1 refused")
			}
		}
		if admit(l, a, t0.Add(2*time.Second)) {
			t.Fatal("admitted with the per-minute bucket empty")
		}
		budget := l.clients.budgets[a]
		if got := budget.perSecond.TokensAt(t0.Add(2 * time.Second)); got < 1 {
			t.Fatalf("per-second tokens %.2f: the refused request spent one", got)
		}
	})

	t.Run("in flight", func(t *testing.T) {
		l := NewRateLimit(RateLimitConfig{Connections: 2})
		b1, ok1 := l.admit(a, t0)
		_, ok2 := l.admit(a, t0)
		if !ok1 || !ok2 {
			t.Fatal("two requests in flight refused")
		}
		if admit(l, a, t0) {
			t.Fatal("a third request in flight admitted")
		}
		l.done(b1)
		if !admit(l, a, t0) {
			t.Fatal("refused after one request ended")
		}
	})

	t.Run("exempt", func(t *testing.T) {
		l := NewRateLimit(RateLimitConfig{PerSecond: 1, BurstMultiplier: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
		for range 10 {
			if !admit(l, a, t0) {
				t.Fatal("an exempt client was limited")
			}
		}
		if len(l.clients.budgets) != 0 {
			t.Fatal("an exempt client was counted")
		}
	})

	t.Run("clients bounded", func(t *testing.T) {
		l := NewRateLimit(RateLimitConfig{PerSecond: 1, BurstMultiplier: 1, MaxClients: 8})
		for i := range 100 {
			addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
			if !admit(l, addr, t0) {
				t.Fatalf("new client %d refused", i)
			}
			if n := len(l.clients.budgets); n > 8 {
				t.Fatalf("%d clients counted, max 8", n)
			}
		}
	})

	t.Run("carry keeps the counters of an unchanged configuration", func(t *testing.T) {
		cfg := RateLimitConfig{PerSecond: 1, BurstMultiplier: 1}
		prev := NewRateLimit(cfg)
		admit(prev, a, t0)
		if got := NewRateLimit(cfg).Carry(prev); got != prev {
			t.Fatal("an unchanged limit did not carry its counters over")
		}
		if got := NewRateLimit(RateLimitConfig{PerSecond: 2, BurstMultiplier: 1}).Carry(prev); got == prev {
			t.Fatal("a changed limit kept the old one")
		}
	})
}
