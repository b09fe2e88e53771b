package churn

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"

	"portico.dev/portico/bench/loadbench"
	"portico.dev/portico/hack/controlplane"
)

// Config is one churn benchmark run.
type Config struct {
	// Hosts is the number of branded hosts, each with its own Secret and
	// Ingress (or certificate files and server block).
	Hosts int
	// ChangesPerSecond alternates certificate replacements and route edits.
	ChangesPerSecond int
	Duration         time.Duration
	// Workers is the proxies' worker budget (GOMAXPROCS, worker_processes).
	Workers int
	// LoadWorkers is the number of handshakes in flight.
	LoadWorkers int
	// LoadCPU pins the load generator with taskset ("" leaves it unpinned).
	LoadCPU string
	// MemoryHosts, when positive, also measures each target's memory with
	// that many hosts loaded, without churn.
	MemoryHosts int
	// Portico is the Portico binary; Self is this benchmark's binary, run
	// again as the pinned load generator.
	Portico, Self string
	// Dir holds every file of the run.
	Dir     string
	Targets []string
	Logger  *slog.Logger
}

// TargetResult is one target's run.
type TargetResult struct {
	Name string
	Load LoadResult
	// Changes applied during the load, and how many of them failed to
	// apply (an API error, a failed reload signal); ChangeRate is the rate
	// achieved.
	Changes, ChangeErrors int
	ChangeRate            float64
	// Stale counts hosts whose newest certificate was not served within
	// five seconds after the run.
	Stale, Checked int
	PeakRSS        int64
	Err            string
}

// MemoryResult is one target's memory with Config.MemoryHosts hosts.
type MemoryResult struct {
	Name  string
	Hosts int
	RSS   int64
	Load  time.Duration // from start to every host served
	Err   string
}

// Result is the whole run.
type Result struct {
	Config  Config
	Started time.Time
	Targets []TargetResult
	Memory  []MemoryResult
}

// Run starts a control plane (Portico reads its objects from it), then runs
// every target through the same churn schedule, one after the other.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	res := &Result{Config: cfg, Started: time.Now()}
	ca, err := NewAuthority(time.Now())
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	caFile := filepath.Join(cfg.Dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o600); err != nil {
		return nil, err
	}
	// The default certificate comes from another authority: serving it to a
	// branded host counts as a wrong certificate.
	other, err := NewAuthority(time.Now())
	if err != nil {
		return nil, err
	}
	fallback, err := other.Issue("default.invalid", time.Now())
	if err != nil {
		return nil, err
	}

	log.Info("issuing certificates", "hosts", cfg.Hosts)
	initial, err := issueAll(ca, cfg.Hosts)
	if err != nil {
		return nil, err
	}
	changes := cfg.ChangesPerSecond * int(cfg.Duration/time.Second)
	replacements := make([]KeyPair, 0, changes/2+1)
	schedule := make([]int, changes) // host changed by each change
	for i := range schedule {
		schedule[i] = rand.IntN(cfg.Hosts)
		if i%2 == 0 {
			kp, err := ca.Issue(HostName(schedule[i]), time.Now())
			if err != nil {
				return nil, err
			}
			replacements = append(replacements, kp)
		}
	}

	for _, name := range cfg.Targets {
		tr := TargetResult{Name: name}
		err := func() error {
			dir := filepath.Join(cfg.Dir, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			target, stop, err := startTarget(ctx, cfg, name, dir, initial, fallback, roots)
			if err != nil {
				return err
			}
			defer stop()
			log.Info("churn run", "target", name, "hosts", cfg.Hosts, "changes", changes, "duration", cfg.Duration)
			return churn(ctx, cfg, target, caFile, roots, schedule, replacements, &tr)
		}()
		if err != nil {
			tr.Err = err.Error()
			log.Error("churn run failed", "target", name, "error", err)
		}
		res.Targets = append(res.Targets, tr)
	}

	if cfg.MemoryHosts > 0 {
		log.Info("issuing certificates for the memory run", "hosts", cfg.MemoryHosts)
		many, err := issueAll(ca, cfg.MemoryHosts)
		if err != nil {
			return nil, err
		}
		for _, name := range cfg.Targets {
			mr := MemoryResult{Name: name, Hosts: cfg.MemoryHosts}
			err := func() error {
				dir := filepath.Join(cfg.Dir, name+"-memory")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				t0 := time.Now()
				target, stop, err := startTarget(ctx, cfg, name, dir, many, fallback, roots)
				if err != nil {
					return err
				}
				defer stop()
				mr.Load = time.Since(t0)
				// Let the first burst of garbage be collected before sampling.
				time.Sleep(5 * time.Second)
				m, err := loadbench.StartMemorySampler(target.Processes(), time.Second).Stop()
				mr.RSS = m.RSS
				return err
			}()
			if err != nil {
				mr.Err = err.Error()
			}
			res.Memory = append(res.Memory, mr)
		}
	}
	return res, nil
}

func issueAll(ca *Authority, n int) ([]KeyPair, error) {
	pairs := make([]KeyPair, n)
	for i := range pairs {
		kp, err := ca.Issue(HostName(i), time.Now())
		if err != nil {
			return nil, err
		}
		pairs[i] = kp
	}
	return pairs, nil
}

// startTarget starts a target on pairs; Portico gets a control plane of
// its own so that objects of an earlier run do not count.
func startTarget(ctx context.Context, cfg Config, name, dir string, pairs []KeyPair, fallback KeyPair, roots *x509.CertPool) (Target, func(), error) {
	switch name {
	case "portico":
		cp, err := controlplane.Start(ctx, controlplane.Options{Dir: filepath.Join(dir, "controlplane"), Logger: cfg.Logger})
		if err != nil {
			return nil, nil, fmt.Errorf("control plane: %w", err)
		}
		rc := cp.RESTConfig()
		rc.QPS, rc.Burst = 1000, 2000
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			cp.Stop()
			return nil, nil, err
		}
		p, err := StartPortico(ctx, cfg.Portico, cp.Kubeconfig(), dir, client, pairs, roots, cfg.Workers)
		if err != nil {
			cp.Stop()
			return nil, nil, err
		}
		return p, func() { p.Stop(); cp.Stop() }, nil
	case "nginx":
		n, err := StartNginx(ctx, dir, pairs, fallback, roots, cfg.Workers)
		if err != nil {
			return nil, nil, err
		}
		return n, n.Stop, nil
	}
	return nil, nil, fmt.Errorf("unknown target %q (portico, nginx)", name)
}

// churn runs the load generator and, at the same time, the change
// schedule; then checks that the newest certificates are served.
func churn(ctx context.Context, cfg Config, target Target, caFile string, roots *x509.CertPool, schedule []int, replacements []KeyPair, tr *TargetResult) error {
	out := filepath.Join(cfg.Dir, target.Name()+"-load.json")
	argv := []string{cfg.Self, "load",
		"-addr", target.Addr(), "-hosts", strconv.Itoa(cfg.Hosts), "-ca", caFile,
		"-duration", cfg.Duration.String(), "-workers", strconv.Itoa(cfg.LoadWorkers), "-out", out}
	if cfg.LoadCPU != "" {
		argv = append([]string{"taskset", "-c", cfg.LoadCPU}, argv...)
	}
	load := exec.CommandContext(ctx, argv[0], argv[1:]...)
	load.Stderr = os.Stderr
	sampler := loadbench.StartMemorySampler(target.Processes(), 500*time.Millisecond)
	if err := load.Start(); err != nil {
		return err
	}
	latest := map[int]string{}
	tick := time.NewTicker(time.Second / time.Duration(cfg.ChangesPerSecond))
	// The load generator needs a moment to start; changes begin with it.
	time.Sleep(200 * time.Millisecond)
	changeStart := time.Now()
	for i, host := range schedule {
		<-tick.C
		var err error
		if i%2 == 0 {
			kp := replacements[i/2]
			err = target.SetCertificate(ctx, host, kp)
			if err == nil {
				latest[host] = kp.Serial
			}
		} else {
			err = target.EditRoute(ctx, host, i)
		}
		tr.Changes++
		if err != nil {
			tr.ChangeErrors++
		}
	}
	tick.Stop()
	tr.ChangeRate = float64(tr.Changes) / time.Since(changeStart).Seconds()
	waitErr := load.Wait()
	mem, _ := sampler.Stop()
	tr.PeakRSS = mem.RSS
	if waitErr != nil {
		return fmt.Errorf("load generator: %w", waitErr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &tr.Load); err != nil {
		return err
	}
	// Every host whose certificate was replaced must now serve the newest.
	deadline := time.Now().Add(5 * time.Second)
	for host, serial := range latest {
		tr.Checked++
		for {
			got, err := ServedSerial(ctx, target.Addr(), HostName(host), roots)
			if err == nil && got == serial {
				break
			}
			if time.Now().After(deadline) {
				tr.Stale++
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
