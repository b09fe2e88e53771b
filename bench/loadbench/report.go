package loadbench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Report is everything a benchmark report shows.
type Report struct {
	Env      MachineInfo
	Command  string
	Settings Settings
	Targets  []Target
	Runs     []Run
	// Notes are printed under the header, for example a target left out.
	Notes []string
}

// Settings are the load parameters printed in the report header.
type Settings struct {
	Rounds      int
	Duration    time.Duration
	Warmup      time.Duration
	Connections int
	Threads     int
	Workers     int
	WrkCPU      string
	Host        string
	ExtraHosts  int
	BodySize    int
}

// SettingsOf extracts the reported settings from a Config.
func SettingsOf(c Config) Settings {
	return Settings{
		Rounds: c.Rounds, Duration: c.Duration, Warmup: c.Warmup,
		Connections: c.Connections, Threads: c.Threads, Workers: c.Workers,
		WrkCPU: c.WrkCPU, Host: c.Host, ExtraHosts: c.ExtraHosts, BodySize: c.BodySize,
	}
}

// MachineInfo describes where the benchmark ran.
type MachineInfo struct {
	Date      time.Time
	NumCPU    int
	CPUModel  string
	Kernel    string
	GoVersion string
	// LoadAvg is /proc/loadavg when the benchmark started: other work on
	// the machine shows up in every figure.
	LoadAvg string
	// Versions of the load generator and peers, keyed by program name.
	Versions map[string]string
}

// CollectMachineInfo reads the machine description from /proc and asks
// each program for its version. Call it before the load starts: it records
// the load average as the benchmark found it.
func CollectMachineInfo(now time.Time, programs map[string]string, names []string) MachineInfo {
	info := MachineInfo{
		Date:      now.UTC(),
		NumCPU:    runtime.NumCPU(),
		CPUModel:  "unknown",
		Kernel:    "unknown",
		GoVersion: runtime.Version(),
		Versions:  map[string]string{},
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		info.CPUModel = cpuModel(f)
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		info.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			info.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	versionArgs := map[string][]string{"wrk": {"-v"}, "nginx": {"-v"}, "haproxy": {"-v"}, "caddy": {"version"}}
	for _, name := range names {
		args, ok := versionArgs[name]
		if !ok {
			continue
		}
		// wrk -v exits non-zero after printing its version; the output is
		// what matters.
		out, _ := exec.Command(program(programs, name), args...).CombinedOutput()
		if v := versionLine(string(out)); v != "" {
			info.Versions[name] = v
		}
	}
	return info
}

// versionLine reduces a program's version output to its first line without
// the copyright notice wrk appends.
func versionLine(out string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}

// cpuModel returns the first "model name" of a /proc/cpuinfo listing.
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

// Summary is the per-target median over successful rounds.
type Summary struct {
	Target      string
	Description string
	Runs        int // successful runs
	Failed      int
	RPS         float64
	P50         time.Duration
	P99         time.Duration
	RSS         int64 // bytes; 0 when the target has no proxy
	PSS         int64 // bytes; 0 when the target has no proxy
	Errors      int64 // summed over all successful runs
	FirstErr    error
}

// Summarize computes per-target medians, in target order. Each figure is
// the median of that figure over rounds, taken independently.
func Summarize(targets []Target, runs []Run) []Summary {
	out := make([]Summary, 0, len(targets))
	for _, t := range targets {
		s := Summary{Target: t.Name, Description: t.Description}
		var rps []float64
		var p50, p99 []time.Duration
		var rss, pss []int64
		for _, r := range runs {
			if r.Target != t.Name {
				continue
			}
			if r.Err != nil {
				s.Failed++
				if s.FirstErr == nil {
					s.FirstErr = r.Err
				}
				continue
			}
			s.Runs++
			s.Errors += r.Result.Errors
			rps = append(rps, r.Result.RPS)
			p50 = append(p50, r.Result.P50)
			p99 = append(p99, r.Result.P99)
			rss = append(rss, r.Memory.RSS)
			pss = append(pss, r.Memory.PSS)
		}
		s.RPS = median(rps)
		s.P50 = median(p50)
		s.P99 = median(p99)
		s.RSS = median(rss)
		s.PSS = median(pss)
		out = append(out, s)
	}
	return out
}

// median returns the middle value, or the mean of the two middle values;
// zero for no values.
func median[T int64 | float64 | time.Duration](values []T) T {
	if len(values) == 0 {
		return 0
	}
	v := slices.Clone(values)
	slices.Sort(v)
	mid := len(v) / 2
	if len(v)%2 == 1 {
		return v[mid]
	}
	return (v[mid-1] + v[mid]) / 2
}

// WriteMarkdown writes the report as Markdown.
func WriteMarkdown(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("# Portico load benchmark\n\n")
	p("- Date: %s\n", r.Env.Date.Format(time.RFC3339))
	p("- CPUs (nproc): %d\n", r.Env.NumCPU)
	p("- CPU: %s\n", r.Env.CPUModel)
	p("- Kernel: %s\n", r.Env.Kernel)
	p("- Go: %s\n", r.Env.GoVersion)
	if r.Env.LoadAvg != "" {
		p("- Load average at start: %s\n", r.Env.LoadAvg)
	}
	for _, name := range sortedKeys(r.Env.Versions) {
		p("- %s: %s\n", name, r.Env.Versions[name])
	}
	p("- Command: `%s`\n", r.Command)
	s := r.Settings
	pin := "unpinned"
	if s.WrkCPU != "" {
		pin = "pinned to CPU " + s.WrkCPU
	}
	p("- Load: wrk, %d threads, %d keep-alive connections, %s per run after a %s warm-up, %d rounds (wrk %s; proxies and backend unpinned)\n",
		s.Threads, s.Connections, s.Duration, s.Warmup, s.Rounds, pin)
	p("- Request: GET / with SNI and Host `%s`, %d-byte response body; every proxy and the backend run %d workers\n",
		s.Host, s.BodySize, s.Workers)
	if s.ExtraHosts > 0 {
		p("- Route tables hold %d further hosts that receive no load\n", s.ExtraHosts)
	}
	for _, n := range r.Notes {
		p("- Note: %s\n", n)
	}
	p("\n")

	sums := Summarize(r.Targets, r.Runs)
	ref := func(name string) float64 {
		for _, x := range sums {
			if x.Target == name && x.Runs > 0 {
				return x.RPS
			}
		}
		return 0
	}
	porticoRPS, directRPS := ref("portico"), ref("direct")
	ratio := func(v, base float64) string {
		if base == 0 || v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", v/base)
	}

	p("Medians over rounds. Ratios divide the target's req/s by the reference's. " +
		"RSS and PSS are the peak memory of the proxy processes (all tiers, masters and workers) during the measured run; " +
		"RSS counts pages shared between processes once per process, PSS splits them, so PSS is the fairer figure for multi-process servers. " +
		"Errors are socket errors plus responses outside 2xx/3xx.\n\n")
	p("| target | req/s | p50 | p99 | RSS MiB | PSS MiB | req/s vs portico | req/s vs direct | errors | runs |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range sums {
		if x.Runs == 0 {
			p("| %s | failed | | | | | | | | 0/%d |\n", x.Target, x.Failed)
			continue
		}
		p("| %s | %.0f | %s | %s | %s | %s | %s | %s | %d | %d/%d |\n",
			x.Target, x.RPS, formatLatency(x.P50), formatLatency(x.P99), formatMiB(x.RSS), formatMiB(x.PSS),
			ratio(x.RPS, porticoRPS), ratio(x.RPS, directRPS), x.Errors, x.Runs, x.Runs+x.Failed)
	}

	p("\nTargets:\n\n")
	for _, x := range sums {
		p("- `%s`: %s\n", x.Target, x.Description)
	}

	var failures []Summary
	for _, x := range sums {
		if x.FirstErr != nil {
			failures = append(failures, x)
		}
	}
	if len(failures) > 0 {
		p("\nFailed runs:\n\n")
		for _, x := range failures {
			p("- `%s` (%d failed): %s\n", x.Target, x.Failed, oneLine(x.FirstErr.Error(), 400))
		}
	}

	p("\n<details><summary>Every run</summary>\n\n")
	p("| round | target | req/s | p50 | p90 | p99 | p99.9 | max | RSS MiB | PSS MiB | errors |\n")
	p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, run := range r.Runs {
		if run.Err != nil {
			p("| %d | %s | failed | | | | | | | | |\n", run.Round, run.Target)
			continue
		}
		res := run.Result
		p("| %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			run.Round, run.Target, res.RPS, formatLatency(res.P50), formatLatency(res.P90),
			formatLatency(res.P99), formatLatency(res.P999), formatLatency(res.Max),
			formatMiB(run.Memory.RSS), formatMiB(run.Memory.PSS), res.Errors)
	}
	p("\n</details>\n")
	return bw.Flush()
}

// formatLatency prints latencies with three significant figures in the unit
// wrk uses for them.
func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// formatMiB prints a memory size in MiB; "–" when nothing was measured
// (targets without a proxy).
func formatMiB(bytes int64) string {
	if bytes <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(bytes)/(1<<20))
}

// oneLine flattens and shortens an error message for a Markdown list item.
func oneLine(s string, limit int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), " ")
	s = strings.Map(func(r rune) rune {
		if r == '|' || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
