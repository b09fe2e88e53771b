// Command portico is the Portico ingress gateway: one process that
// terminates TLS, routes by host and path, and sends whatever matches no
// route to the legacy fallback.
//
// Data flows one way: a source (a folder of Kubernetes manifests) hands its
// objects to the snapshot builder; the compiled snapshot is swapped in
// atomically; the TLS tier and the routing tier read it on every handshake
// and request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(runCheck(os.Args[2:], os.Stdout, os.Stderr))
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "portico: %v\n", err)
		os.Exit(2)
	}
	logger := newLogger(cfg, os.Stderr)
	// client-go logs through klog, a process-wide logger: send it to the
	// same structured log, once, here.
	klog.SetSlogLogger(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	proc, err := newProcess(cfg, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "portico: %v\n", err)
		os.Exit(1)
	}
	if err := proc.run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "portico: %v\n", err)
		os.Exit(1)
	}
}
