package upstream

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"200m", 200 * time.Millisecond, true},
		{"1S", time.Second, true},
		{"3M", 3 * time.Minute, true},
		{"2H", 2 * time.Hour, true},
		{"5u", 5 * time.Microsecond, true},
		{"7n", 7, true},
		{"0m", 0, true},
		{"99999999H", maxGRPCTimeout, true},
		{"", 0, false},
		{"m", 0, false},
		{"100", 0, false},
		{"123456789S", 0, false}, // nine digits
		{"-1S", 0, false},
		{"1.5S", 0, false},
		{"10s", 0, false},
		{" 1S", 0, false},
	}
	for _, tt := range tests {
		got, ok := grpcTimeout(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("grpcTimeout(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":              true,
		"application/grpc+proto":        true,
		"application/grpc;charset=utf8": true,
		"application/grpc-web":          false,
		"application/grpc-web+proto":    false,
		"application/grpcx":             false,
		"text/plain":                    false,
		"":                              false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/s/m", nil)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		if got := IsGRPC(r); got != want {
			t.Errorf("IsGRPC(Content-Type %q) = %v, want %v", ct, got, want)
		}
	}
}

func TestWriteGRPCError(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("Content-Length", "12")
	WriteGRPCError(w, http.StatusServiceUnavailable, "backend ä/b:80 at 100%")
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("status %d body %q, want 200 and no body", w.Code, w.Body)
	}
	h := w.Header()
	if h.Get("Content-Type") != "application/grpc" || h.Get("Grpc-Status") != "14" || h.Get("Content-Length") != "" ||
		h.Get("Grpc-Message") != "503 Service Unavailable: backend %C3%A4/b:80 at 100%25" {
		t.Errorf("headers %v", h)
	}
}
