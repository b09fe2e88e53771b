package controlplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NetnsPrefix starts the name of every namespace NewNetns creates, so
// leftovers of a killed run are easy to find (ip netns list).
const NetnsPrefix = "portico-"

// Netns is a network namespace standing in for a pod: a veth pair joins it
// to the host, with HostIP (10.250.X.1/30) on the host side and NSIP
// (10.250.X.2/30) inside. Only that /30 is routed; nothing else on the
// host, and no default route inside, is touched.
type Netns struct {
	Name   string
	Index  int // X in 10.250.X.0/30
	HostIF string
	NSIF   string
	HostIP netip.Addr
	NSIP   netip.Addr

	mu        sync.Mutex
	procs     []*Process
	listeners []net.Listener
	closed    bool
}

// NewNetns creates a namespace with the first free index X in 1..254. The
// index is claimed by creating the namespace file, which fails if it exists,
// so concurrent test processes never share one.
func NewNetns() (*Netns, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("ip not found (Debian package iproute2; make controlplane installs it): %w", err)
	}
	for x := 1; x <= 254; x++ {
		name := fmt.Sprintf("%s%d", NetnsPrefix, x)
		out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
		if err != nil && strings.Contains(string(out), "File exists") && reclaimStale(name, x) {
			out, err = exec.Command("ip", "netns", "add", name).CombinedOutput()
		}
		if err != nil {
			if strings.Contains(string(out), "File exists") {
				continue
			}
			return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		recordOwner(name)
		n := &Netns{
			Name:   name,
			Index:  x,
			HostIF: fmt.Sprintf("ptc%dh", x),
			NSIF:   fmt.Sprintf("ptc%dn", x),
			HostIP: netip.AddrFrom4([4]byte{10, 250, byte(x), 1}),
			NSIP:   netip.AddrFrom4([4]byte{10, 250, byte(x), 2}),
		}
		if err := n.setup(); err != nil {
			_ = n.Close()
			return nil, err
		}
		return n, nil
	}
	return nil, errors.New("no free 10.250.X.0/30 left: remove stale namespaces (ip netns list | grep " + NetnsPrefix + ")")
}

// ownerDir records which process created each namespace, so that a later
// run can tell a leftover of a killed run from a namespace in use.
const ownerDir = "/run/portico-netns"

func recordOwner(name string) {
	if os.MkdirAll(ownerDir, 0o755) == nil {
		_ = os.WriteFile(filepath.Join(ownerDir, name), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
}

// reclaimStale deletes namespace name and its veth when the process that
// created it has exited and nothing runs inside it: what a killed test or
// conformance run leaves behind. Namespaces without an owner record (made
// by an older version, or by hand) are left alone.
func reclaimStale(name string, x int) bool {
	data, err := os.ReadFile(filepath.Join(ownerDir, name))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
		return false
	}
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		return false
	}
	_ = exec.Command("ip", "link", "del", fmt.Sprintf("ptc%dh", x)).Run()
	if exec.Command("ip", "netns", "del", name).Run() != nil {
		return false
	}
	_ = os.Remove(filepath.Join(ownerDir, name))
	return true
}

func (n *Netns) setup() error {
	host := fmt.Sprintf("%s/30", n.HostIP)
	ns := fmt.Sprintf("%s/30", n.NSIP)
	steps := [][]string{
		{"link", "add", n.HostIF, "type", "veth", "peer", "name", n.NSIF, "netns", n.Name},
		{"addr", "add", host, "dev", n.HostIF},
		{"link", "set", n.HostIF, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
		{"-n", n.Name, "addr", "add", ns, "dev", n.NSIF},
		{"-n", n.Name, "link", "set", n.NSIF, "up"},
	}
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// Addr returns NSIP:port, the address a backend in the namespace listens on.
func (n *Netns) Addr(port int) string {
	return netip.AddrPortFrom(n.NSIP, uint16(port)).String()
}

// Command returns a command that runs name inside the namespace (through
// ip netns exec). Start it with n.Start so Close stops it.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Start starts cmd (from Command) in its own process group, output appended
// to logPath (empty: discarded unless cmd sets Stdout/Stderr). Close stops it.
func (n *Netns) Start(cmd *exec.Cmd, logPath string) (*Process, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("network namespace closed")
	}
	name := cmd.Path
	if len(cmd.Args) > 4 {
		name = cmd.Args[4] // ip netns exec NAME <command>
	}
	p, err := startProcess((*exec.Cmd).Start, name, logPath, cmd, false)
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, p)
	return p, nil
}

// Listen opens a listener inside the namespace from this process: the
// socket is created on a thread switched into the namespace and keeps that
// namespace after the thread switches back, so it can be served from any
// goroutine. Close closes it.
func (n *Netns) Listen(network, address string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		l, restored, err := n.listenOnThread(network, address)
		if restored {
			runtime.UnlockOSThread()
		}
		// Otherwise the goroutine ends still locked and the runtime
		// discards the thread, so no other goroutine runs in the namespace.
		res <- result{l, err}
	}()
	r := <-res
	if r.err != nil {
		return nil, r.err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		r.l.Close()
		return nil, errors.New("network namespace closed")
	}
	n.listeners = append(n.listeners, r.l)
	return r.l, nil
}

func (n *Netns) listenOnThread(network, address string) (l net.Listener, restored bool, err error) {
	orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), syscall.Gettid()))
	if err != nil {
		return nil, true, err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + n.Name)
	if err != nil {
		return nil, true, err
	}
	defer target.Close()
	if err := setns(target); err != nil {
		return nil, true, fmt.Errorf("enter %s: %w", n.Name, err)
	}
	l, err = net.Listen(network, address)
	if rerr := setns(orig); rerr != nil {
		if l != nil {
			l.Close()
		}
		return nil, false, fmt.Errorf("leave %s: %w", n.Name, rerr)
	}
	return l, true, err
}

// setnsTrap is the setns(2) system call number, which the frozen syscall
// package does not define (golang.org/x/sys/unix does, but is not a direct
// dependency of the root module).
func setnsTrap() (uintptr, error) {
	switch runtime.GOARCH {
	case "amd64":
		return 308, nil
	case "arm64", "riscv64", "loong64":
		return 268, nil
	}
	return 0, fmt.Errorf("setns: unsupported architecture %s", runtime.GOARCH)
}

func setns(f *os.File) error {
	trap, err := setnsTrap()
	if err != nil {
		return err
	}
	if _, _, errno := syscall.RawSyscall(trap, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}

// Close stops the processes started in the namespace, closes its
// listeners and deletes the namespace and the veth pair.
func (n *Netns) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	procs, listeners := n.procs, n.listeners
	n.mu.Unlock()

	for _, p := range procs {
		p.Stop(5 * time.Second)
	}
	for _, l := range listeners {
		l.Close()
	}
	var errs []error
	// Deleting the host end destroys the pair at once; deleting the
	// namespace alone would leave the kernel to do it asynchronously, and
	// the next NewNetns could find the interface name still taken.
	if out, err := exec.Command("ip", "link", "del", n.HostIF).CombinedOutput(); err != nil &&
		!strings.Contains(string(out), "Cannot find device") {
		errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", n.HostIF, err, strings.TrimSpace(string(out))))
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n.Name, err, strings.TrimSpace(string(out))))
	} else {
		_ = os.Remove(filepath.Join(ownerDir, n.Name))
	}
	return errors.Join(errs...)
}
