package loadbench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// procTimes is the CPU accounting of one process from /proc/PID/stat, in
// clock ticks. UTime and STime cover every thread of the process, live or
// exited; CUTime and CSTime are those of its children that it has waited
// for.
type procTimes struct {
	PPID   int
	UTime  int64 // field 14
	STime  int64 // field 15
	CUTime int64 // field 16
	CSTime int64 // field 17
}

// ticks is the process's own CPU time plus that of its reaped children.
func (t procTimes) ticks() int64 { return t.UTime + t.STime + t.CUTime + t.CSTime }

// parseProcStat parses a /proc/PID/stat line. The command name (field 2)
// may contain spaces and parentheses, so fields are counted from the last
// ')'.
func parseProcStat(line []byte) (procTimes, error) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("malformed stat line %q", oneLine(string(line), 80))
	}
	// f[0] is field 3 (state), so field n is f[n-3].
	f := strings.Fields(string(line[i+1:]))
	if len(f) < 17-3+1 {
		return procTimes{}, fmt.Errorf("stat line has %d fields after the command name, want at least 15", len(f))
	}
	var t procTimes
	var err error
	if t.PPID, err = strconv.Atoi(f[4-3]); err != nil {
		return procTimes{}, fmt.Errorf("stat ppid: %w", err)
	}
	for _, x := range []struct {
		field int
		dst   *int64
	}{{14, &t.UTime}, {15, &t.STime}, {16, &t.CUTime}, {17, &t.CSTime}} {
		v, err := strconv.ParseInt(f[x.field-3], 10, 64)
		if err != nil || v < 0 {
			return procTimes{}, fmt.Errorf("stat field %d: %q", x.field, f[x.field-3])
		}
		*x.dst = v
	}
	return t, nil
}

// treeCPUTicks returns the summed CPU time, in clock ticks, of the given
// processes and all their descendants as found under procDir (one scan for
// all roots, so that tiers are read at the same moment).
//
// Each process counts utime+stime+cutime+cstime. A child that exits and is
// reaped (an nginx worker replaced during the run) moves its time into its
// parent's cutime/cstime, so the difference between two readings keeps
// the CPU time of processes that ended in between; a zombie not yet reaped
// still has its own stat line. Every root must still exist.
func treeCPUTicks(procDir string, roots []int) (int64, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return 0, err
	}
	stats := map[int]procTimes{}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "stat"))
		if err != nil {
			continue // the process exited while we were looking
		}
		t, err := parseProcStat(b)
		if err != nil {
			return 0, fmt.Errorf("process %d: %w", pid, err)
		}
		stats[pid] = t
		children[t.PPID] = append(children[t.PPID], pid)
	}
	var total int64
	for _, root := range roots {
		if _, ok := stats[root]; !ok {
			return 0, fmt.Errorf("process %d not found", root)
		}
	}
	for _, pid := range descendants(roots, children) {
		total += stats[pid].ticks()
	}
	return total, nil
}

// atClkTck is the auxiliary vector entry holding the kernel's USER_HZ, the
// unit of the times in /proc/PID/stat (what sysconf(_SC_CLK_TCK) returns).
const atClkTck = 17

// clockTicksFromAuxv finds AT_CLKTCK in an auxiliary vector of native-endian
// words of wordSize bytes (/proc/self/auxv).
func clockTicksFromAuxv(auxv []byte, wordSize int) (int64, bool) {
	word := func(b []byte) uint64 {
		if wordSize == 4 {
			return uint64(binary.NativeEndian.Uint32(b))
		}
		return binary.NativeEndian.Uint64(b)
	}
	for i := 0; i+2*wordSize <= len(auxv); i += 2 * wordSize {
		key, val := word(auxv[i:]), word(auxv[i+wordSize:])
		if key == 0 { // AT_NULL ends the vector
			break
		}
		if key == atClkTck && val > 0 {
			return int64(val), true
		}
	}
	return 0, false
}

var clockTicks = sync.OnceValue(func() int64 {
	if b, err := os.ReadFile("/proc/self/auxv"); err == nil {
		if hz, ok := clockTicksFromAuxv(b, int(unsafe.Sizeof(uintptr(0)))); ok {
			return hz
		}
	}
	return 100 // USER_HZ on every Linux architecture Go supports
})

// ticksToDuration converts clock ticks at hz ticks per second.
func ticksToDuration(ticks, hz int64) time.Duration {
	return time.Duration(ticks) * time.Second / time.Duration(hz)
}

// CPUTime returns the CPU time (user + system) the processes and all their
// descendants have used so far, exited and reaped descendants included.
func CPUTime(procs []*Process) (time.Duration, error) {
	roots := make([]int, len(procs))
	for i, p := range procs {
		roots[i] = p.PID()
	}
	ticks, err := treeCPUTicks("/proc", roots)
	if err != nil {
		return 0, err
	}
	return ticksToDuration(ticks, clockTicks()), nil
}

// cpuPerRequest is the CPU time per request in microseconds; 0 when
// nothing was measured.
func cpuPerRequest(cpu time.Duration, requests int64) float64 {
	if cpu <= 0 || requests <= 0 {
		return 0
	}
	return float64(cpu) / float64(time.Microsecond) / float64(requests)
}

// descendants returns roots and every process below them in children
// (pid to child pids), each once.
func descendants(roots []int, children map[int][]int) []int {
	seen := map[int]bool{}
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}
