// Command conformance-run is the driver behind make conformance: it starts
// the local control plane, installs the pinned Gateway API CRDs, starts the
// loopback pod runner (test infrastructure standing in for a kubelet),
// creates the portico GatewayClass, starts Portico in Kubernetes mode, runs
// the upstream conformance suite's compiled test binary against it and
// writes the ConformanceReport. Everything it starts is stopped before it
// exits, on success, failure, timeout or Ctrl-C.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/yaml"

	"portico.dev/portico/conformance/podrunner"
	"portico.dev/portico/hack/controlplane"
	"portico.dev/portico/snapshot"
)

type options struct {
	workDir         string
	controlplaneBin string
	echoBin         string
	porticoBin      string
	suiteBin        string
	optionsFile     string
	reportDir       string
	channel         string
	gatewayClass    string
	controllerName  string
	addressPool     string
	version         string
	runTest         string
	timeout         time.Duration
	porticoArgs     string
	suiteArgs       []string
}

func main() {
	var o options
	flag.StringVar(&o.workDir, "work-dir", "bin/conformance", "control plane data, Pod directories and logs of the run (cleared at the start of each run)")
	flag.StringVar(&o.controlplaneBin, "controlplane-bin", "bin/controlplane", "directory with kube-apiserver and kube-controller-manager (make controlplane)")
	flag.StringVar(&o.echoBin, "echo-basic", "bin/echo-basic", "the suite's echo backend, run for the echo-basic image")
	flag.StringVar(&o.porticoBin, "portico", "bin/portico", "the Portico binary under test")
	flag.StringVar(&o.suiteBin, "suite", "bin/gateway-conformance.test", "the compiled upstream suite (go test -c sigs.k8s.io/gateway-api/conformance)")
	flag.StringVar(&o.optionsFile, "options", "conformance/options.yaml", "the suite's --conformance-options-file")
	flag.StringVar(&o.reportDir, "report-dir", "conformance/reports", "where the ConformanceReport is written")
	flag.StringVar(&o.channel, "channel", controlplane.ChannelStandard, "Gateway API CRD channel to install: standard or experimental")
	flag.StringVar(&o.gatewayClass, "gateway-class", "portico", "GatewayClass the suite uses; created by the run")
	flag.StringVar(&o.controllerName, "controller-name", "portico.dev/gateway-controller", "Portico's --gateway-controller-name and the GatewayClass controllerName")
	flag.StringVar(&o.addressPool, "address-pool", "127.0.1.0/24", "Portico's --gateway-address-pool")
	flag.StringVar(&o.version, "version", "", "implementation version for the report (default: the options file's)")
	flag.StringVar(&o.runTest, "run-test", "", "run only this conformance test (its short name, e.g. HTTPRouteSimpleSameNamespace)")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Minute, "limit for the whole run, teardown excluded")
	flag.StringVar(&o.porticoArgs, "portico-args", "", "extra space-separated flags for Portico")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: conformance-run [flags] [-- suite flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.suiteArgs = flag.Args()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	began := time.Now()
	err := run(o, log)
	log.Info("conformance run finished", "wall", time.Since(began).Round(time.Second))
	if err != nil {
		log.Error("conformance run failed", "err", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger) (err error) {
	// Signals cancel the run; the deferred teardown still runs.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(sigCtx, o.timeout)
	defer cancel()

	for _, p := range []*string{&o.workDir, &o.controlplaneBin, &o.echoBin, &o.porticoBin, &o.suiteBin, &o.optionsFile, &o.reportDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("the run needs root: the pod runner creates network namespaces and Portico binds port 80 and 443 on 127.0.1.x")
	}
	for _, f := range []string{o.echoBin, o.porticoBin, o.suiteBin, o.optionsFile} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w (make conformance builds it)", err)
		}
	}
	// A kept control-plane directory would reuse the last run's etcd data.
	if err := os.RemoveAll(o.workDir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(o.reportDir, 0o755); err != nil {
		return err
	}

	cp, err := controlplane.Start(ctx, controlplane.Options{
		Dir:    filepath.Join(o.workDir, "cluster"),
		BinDir: o.controlplaneBin,
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() {
		cp.Stop()
		// The logs stay for a look after a failure; etcd's data does not.
		_ = os.RemoveAll(filepath.Join(o.workDir, "cluster", "etcd"))
	}()

	log.Info("installing Gateway API CRDs", "channel", o.channel)
	if err := controlplane.InstallGatewayAPICRDs(ctx, cp.RESTConfig(), o.channel); err != nil {
		return fmt.Errorf("install Gateway API CRDs: %w", err)
	}

	stopRunner, err := startRunner(ctx, o, cp, log)
	if err != nil {
		return err
	}
	defer stopRunner()

	if err := createGatewayClass(ctx, cp, o); err != nil {
		return err
	}

	stopPortico, err := startPortico(ctx, o, cp, log)
	if err != nil {
		return err
	}
	defer stopPortico()

	return runSuite(ctx, o, cp, log)
}

// startRunner starts the loopback pod runner and returns its stop function,
// which waits until every Pod process and network namespace is gone.
func startRunner(ctx context.Context, o options, cp *controlplane.ControlPlane, log *slog.Logger) (func(), error) {
	runner, err := podrunner.New(podrunner.Config{
		Client:  cp.Client(),
		Images:  map[string]podrunner.Image{podrunner.EchoBasicImage: podrunner.EchoBasic(o.echoBin)},
		WorkDir: filepath.Join(o.workDir, "pods"),
		Logger:  log.With("component", "podrunner"),
	})
	if err != nil {
		return nil, err
	}
	// Not ctx: the runner must outlive a timed-out run long enough to clean
	// up, which stop does.
	runCtx, runCancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx, ready) }()
	stop := func() {
		runCancel()
		select {
		case err := <-done:
			if err != nil {
				log.Warn("pod runner", "err", err)
			}
		case <-time.After(2 * time.Minute):
			log.Error("pod runner did not stop; look for leftover namespaces with: ip netns list | grep " + controlplane.NetnsPrefix)
		}
	}
	select {
	case <-ready:
		return stop, nil
	case err := <-done:
		runCancel()
		return nil, fmt.Errorf("pod runner: %w", err)
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

var gatewayClassResource = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}

// createGatewayClass creates the GatewayClass the suite runs with; the
// suite expects it to exist and waits for Portico to accept it.
func createGatewayClass(ctx context.Context, cp *controlplane.ControlPlane, o options) error {
	client, err := dynamic.NewForConfig(cp.RESTConfig())
	if err != nil {
		return err
	}
	gc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "GatewayClass",
		"metadata":   map[string]any{"name": o.gatewayClass},
		"spec":       map[string]any{"controllerName": o.controllerName},
	}}
	_, err = client.Resource(gatewayClassResource).Create(ctx, gc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create GatewayClass %s: %w", o.gatewayClass, err)
	}
	return nil
}

// startPortico starts Portico in Kubernetes mode and waits for its admin
// /readyz. The returned function stops it (SIGTERM, then SIGKILL).
func startPortico(ctx context.Context, o options, cp *controlplane.ControlPlane, log *slog.Logger) (func(), error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	adminAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2]))
	args := []string{
		"--kubeconfig", cp.Kubeconfig(),
		"--gateway-controller-name", o.controllerName,
		"--gateway-address-pool", o.addressPool,
		"--https-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		"--http-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		"--admin-addr", adminAddr,
	}
	args = append(args, strings.Fields(o.porticoArgs)...)
	logPath := filepath.Join(o.workDir, "portico.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.porticoBin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	log.Info("starting portico", "args", strings.Join(args, " "), "log", logPath)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start portico: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		log.Info("portico stopped", "state", cmd.ProcessState)
	}

	readyCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for {
		resp, err := client.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				log.Info("portico ready", "admin", adminAddr)
				return stop, nil
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("portico exited during start-up: %v\n--- %s ---\n%s", cmd.ProcessState, logPath, tail(logPath, 30))
		case <-readyCtx.Done():
			stop()
			return nil, fmt.Errorf("portico not ready at http://%s/readyz: %w\n--- %s ---\n%s", adminAddr, readyCtx.Err(), logPath, tail(logPath, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runSuite runs the compiled upstream suite (its TestConformance entry
// point) and prints which tests passed, failed and were skipped.
func runSuite(ctx context.Context, o options, cp *controlplane.ControlPlane, log *slog.Logger) error {
	report := filepath.Join(o.reportDir, "gateway-api-"+controlplane.GatewayAPIVersion+"-portico-report.yaml")
	var supported []string
	for _, f := range snapshot.SupportedFeatures {
		supported = append(supported, string(f))
	}
	// The test binary's own timeout fires before ours, so a hung test
	// still ends with the suite's goroutine dump and its partial report.
	suiteTimeout := time.Until(deadline(ctx)) - time.Minute
	if suiteTimeout < time.Minute {
		return errors.New("no time left for the suite")
	}
	args := []string{
		"-test.v",
		"-test.run", "^TestConformance$",
		"-test.timeout", suiteTimeout.Round(time.Second).String(),
		"--conformance-options-file", o.optionsFile,
		"--gateway-class", o.gatewayClass,
		"--supported-features", strings.Join(supported, ","),
		"--report-output", report,
	}
	if o.version != "" {
		args = append(args, "--version", o.version)
	}
	if o.runTest != "" {
		args = append(args, "--run-test", o.runTest)
	}
	args = append(args, o.suiteArgs...)
	suiteLog := filepath.Join(o.workDir, "suite.log")
	logFile, err := os.Create(suiteLog)
	if err != nil {
		return err
	}
	defer logFile.Close()

	cmd := exec.CommandContext(ctx, o.suiteBin, args...)
	// The suite's working directory holds nothing it reads (its manifests
	// are embedded); the work dir keeps stray files out of the tree.
	cmd.Dir = o.workDir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	log.Info("running the conformance suite", "binary", o.suiteBin, "args", strings.Join(args, " "), "log", suiteLog)
	if err := cmd.Start(); err != nil {
		return err
	}
	results := scanResults(io.TeeReader(out, logFile), os.Stdout)
	runErr := cmd.Wait()
	// The suite writes the report owner-only; it is meant to be read and
	// committed.
	_ = os.Chmod(report, 0o644)

	printSummary(os.Stdout, results, report)
	if runErr != nil {
		return fmt.Errorf("conformance suite: %w (log: %s)", runErr, suiteLog)
	}
	return nil
}

var resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): TestConformance/([^/\s]+) `)

// scanResults copies the suite's output to w and collects each test's
// result by name.
func scanResults(r io.Reader, w io.Writer) map[string][]string {
	results := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		if m := resultLine.FindStringSubmatch(line); m != nil {
			results[m[1]] = append(results[m[1]], m[2])
		}
	}
	return results
}

func printSummary(w io.Writer, results map[string][]string, reportPath string) {
	fmt.Fprintf(w, "\n=== Gateway API conformance summary ===\n")
	for _, kind := range []string{"PASS", "FAIL", "SKIP"} {
		names := results[kind]
		slices.Sort(names)
		fmt.Fprintf(w, "%s: %d\n", kind, len(names))
		for _, n := range names {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	b, err := os.ReadFile(reportPath)
	if err != nil {
		fmt.Fprintf(w, "no report: %v\n", err)
		return
	}
	var report confv1.ConformanceReport
	if err := yaml.Unmarshal(b, &report); err != nil {
		fmt.Fprintf(w, "report %s: %v\n", reportPath, err)
		return
	}
	fmt.Fprintf(w, "report: %s (gateway API %s, %s channel)\n", reportPath, report.GatewayAPIVersion, report.GatewayAPIChannel)
	for _, p := range report.ProfileReports {
		fmt.Fprintf(w, "profile %s: core %s (passed %d, failed %d, skipped %d)",
			p.Name, p.Core.Result, p.Core.Statistics.Passed, p.Core.Statistics.Failed, p.Core.Statistics.Skipped)
		if p.Extended != nil {
			fmt.Fprintf(w, ", extended %s (passed %d, failed %d, skipped %d)",
				p.Extended.Result, p.Extended.Statistics.Passed, p.Extended.Statistics.Failed, p.Extended.Statistics.Skipped)
		}
		fmt.Fprintln(w)
	}
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Hour)
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
