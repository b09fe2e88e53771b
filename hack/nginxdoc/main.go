// Command nginxdoc writes docs/ingress-nginx.md from Portico's ingress-nginx
// annotation table: `make docs-ingress-nginx`, or go generate ./snapshot.
package main

import (
	"bytes"
	"fmt"
	"os"

	"portico.dev/portico/snapshot"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nginxdoc OUTPUT.md")
		os.Exit(2)
	}
	var buf bytes.Buffer
	if err := snapshot.WriteNginxDoc(&buf); err != nil {
		fmt.Fprintf(os.Stderr, "nginxdoc: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "nginxdoc: %v\n", err)
		os.Exit(1)
	}
}
