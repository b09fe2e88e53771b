package tls

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// net/http's HTTP/2 server runs every stream's handler on a goroutine of
// its own, which starts with the runtime's smallest stack. Portico's
// handler (routing, the backend exchange, its write and read through
// internal/poll) needs several times that, so each stream's goroutine grew
// its stack, copying it each time: a CPU profile of the h2 workload put
// runtime.newstack and copystack at about 10% of Portico's CPU, some 8 µs
// per request. The HTTP/1.1 engine does not pay this, because it serves a
// connection's requests on one goroutine whose stack stays grown.
//
// streamWorkers hands each HTTP/2 request to a long-lived worker goroutine
// instead, whose stack grew once, and waits for it: two goroutine switches
// per request instead of the growth. The stream's goroutine blocks until
// the worker is done, so the handler still runs once per request, in
// order, with the same ResponseWriter and Request; a panic is carried back
// and raised again on the stream's goroutine, where net/http expects it.
// Workers beyond an idle one are started on demand up to maxStreamWorkers
// (past it a request runs on its own goroutine, as before) and exit after
// streamWorkerIdle without work.
type streamWorkers struct {
	jobs    chan *streamJob
	workers atomic.Int32
}

const (
	maxStreamWorkers = 512
	streamWorkerIdle = 30 * time.Second
)

type streamJob struct {
	h    http.Handler
	w    http.ResponseWriter
	r    *http.Request
	done chan any // the recovered panic, or nil
}

// errHandlerExited is raised on the stream's goroutine when the handler
// ended its worker with runtime.Goexit.
var errHandlerExited = errors.New("tls: HTTP/2 handler called runtime.Goexit")

var streamJobs = sync.Pool{New: func() any { return &streamJob{done: make(chan any, 1)} }}

var h2Workers = &streamWorkers{jobs: make(chan *streamJob)}

// onStreamWorkers serves HTTP/2 requests of h through the worker pool and
// the others directly.
func onStreamWorkers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			h.ServeHTTP(w, r)
			return
		}
		h2Workers.serve(h, w, r)
	})
}

func (p *streamWorkers) serve(h http.Handler, w http.ResponseWriter, r *http.Request) {
	j := streamJobs.Get().(*streamJob)
	j.h, j.w, j.r = h, w, r
	select {
	case p.jobs <- j:
	default:
		if p.workers.Add(1) > maxStreamWorkers {
			p.workers.Add(-1)
			j.h, j.w, j.r = nil, nil, nil
			streamJobs.Put(j)
			h.ServeHTTP(w, r)
			return
		}
		go p.work(j)
	}
	v := <-j.done
	j.h, j.w, j.r = nil, nil, nil
	streamJobs.Put(j)
	if v != nil {
		panic(v)
	}
}

func (p *streamWorkers) work(j *streamJob) {
	idle := time.NewTimer(streamWorkerIdle)
	served := false
	defer func() {
		idle.Stop()
		if !served {
			// The handler called runtime.Goexit, which no recover stops:
			// the worker ends, and the stream's goroutine must not wait
			// for it forever.
			p.workers.Add(-1)
			j.done <- errHandlerExited
		}
	}()
	for {
		served = false
		v := run(j)
		served = true
		j.done <- v
		idle.Reset(streamWorkerIdle)
		select {
		case j = <-p.jobs:
		case <-idle.C:
			p.workers.Add(-1)
			return
		}
	}
}

// run serves one job, returning what it panicked with, if anything.
func run(j *streamJob) (recovered any) {
	defer func() { recovered = recover() }()
	j.h.ServeHTTP(j.w, j.r)
	return nil
}
