package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile from git:
//
//	-ldflags "-X main.version=v0.4.0-3-gabc1234 -X main.commit=abc1234..."
//
// A plain go build leaves "dev", and the commit then comes from the VCS
// stamp Go records when it can.
var (
	version = "dev"
	commit  = ""
)

// versionOut is where --version prints; a variable so a test can read it.
var versionOut io.Writer = os.Stdout

// registerVersionFlag adds --version. It is registered after the
// environment is applied, so it has no PORTICO_VERSION variable: an
// environment that happened to set one would otherwise make every start
// print a line and exit.
func registerVersionFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("version", false, "print the version, the git commit and the Go version, and exit")
}

// printVersion writes one line: "portico <version> (commit <c>, <go version>, <os>/<arch>)".
func printVersion(w io.Writer) {
	c := commit
	if c == "" {
		c = "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	fmt.Fprintf(w, "portico %s (commit %s, %s, %s/%s)\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
