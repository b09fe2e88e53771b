package upstream

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFreshDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	const timeout = 16 * time.Second
	for _, tc := range []struct {
		left time.Duration
		zero bool
		want bool
	}{
		{zero: true, want: false},
		{left: timeout, want: true},
		{left: timeout - timeout/16, want: true},
		{left: timeout - timeout/16 - 1, want: false},
		{left: timeout + 1, want: false}, // armed for a longer timeout
		{left: -time.Second, want: false},
	} {
		d := now.Add(tc.left)
		if tc.zero {
			d = time.Time{}
		}
		if got := fresh(d, now, timeout); got != tc.want {
			t.Errorf("fresh(now%+v, %v) = %v, want %v", tc.left, timeout, got, tc.want)
		}
	}
}

func TestInMemory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   io.Reader
		length int64
		want   bool
	}{
		{"bytes reader, whole", bytes.NewReader([]byte("hello")), 5, true},
		{"strings reader, whole", strings.NewReader("hello"), 5, true},
		{"shorter than declared", strings.NewReader("hell"), 5, false},
		{"unknown length", strings.NewReader("hello"), -1, false},
		{"stream", io.MultiReader(strings.NewReader("hello")), 5, false},
	} {
		if got := inMemory(tc.body, tc.length); got != tc.want {
			t.Errorf("%s: inMemory = %v, want %v", tc.name, got, tc.want)
		}
	}
}
