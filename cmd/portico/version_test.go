package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	versionOut = &out
	t.Cleanup(func() { versionOut = os.Stdout })
	version, commit = "v1.2.3", "0123abc"
	t.Cleanup(func() { version, commit = "dev", "" })

	_, err := parseConfig([]string{"--version"}, func(string) string { return "" }, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseConfig(--version) = %v, want flag.ErrHelp so main exits 0", err)
	}
	want := "portico v1.2.3 (commit 0123abc, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}

	// No PORTICO_VERSION: a stray variable must not turn a start into an exit.
	out.Reset()
	env := map[string]string{"PORTICO_VERSION": "true"}
	if _, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatalf("with PORTICO_VERSION set: %v", err)
	}
	if strings.Contains(out.String(), "portico") {
		t.Errorf("PORTICO_VERSION printed the version: %q", out.String())
	}
}
