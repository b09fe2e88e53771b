package http1

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

type ctxKey struct{}

// TestRequestContextRearm: a context whose request ended with nothing left
// watching it is re-armed; one whose Done was asked for, or with an
// AfterFunc still registered, is not.
func TestRequestContextRearm(t *testing.T) {
	conn, cancelConn := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	defer cancelConn()

	rc := newRequestContext(conn)
	if rc.Value(ctxKey{}) != "v" {
		t.Error("the connection's values are not seen")
	}
	ran := make(chan struct{}, 4)
	stop := rc.AfterFunc(func() { ran <- struct{}{} })
	if !stop() || stop() {
		t.Error("stop should report true once, then false")
	}
	if !rc.end() {
		t.Fatal("a context with every AfterFunc stopped and no Done was not reusable")
	}
	if !errors.Is(rc.Err(), context.Canceled) || !errors.Is(context.Cause(rc), context.Canceled) {
		t.Errorf("after its request: Err %v, Cause %v", rc.Err(), context.Cause(rc))
	}
	rc.rearm()
	if rc.Err() != nil {
		t.Fatal("a re-armed context is cancelled")
	}

	// A registration left at the end runs, and the context is not reused.
	rc.AfterFunc(func() { ran <- struct{}{} })
	if rc.end() {
		t.Error("a context with a pending AfterFunc was reusable")
	}
	waitRan(t, ran)

	// Done asked for: not reusable, and the channel closes at the end.
	rc = newRequestContext(conn)
	done := rc.Done()
	if rc.end() {
		t.Error("a context whose Done was taken was reusable")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}

	// A context derived from it is cancelled with it, through AfterFunc.
	rc = newRequestContext(conn)
	child, cancelChild := context.WithCancel(rc)
	defer cancelChild()
	rc.end()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context outlived its request")
	}

	// The connection's end cancels the request in flight.
	rc = newRequestContext(conn)
	rc.AfterFunc(func() { ran <- struct{}{} })
	cancelConn()
	waitRan(t, ran)
	if rc.Err() == nil {
		t.Error("the connection ended but its request context did not")
	}
}

func waitRan(t *testing.T, ran chan struct{}) {
	t.Helper()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc did not run")
	}
}

// TestServeAllocs: a keep-alive request through the engine, with a
// handler that allocates nothing, costs one allocation (its head).
func TestServeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	textPlain := []string{"text/plain"}
	handler := func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = textPlain
		w.Write(benchBody)
	}
	res := testing.Benchmark(func(b *testing.B) {
		_, addr := startServer(b, http.HandlerFunc(handler))
		benchClient(b, addr)
	})
	if a := res.AllocsPerOp(); a > 1 {
		t.Errorf("%d allocations per request, want at most 1", a)
	}
}
