package loadbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is one benchmark invocation.
type Config struct {
	Targets     []Target
	Rounds      int
	Duration    time.Duration
	Warmup      time.Duration
	Connections int
	Threads     int
	// Workers is the worker process/thread count of every proxy and of the
	// backend.
	Workers int
	// WrkCPU is the CPU list wrk is pinned to with taskset; empty runs wrk
	// unpinned.
	WrkCPU string
	Host   string
	// ExtraHosts grows every routing table by this many host-N.example.test
	// rules that receive no load.
	ExtraHosts int
	// BodySize is the backend's response body size in bytes.
	BodySize int
	// Programs maps program names ("wrk", "taskset", "nginx", "portico") to
	// paths; programs not listed are looked up in PATH.
	Programs map[string]string
	// WorkDir holds configs, certificates and logs; the caller removes it.
	WorkDir string
	Logger  *slog.Logger
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	switch {
	case len(c.Targets) == 0:
		return errors.New("no targets selected")
	case c.Rounds < 1:
		return fmt.Errorf("rounds must be at least 1, got %d", c.Rounds)
	case c.Duration < time.Second:
		return fmt.Errorf("duration must be at least 1s, got %s", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("warm-up must not be negative, got %s", c.Warmup)
	case c.Threads < 1 || c.Connections < c.Threads:
		return fmt.Errorf("need at least one thread and one connection per thread, got %d threads and %d connections", c.Threads, c.Connections)
	case c.Workers < 1:
		return fmt.Errorf("workers must be at least 1, got %d", c.Workers)
	case c.BodySize < 1 || c.BodySize > 1<<20:
		return fmt.Errorf("body size must be between 1 and 1048576 bytes, got %d", c.BodySize)
	case c.ExtraHosts < 0:
		return fmt.Errorf("extra hosts must not be negative, got %d", c.ExtraHosts)
	case !validHostName(c.Host):
		return fmt.Errorf("invalid host name %q", c.Host)
	case c.WorkDir == "":
		return errors.New("no work directory")
	}
	return nil
}

// validHostName accepts lower-case DNS names. Host names end up in proxy
// configs verbatim, so anything else is refused.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Run is one measured wrk run of one target.
type Run struct {
	Target string
	Round  int
	Result WrkResult
	// Memory is the peak memory of the target's proxy processes during the
	// measured run; zero when there is no proxy.
	Memory Memory
	Err    error
}

// Execute runs every round and returns all runs. A target that fails to
// start or to run is recorded as a failed run and the benchmark goes on; a
// failing backend or the end of ctx stops it, returning the runs so far
// with the error.
func Execute(ctx context.Context, cfg Config) ([]Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	env, backend, err := prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer backend.Stop()

	scriptPath := filepath.Join(cfg.WorkDir, "loadbench.lua")
	if err := os.WriteFile(scriptPath, []byte(wrkScript), 0o644); err != nil {
		return nil, err
	}

	var runs []Run
	for round := 1; round <= cfg.Rounds; round++ {
		for _, t := range cfg.Targets {
			if err := ctx.Err(); err != nil {
				return runs, err
			}
			if exited, werr := backend.Exited(); exited {
				return runs, fmt.Errorf("backend exited (%v): %s", werr, backend.LogTail())
			}
			log.Info("run", "round", round, "of", cfg.Rounds, "target", t.Name)
			dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("round%d-%s", round, t.Name))
			r := runTarget(ctx, cfg, env, t, dir, scriptPath)
			r.Round = round
			if r.Err != nil {
				log.Warn("run failed", "round", round, "target", t.Name, "err", r.Err)
			} else {
				log.Info("run done", "round", round, "target", t.Name,
					"rps", fmt.Sprintf("%.0f", r.Result.RPS), "p50", r.Result.P50, "p99", r.Result.P99,
					"rss_mib", fmt.Sprintf("%.1f", float64(r.Memory.RSS)/(1<<20)),
					"pss_mib", fmt.Sprintf("%.1f", float64(r.Memory.PSS)/(1<<20)), "errors", r.Result.Errors)
			}
			runs = append(runs, r)
		}
	}
	// An interrupted last run is recorded as failed; the caller must still
	// learn that the benchmark did not complete.
	return runs, ctx.Err()
}

// prepare writes the certificate and starts the shared backend.
func prepare(ctx context.Context, cfg Config) (*Env, *Process, error) {
	// Proxy workers drop root privileges and still need to reach their
	// temp directories below the work directory.
	if err := os.Chmod(cfg.WorkDir, 0o755); err != nil {
		return nil, nil, err
	}
	hosts := ExtraHostNames(cfg.ExtraHosts)
	cert, err := NewSelfSignedCertificate(append([]string{cfg.Host}, hosts...), time.Now())
	if err != nil {
		return nil, nil, err
	}
	env := &Env{
		Host:         cfg.Host,
		ExtraHosts:   hosts,
		Cert:         cert,
		CertFile:     filepath.Join(cfg.WorkDir, "tls.crt"),
		KeyFile:      filepath.Join(cfg.WorkDir, "tls.key"),
		Workers:      cfg.Workers,
		Body:         ResponseBody(cfg.BodySize),
		Programs:     cfg.Programs,
		ReadyTimeout: 60 * time.Second,
	}
	if err := os.WriteFile(env.CertFile, cert.CertPEM, 0o644); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(env.KeyFile, cert.KeyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	port, err := FreeLoopbackPort()
	if err != nil {
		return nil, nil, err
	}
	env.BackendAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	backend, err := StartTemplated(env, filepath.Join(cfg.WorkDir, "backend"), nginxServer, "backend.nginx.conf", env.BackendAddr, "")
	if err != nil {
		return nil, nil, fmt.Errorf("start backend: %w", err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, env.ReadyTimeout)
	defer cancel()
	if err := waitFor(readyCtx, []*Process{backend}, func(ctx context.Context) error {
		return probeTarget(ctx, env, "http", env.BackendAddr)
	}); err != nil {
		backend.Stop()
		return nil, nil, fmt.Errorf("backend: %w", err)
	}
	return env, backend, nil
}

// ResponseBody returns the backend's response body: n printable bytes.
func ResponseBody(n int) string {
	const pattern = "portico-bench-"
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(pattern)
	}
	return b.String()[:n]
}

// runTarget starts t, warms it up, measures it and stops it. Each run gets a
// fresh process so memory figures and connection pools do not carry over.
func runTarget(ctx context.Context, cfg Config, env *Env, t Target, dir, scriptPath string) Run {
	r := Run{Target: t.Name}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Err = err
		return r
	}
	in, err := t.Start(ctx, env, dir)
	if err != nil {
		r.Err = err
		return r
	}
	defer in.Stop()
	url := in.URL(t.Scheme, env.Host)
	if cfg.Warmup > 0 {
		if _, err := runWrk(ctx, cfg, scriptPath, url, cfg.Warmup); err != nil {
			r.Err = fmt.Errorf("warm-up: %w", err)
			return r
		}
	}
	var sampler *MemorySampler
	if len(in.Procs) > 0 {
		sampler = StartMemorySampler(in.Procs, 250*time.Millisecond)
	}
	res, err := runWrk(ctx, cfg, scriptPath, url, cfg.Duration)
	if sampler != nil {
		mem, serr := sampler.Stop()
		if serr != nil && err == nil {
			err = fmt.Errorf("measure memory: %w", serr)
		}
		r.Memory = mem
	}
	for _, p := range in.Procs {
		if exited, werr := p.Exited(); exited && err == nil {
			err = fmt.Errorf("%s exited during the run (%v): %s", p.Name, werr, p.LogTail())
		}
	}
	r.Result, r.Err = res, err
	return r
}

// runWrk runs one bounded wrk load and parses its output.
func runWrk(ctx context.Context, cfg Config, scriptPath, url string, d time.Duration) (WrkResult, error) {
	argv := WrkCommand(cfg, scriptPath, url, d)
	// wrk stops itself after d; the deadline only catches a hung wrk.
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return WrkResult{}, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	res, err := ParseWrkOutput(stdout.String())
	if err != nil {
		return WrkResult{}, fmt.Errorf("%w: %s", err, stdout.String())
	}
	if res.Requests == 0 {
		return res, fmt.Errorf("wrk completed no requests: %s", stdout.String())
	}
	return res, nil
}

// WrkCommand returns the wrk command line for one run, pinned with taskset
// when cfg.WrkCPU is set.
func WrkCommand(cfg Config, scriptPath, url string, d time.Duration) []string {
	secs := int64((d + time.Second - 1) / time.Second)
	var argv []string
	if cfg.WrkCPU != "" {
		argv = append(argv, program(cfg.Programs, "taskset"), "-c", cfg.WrkCPU)
	}
	return append(argv,
		program(cfg.Programs, "wrk"),
		"-t", strconv.Itoa(cfg.Threads),
		"-c", strconv.Itoa(cfg.Connections),
		"-d", strconv.FormatInt(secs, 10)+"s",
		"--timeout", "5s",
		"--latency",
		"-s", scriptPath,
		// Without a port, as a client of the standard HTTPS port sends it.
		"-H", "Host: "+cfg.Host,
		url,
	)
}

func program(programs map[string]string, name string) string {
	if p, ok := programs[name]; ok && p != "" {
		return p
	}
	return name
}
