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
	// BodySize is the backend's small response body size in bytes.
	BodySize int
	// Workloads run one after the other, every one over all rounds and
	// targets; empty runs the small workload only.
	Workloads []Workload
	// H2Clients and H2Streams are h2load's connections and concurrent
	// streams per connection in the h2 workload.
	H2Clients int
	H2Streams int
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
	for _, w := range c.Workloads {
		if w.Tool == ToolH2load && (c.H2Clients < 1 || c.H2Streams < 1) {
			return fmt.Errorf("workload %s needs at least one h2load client and stream, got %d and %d", w.Name, c.H2Clients, c.H2Streams)
		}
	}
	return nil
}

// workloads returns the configured workloads, or the small one.
func (c *Config) workloads() []Workload {
	if len(c.Workloads) == 0 {
		return Workloads()[:1]
	}
	return c.Workloads
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

// Run is one measured load run of one target under one workload.
type Run struct {
	Workload string
	Target   string
	Round    int
	Result   WrkResult
	// Skipped says why the target cannot take the workload; a skipped run
	// is neither a success nor a failure.
	Skipped string
	// Memory is the peak memory of the target's proxy processes during the
	// measured run; zero when there is no proxy.
	Memory Memory
	// CPU is the user + system CPU time of the target's processes (every
	// tier, master and workers; the backend for direct) during the
	// measured period, without the warm-up; zero when not measured.
	CPU time.Duration
	Err error
}

// CPUPerRequest is CPU divided by the requests of the measured period, in
// microseconds; 0 when not measured.
func (r Run) CPUPerRequest() float64 { return cpuPerRequest(r.CPU, r.Result.Requests) }

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
	for _, w := range cfg.workloads() {
		wenv, err := workloadEnv(env, cfg, w)
		if err != nil {
			return runs, err
		}
		for round := 1; round <= cfg.Rounds; round++ {
			for _, t := range cfg.Targets {
				if err := ctx.Err(); err != nil {
					return runs, err
				}
				if exited, werr := backend.Exited(); exited {
					return runs, fmt.Errorf("backend exited (%v): %s", werr, backend.LogTail())
				}
				if reason := SkipReason(w, t); reason != "" {
					runs = append(runs, Run{Workload: w.Name, Target: t.Name, Round: round, Skipped: reason})
					continue
				}
				log.Info("run", "workload", w.Name, "round", round, "of", cfg.Rounds, "target", t.Name)
				dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("%s-round%d-%s", w.Name, round, t.Name))
				if len(cfg.Workloads) == 0 {
					dir = filepath.Join(cfg.WorkDir, fmt.Sprintf("round%d-%s", round, t.Name))
				}
				r := runTarget(ctx, cfg, wenv, w, t, dir, scriptPath)
				r.Round = round
				r.Workload = w.Name
				if r.Err != nil {
					log.Warn("run failed", "workload", w.Name, "round", round, "target", t.Name, "err", r.Err)
				} else {
					log.Info("run done", "workload", w.Name, "round", round, "target", t.Name,
						"rps", fmt.Sprintf("%.0f", r.Result.RPS), "p50", r.Result.P50, "p99", r.Result.P99,
						"rss_mib", fmt.Sprintf("%.1f", float64(r.Memory.RSS)/(1<<20)),
						"pss_mib", fmt.Sprintf("%.1f", float64(r.Memory.PSS)/(1<<20)),
						"cpu_s", fmt.Sprintf("%.2f", r.CPU.Seconds()), "cpu_us_per_req", fmt.Sprintf("%.1f", r.CPUPerRequest()),
						"errors", r.Result.Errors)
				}
				runs = append(runs, r)
			}
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
	// One certificate for every workload: the virtual host plus a wildcard
	// for the host-N.example.test route-table hosts, so its size (and the
	// handshake) does not grow with the route table.
	cert, err := NewSelfSignedCertificate(certNames(cfg.Host), time.Now())
	if err != nil {
		return nil, nil, err
	}
	env := &Env{
		Host:          cfg.Host,
		ExtraHosts:    ExtraHostNames(cfg.ExtraHosts),
		Cert:          cert,
		CertFile:      filepath.Join(cfg.WorkDir, "tls.crt"),
		KeyFile:       filepath.Join(cfg.WorkDir, "tls.key"),
		CertKeyFile:   filepath.Join(cfg.WorkDir, "tls.pem"),
		LargeBodyFile: filepath.Join(cfg.WorkDir, "body-16k.txt"),
		Workers:       cfg.Workers,
		Body:          ResponseBody(cfg.BodySize),
		Path:          "/",
		Programs:      cfg.Programs,
		ReadyTimeout:  60 * time.Second,
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{env.CertFile, cert.CertPEM, 0o644},
		{env.KeyFile, cert.KeyPEM, 0o600},
		// HAProxy wants certificate and key in one file.
		{env.CertKeyFile, append(append([]byte{}, cert.CertPEM...), cert.KeyPEM...), 0o600},
		// Workers that drop root privileges read it.
		{env.LargeBodyFile, []byte(ResponseBody(LargeBodySize)), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return nil, nil, err
		}
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
	env.Backend = backend
	return env, backend, nil
}

// certNames are the DNS names of the benchmark certificate.
func certNames(host string) []string {
	names := []string{host}
	if host != "example.test" {
		names = append(names, "*.example.test")
	}
	return names
}

// workloadEnv returns env adjusted for workload w: its route-table hosts
// (also written to a hosts file, one per line, for servers that read host
// lists from files), its request path and its expected response body.
func workloadEnv(base *Env, cfg Config, w Workload) (*Env, error) {
	env := *base
	env.ExtraHosts = ExtraHostNames(w.extraHosts(cfg))
	env.Path = w.Path
	env.ExpectBody = ""
	if w.Path == LargeBodyPath {
		env.ExpectBody = ResponseBody(LargeBodySize)
	}
	env.HostsFile = filepath.Join(cfg.WorkDir, "hosts-"+w.Name+".lst")
	var b strings.Builder
	for _, h := range append([]string{env.Host}, env.ExtraHosts...) {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(env.HostsFile, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return &env, nil
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

// runTarget starts t, warms it up, measures it under workload w and stops
// it. Each run gets a fresh process so memory figures and connection pools
// do not carry over.
func runTarget(ctx context.Context, cfg Config, env *Env, w Workload, t Target, dir, scriptPath string) Run {
	r := Run{Workload: w.Name, Target: t.Name}
	in, err := t.Start(ctx, env, dir)
	if err != nil {
		r.Err = err
		return r
	}
	defer in.Stop()
	url := strings.TrimSuffix(in.URL(t.Scheme, env.Host), "/") + w.Path
	if w.Tool != ToolH2load && cfg.Warmup > 0 {
		if _, err := runWrkFor(ctx, cfg, w, scriptPath, url, cfg.Warmup); err != nil {
			r.Err = fmt.Errorf("warm-up: %w", err)
			return r
		}
	}
	var sampler *MemorySampler
	if len(in.Procs) > 0 {
		sampler = StartMemorySampler(in.Procs, 250*time.Millisecond)
	}
	// CPU time is read when the measured period starts and when it ends.
	cpuProcs := in.cpuProcs()
	var (
		cpuStart    time.Duration
		cpuStarted  bool
		cpuStartErr error
	)
	startCPU := func() {
		if len(cpuProcs) > 0 {
			cpuStart, cpuStartErr = CPUTime(cpuProcs)
			cpuStarted = cpuStartErr == nil
		}
	}
	var res WrkResult
	if w.Tool == ToolH2load {
		// h2load warms up itself (--warm-up-time) on the same connections;
		// it calls startCPU when its warm-up ends.
		res, err = runH2load(ctx, cfg, url, loopbackConnectTo(in.Addr), filepath.Join(dir, "h2load.log"), startCPU)
	} else {
		startCPU()
		res, err = runWrkFor(ctx, cfg, w, scriptPath, url, cfg.Duration)
	}
	for _, p := range in.Procs {
		if exited, werr := p.Exited(); exited && err == nil {
			err = fmt.Errorf("%s exited during the run (%v): %s", p.Name, werr, p.LogTail())
		}
	}
	if len(cpuProcs) > 0 && err == nil {
		end, cerr := CPUTime(cpuProcs)
		switch {
		case cpuStartErr != nil:
			err = fmt.Errorf("measure CPU: %w", cpuStartErr)
		case cerr != nil:
			err = fmt.Errorf("measure CPU: %w", cerr)
		case !cpuStarted:
			err = errors.New("measure CPU: the measured period did not start")
		case end < cpuStart:
			err = fmt.Errorf("measure CPU: CPU time went back from %s to %s (a process left the tree)", cpuStart, end)
		default:
			r.CPU = end - cpuStart
		}
	}
	if sampler != nil {
		mem, serr := sampler.Stop()
		if serr != nil && err == nil {
			err = fmt.Errorf("measure memory: %w", serr)
		}
		r.Memory = mem
	}
	r.Result, r.Err = res, err
	return r
}

// runWrk runs one bounded wrk load and parses its output.
func runWrk(ctx context.Context, cfg Config, scriptPath, url string, d time.Duration) (WrkResult, error) {
	return runWrkFor(ctx, cfg, Workloads()[0], scriptPath, url, d)
}

// runWrkFor runs one bounded wrk load of workload w.
func runWrkFor(ctx context.Context, cfg Config, w Workload, scriptPath, url string, d time.Duration) (WrkResult, error) {
	res, err := RunWrk(ctx, wrkCommand(cfg, scriptPath, url, d, w.Close), d)
	if err == nil && res.Requests == 0 {
		return res, errors.New("wrk completed no requests")
	}
	return res, err
}

// RunWrk runs a wrk command line (WrkCommand) that loads for d and parses
// its report.
func RunWrk(ctx context.Context, argv []string, d time.Duration) (WrkResult, error) {
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
	return res, nil
}

// WrkCommand returns the wrk command line for one run, pinned with taskset
// when cfg.WrkCPU is set.
func WrkCommand(cfg Config, scriptPath, url string, d time.Duration) []string {
	return wrkCommand(cfg, scriptPath, url, d, false)
}

// wrkCommand is WrkCommand, with "Connection: close" on every request when
// closeConns is set: wrk then opens a new connection (and, over TLS,
// resumes its session in a new handshake) for every request.
func wrkCommand(cfg Config, scriptPath, url string, d time.Duration, closeConns bool) []string {
	secs := int64((d + time.Second - 1) / time.Second)
	var argv []string
	if cfg.WrkCPU != "" {
		argv = append(argv, program(cfg.Programs, "taskset"), "-c", cfg.WrkCPU)
	}
	argv = append(argv,
		program(cfg.Programs, "wrk"),
		"-t", strconv.Itoa(cfg.Threads),
		"-c", strconv.Itoa(cfg.Connections),
		"-d", strconv.FormatInt(secs, 10)+"s",
		"--timeout", "5s",
		"--latency",
		"-s", scriptPath,
		// Without a port, as a client of the standard HTTPS port sends it.
		"-H", "Host: "+cfg.Host,
	)
	if closeConns {
		argv = append(argv, "-H", "Connection: close")
	}
	return append(argv, url)
}

func program(programs map[string]string, name string) string {
	if p, ok := programs[name]; ok && p != "" {
		return p
	}
	return name
}
