package routing

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"portico.dev/portico/upstream"
)

// answerForwarder answers 200 without a backend, so a benchmark measures
// the routing tier alone.
type answerForwarder struct{}

func (answerForwarder) ForwardWith(w http.ResponseWriter, _ *http.Request, _ *upstream.Backend, o *upstream.ForwardOptions) upstream.Outcome {
	if o != nil && o.EditResponseHeader != nil {
		o.EditResponseHeader(w.Header())
	}
	w.WriteHeader(http.StatusOK)
	return upstream.Outcome{Status: http.StatusOK}
}

// BenchmarkServeHTTP measures the handler for an Ingress route and for an
// HTTPRoute route with header conditions, request and response header
// edits and two weighted backends, with an in-memory response writer.
func BenchmarkServeHTTP(b *testing.B) {
	backend := &upstream.Backend{Name: "ns/svc:80", Endpoints: []string{"127.0.0.1:1"}}
	ingress := benchTable(1000, 10)
	for _, r := range ingress.Routes() {
		r.Backend = backend
	}
	gatewayRoute := &Route{
		Host: "api.example.com", PathKind: PathPrefix, Path: "/api",
		Headers: []HeaderMatch{{Name: "X-Tenant", Value: "t7"}},
		Backends: []WeightedBackend{
			{Backend: backend, Weight: 90},
			{Backend: backend, Weight: 10},
		},
		Filters: &Filters{
			RequestHeaders:  &HeaderModifier{Set: []HeaderValue{{"X-Route", "api"}}},
			ResponseHeaders: &HeaderModifier{Remove: []string{"Server"}},
		},
	}
	gateway, _ := compileHosts(gatewayHosts, []*Route{gatewayRoute}, nil)

	for _, c := range []struct {
		name  string
		table *Table
		req   func() *http.Request
	}{
		{"ingress", ingress, func() *http.Request {
			return httptest.NewRequest("GET", "http://host-500.example.com/svc-7/orders/12345", nil)
		}},
		{"httproute", gateway, func() *http.Request {
			r := httptest.NewRequest("GET", "http://api.example.com/api/orders/17", nil)
			r.Header.Set("X-Tenant", "t7")
			return r
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := NewHandler(HandlerConfig{Table: func() *Table { return c.table }, Forwarder: answerForwarder{}})
			r := c.req()
			w := &memoryWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				delete(r.Header, "X-Route")
				h.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

type memoryWriter struct {
	h    http.Header
	code int
}

func (w *memoryWriter) Header() http.Header         { return w.h }
func (w *memoryWriter) WriteHeader(code int)        { w.code = code }
func (w *memoryWriter) Write(p []byte) (int, error) { return len(p), nil }
