package loadbench

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Target is one thing the load is sent to.
//
// A target is either Portico, the backend itself (direct), or a chain of
// templated servers (Tiers). Peers are added as Tiers: write one config
// template under templates/ and add one entry to Targets.
type Target struct {
	Name        string
	Description string
	// Scheme is the scheme wrk speaks to the target: "https" or "http".
	Scheme string
	// NoHTTP2: the target does not offer h2, so it sits out the h2 workload.
	NoHTTP2 bool
	// ByName: the target runs only when BENCH_TARGETS names it, not in the
	// default (every target) run.
	ByName bool
	// Tiers are started back to front; the first tier receives the load and
	// each tier forwards to the next one, the last one to the backend.
	Tiers []Tier
	// start overrides Tiers for targets that are not templated servers.
	start func(ctx context.Context, env *Env, dir string) (*Instance, error)
}

// Tier is one server process configured from a template.
type Tier struct {
	Server   Server
	Template string // file name under templates/
}

// Server knows how to run one kind of server from a rendered config file.
type Server struct {
	// Program is the executable, looked up in Env.Programs and then in PATH.
	Program string
	// Args returns the command-line arguments that run the server in the
	// foreground with the given config file and private working directory.
	Args func(configPath, dir string) []string
	// Env returns environment variables added to the server's environment;
	// nil adds none.
	Env func(dir string, workers int) []string
	// ValidateArgs returns the arguments that check a config file without
	// serving (nginx -t, haproxy -c, caddy validate); nil when the program
	// has no such mode.
	ValidateArgs func(configPath, dir string) []string
}

// Servers that peers are built from.
var nginxServer = Server{
	Program: "nginx",
	Args: func(configPath, dir string) []string {
		// -e moves the start-up error log off the packaged /var/log path.
		return []string{"-p", dir + "/", "-c", configPath, "-e", filepath.Join(dir, "error.log")}
	},
	ValidateArgs: func(configPath, dir string) []string {
		return []string{"-t", "-q", "-p", dir + "/", "-c", configPath, "-e", filepath.Join(dir, "error.log")}
	},
}

// haproxyServer runs HAProxy in the foreground (-db: no daemon, no master
// process); its thread count comes from nbthread in the config.
var haproxyServer = Server{
	Program: "haproxy",
	Args: func(configPath, _ string) []string {
		return []string{"-db", "-f", configPath}
	},
	ValidateArgs: func(configPath, _ string) []string {
		return []string{"-c", "-q", "-f", configPath}
	},
}

// caddyServer runs Caddy on a Caddyfile. Caddy is a Go program: GOMAXPROCS
// gives it the same worker budget as the others. Its data, config and home
// directories point into the private directory so that nothing is written
// to (or read from) the user's or the system's Caddy state.
var caddyServer = Server{
	Program: "caddy",
	Args: func(configPath, _ string) []string {
		return []string{"run", "--adapter", "caddyfile", "--config", configPath}
	},
	Env: caddyEnv,
	ValidateArgs: func(configPath, _ string) []string {
		return []string{"validate", "--adapter", "caddyfile", "--config", configPath}
	},
}

func caddyEnv(dir string, workers int) []string {
	return []string{
		"GOMAXPROCS=" + strconv.Itoa(workers),
		"HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}
}

// Targets returns every known target, in the order each round runs them.
func Targets() []Target {
	return []Target{
		{
			Name:        "portico",
			Description: "Portico: TLS termination, host/path routing, HTTP/1.1 keep-alive to the backend",
			Scheme:      "https",
			start:       startPortico,
		},
		{
			Name:        "direct",
			Description: "no proxy: wrk straight to the backend over plain HTTP (the physical ceiling of the loopback path)",
			Scheme:      "http",
			start:       startDirect,
		},
		{
			Name:        "direct-tls",
			Description: "no proxy: an nginx that terminates TLS and answers itself (the ceiling for a TLS hop)",
			Scheme:      "https",
			Tiers:       []Tier{{Server: nginxServer, Template: "direct-tls.nginx.conf"}},
		},
		{
			Name:        "direct-go-tls",
			Description: "no proxy: a bare Go net/http + crypto/tls server that answers itself (the ceiling for a TLS hop in Go, as direct-tls is for nginx)",
			Scheme:      "https",
			start:       startDirectGoTLS,
		},
		{
			Name:        "go-fasthttp",
			Description: "a minimal Go proxy for reference: fasthttp Server on crypto/tls, host and prefix check, two forwarding headers, fasthttp.HostClient keep-alive to the backend; no HTTP/2, no route table, no limits",
			Scheme:      "https",
			NoHTTP2:     true,
			start:       startGoFastHTTP,
		},
		{
			Name:        "go-nethttp",
			Description: "a minimal Go proxy on net/http's server (HTTP/2 included): host check, two forwarding headers, go-fasthttp's HostClient to the backend; the floor for a proxy whose HTTP/2 is net/http's",
			Scheme:      "https",
			ByName:      true,
			start:       startGoNetHTTP,
		},
		{
			Name:        "go-epoll",
			Description: "a measurement prototype: the go-fasthttp proxy's work on Go event loops (one locked thread per core in epoll_wait over raw sockets, crypto/tls over memory), to measure what the goroutine-per-connection model costs; GET only, over HTTP/1.1 or over HTTP/2 framed by the loop itself",
			Scheme:      "https",
			start:       startGoEpoll,
		},
		{
			Name:        "go-epoll-gx",
			Description: "go-epoll with each backend exchange handed to a goroutine doing blocking I/O on the netpoller: an event loop for clients only",
			Scheme:      "https",
			NoHTTP2:     true,
			ByName:      true,
			start:       startGoEpollGoroutineExchange,
		},
		{
			Name:        "nginx",
			Description: "one nginx: TLS termination, host/path routing, upstream keep-alive to the backend",
			Scheme:      "https",
			Tiers:       []Tier{{Server: nginxServer, Template: "nginx.conf"}},
		},
		{
			Name:        "nginx-2tier",
			Description: "two nginx: a TLS edge proxying over plain HTTP keep-alive to a routing nginx, then to the backend",
			Scheme:      "https",
			Tiers: []Tier{
				{Server: nginxServer, Template: "nginx-2tier-edge.nginx.conf"},
				{Server: nginxServer, Template: "nginx-2tier-routing.nginx.conf"},
			},
		},
		{
			Name:        "haproxy",
			Description: "one HAProxy (nbthread 2): TLS termination, host/path routing, keep-alive connection reuse to the backend",
			Scheme:      "https",
			Tiers:       []Tier{{Server: haproxyServer, Template: "haproxy.cfg"}},
		},
		{
			Name:        "caddy",
			Description: "one Caddy (GOMAXPROCS=2): TLS termination with the same certificate, host/path routing, reverse_proxy keep-alive to the backend",
			Scheme:      "https",
			Tiers:       []Tier{{Server: caddyServer, Template: "Caddyfile"}},
		},
	}
}

// SelectTargets returns the named targets in the canonical round order, or
// every target when names is empty.
func SelectTargets(all []Target, names []string) ([]Target, error) {
	if len(names) == 0 {
		var out []Target
		for _, t := range all {
			if !t.ByName {
				out = append(out, t)
			}
		}
		return out, nil
	}
	return selectByName(all, names, "targets", func(t Target) string { return t.Name })
}

// selectByName keeps the items of all whose name is in names, in the order
// of all; every item when names is empty. A name matching nothing is an
// error that lists the known names.
func selectByName[T any](all []T, names []string, what string, name func(T) string) ([]T, error) {
	if len(names) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []T
	for _, item := range all {
		if want[name(item)] {
			out = append(out, item)
			delete(want, name(item))
		}
	}
	if len(want) > 0 {
		var unknown, known []string
		for n := range want {
			unknown = append(unknown, n)
		}
		for _, item := range all {
			known = append(known, name(item))
		}
		return nil, fmt.Errorf("unknown %s %q (known: %s)", what, unknown, strings.Join(known, ", "))
	}
	return out, nil
}

// RequiredProgramsFor is RequiredPrograms plus the load generators of the
// workloads.
func RequiredProgramsFor(targets []Target, workloads []Workload) []string {
	progs := RequiredPrograms(targets)
	for _, w := range workloads {
		if !slices.Contains(progs, w.Tool) {
			progs = append(progs, w.Tool)
		}
	}
	return progs
}

// RequiredPrograms lists the programs a benchmark of targets runs: wrk, the
// nginx backend, and the servers of every tier. Portico is not listed; it is
// a build product, not an installed program.
func RequiredPrograms(targets []Target) []string {
	progs := []string{"wrk", nginxServer.Program}
	for _, t := range targets {
		for _, tier := range t.Tiers {
			if !slices.Contains(progs, tier.Server.Program) {
				progs = append(progs, tier.Server.Program)
			}
		}
	}
	return progs
}

// Env is what targets share for a whole benchmark.
type Env struct {
	Host        string
	ExtraHosts  []string
	BackendAddr string
	Cert        Certificate
	CertFile    string
	KeyFile     string
	// CertKeyFile holds certificate and key in one PEM file (HAProxy).
	CertKeyFile string
	// LargeBodyFile is the body the backend serves at LargeBodyPath.
	LargeBodyFile string
	// HostsFile lists Host and ExtraHosts, one per line.
	HostsFile string
	// Path is the request path of the workload.
	Path string
	// ExpectBody is the body the benchmark request must return; empty
	// means Body.
	ExpectBody string
	// Workers is the number of worker processes or threads every proxy gets.
	Workers int
	// Body is the backend's response body.
	Body string
	// Programs maps program names ("nginx", "portico") to paths; programs
	// not listed are looked up in PATH.
	Programs map[string]string
	// ReadyTimeout bounds a target's start-up.
	ReadyTimeout time.Duration
	// Backend is the shared backend process, charged with the CPU time of
	// targets that send the load straight to it.
	Backend *Process
}

func (e *Env) program(name string) string {
	if p, ok := e.Programs[name]; ok && p != "" {
		return p
	}
	return name
}

// Instance is a started target.
type Instance struct {
	// Addr is the loopback address the load goes to.
	Addr string
	// Procs are the proxy processes whose memory is reported; empty when
	// there is no proxy.
	Procs []*Process
	// CPUProcs are the processes whose CPU time is charged to the target
	// when they are not Procs: the backend for direct. They are not
	// stopped with the instance.
	CPUProcs []*Process
}

// cpuProcs are the processes (with their descendants) whose CPU time the
// target is charged with.
func (in *Instance) cpuProcs() []*Process {
	if len(in.CPUProcs) > 0 {
		return in.CPUProcs
	}
	return in.Procs
}

// Stop stops every process of the instance, front first.
func (in *Instance) Stop() {
	for _, p := range in.Procs {
		p.Stop()
	}
}

// URL is what wrk is pointed at: the virtual host name, which wrk sends as
// SNI and Host, with the port of the loopback listener.
func (in *Instance) URL(scheme, host string) string {
	_, port, _ := net.SplitHostPort(in.Addr)
	return fmt.Sprintf("%s://%s:%s/", scheme, host, port)
}

// Start starts the target in dir, created if missing, and returns once it
// answers the benchmark request correctly.
func (t Target) Start(ctx context.Context, env *Env, dir string) (*Instance, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, env.ReadyTimeout)
	defer cancel()
	var (
		in  *Instance
		err error
	)
	if t.start != nil {
		in, err = t.start(ctx, env, dir)
	} else {
		in, err = startTiers(ctx, env, dir, t.Tiers)
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	probe := func(ctx context.Context) error { return probeTarget(ctx, env, t.Scheme, in.Addr) }
	if err := waitFor(ctx, in.Procs, probe); err != nil {
		in.Stop()
		return nil, fmt.Errorf("%s does not serve the benchmark route: %w", t.Name, err)
	}
	return in, nil
}

//go:embed templates/*
var templateFS embed.FS

// TemplateData is what config templates are rendered with.
type TemplateData struct {
	// Dir is the server's private working directory (pid file, temp files).
	Dir string
	// ListenAddr is where this server listens.
	ListenAddr string
	// NextAddr is where this server forwards: the next tier, or the backend
	// for the last tier.
	NextAddr    string
	BackendAddr string
	CertFile    string
	KeyFile     string
	// CertKeyFile is certificate and key in one PEM file.
	CertKeyFile string
	// HostsFile lists Host and ExtraHosts, one per line.
	HostsFile string
	// LargeBodyFile is served by the backend (and by direct-tls) at
	// LargeBodyPath.
	LargeBodyFile string
	LargeBodyPath string
	Host          string
	ExtraHosts    []string
	Workers       int
	Body          string
}

// RenderTemplate renders the named template from templates/.
func RenderTemplate(name string, data TemplateData) ([]byte, error) {
	tmpl, err := template.New(name).Funcs(template.FuncMap{
		// nginxString quotes a value for an nginx config string literal.
		"nginxString": func(s string) (string, error) {
			// nginx expands variables inside strings and has no escape for '$'.
			if strings.ContainsAny(s, "$\n\r") {
				return "", fmt.Errorf("value %q cannot be an nginx string", s)
			}
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
		},
		// caddyString quotes a value for a Caddyfile token.
		"caddyString": func(s string) (string, error) {
			if strings.ContainsAny(s, "\"\\\n\r{}") {
				return "", fmt.Errorf("value %q cannot be a Caddyfile token", s)
			}
			return `"` + s + `"`, nil
		},
		// haproxyString rejects what HAProxy would split or expand.
		"haproxyString": func(s string) (string, error) {
			if s == "" || strings.ContainsAny(s, " \t\n\r#\"'\\$") {
				return "", fmt.Errorf("value %q cannot be an HAProxy word", s)
			}
			return s, nil
		},
		"addrHost": func(addr string) (string, error) {
			h, _, err := net.SplitHostPort(addr)
			return h, err
		},
		"addrPort": func(addr string) (string, error) {
			_, p, err := net.SplitHostPort(addr)
			return p, err
		},
		"prepend": func(first string, rest []string) []string {
			return append([]string{first}, rest...)
		},
	}).ParseFS(templateFS, "templates/"+name)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// StartTemplated renders tmplName into dir and starts server with it,
// listening on listenAddr and forwarding to nextAddr. It does not wait for
// readiness.
func StartTemplated(env *Env, dir string, server Server, tmplName, listenAddr, nextAddr string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf, err := RenderTemplate(tmplName, TemplateData{
		Dir:           dir,
		ListenAddr:    listenAddr,
		NextAddr:      nextAddr,
		BackendAddr:   env.BackendAddr,
		CertFile:      env.CertFile,
		KeyFile:       env.KeyFile,
		CertKeyFile:   env.CertKeyFile,
		HostsFile:     env.HostsFile,
		LargeBodyFile: env.LargeBodyFile,
		LargeBodyPath: LargeBodyPath,
		Host:          env.Host,
		ExtraHosts:    env.ExtraHosts,
		Workers:       env.Workers,
		Body:          env.Body,
	})
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, strings.TrimSuffix(tmplName, ".tmpl"))
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, err
	}
	argv := append([]string{env.program(server.Program)}, server.Args(confPath, dir)...)
	var procEnv []string
	if server.Env != nil {
		procEnv = server.Env(dir, env.Workers)
	}
	return StartProcess(tmplName, argv, procEnv, filepath.Join(dir, "output.log"))
}

// startTiers starts a chain of templated servers back to front, so that
// each tier's upstream is listening before the tier itself starts.
func startTiers(ctx context.Context, env *Env, dir string, tiers []Tier) (*Instance, error) {
	if len(tiers) == 0 {
		return nil, fmt.Errorf("target has no tiers")
	}
	addrs := make([]string, len(tiers))
	for i := range tiers {
		port, err := FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	in := &Instance{Addr: addrs[0], Procs: make([]*Process, len(tiers))}
	started := []*Process{}
	fail := func(err error) (*Instance, error) {
		for _, p := range started {
			p.Stop()
		}
		return nil, err
	}
	for i := len(tiers) - 1; i >= 0; i-- {
		next := env.BackendAddr
		if i+1 < len(tiers) {
			next = addrs[i+1]
		}
		tierDir := filepath.Join(dir, fmt.Sprintf("tier%d", i))
		p, err := StartTemplated(env, tierDir, tiers[i].Server, tiers[i].Template, addrs[i], next)
		if err != nil {
			return fail(err)
		}
		started = append(started, p)
		in.Procs[i] = p
		addr := addrs[i]
		if err := waitFor(ctx, []*Process{p}, func(ctx context.Context) error { return dialCheck(ctx, addr) }); err != nil {
			return fail(fmt.Errorf("%s: %w", tiers[i].Template, err))
		}
	}
	return in, nil
}

// startDirect points the load at the backend itself: there is no proxy.
// Its CPU time is the backend's.
func startDirect(_ context.Context, env *Env, _ string) (*Instance, error) {
	in := &Instance{Addr: env.BackendAddr}
	if env.Backend != nil {
		in.CPUProcs = []*Process{env.Backend}
	}
	return in, nil
}

// startPortico writes the benchmark manifests and runs the Portico binary
// on them, waiting for its admin /readyz.
func startPortico(ctx context.Context, env *Env, dir string) (*Instance, error) {
	manifestDir := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifestDir, 0o755); err != nil {
		return nil, err
	}
	_, backendPort, err := net.SplitHostPort(env.BackendAddr)
	if err != nil {
		return nil, fmt.Errorf("backend address: %w", err)
	}
	port, err := strconv.Atoi(backendPort)
	if err != nil {
		return nil, fmt.Errorf("backend port: %w", err)
	}
	var manifests bytes.Buffer
	if err := WriteManifests(&manifests, ManifestParams{Host: env.Host, ExtraHosts: env.ExtraHosts, BackendPort: port, Cert: env.Cert}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(manifestDir, "bench.yaml"), manifests.Bytes(), 0o600); err != nil {
		return nil, err
	}
	var addrs [3]string
	for i := range addrs {
		p, err := FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	httpsAddr, httpAddr, adminAddr := addrs[0], addrs[1], addrs[2]
	argv := []string{
		env.program("portico"),
		"--manifests", manifestDir,
		"--https-addr", httpsAddr,
		"--http-addr", httpAddr,
		"--admin-addr", adminAddr,
		"--log-level", "warn",
	}
	// Go schedules on GOMAXPROCS threads: the same worker budget nginx gets.
	procEnv := []string{"GOMAXPROCS=" + strconv.Itoa(env.Workers)}
	p, err := StartProcess("portico", argv, procEnv, filepath.Join(dir, "output.log"))
	if err != nil {
		return nil, err
	}
	ready := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := loopbackHTTPClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %s", resp.Status)
		}
		return nil
	}
	if err := waitFor(ctx, []*Process{p}, ready); err != nil {
		p.Stop()
		return nil, err
	}
	return &Instance{Addr: httpsAddr, Procs: []*Process{p}}, nil
}
