package upstream

import (
	"context"
	"testing"
	"time"
)

// A client connection's dial budget is spent by dials, refilled over time
// and by exchanges that end with the client still there.
func TestDialBudget(t *testing.T) {
	start := time.Unix(1000, 0)
	b := &dialBudget{tokens: 2, last: start, rate: 4, burst: 2}
	for i := range 2 {
		if ok, _ := b.take(start); !ok {
			t.Fatalf("dial %d within the burst refused", i)
		}
	}
	ok, wait := b.take(start)
	if ok || wait != 250*time.Millisecond {
		t.Fatalf("spent budget: ok=%v, wait %s, want a refusal and 250ms", ok, wait)
	}
	if ok, _ := b.take(start.Add(250 * time.Millisecond)); !ok {
		t.Fatal("no token after a refill period")
	}
	b.refund()
	if ok, _ := b.take(start.Add(250 * time.Millisecond)); !ok {
		t.Fatal("a refunded token cannot be taken")
	}
	// Refills never exceed the burst.
	b.refund()
	b.refund()
	b.refund()
	later := start.Add(time.Hour)
	for i := range 2 {
		if ok, _ := b.take(later); !ok {
			t.Fatalf("dial %d after an hour refused", i)
		}
	}
	if ok, _ := b.take(later); ok {
		t.Fatal("the budget grew beyond its burst")
	}

	// A connection's token comes back when its exchange ends with the
	// client there, and not when the client went away.
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{budget: b}
	c.settle(ctx)
	if c.budget != nil {
		t.Fatal("a settled connection keeps its budget")
	}
	if ok, _ := b.take(later); !ok {
		t.Fatal("the token of a completed exchange was not given back")
	}
	cancel()
	c.budget = b
	c.settle(ctx)
	if ok, _ := b.take(later); ok {
		t.Fatal("the token of a cancelled exchange was given back")
	}
}
