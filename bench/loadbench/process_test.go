package loadbench

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fakeProc lays out a /proc-like tree: pid -> (ppid, VmRSS kB, comm). Pss
// is half of VmRSS where there is one.
func fakeProc(t *testing.T, procs map[int][3]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(dir, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(pid) + " (" + p[2] + ") S " + p[0] + " 1 1 0 -1\n"
		status := "Name:\t" + p[2] + "\nVmPeak:\t 999 kB\n"
		if p[1] != "" {
			status += "VmRSS:\t " + p[1] + " kB\n"
			kb, _ := strconv.Atoi(p[1])
			rollup := "00400000-7ffd0000 ---p 00000000 00:00 0 [rollup]\nRss: " + p[1] + " kB\nPss:  " + strconv.Itoa(kb/2) + " kB\n"
			if err := os.WriteFile(filepath.Join(d, "smaps_rollup"), []byte(rollup), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Entries that are not processes must be skipped.
	if err := os.WriteFile(filepath.Join(dir, "cpuinfo"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTreeMemory(t *testing.T) {
	procDir := fakeProc(t, map[int][3]string{
		1:   {"0", "100", "init"},
		10:  {"1", "1000", "nginx"},
		11:  {"10", "2000", "nginx: worker) (x"},
		12:  {"10", "3000", "nginx"},
		13:  {"12", "", "zombie"},
		20:  {"1", "50000", "unrelated"},
		100: {"11", "4", "grandchild"},
	})
	tests := []struct {
		name    string
		root    int
		want    Memory
		wantErr bool
	}{
		{"master with workers and grandchild", 10, Memory{RSS: (1000 + 2000 + 3000 + 4) * 1024, PSS: (500 + 1000 + 1500 + 2) * 1024}, false},
		{"leaf", 20, Memory{RSS: 50000 * 1024, PSS: 25000 * 1024}, false},
		{"missing process", 99, Memory{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := treeMemory(procDir, tt.root)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadPPIDMalformed(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
	}{
		{"no parenthesis", "1 init S 0"},
		{"truncated", "1 (init)"},
		{"not a number", "1 (init) S x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "stat")
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := readPPID(p); err == nil {
				t.Error("no error")
			}
		})
	}
}

// Stop must take down the whole process group, as nginx workers are
// children of the master.
func TestProcessStopKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p, err := StartProcess("group", []string{"sh", "-c", "sleep 300 & echo $! > " + pidFile + "; wait"}, nil, filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 1 {
			child, _ = strconv.Atoi(string(b[:len(b)-1]))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		p.Stop()
		t.Fatal("child never started")
	}
	mem, err := p.TreeMemory()
	if err != nil || mem.RSS <= 0 || mem.PSS <= 0 {
		t.Errorf("TreeMemory = %+v, %v", mem, err)
	}
	p.Stop()
	if exited, _ := p.Exited(); !exited {
		t.Error("process still running after Stop")
	}
	// The child is reparented and reaped by init; poll until it is gone.
	for time.Now().Before(deadline) {
		if err := syscall.Kill(child, 0); err != nil {
			return
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat"); err == nil && isZombie(b) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("child %d survived Stop", child)
}

func isZombie(stat []byte) bool {
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == 'Z'
		}
	}
	return false
}

func TestStartProcessErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := StartProcess("empty", nil, nil, filepath.Join(dir, "a")); err == nil {
		t.Error("empty command started")
	}
	if _, err := StartProcess("missing", []string{filepath.Join(dir, "no-such-program")}, nil, filepath.Join(dir, "b")); err == nil {
		t.Error("missing program started")
	}
}

func TestMemorySamplerKeepsPeak(t *testing.T) {
	p, err := StartProcess("sleep", []string{"sleep", "300"}, nil, filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	s := StartMemorySampler([]*Process{p}, 5*time.Millisecond)
	time.Sleep(30 * time.Millisecond)
	peak, err := s.Stop()
	if err != nil || peak.RSS <= 0 || peak.PSS <= 0 {
		t.Errorf("peak = %+v, %v", peak, err)
	}
}
