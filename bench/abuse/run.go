// Package abuse measures how a proxy holds up under cheap attacks: while an
// attacker runs HTTP/2 rapid reset, slow uploads or a flood of idle
// connections against it, a normal wrk load is measured through it, with
// the proxy's memory and the number of connections it opens to the backend.
// Targets are started by bench/loadbench, exactly as the load benchmark
// starts them.
package abuse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"portico.dev/portico/bench/loadbench"
)

// Config is one abuse benchmark invocation.
type Config struct {
	// Load holds what the normal load and the targets need: wrk threads
	// and connections, workers, host, programs, the work directory, and
	// Duration, the measured time of the normal load per run.
	Load     loadbench.Config
	Targets  []loadbench.Target
	Attacks  []Attack
	Settings Settings
	// Ramp is how long the attack runs alone before the normal load
	// starts, so the load meets the attack at full strength.
	Ramp   time.Duration
	Logger *slog.Logger
}

// Result is one attack against one target.
type Result struct {
	Attack string
	Target string
	// Load is the normal wrk load measured during the attack.
	Load loadbench.WrkResult
	// Memory is the proxy's peak during the measured load.
	Memory loadbench.Memory
	// BackendConnects counts connections the proxy opened to the backend
	// from the start of the attack to the end of the measured load.
	BackendConnects int64
	// Attacker is what the attack did, taken at the end of the load.
	Attacker Stats
	Err      error
}

// Execute runs every attack against every target, one at a time, each on a
// freshly started target.
func Execute(ctx context.Context, cfg Config) ([]Result, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	env, backend, err := loadbench.Prepare(ctx, cfg.Load)
	if err != nil {
		return nil, err
	}
	defer backend.Stop()
	relay, err := StartRelay(env.BackendAddr)
	if err != nil {
		return nil, err
	}
	defer relay.Close()
	// Every target forwards through the counting relay.
	relayed := *env
	relayed.BackendAddr = relay.Addr()

	script := filepath.Join(cfg.Load.WorkDir, "abuse.lua")
	if err := os.WriteFile(script, []byte(loadbench.WrkScript), 0o644); err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(env.Cert.CertPEM) {
		return nil, errors.New("benchmark certificate does not parse")
	}
	tlsConf := &tls.Config{RootCAs: roots, ServerName: cfg.Load.Host}

	var results []Result
	for _, a := range cfg.Attacks {
		for _, t := range cfg.Targets {
			if err := ctx.Err(); err != nil {
				return results, err
			}
			log.Info("run", "attack", a.Name, "target", t.Name)
			r := runOne(ctx, cfg, &relayed, relay, tlsConf, script, a, t)
			if r.Err != nil {
				log.Warn("run failed", "attack", a.Name, "target", t.Name, "err", r.Err)
			} else {
				log.Info("run done", "attack", a.Name, "target", t.Name, "rps", fmt.Sprintf("%.0f", r.Load.RPS),
					"p99", r.Load.P99, "rss_mib", r.Memory.RSS>>20, "backend_connects", r.BackendConnects, "attacker", r.Attacker.String())
			}
			results = append(results, r)
		}
	}
	return results, nil
}

func runOne(ctx context.Context, cfg Config, env *loadbench.Env, relay *Relay, tlsConf *tls.Config, script string, a Attack, t loadbench.Target) Result {
	r := Result{Attack: a.Name, Target: t.Name}
	dir := filepath.Join(cfg.Load.WorkDir, a.Name+"-"+t.Name)
	in, err := t.Start(ctx, env, dir)
	if err != nil {
		r.Err = err
		return r
	}
	defer in.Stop()

	before := relay.Connects()
	actx, cancel := context.WithCancel(ctx)
	var counters Counters
	attackDone := make(chan struct{})
	go func() {
		defer close(attackDone)
		a.Run(actx, in.Addr, tlsConf, cfg.Settings, &counters)
	}()
	defer func() {
		cancel()
		select {
		case <-attackDone:
		case <-time.After(30 * time.Second):
			r.Err = errors.Join(r.Err, errors.New("the attack did not stop within 30s"))
		}
	}()

	select {
	case <-ctx.Done():
		r.Err = ctx.Err()
		return r
	case <-time.After(cfg.Ramp):
	}
	sampler := loadbench.StartMemorySampler(in.Procs, 250*time.Millisecond)
	url := in.URL(t.Scheme, cfg.Load.Host)
	r.Load, r.Err = runWrk(ctx, cfg.Load, script, url)
	mem, merr := sampler.Stop()
	r.Memory = mem
	r.Attacker = counters.Snapshot()
	r.BackendConnects = relay.Connects() - before
	if merr != nil && r.Err == nil {
		r.Err = fmt.Errorf("measure memory: %w", merr)
	}
	for _, p := range in.Procs {
		if exited, werr := p.Exited(); exited && r.Err == nil {
			r.Err = fmt.Errorf("%s exited during the attack (%v): %s", p.Name, werr, p.LogTail())
		}
	}
	return r
}

// runWrk runs the normal load. A run in which wrk completed no request is
// still a result: the attack took the target down.
func runWrk(ctx context.Context, cfg loadbench.Config, script, url string) (loadbench.WrkResult, error) {
	return loadbench.RunWrk(ctx, loadbench.WrkCommand(cfg, script, url, cfg.Duration), cfg.Duration)
}
