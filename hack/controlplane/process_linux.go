package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// spawner starts child processes from one goroutine locked to its own OS
// thread. Children get a parent-death signal (SIGKILL) so that nothing is
// orphaned when the test binary is killed before Stop runs (go test's
// -timeout, a Ctrl-C, a crash). The kernel sends that signal when the thread
// that forked the child exits, not the process, and the Go runtime ends a
// thread whose goroutine exits while locked to it (as code calling setns
// does). Forking from a thread that stays locked until the control plane
// stops ties the signal to the control plane's life instead.
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		// Never unlocked: returning ends the thread, which is what we want
		// once every child has been stopped.
		runtime.LockOSThread()
		for r := range s.reqs {
			r.err <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, err: errc}
	return <-errc
}

func (s *spawner) close() { close(s.reqs) }

// Process is a child process in its own process group.
type Process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// startProcess runs bin with args in its own process group, output appended
// to logPath. start is the spawner's start, or cmd.Start for children that
// need no parent-death signal.
func startProcess(start func(*exec.Cmd) error, name, logPath string, cmd *exec.Cmd, pdeath bool) (*Process, error) {
	var logf *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		logf = f
		// The child keeps its own descriptor.
		defer logf.Close()
		fmt.Fprintf(logf, "=== %s: %s\n", time.Now().Format(time.RFC3339), cmd.String())
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if pdeath {
		attr.Pdeathsig = syscall.SIGKILL
	}
	cmd.SysProcAttr = attr
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process exited; only valid after Done is closed.
func (p *Process) Err() error { return p.err }

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group and SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// failure wraps err with how the process ended and the tail of its log, so
// a failing start explains itself without digging through files.
func (p *Process) failure(err error) error {
	state := "running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	return fmt.Errorf("%s (%s): %w\n--- last lines of %s ---\n%s", p.name, state, err, p.logPath, tail(p.logPath, 40))
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	b = bytes.TrimRight(b, "\n")
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

var errExited = errors.New("process exited")
