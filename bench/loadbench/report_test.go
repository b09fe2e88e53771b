package loadbench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"one", []float64{3}, 3},
		{"odd unsorted", []float64{9, 1, 5}, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := median(tt.in); got != tt.want {
				t.Errorf("median = %v, want %v", got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatal("median reordered its input")
				}
			}
		})
	}
}

func testRuns() ([]Target, []Run) {
	targets := []Target{{Name: "portico", Description: "P"}, {Name: "direct", Description: "D"}, {Name: "nginx", Description: "N"}}
	res := func(rps float64, p50, p99 time.Duration, errs int64) WrkResult {
		return WrkResult{Requests: int64(rps), RPS: rps, P50: p50, P99: p99, Errors: errs}
	}
	ms := time.Millisecond
	runs := []Run{
		{Target: "portico", Round: 1, Result: res(30000, 2*ms, 5*ms, 0), Memory: Memory{RSS: 20 << 20, PSS: 20 << 19}, CPU: 600 * ms},
		{Target: "direct", Round: 1, Result: res(80000, 1*ms, 3*ms, 0), CPU: 400 * ms},
		{Target: "nginx", Round: 1, Err: errors.New("nginx exited\nbadly | really")},
		{Target: "portico", Round: 2, Result: res(40000, 1*ms, 4*ms, 2), Memory: Memory{RSS: 30 << 20, PSS: 30 << 19}, CPU: 1000 * ms},
		{Target: "direct", Round: 2, Result: res(60000, 1*ms, 2*ms, 0), CPU: 360 * ms},
		{Target: "nginx", Round: 2, Err: errors.New("again")},
		{Target: "portico", Round: 3, Result: res(35000, 3*ms, 6*ms, 1), Memory: Memory{RSS: 25 << 20, PSS: 25 << 19}, CPU: 700 * ms},
		{Target: "direct", Round: 3, Result: res(70000, 1*ms, 2*ms, 0)},
		{Target: "nginx", Round: 3, Result: res(35000, 2*ms, 4*ms, 0), Memory: Memory{RSS: 10 << 20, PSS: 10 << 19}, CPU: 525 * ms},
	}
	return targets, runs
}

func TestSummarize(t *testing.T) {
	targets, runs := testRuns()
	got := Summarize(targets, runs)
	if len(got) != 3 {
		t.Fatalf("%d summaries", len(got))
	}
	p := got[0]
	if p.Target != "portico" || p.RPS != 35000 || p.P50 != 2*time.Millisecond || p.P99 != 5*time.Millisecond ||
		p.RSS != 25<<20 || p.PSS != 25<<19 || p.Errors != 3 || p.Runs != 3 || p.Failed != 0 {
		t.Errorf("portico summary = %+v", p)
	}
	// CPU µs/req per round: 20, 25, 20 -> median 20.
	if p.CPUPerReq != 20 {
		t.Errorf("portico CPU µs/req = %v, want 20", p.CPUPerReq)
	}
	// 5 and 6; the round without a CPU reading is left out.
	if d := got[1]; d.CPUPerReq != 5.5 {
		t.Errorf("direct CPU µs/req = %v, want 5.5", d.CPUPerReq)
	}
	n := got[2]
	if n.Runs != 1 || n.Failed != 2 || n.FirstErr == nil || n.FirstErr.Error() != "nginx exited\nbadly | really" {
		t.Errorf("nginx summary = %+v", n)
	}
}

func TestWriteMarkdown(t *testing.T) {
	targets, runs := testRuns()
	r := Report{
		Env: MachineInfo{
			Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), NumCPU: 2, CPUModel: "Test CPU",
			Kernel: "6.1.0", GoVersion: "go1.27.4", LoadAvg: "0.10 0.20 0.30", Versions: map[string]string{"wrk": "wrk 4.1.0"},
		},
		Command:  "BENCH_ROUNDS=3 bench/run.sh",
		Settings: Settings{Rounds: 3, Duration: 10 * time.Second, Warmup: 2 * time.Second, Connections: 64, Threads: 2, Workers: 2, WrkCPU: "1", Host: "bench.example.test", BodySize: 100},
		Targets:  targets,
		Runs:     runs,
		Notes:    []string{"a note"},
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"- Date: 2026-01-02T03:04:05Z",
		"- CPUs (nproc): 2",
		"- CPU: Test CPU",
		"- Kernel: 6.1.0",
		"- Go: go1.27.4",
		"- Load average at start: 0.10 0.20 0.30",
		"- wrk: wrk 4.1.0",
		"- Command: `BENCH_ROUNDS=3 bench/run.sh`",
		"wrk pinned to CPU 1",
		"- Note: a note",
		"| target | req/s | p50 | p99 | CPU µs/req | RSS MiB | PSS MiB | req/s vs portico | req/s vs direct | CPU/req vs portico | errors | runs |",
		"| portico | 35000 | 2.00ms | 5.00ms | 20.0 | 25.0 | 12.5 | 1.00 | 0.50 | 1.00 | 3 | 3/3 |",
		"| direct | 70000 | 1.00ms | 2.00ms | 5.50 | – | – | 2.00 | 1.00 | 0.28 | 0 | 3/3 |",
		"| nginx | 35000 | 2.00ms | 4.00ms | 15.0 | 10.0 | 5.0 | 1.00 | 0.50 | 0.75 | 0 | 1/3 |",
		"| round | target | req/s | p50 | p90 | p99 | p99.9 | max | CPU s | CPU µs/req | RSS MiB | PSS MiB | errors |",
		"| 2 | portico | 40000 | 1.00ms | – | 4.00ms | – | – | 1.00 | 25.0 | 30.0 | 15.0 | 2 |",
		"| 3 | direct | 70000 | 1.00ms | – | 2.00ms | – | – | – | – | – | – | 0 |",
		"- `nginx` (2 failed): nginx exited badly   really",
		"| 1 | nginx | failed |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
}

func TestWriteMarkdownWithoutReferences(t *testing.T) {
	r := Report{
		Targets: []Target{{Name: "nginx"}},
		Runs:    []Run{{Target: "nginx", Round: 1, Err: errors.New("boom")}},
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| nginx | failed | | | | | | | | | | 0/1 |") {
		t.Errorf("failed target row missing:\n%s", b.String())
	}
}

func TestFormatLatency(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "–"},
		{269 * time.Microsecond, "269µs"},
		{1831 * time.Microsecond, "1.83ms"},
		{1500 * time.Millisecond, "1.50s"},
	}
	for _, tt := range tests {
		if got := formatLatency(tt.d); got != tt.want {
			t.Errorf("formatLatency(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestCPUModelAndVersionLine(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got := cpuModel(strings.NewReader(info)); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel(strings.NewReader("processor: 0\n")); got != "unknown" {
		t.Errorf("cpuModel without model name = %q", got)
	}
	tests := map[string]string{
		"wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer\nUsage: wrk": "wrk debian/4.1.0-3+b2 [epoll]",
		"nginx version: nginx/1.22.1\n":                                            "nginx version: nginx/1.22.1",
		"":                                                                         "",
	}
	for in, want := range tests {
		if got := versionLine(in); got != want {
			t.Errorf("versionLine(%q) = %q, want %q", in, got, want)
		}
	}
}
