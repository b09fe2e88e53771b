package routing

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"portico.dev/portico/metrics"
)

// logAccess writes the access log record of one request: who asked for
// what, the route that answered, the status and body size sent, and how
// long it took; for a gRPC call, also its grpc-status. uri is the request
// target as the client sent it.
func (h *Handler) logAccess(r *http.Request, uri string, route *Route, w http.ResponseWriter, code int, bytes int64, start time.Time) {
	routeName := ""
	if route != nil && route.Source.Kind != unmatchedKind {
		routeName = route.Source.String()
	}
	// One array for both shapes of the record, with or without gRPC's
	// status: no more work per request than a literal argument list.
	attrs := [11]slog.Attr{
		slog.String("remote", r.RemoteAddr),
		slog.String("proto", r.Proto),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("uri", uri),
		slog.Int("status", code),
	}
	n := 6
	if status, ok := grpcStatus(r, w); ok {
		attrs[n] = slog.String("grpc_status", metrics.GRPCStatusLabel(status))
		n++
	}
	attrs[n] = slog.Int64("bytes", bytes)
	attrs[n+1] = slog.Float64("duration", time.Since(start).Seconds())
	attrs[n+2] = slog.String("route", routeName)
	attrs[n+3] = slog.String("user_agent", r.UserAgent())
	h.cfg.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:n+4]...)
}

// countingWriter counts the response body bytes written for the access log.
// Unwrap lets http.ResponseController reach the server's writer for
// Hijack (WebSocket) and deadlines; Flush keeps streaming responses
// flowing.
type countingWriter struct {
	http.ResponseWriter
	bytes int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.bytes += int64(n)
	return n, err
}

func (c *countingWriter) Flush() { _ = http.NewResponseController(c.ResponseWriter).Flush() }

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
