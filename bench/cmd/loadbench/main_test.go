package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSeconds(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"10", 10 * time.Second, false},
		{"10s", 10 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"ten", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSeconds(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSeconds(%q) = %s, %v", tt.in, got, err)
		}
	}
}

func TestSplitList(t *testing.T) {
	tests := map[string][]string{
		"":                     nil,
		"portico":              {"portico"},
		"portico,nginx":        {"portico", "nginx"},
		" portico , nginx ,, ": {"portico", "nginx"},
		"direct nginx-2tier":   {"direct", "nginx-2tier"},
	}
	for in, want := range tests {
		if got := splitList(in); !slices.Equal(got, want) {
			t.Errorf("splitList(%q) = %q, want %q", in, got, want)
		}
	}
}

// Bad settings fail before anything is started.
func TestRunRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"unknown target", map[string]string{"BENCH_TARGETS": "envoy"}, nil, "unknown targets"},
		{"bad duration", map[string]string{"BENCH_DURATION": "soon"}, nil, "duration"},
		{"bad rounds", map[string]string{"BENCH_ROUNDS": "x"}, nil, "rounds"},
		{"bad hosts", map[string]string{"BENCH_HOSTS": "many"}, nil, "extra hosts"},
		{"portico requested without binary", map[string]string{"BENCH_TARGETS": "portico"}, []string{"-portico", "/nonexistent/portico"}, "needs an executable Portico binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			err := run(tt.args, getenv, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
