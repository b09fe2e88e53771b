package loadbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a server started for a benchmark: a backend, a proxy or one
// tier of a proxy chain. It runs in its own process group so that stopping
// it also stops the workers it forks.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File

	done    chan struct{}
	waitErr error
}

// StartProcess starts argv with its output sent to logPath. The process
// gets SIGKILL if the harness dies, so an aborted benchmark leaves no server
// behind.
func StartProcess(name string, argv []string, env []string, logPath string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log for %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id of the started command.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has already exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// LogTail returns the end of the process log, for error messages.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	const limit = 2048
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return strings.TrimSpace(string(b))
}

// Stop asks the process group to terminate and kills it if it is still
// running after a grace period. It is safe to call more than once.
func (p *Process) Stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Workers of a master that exited first may linger in the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	p.log.Close()
}

// Memory is the memory use of a process tree in bytes.
type Memory struct {
	// RSS sums resident set sizes. Pages shared between processes (code,
	// libraries, copy-on-write memory of forked workers) count once per
	// process, which overstates multi-process servers.
	RSS int64
	// PSS sums proportional set sizes: each shared page is divided among
	// the processes sharing it, so the sum is what the tree really holds.
	PSS int64
}

// TreeMemory returns the summed memory of the process and all its
// descendants (for example nginx's master and workers).
func (p *Process) TreeMemory() (Memory, error) {
	return treeMemory("/proc", p.PID())
}

// treeMemory sums memory over root and its descendants as found under
// procDir.
func treeMemory(procDir string, root int) (Memory, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return Memory{}, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, err := readPPID(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue // the process exited while we were looking
		}
		children[ppid] = append(children[ppid], pid)
	}
	var total Memory
	found := false
	for _, pid := range descendants([]int{root}, children) {
		dir := filepath.Join(procDir, strconv.Itoa(pid))
		rss, err := readStatusKB(filepath.Join(dir, "status"), "VmRSS:")
		if err == nil {
			total.RSS += rss
			if pid == root {
				found = true
			}
			// Kernels before 4.14 have no smaps_rollup; PSS then stays 0.
			if pss, err := readStatusKB(filepath.Join(dir, "smaps_rollup"), "Pss:"); err == nil {
				total.PSS += pss
			}
		}
	}
	if !found {
		return Memory{}, fmt.Errorf("process %d not found", root)
	}
	return total, nil
}

// readPPID reads the parent pid from /proc/PID/stat. The command name field
// may contain spaces and parentheses, so parsing starts after the last ')'.
func readPPID(statPath string) (int, error) {
	b, err := os.ReadFile(statPath)
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed %s", statPath)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed %s", statPath)
	}
	return strconv.Atoi(f[1])
}

// readStatusKB reads a "Key:   123 kB" field, in bytes, from a /proc file
// such as status or smaps_rollup. A missing field reads as 0: kernel threads
// and zombies have no VmRSS.
func readStatusKB(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected line %q in %s", line, path)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	return 0, nil
}

// MemorySampler records the peak summed memory of a set of processes while
// a load run is in progress.
type MemorySampler struct {
	procs    []*Process
	interval time.Duration

	mu   sync.Mutex
	peak Memory
	err  error
	stop chan struct{}
	done chan struct{}
}

// StartMemorySampler samples every interval until Stop is called.
func StartMemorySampler(procs []*Process, interval time.Duration) *MemorySampler {
	s := &MemorySampler{procs: procs, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *MemorySampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *MemorySampler) sample() {
	var total Memory
	for _, p := range s.procs {
		m, err := p.TreeMemory()
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		total.RSS += m.RSS
		total.PSS += m.PSS
	}
	s.mu.Lock()
	s.peak.RSS = max(s.peak.RSS, total.RSS)
	s.peak.PSS = max(s.peak.PSS, total.PSS)
	s.mu.Unlock()
}

// Stop takes a final sample and returns the peaks, each taken separately.
func (s *MemorySampler) Stop() (Memory, error) {
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peak.RSS == 0 && s.err != nil {
		return Memory{}, s.err
	}
	return s.peak, nil
}

// FreeLoopbackPort asks the kernel for an unused loopback TCP port. The port
// is released before use, so another process could take it in between; the
// readiness check then fails loudly rather than measuring the wrong server.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls check until it succeeds, the process exits or ctx ends.
func waitFor(ctx context.Context, procs []*Process, check func(context.Context) error) error {
	var last error
	for {
		for _, p := range procs {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited during start-up (%v): %s", p.Name, err, p.LogTail())
			}
		}
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(attemptCtx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
