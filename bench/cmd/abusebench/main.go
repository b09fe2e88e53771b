// Command abusebench measures a normal load through Portico and nginx while
// each is under a cheap attack (HTTP/2 rapid reset, slow uploads, idle
// connections), and writes a Markdown table of the load's throughput and
// latency, the proxy's memory and its backend connects. bench/abuse.sh
// (make bench-abuse) runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"portico.dev/portico/bench/abuse"
	"portico.dev/portico/bench/loadbench"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		slog.Error("abuse benchmark failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	d := abuse.DefaultSettings()
	fs := flag.NewFlagSet("abusebench", flag.ContinueOnError)
	var (
		targets     = fs.String("targets", "portico,nginx", "comma-separated targets (see bench/loadbench)")
		attacks     = fs.String("attacks", "none,rapid-reset,slow-body,idle", "comma-separated attacks")
		duration    = fs.Duration("duration", 10*time.Second, "measured normal load per run")
		ramp        = fs.Duration("ramp", 3*time.Second, "attack time before the normal load starts")
		connections = fs.Int("connections", 16, "wrk connections of the normal load")
		threads     = fs.Int("threads", 2, "wrk threads of the normal load")
		workers     = fs.Int("workers", 2, "workers or threads of every proxy and of the backend")
		wrkCPU      = fs.String("wrk-cpu", "", "CPU list wrk is pinned to with taskset; empty leaves wrk unpinned")
		portico     = fs.String("portico", "bin/portico", "Portico binary")
		out         = fs.String("out", "bench/results/abuse.md", "also write the report here; empty writes only to stdout")
		command     = fs.String("command", "", "command line to print in the report (default: this invocation)")
		verbose     = fs.Bool("v", false, "log progress of every run")
	)
	fs.IntVar(&d.ResetConns, "reset-conns", d.ResetConns, "rapid reset: HTTP/2 connections")
	fs.IntVar(&d.ResetBatch, "reset-batch", d.ResetBatch, "rapid reset: streams opened and reset per batch")
	fs.DurationVar(&d.ResetPause, "reset-pause", d.ResetPause, "rapid reset: pause between batches")
	fs.Int64Var(&d.ResetMaxStreams, "reset-max-streams", d.ResetMaxStreams, "rapid reset: streams in total, at most")
	fs.IntVar(&d.SlowConns, "slow-conns", d.SlowConns, "slow bodies: connections")
	fs.DurationVar(&d.SlowInterval, "slow-interval", d.SlowInterval, "slow bodies: time between body bytes")
	fs.IntVar(&d.IdleConns, "idle-conns", d.IdleConns, "idle: keep-alive connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if !*verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	work, err := os.MkdirTemp("", "portico-abuse-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	load := loadbench.Config{
		Duration: *duration, Connections: *connections, Threads: *threads, Workers: *workers,
		WrkCPU: *wrkCPU, Host: d.Host, BodySize: 100, WorkDir: work, Logger: log,
		Programs: map[string]string{"portico": *portico},
		// Validate wants these; the abuse benchmark has no rounds.
		Rounds: 1, Targets: loadbench.Targets(),
	}
	if err := load.Validate(); err != nil {
		return err
	}
	cfg := abuse.Config{Load: load, Settings: d, Ramp: *ramp, Logger: log}
	if cfg.Targets, err = loadbench.SelectTargets(loadbench.Targets(), splitList(*targets)); err != nil {
		return err
	}
	for _, name := range splitList(*attacks) {
		found := false
		for _, a := range abuse.Attacks() {
			if a.Name == name {
				cfg.Attacks, found = append(cfg.Attacks, a), true
			}
		}
		if !found {
			return fmt.Errorf("unknown attack %q", name)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	results, err := abuse.Execute(ctx, cfg)
	cmdline := *command
	if cmdline == "" {
		cmdline = strings.Join(append([]string{"abusebench"}, args...), " ")
	}
	var notes []string
	if load1, lerr := os.ReadFile("/proc/loadavg"); lerr == nil {
		notes = append(notes, fmt.Sprintf("load average when the run ended: %s", strings.Join(strings.Fields(string(load1))[:3], " ")))
	}
	report := abuse.Report{
		Date: start, Command: cmdline, Results: results, Notes: notes, Finished: err == nil,
		Machine: fmt.Sprintf("%d CPUs, %s/%s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH),
		Config:  cfg,
	}
	if werr := abuse.WriteMarkdown(stdout, report); werr != nil {
		return werr
	}
	if *out != "" {
		if merr := os.MkdirAll(filepath.Dir(*out), 0o755); merr != nil {
			return merr
		}
		f, ferr := os.Create(*out)
		if ferr != nil {
			return ferr
		}
		if werr := abuse.WriteMarkdown(f, report); werr != nil {
			f.Close()
			return werr
		}
		if cerr := f.Close(); cerr != nil {
			return cerr
		}
	}
	return err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
