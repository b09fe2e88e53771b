package loadbench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	// Workloads get one section each, in this order; empty reports the runs
	// as one unnamed workload.
	Workloads []Workload
	Runs      []Run
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
	H2Clients   int
	H2Streams   int
}

// SettingsOf extracts the reported settings from a Config.
func SettingsOf(c Config) Settings {
	return Settings{
		Rounds: c.Rounds, Duration: c.Duration, Warmup: c.Warmup,
		Connections: c.Connections, Threads: c.Threads, Workers: c.Workers,
		WrkCPU: c.WrkCPU, Host: c.Host, ExtraHosts: c.ExtraHosts, BodySize: c.BodySize,
		H2Clients: c.H2Clients, H2Streams: c.H2Streams,
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
	versionArgs := map[string][]string{"wrk": {"-v"}, "nginx": {"-v"}, "haproxy": {"-v"}, "caddy": {"version"}, "h2load": {"--version"}}
	for _, name := range names {
		args, ok := versionArgs[name]
		if !ok {
			continue
		}
		// wrk -v exits non-zero after printing its version; the output is
		// what matters.
		out, _ := exec.Command(program(programs, name), args...).CombinedOutput()
		v := versionLine(string(out))
		if pkg := debianPackage(program(programs, name)); pkg != "" {
			v = strings.TrimSpace(v + " (Debian package " + pkg + ")")
		}
		if v != "" {
			info.Versions[name] = v
		}
	}
	return info
}

// debianPackage returns "name version" of the Debian package that installed
// the program, or "" when dpkg does not know it.
func debianPackage(prog string) string {
	path, err := exec.LookPath(prog)
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	out, err := exec.Command("dpkg-query", "-S", path).Output()
	if err != nil {
		// usrmerge: dpkg may list /bin or /sbin paths for /usr/bin ones.
		alt, ok := strings.CutPrefix(path, "/usr")
		if !ok {
			return ""
		}
		if out, err = exec.Command("dpkg-query", "-S", alt).Output(); err != nil {
			return ""
		}
	}
	pkg, _, ok := strings.Cut(strings.TrimSpace(string(out)), ":")
	if !ok || strings.ContainsAny(pkg, " ,") {
		return ""
	}
	ver, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return pkg + " " + strings.TrimSpace(string(ver))
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
	// CPUPerReq is the CPU time of the target's processes per request, in
	// microseconds (Run.CPUPerRequest); 0 when not measured.
	CPUPerReq float64
	Errors    int64 // summed over all successful runs
	FirstErr  error
	// Skipped says why the target did not take the workload.
	Skipped string
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
		var cpu []float64
		for _, r := range runs {
			if r.Target != t.Name {
				continue
			}
			if r.Skipped != "" {
				s.Skipped = r.Skipped
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
			if c := r.CPUPerRequest(); c > 0 {
				cpu = append(cpu, c)
			}
		}
		s.RPS = median(rps)
		s.P50 = median(p50)
		s.P99 = median(p99)
		s.RSS = median(rss)
		s.PSS = median(pss)
		s.CPUPerReq = median(cpu)
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
	fmt.Fprintf(bw, "# Portico load benchmark\n\n")
	writeReportBody(bw, r)
	return bw.Flush()
}

// DocsIntro opens docs/benchmarks.md.
const DocsIntro = `This page is generated by the load benchmark (` + "`bench/run.sh --docs`" + `); do not edit it
by hand. It compares Portico with the same request sent straight to the
backend (` + "`direct`, `direct-tls`" + `) and through peer proxies doing the same job:
nginx (one tier and the two-tier edge + routing layout Portico replaces),
HAProxy and Caddy, and through three Go references: a bare Go TLS server
answering itself (` + "`direct-go-tls`" + `), the smallest Go proxy, fasthttp's
server and client with a host check (` + "`go-fasthttp`" + `), the floor for a proxy
on Go's netpoller, and a measurement prototype doing that proxy's work on
Go event loops over epoll (` + "`go-epoll`" + `), not a product. Every target terminates TLS with the same certificate,
routes the virtual host and path prefix ` + "`/`" + ` to the same nginx backend over
keep-alive connections, and runs with 2 workers or threads; everything runs
on 127.0.0.1 of one machine, with the load generator pinned to its own CPU.
The workloads cover small and 16 KiB responses over HTTPS/1.1 keep-alive,
HTTP/2, a TLS handshake per request, and a route table of 10,000 hosts.
Reproduce with the command shown below (` + "`make bench`" + ` runs ` + "`bench/run.sh`" + `);
` + "`bench/README.md`" + ` describes the harness and its settings.`

// ProfileNotesPlaceholder stands in "Where the time goes" when there are no
// profile notes.
const ProfileNotesPlaceholder = "No profile notes yet. Put them in `bench/profile-notes.md`; " +
	"`bench/run.sh --docs` copies that file here."

// WriteDocs writes the report as docs/benchmarks.md: a fixed introduction,
// the report, and a "Where the time goes" section holding profileNotes
// (the content of bench/profile-notes.md) or a placeholder.
func WriteDocs(w io.Writer, r Report, profileNotes string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "<!-- Generated by bench/run.sh --docs. Do not edit: change bench/profile-notes.md or the harness in bench/loadbench. -->\n\n")
	fmt.Fprintf(bw, "# Benchmarks\n\n%s\n\n## Setup\n\n", DocsIntro)
	writeReportBody(bw, r)
	fmt.Fprintf(bw, "\n## Where the time goes\n\n")
	notes := strings.TrimSpace(profileNotes)
	if notes == "" {
		notes = ProfileNotesPlaceholder
	}
	fmt.Fprintf(bw, "%s\n", notes)
	return bw.Flush()
}

// writeReportBody writes the header bullet list and one section per
// workload.
func writeReportBody(bw *bufio.Writer, r Report) {
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

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
	if hasTool(r.Workloads, ToolH2load) {
		p("- HTTP/2 load: h2load, 1 thread (%s), %d connections with up to %d concurrent streams each, same duration and warm-up\n",
			pin, s.H2Clients, s.H2Streams)
	}
	p("- Request: GET with SNI and Host `%s`, %d-byte response body unless the workload says otherwise; every proxy and the backend run %d workers\n",
		s.Host, s.BodySize, s.Workers)
	if s.ExtraHosts > 0 {
		p("- Route tables hold %d further hosts that receive no load (except where a workload sets its own number)\n", s.ExtraHosts)
	}
	for _, n := range r.Notes {
		p("- Note: %s\n", n)
	}
	p("\n")

	p("Figures are medians over rounds, each taken independently. Ratios divide the target's req/s by the reference's. " +
		"RSS and PSS are the peak memory of the proxy processes (all tiers, masters and workers) during the measured run; " +
		"RSS counts pages shared between processes once per process, PSS splits them, so PSS is the fairer figure for multi-process servers. " +
		"CPU µs/req is the user + system CPU time of the target's processes (every tier, master and workers; the backend for `direct`, which has no proxy) " +
		"during the measured period, without the warm-up, divided by the requests completed in that period; " +
		"it excludes the load generator and, for proxies, the backend, so it is the cost of the proxy hop (for `direct`: of the backend alone). " +
		"CPU/req vs portico divides it by Portico's: below 1 is cheaper than Portico. " +
		"Errors are socket errors plus responses outside 2xx/3xx.\n\n")

	if len(r.Workloads) == 0 {
		writeWorkload(bw, r, Workload{}, r.Runs)
	} else {
		for _, w := range r.Workloads {
			var runs []Run
			for _, run := range r.Runs {
				if run.Workload == w.Name {
					runs = append(runs, run)
				}
			}
			p("## Workload `%s`\n\n%s.", w.Name, upperFirst(w.Description))
			switch {
			case w.Tool == ToolH2load:
				p(" p50 and p99 are percentiles of h2load's per-request time (stream sent to response complete), " +
					"computed from its per-request log of the measured period; memory peaks include h2load's warm-up.")
			case w.Close:
				p(" wrk keeps a connection's TLS session for the next one (every TLS target issues TLS 1.3 session tickets), " +
					"so every request pays a TCP connect and a resumed handshake: an X25519 key exchange, no certificate or signature; " +
					"wrk's latency starts when the request is written, after connect and handshake, so req/s carries the handshake cost and p50/p99 mostly do not. " +
					"`direct` pays a TCP connect per request but no TLS.")
			}
			p("\n\n")
			writeWorkload(bw, r, w, runs)
			p("\n")
		}
	}

	p("Targets:\n\n")
	for _, t := range r.Targets {
		p("- `%s`: %s\n", t.Name, t.Description)
	}
}

func hasTool(ws []Workload, tool string) bool {
	for _, w := range ws {
		if w.Tool == tool {
			return true
		}
	}
	return false
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// writeWorkload writes the summary table, failures and every run of one
// workload.
func writeWorkload(bw *bufio.Writer, r Report, w Workload, runs []Run) {
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	sums := Summarize(r.Targets, runs)
	ref := func(name string) float64 {
		for _, x := range sums {
			if x.Target == name && x.Runs > 0 {
				return x.RPS
			}
		}
		return 0
	}
	porticoRPS, directRPS := ref("portico"), ref("direct")
	var porticoCPU float64
	for _, x := range sums {
		if x.Target == "portico" && x.Runs > 0 {
			porticoCPU = x.CPUPerReq
		}
	}
	directName := "direct"
	if directRPS == 0 && w.Tool == ToolH2load {
		// No plain-HTTP direct path under HTTP/2: the TLS ceiling stands in.
		directRPS, directName = ref("direct-tls"), "direct-tls"
	}
	ratio := func(v, base float64) string {
		if base == 0 || v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", v/base)
	}

	p("| target | req/s | p50 | p99 | CPU µs/req | RSS MiB | PSS MiB | req/s vs portico | req/s vs %s | CPU/req vs portico | errors | runs |\n", directName)
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var skipped []Summary
	for _, x := range sums {
		if x.Skipped != "" && x.Runs == 0 && x.Failed == 0 {
			p("| %s | skipped | | | | | | | | | | |\n", x.Target)
			skipped = append(skipped, x)
			continue
		}
		if x.Runs == 0 {
			p("| %s | failed | | | | | | | | | | 0/%d |\n", x.Target, x.Failed)
			continue
		}
		p("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d/%d |\n",
			x.Target, x.RPS, formatLatency(x.P50), formatLatency(x.P99), formatCPUPerReq(x.CPUPerReq), formatMiB(x.RSS), formatMiB(x.PSS),
			ratio(x.RPS, porticoRPS), ratio(x.RPS, directRPS), ratio(x.CPUPerReq, porticoCPU), x.Errors, x.Runs, x.Runs+x.Failed)
	}
	p("\n")
	for _, x := range skipped {
		p("- `%s` skipped: %s\n", x.Target, x.Skipped)
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

	summary := "Every run"
	if w.Name != "" {
		summary = "Every run of `" + w.Name + "`"
	}
	p("\n<details><summary>%s</summary>\n\n", summary)
	p("| round | target | req/s | p50 | p90 | p99 | p99.9 | max | CPU s | CPU µs/req | RSS MiB | PSS MiB | errors |\n")
	p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, run := range runs {
		if run.Skipped != "" {
			continue
		}
		if run.Err != nil {
			p("| %d | %s | failed | | | | | | | | | | |\n", run.Round, run.Target)
			continue
		}
		res := run.Result
		p("| %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			run.Round, run.Target, res.RPS, formatLatency(res.P50), formatLatency(res.P90),
			formatLatency(res.P99), formatLatency(res.P999), formatLatency(res.Max),
			formatCPUSeconds(run.CPU), formatCPUPerReq(run.CPUPerRequest()),
			formatMiB(run.Memory.RSS), formatMiB(run.Memory.PSS), res.Errors)
	}
	p("\n</details>\n")
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

// formatCPUPerReq prints microseconds of CPU per request with three
// significant figures (two decimals below 10); "–" when not measured.
func formatCPUPerReq(us float64) string {
	switch {
	case us <= 0:
		return "–"
	case us < 10:
		return fmt.Sprintf("%.2f", us)
	case us < 100:
		return fmt.Sprintf("%.1f", us)
	default:
		return fmt.Sprintf("%.0f", us)
	}
}

// formatCPUSeconds prints a CPU time in seconds; "–" when not measured.
func formatCPUSeconds(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", d.Seconds())
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
