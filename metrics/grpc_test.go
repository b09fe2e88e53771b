package metrics

import "testing"

func TestGRPCStatusLabel(t *testing.T) {
	for v, want := range map[string]string{
		"0": "OK", "4": "DEADLINE_EXCEEDED", "9": "FAILED_PRECONDITION", "10": "ABORTED", "14": "UNAVAILABLE", "16": "UNAUTHENTICATED",
		"17": "OTHER", "-1": "OTHER", "007": "OTHER", "1x": "OTHER", " 0": "OTHER", "": "NONE",
	} {
		if got := GRPCStatusLabel(v); got != want {
			t.Errorf("GRPCStatusLabel(%q) = %q, want %q", v, got, want)
		}
	}
}
