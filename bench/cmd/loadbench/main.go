// Command loadbench runs Portico's load benchmark: it sends the same wrk load
// to Portico, straight to the backend, and to peer proxies, and writes a
// Markdown report of throughput, latency and memory.
//
// Settings come from flags, whose defaults come from the BENCH_* environment
// variables that bench/run.sh documents.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"portico.dev/portico/bench/loadbench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == loadbench.ServeGoTLSCommand {
		if err := loadbench.ServeGoTLS(os.Args[2:]); err != nil {
			slog.Error("direct-go-tls server failed", "err", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == loadbench.ServeFastHTTPProxyCommand {
		if err := loadbench.ServeFastHTTPProxy(os.Args[2:]); err != nil {
			slog.Error("go-fasthttp proxy failed", "err", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == loadbench.ServeNetHTTPProxyCommand {
		// It serves until its listener fails.
		slog.Error("go-nethttp proxy failed", "err", loadbench.ServeNetHTTPProxy(os.Args[2:]))
		os.Exit(1)
	}
	if len(os.Args) > 1 && os.Args[1] == loadbench.ServeEpollProxyCommand {
		// It serves until its listener fails.
		slog.Error("go-epoll proxy failed", "err", loadbench.ServeEpollProxy(os.Args[2:]))
		os.Exit(1)
	}
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		slog.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	var (
		targets     = fs.String("targets", getenv("BENCH_TARGETS"), "comma-separated targets to run (default: all); env BENCH_TARGETS")
		workloads   = fs.String("workload", getenv("BENCH_WORKLOADS"), "comma-separated workloads to run (default: all); env BENCH_WORKLOADS")
		docs        = fs.String("docs", docsDefault(getenv), "also write the report with its introduction and profile notes here (docs/benchmarks.md); env BENCH_DOCS=1")
		notesPath   = fs.String("profile-notes", "bench/profile-notes.md", "notes copied into the \"Where the time goes\" section of -docs, if the file exists")
		h2Clients   = fs.Int("h2-clients", 16, "h2load connections in the h2 workload")
		h2Streams   = fs.Int("h2-streams", 10, "h2load concurrent streams per connection in the h2 workload")
		duration    = fs.String("duration", envOr(getenv, "BENCH_DURATION", "10s"), "measured duration of each run (10s or 10); env BENCH_DURATION")
		warmup      = fs.String("warmup", envOr(getenv, "BENCH_WARMUP", "2s"), "unrecorded warm-up before each run; env BENCH_WARMUP")
		rounds      = fs.String("rounds", envOr(getenv, "BENCH_ROUNDS", "3"), "rounds; each runs every target once; env BENCH_ROUNDS")
		extraHosts  = fs.String("extra-hosts", envOr(getenv, "BENCH_HOSTS", "0"), "further host-N.example.test routes in every route table; env BENCH_HOSTS")
		portico     = fs.String("portico", envOr(getenv, "BENCH_PORTICO", "bin/portico"), "Portico binary; env BENCH_PORTICO")
		out         = fs.String("out", "bench/results/latest.md", "also write the report here; empty writes only to stdout")
		command     = fs.String("command", "", "command line to print in the report (default: this invocation)")
		connections = fs.Int("connections", 64, "wrk keep-alive connections")
		threads     = fs.Int("threads", 2, "wrk threads")
		workers     = fs.Int("workers", 2, "workers or threads of every proxy and of the backend")
		bodySize    = fs.Int("body-size", 100, "backend response body size in bytes")
		wrkCPU      = fs.String("wrk-cpu", "1", "CPU list wrk is pinned to with taskset; empty leaves wrk unpinned")
		host        = fs.String("host", "bench.example.test", "virtual host the load is sent to")
		verbose     = fs.Bool("v", false, "log progress of every run")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if !*verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := loadbench.Config{
		Connections: *connections,
		Threads:     *threads,
		Workers:     *workers,
		BodySize:    *bodySize,
		WrkCPU:      *wrkCPU,
		Host:        *host,
		H2Clients:   *h2Clients,
		H2Streams:   *h2Streams,
		Logger:      log,
		Programs:    map[string]string{"portico": *portico},
	}
	var err error
	if cfg.Duration, err = parseSeconds(*duration); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	if cfg.Warmup, err = parseSeconds(*warmup); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if cfg.Rounds, err = strconv.Atoi(*rounds); err != nil {
		return fmt.Errorf("rounds: %w", err)
	}
	if cfg.ExtraHosts, err = strconv.Atoi(*extraHosts); err != nil {
		return fmt.Errorf("extra hosts: %w", err)
	}

	var notes []string
	if cfg.Workloads, err = loadbench.SelectWorkloads(loadbench.Workloads(), splitList(*workloads)); err != nil {
		return err
	}
	names := splitList(*targets)
	cfg.Targets, err = loadbench.SelectTargets(loadbench.Targets(), names)
	if err != nil {
		return err
	}
	if !isExecutable(*portico) {
		if len(names) > 0 && contains(names, "portico") {
			return fmt.Errorf("target portico needs an executable Portico binary at %s", *portico)
		}
		var kept []loadbench.Target
		for _, t := range cfg.Targets {
			if t.Name != "portico" {
				kept = append(kept, t)
			}
		}
		if len(kept) != len(cfg.Targets) {
			note := fmt.Sprintf("portico left out: no executable Portico binary at %s", *portico)
			if *portico == "" {
				note = "portico left out: ./cmd/portico does not build"
			}
			log.Warn(note)
			notes = append(notes, note)
		}
		cfg.Targets = kept
	}
	if cfg.WrkCPU != "" && runtime.NumCPU() < 2 {
		note := "wrk unpinned: the machine has a single CPU"
		log.Warn(note)
		notes = append(notes, note)
		cfg.WrkCPU = ""
	}
	progs := loadbench.RequiredProgramsFor(cfg.Targets, cfg.Workloads)
	for _, prog := range progs {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("%s is not installed (bench/run.sh installs it): %w", prog, err)
		}
	}
	if cfg.WrkCPU != "" {
		if _, err := exec.LookPath("taskset"); err != nil {
			return fmt.Errorf("taskset is not installed: %w", err)
		}
	}

	workDir, err := os.MkdirTemp("", "portico-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	cfg.WorkDir = workDir

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	machine := loadbench.CollectMachineInfo(time.Now(), cfg.Programs, progs)
	runs, err := loadbench.Execute(ctx, cfg)
	if err != nil && len(runs) == 0 {
		return err
	}
	if err != nil {
		notes = append(notes, "incomplete, the benchmark stopped early: "+err.Error())
	}

	if *command == "" {
		*command = strings.Join(os.Args, " ")
	}
	report := loadbench.Report{
		Env:       machine,
		Command:   *command,
		Settings:  loadbench.SettingsOf(cfg),
		Targets:   cfg.Targets,
		Workloads: cfg.Workloads,
		Runs:      runs,
		Notes:     notes,
	}
	var buf bytes.Buffer
	if werr := loadbench.WriteMarkdown(&buf, report); werr != nil {
		return werr
	}
	if _, werr := stdout.Write(buf.Bytes()); werr != nil {
		return werr
	}
	// An incomplete report must not replace the last complete one.
	if *out != "" && err == nil {
		if werr := os.MkdirAll(filepath.Dir(*out), 0o755); werr != nil {
			return werr
		}
		if werr := os.WriteFile(*out, buf.Bytes(), 0o644); werr != nil {
			return werr
		}
	}
	if *docs != "" && err == nil {
		if werr := writeDocs(*docs, *notesPath, report); werr != nil {
			return werr
		}
		fmt.Fprintf(os.Stderr, "loadbench: wrote %s\n", *docs)
	}
	return err
}

// docsDefault is docs/benchmarks.md when BENCH_DOCS is set to a true value.
func docsDefault(getenv func(string) string) string {
	switch strings.ToLower(strings.TrimSpace(getenv("BENCH_DOCS"))) {
	case "1", "true", "yes", "on":
		return "docs/benchmarks.md"
	}
	return ""
}

// writeDocs writes the documentation page, with the profile notes if the
// notes file exists.
func writeDocs(path, notesPath string, report loadbench.Report) error {
	var notes []byte
	if notesPath != "" {
		b, err := os.ReadFile(notesPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("profile notes: %w", err)
		}
		notes = b
	}
	var buf bytes.Buffer
	if err := loadbench.WriteDocs(&buf, report, string(notes)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := strings.TrimSpace(getenv(key)); v != "" {
		return v
	}
	return def
}

// parseSeconds accepts a Go duration ("10s", "1m") or a bare number of
// seconds ("10"), the form wrk users tend to type.
func parseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isExecutable(path string) bool {
	if path == "" {
		return false
	}
	if !strings.Contains(path, "/") {
		_, err := exec.LookPath(path)
		return err == nil
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
