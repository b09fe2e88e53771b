// Command cluster runs the local control plane (etcd, kube-apiserver,
// kube-controller-manager on loopback) in the background for manual work
// and for `make cluster-up` / `make cluster-down`.
//
//	cluster up   [-dir bin/cluster] [-bin-dir bin/controlplane]
//	cluster down [-dir bin/cluster]
//
// up starts a detached "cluster serve" and returns once the control plane
// is ready; serve writes DIR/cluster.pid and DIR/kubeconfig and keeps the
// processes running until it gets SIGTERM or SIGINT, which down sends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"portico.dev/portico/hack/controlplane"
)

const (
	pidFile   = "cluster.pid"
	readyFile = "ready"
	logFile   = "cluster.log"
	// marker tells up that a directory is its own and may be wiped.
	marker = ".portico-cluster"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", filepath.Join("bin", "cluster"), "directory for data, logs, pid file and kubeconfig")
	binDir := fs.String("bin-dir", "", "directory with kube-apiserver and kube-controller-manager (default bin/controlplane)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long up waits for the control plane")
	_ = fs.Parse(os.Args[2:])

	var err error
	switch os.Args[1] {
	case "up":
		err = up(*dir, *binDir, *timeout)
	case "serve":
		err = serve(*dir, *binDir, *timeout)
	case "down":
		err = down(*dir)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cluster up|down [-dir DIR] [-bin-dir DIR] [-timeout D]")
	os.Exit(2)
}

// running returns the pid in DIR/cluster.pid if that process is alive.
func running(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, alive(pid)
}

// alive reports whether pid exists and is not a zombie: serve is reparented
// when up exits, and not every init reaps its orphans promptly.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func up(dir, binDir string, timeout time.Duration) error {
	if pid, ok := running(dir); ok {
		fmt.Printf("cluster already running (pid %d); KUBECONFIG=%s\n", pid, filepath.Join(dir, "kubeconfig"))
		return nil
	}
	if err := controlplane.Available(binDir); err != nil {
		return err
	}
	// Every up starts from an empty etcd; only a directory this command
	// made (or an empty one) is wiped.
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%s is not empty and was not made by cluster up; remove it or pick another -dir", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, marker), nil, 0o644); err != nil {
		return err
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"serve", "-dir", dir, "-timeout", timeout.String()}
	if binDir != "" {
		args = append(args, "-bin-dir", binDir)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A session of its own: make's or the terminal's signals do not reach
	// it; only cluster down stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.After(timeout + 10*time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, readyFile)); err == nil {
			b, _ := os.ReadFile(filepath.Join(dir, readyFile))
			fmt.Printf("cluster up (pid %d): %s\nexport KUBECONFIG=%s\n", cmd.Process.Pid,
				strings.TrimSpace(string(b)), filepath.Join(dir, "kubeconfig"))
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("control plane exited (%v); see %s:\n%s", err, filepath.Join(dir, logFile), readTail(filepath.Join(dir, logFile)))
		case <-deadline:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			return fmt.Errorf("control plane not ready after %s; see %s", timeout, dir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func serve(dir, binDir string, timeout time.Duration) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, pidFile))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, timeout)
	cp, err := controlplane.Start(startCtx, controlplane.Options{Dir: dir, BinDir: binDir, Logger: log})
	cancel()
	if err != nil {
		return err
	}
	defer cp.Stop()
	msg := fmt.Sprintf("server %s, ready in %s", cp.Host(), cp.StartupTime().Round(time.Millisecond))
	if err := os.WriteFile(filepath.Join(dir, readyFile), []byte(msg+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, readyFile))
	<-ctx.Done()
	log.Info("stopping on signal")
	return nil
}

func down(dir string) error {
	pid, ok := running(dir)
	if !ok {
		fmt.Println("cluster not running")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	// serve stops its children (up to 30 s each) before exiting.
	deadline := time.Now().Add(100 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			fmt.Println("cluster stopped")
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Killing serve makes the kernel kill its children (parent-death signal).
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return fmt.Errorf("cluster (pid %d) did not stop in time; killed", pid)
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}
