package tls

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestStreamWorkersPanic: a handler's panic on a worker is raised again on
// the caller's goroutine, where net/http's HTTP/2 server recovers it (and
// resets the stream for http.ErrAbortHandler), and the worker goes on.
func TestStreamWorkersPanic(t *testing.T) {
	h := onStreamWorkers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	r := httptest.NewRequest("GET", "/abort", nil)
	r.ProtoMajor = 2
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), r)
		t.Error("the panic did not reach the caller")
	}()
	ok := httptest.NewRequest("GET", "/ok", nil)
	ok.ProtoMajor = 2
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, ok)
	if rec.Code != http.StatusNoContent {
		t.Errorf("after a panic: %d", rec.Code)
	}
}

// TestStreamWorkersConcurrent: concurrent HTTP/2 requests beyond the
// workers are each served exactly once, with their own writer.
func TestStreamWorkersConcurrent(t *testing.T) {
	h := onStreamWorkers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		w.WriteHeader(http.StatusOK)
	}))
	const n = maxStreamWorkers + 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/"+string(rune('a'+i%26)), nil)
			r.ProtoMajor = 2
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if got := rec.Header().Get("X-Path"); got != r.URL.Path {
				errs <- got
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a request got another's answer: %q", e)
	}
}

// TestStreamWorkersGoexit: a handler that ends its goroutine with
// runtime.Goexit does not leave the stream waiting forever; the caller
// gets a panic, as net/http's HTTP/2 server would see one.
func TestStreamWorkersGoexit(t *testing.T) {
	h := onStreamWorkers(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runtime.Goexit() }))
	r := httptest.NewRequest("GET", "/", nil)
	r.ProtoMajor = 2
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		h.ServeHTTP(httptest.NewRecorder(), r)
	}()
	select {
	case v := <-done:
		if v != errHandlerExited {
			t.Errorf("recovered %v, want errHandlerExited", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream waited forever for a worker that exited")
	}
}
