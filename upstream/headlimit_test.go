package upstream

import "testing"

// The head limiter hands out at most its budget while armed, and
// everything once disarmed.
func TestHeadLimiter(t *testing.T) {
	src := &headLimiter{r: &infinite{}}
	buf := make([]byte, 100)
	src.arm(150)
	if n, err := src.Read(buf); n != 100 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	if n, err := src.Read(buf); n != 50 || err != nil {
		t.Fatalf("second read: %d, %v", n, err)
	}
	if _, err := src.Read(buf); err != errResponseHeaderTooLarge {
		t.Fatalf("read beyond the budget: %v", err)
	}
	src.disarm()
	if n, err := src.Read(buf); n != 100 || err != nil {
		t.Fatalf("disarmed read: %d, %v", n, err)
	}
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) { return len(p), nil }
