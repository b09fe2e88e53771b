// Command churnbench runs the certificate churn benchmark (see package
// portico.dev/portico/bench/churn): `churnbench run` drives the targets,
// and `churnbench load` is the handshake load generator it starts pinned
// to its own CPU.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"portico.dev/portico/bench/churn"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: churnbench run|load [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "load":
		err = load(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: run or load", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "churnbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfg := churn.Config{}
	fs.IntVar(&cfg.Hosts, "hosts", 1000, "branded hosts under churn")
	fs.IntVar(&cfg.ChangesPerSecond, "changes-per-second", 10, "changes per second, alternating certificates and routes")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "length of each target's churn run")
	fs.IntVar(&cfg.Workers, "workers", 2, "proxy workers (GOMAXPROCS, worker_processes)")
	fs.IntVar(&cfg.LoadWorkers, "load-workers", 16, "handshakes in flight")
	fs.StringVar(&cfg.LoadCPU, "load-cpu", "1", "CPU list the load generator is pinned to (empty: unpinned)")
	fs.IntVar(&cfg.MemoryHosts, "memory-hosts", 10000, "also measure memory with this many hosts (0: skip)")
	fs.StringVar(&cfg.Portico, "portico", "bin/portico", "Portico binary")
	targets := fs.String("targets", "portico,nginx", "targets, comma-separated")
	dir := fs.String("dir", "", "working directory (default: a new temporary one)")
	out := fs.String("out", "bench/results/churn.md", "report file")
	docs := fs.String("docs", "", "also write the report here (docs/benchmarks-churn.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Duration <= 0 || cfg.Duration > 10*time.Minute || cfg.ChangesPerSecond <= 0 || cfg.Hosts <= 0 {
		return fmt.Errorf("-duration must be in (0, 10m], -changes-per-second and -hosts positive")
	}
	cfg.Targets = strings.Split(*targets, ",")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Self = self
	if cfg.Portico, err = filepath.Abs(cfg.Portico); err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "portico-churn-"); err != nil {
			return err
		}
		defer os.RemoveAll(*dir)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	cfg.Dir = *dir
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := churn.Run(ctx, cfg)
	if err != nil {
		return err
	}
	command := "make bench-churn"
	for _, path := range []string{*out, *docs} {
		if path == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := churn.WriteMarkdown(f, res, command); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return churn.WriteMarkdown(os.Stdout, res, command)
}

func load(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var cfg churn.LoadConfig
	fs.StringVar(&cfg.Addr, "addr", "", "loopback address to dial")
	fs.IntVar(&cfg.Hosts, "hosts", 0, "number of hosts")
	fs.IntVar(&cfg.Workers, "workers", 16, "handshakes in flight")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "run length")
	fs.IntVar(&cfg.MaxHandshakes, "max", 5_000_000, "upper bound on handshakes")
	caFile := fs.String("ca", "", "PEM file of the trusted authority")
	out := fs.String("out", "", "JSON result file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	cfg.Roots = x509.NewCertPool()
	if !cfg.Roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s holds no certificate", *caFile)
	}
	res, err := churn.RunLoad(ctx, cfg)
	if err != nil {
		return err
	}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, data, 0o600)
}
