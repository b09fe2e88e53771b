package loadbench

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// statLine builds a /proc/PID/stat line of a Linux 6.x kernel (52 fields)
// with the given command name, parent and times.
func statLine(pid int, comm string, ppid int, utime, stime, cutime, cstime int64) string {
	return strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) +
		" 1000 1000 0 -1 4194624 1234 0 0 0 " +
		strconv.FormatInt(utime, 10) + " " + strconv.FormatInt(stime, 10) + " " +
		strconv.FormatInt(cutime, 10) + " " + strconv.FormatInt(cstime, 10) +
		" 20 0 1 0 123456 12345678 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    procTimes
		wantErr bool
	}{
		{
			name: "nginx worker",
			line: statLine(4242, "nginx", 4241, 1520, 480, 0, 0),
			want: procTimes{PPID: 4241, UTime: 1520, STime: 480},
		},
		{
			name: "master with reaped children",
			line: statLine(4241, "nginx", 1, 3, 2, 700, 300),
			want: procTimes{PPID: 1, UTime: 3, STime: 2, CUTime: 700, CSTime: 300},
		},
		{
			name: "command name with spaces and parentheses",
			line: statLine(7, "a) S 99 (b", 5, 11, 12, 13, 14),
			want: procTimes{PPID: 5, UTime: 11, STime: 12, CUTime: 13, CSTime: 14},
		},
		{
			name: "exactly 17 fields",
			line: "9 (x) Z 8 0 0 0 0 0 0 0 0 0 1 2 3 4",
			want: procTimes{PPID: 8, UTime: 1, STime: 2, CUTime: 3, CSTime: 4},
		},
		{name: "no command name", line: "9 x S 8 0 0", wantErr: true},
		{name: "truncated", line: "9 (x) S 8 0 0 0 0 0 0 0 0 0 1 2 3", wantErr: true},
		{name: "bad ppid", line: "9 (x) S p 0 0 0 0 0 0 0 0 0 1 2 3 4", wantErr: true},
		{name: "bad utime", line: "9 (x) S 8 0 0 0 0 0 0 0 0 0 u 2 3 4", wantErr: true},
		{name: "negative cstime", line: "9 (x) S 8 0 0 0 0 0 0 0 0 0 1 2 3 -4", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.line))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseProcStatOwnProcess(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	got, err := parseProcStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.PPID != os.Getppid() {
		t.Errorf("ppid = %d, want %d", got.PPID, os.Getppid())
	}
}

type fakeStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

func writeFakeStats(t *testing.T, procs map[int]fakeStat) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(dir, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		line := statLine(pid, "proc", p.ppid, p.utime, p.stime, p.cutime, p.cstime)
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Entries that are not processes, or processes gone, are skipped.
	if err := os.WriteFile(filepath.Join(dir, "uptime"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "999"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTreeCPUTicks(t *testing.T) {
	// Two tiers: 100 (master) with workers 101 and 102 and a grandchild
	// 103; 200 with worker 201. 300 is unrelated, 1 is init.
	base := map[int]fakeStat{
		1:   {ppid: 0, utime: 5000, stime: 5000},
		100: {ppid: 1, utime: 2, stime: 1, cutime: 10, cstime: 5},
		101: {ppid: 100, utime: 300, stime: 100},
		102: {ppid: 100, utime: 200, stime: 50},
		103: {ppid: 102, utime: 7, stime: 3},
		200: {ppid: 1, utime: 1, stime: 1},
		201: {ppid: 200, utime: 40, stime: 10},
		300: {ppid: 1, utime: 9999, stime: 9999},
	}
	tests := []struct {
		name    string
		roots   []int
		want    int64
		wantErr bool
	}{
		{"one tier with workers", []int{100}, 2 + 1 + 10 + 5 + 400 + 250 + 10, false},
		{"worker subtree", []int{102}, 260, false},
		{"two tiers", []int{100, 200}, 678 + 52, false},
		{"overlapping roots count once", []int{100, 102}, 678, false},
		{"no roots", nil, 0, false},
		{"missing root", []int{100, 555}, 0, true},
		{"root without stat", []int{999}, 0, true},
	}
	dir := writeFakeStats(t, base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := treeCPUTicks(dir, tt.roots)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ticks = %d, want %d", got, tt.want)
			}
		})
	}
}

// A worker that exits and is reaped during the measured period moves its
// time into the master's cutime/cstime; a worker started in the period
// counts from zero. The difference between the readings is the CPU time
// really spent.
func TestTreeCPUTicksAcrossExit(t *testing.T) {
	start := writeFakeStats(t, map[int]fakeStat{
		100: {ppid: 1, utime: 2, stime: 1},
		101: {ppid: 100, utime: 300, stime: 100},
		102: {ppid: 100, utime: 200, stime: 50},
	})
	// 102 used 30 more ticks, exited and was reaped (280 into the master's
	// children times); 104 replaced it and used 20; 101 used 100 more, the
	// master 1 more.
	end := writeFakeStats(t, map[int]fakeStat{
		100: {ppid: 1, utime: 3, stime: 1, cutime: 200, cstime: 80},
		101: {ppid: 100, utime: 380, stime: 120},
		104: {ppid: 100, utime: 15, stime: 5},
	})
	s, err := treeCPUTicks(start, []int{100})
	if err != nil {
		t.Fatal(err)
	}
	e, err := treeCPUTicks(end, []int{100})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e-s, int64(30+20+100+1); got != want {
		t.Errorf("CPU ticks in the period = %d, want %d", got, want)
	}
}

func TestClockTicksFromAuxv(t *testing.T) {
	aux := func(wordSize int, pairs ...uint64) []byte {
		var b []byte
		for _, v := range pairs {
			if wordSize == 4 {
				b = binary.NativeEndian.AppendUint32(b, uint32(v))
			} else {
				b = binary.NativeEndian.AppendUint64(b, v)
			}
		}
		return b
	}
	tests := []struct {
		name     string
		auxv     []byte
		wordSize int
		want     int64
		ok       bool
	}{
		{"64-bit", aux(8, 33, 0x7fff0000, 16, 0xbfebfbff, 6, 4096, 17, 100, 3, 0x400040, 0, 0), 8, 100, true},
		{"32-bit", aux(4, 6, 4096, 17, 250, 0, 0), 4, 250, true},
		{"after AT_NULL ignored", aux(8, 6, 4096, 0, 0, 17, 100), 8, 0, false},
		{"missing", aux(8, 6, 4096, 0, 0), 8, 0, false},
		{"zero value", aux(8, 17, 0, 0, 0), 8, 0, false},
		{"truncated pair", aux(8, 6, 4096, 17)[:20], 8, 0, false},
		{"empty", nil, 8, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := clockTicksFromAuxv(tt.auxv, tt.wordSize)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if hz := clockTicks(); hz <= 0 {
		t.Errorf("clockTicks() = %d", hz)
	}
}

func TestCPUArithmetic(t *testing.T) {
	conv := []struct {
		ticks, hz int64
		want      time.Duration
	}{
		{0, 100, 0},
		{1, 100, 10 * time.Millisecond},
		{651, 100, 6510 * time.Millisecond},
		{3, 250, 12 * time.Millisecond},
		{1, 1000, time.Millisecond},
	}
	for _, tt := range conv {
		if got := ticksToDuration(tt.ticks, tt.hz); got != tt.want {
			t.Errorf("ticksToDuration(%d, %d) = %s, want %s", tt.ticks, tt.hz, got, tt.want)
		}
	}
	perReq := []struct {
		name     string
		cpu      time.Duration
		requests int64
		want     float64
	}{
		{"typical", 6510 * time.Millisecond, 300000, 21.7},
		{"one request", time.Millisecond, 1, 1000},
		{"no requests", time.Second, 0, 0},
		{"no CPU measured", 0, 1000, 0},
	}
	for _, tt := range perReq {
		t.Run(tt.name, func(t *testing.T) {
			got := cpuPerRequest(tt.cpu, tt.requests)
			if d := got - tt.want; d > 1e-9 || d < -1e-9 {
				t.Errorf("cpuPerRequest(%s, %d) = %v, want %v", tt.cpu, tt.requests, got, tt.want)
			}
			r := Run{CPU: tt.cpu, Result: WrkResult{Requests: tt.requests}}
			if r.CPUPerRequest() != got {
				t.Errorf("Run.CPUPerRequest = %v, want %v", r.CPUPerRequest(), got)
			}
		})
	}
}

func TestFormatCPU(t *testing.T) {
	tests := []struct {
		us   float64
		want string
	}{
		{0, "–"},
		{-1, "–"},
		{4.567, "4.57"},
		{21.74, "21.7"},
		{152.4, "152"},
	}
	for _, tt := range tests {
		if got := formatCPUPerReq(tt.us); got != tt.want {
			t.Errorf("formatCPUPerReq(%v) = %q, want %q", tt.us, got, tt.want)
		}
	}
	if got := formatCPUSeconds(6510 * time.Millisecond); got != "6.51" {
		t.Errorf("formatCPUSeconds = %q", got)
	}
	if got := formatCPUSeconds(0); got != "–" {
		t.Errorf("formatCPUSeconds(0) = %q", got)
	}
}

// CPUTime of a real child process: it grows while the child burns CPU, and
// includes a grandchild.
func TestCPUTimeOfProcessTree(t *testing.T) {
	if testing.Short() {
		t.Skip("burns CPU")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// The grandchild burns a fixed amount of CPU (about 0.3 s here), not a
	// wall-clock time, so a busy machine slows it down without changing
	// what it spends, then stays alive: only a walk of the tree counts it.
	p, err := StartProcess("burn", []string{"/bin/sh", "-c", "sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30'; sleep 30"}, nil, filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Skip(err)
	}
	defer p.Stop()
	// The tree's CPU time reaches the burn's. Polled, with a deadline only
	// against a hang.
	var got time.Duration
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = CPUTime([]*Process{p}); err != nil {
			t.Fatal(err)
		}
		if got >= 100*time.Millisecond {
			return
		}
	}
	t.Errorf("CPU time of the tree reached %s, want the grandchild's burn (about 300ms) counted", got)
}

func TestRunNotifying(t *testing.T) {
	if _, err := os.Stat("/bin/sleep"); err != nil {
		t.Skip("no /bin/sleep")
	}
	called := 0
	if err := runNotifying(exec.Command("/bin/sleep", "0.3"), 50*time.Millisecond, func() { called++ }); err != nil {
		t.Fatal(err)
	}
	if called != 1 {
		t.Errorf("notify called %d times during the run, want 1", called)
	}
	called = 0
	if err := runNotifying(exec.Command("/bin/sleep", "0"), 10*time.Second, func() { called++ }); err != nil {
		t.Fatal(err)
	}
	if called != 0 {
		t.Errorf("notify called %d times after the command exited, want 0", called)
	}
	if err := runNotifying(exec.Command("/nonexistent/program"), 0, func() { called++ }); err == nil || called != 0 {
		t.Errorf("missing program: err %v, notify called %d times", err, called)
	}
	if err := runNotifying(exec.Command("/bin/sleep", "0"), 0, nil); err != nil {
		t.Errorf("without notify: %v", err)
	}
}
