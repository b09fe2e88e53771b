package loadbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// H2loadCommand returns the h2load command line for one run of d after a
// warm-up, pinned with taskset when cfg.WrkCPU is set.
//
// h2load takes SNI and :authority from the URL host, so the URL carries the
// virtual host and --connect-to sends the connections to loopback: every
// target sees SNI bench.example.test, as with wrk. The per-request log
// (--log-file) holds only requests of the measured period; percentiles are
// computed from it.
func H2loadCommand(cfg Config, url, connectTo, logFile string, warmup, d time.Duration) []string {
	var argv []string
	if cfg.WrkCPU != "" {
		argv = append(argv, program(cfg.Programs, "taskset"), "-c", cfg.WrkCPU)
	}
	argv = append(argv,
		program(cfg.Programs, ToolH2load),
		"-c", strconv.Itoa(cfg.H2Clients),
		"-m", strconv.Itoa(cfg.H2Streams),
		"-t", "1",
		"-D", strconv.FormatInt(ceilSeconds(d), 10),
	)
	if warmup > 0 {
		argv = append(argv, "--warm-up-time", strconv.FormatInt(ceilSeconds(warmup), 10))
	}
	return append(argv,
		"--connect-to", connectTo,
		"--log-file", logFile,
		url,
	)
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// runH2load runs one bounded h2load load (warm-up included) and parses its
// output and per-request log. measureStart, when not nil, is called when the
// warm-up ends and the measured period starts: h2load starts its warm-up
// timer on its first connection, a few milliseconds after it starts on
// loopback, so measureStart runs that much before the measured period.
func runH2load(ctx context.Context, cfg Config, url, addr, logFile string, measureStart func()) (WrkResult, error) {
	argv := H2loadCommand(cfg, url, addr, logFile, cfg.Warmup, cfg.Duration)
	ctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := runNotifying(cmd, time.Duration(ceilSeconds(cfg.Warmup))*time.Second, measureStart); err != nil {
		return WrkResult{}, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, lastLines(stderr.String()+stdout.String(), 10))
	}
	res, err := ParseH2loadOutput(stdout.String())
	if err != nil {
		return WrkResult{}, fmt.Errorf("%w: %s", err, lastLines(stdout.String(), 12))
	}
	f, err := os.Open(logFile)
	if err != nil {
		return WrkResult{}, fmt.Errorf("h2load request log: %w", err)
	}
	lat, err := H2loadLogLatencies(f)
	f.Close()
	if err != nil {
		return WrkResult{}, err
	}
	res.P50, res.P90, res.P99, res.P999 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99), percentile(lat, 99.9)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	_ = os.Remove(logFile) // can be tens of MB
	if res.Requests == 0 {
		return res, fmt.Errorf("h2load completed no requests in the measured period: %s", lastLines(stdout.String(), 12))
	}
	return res, nil
}

// runNotifying runs cmd and calls notify (when not nil) after delay, unless
// cmd has exited by then. notify has returned when runNotifying returns.
func runNotifying(cmd *exec.Cmd, delay time.Duration, notify func()) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	if notify != nil {
		timer := time.NewTimer(delay)
		select {
		case err := <-waited:
			timer.Stop()
			return err
		case <-timer.C:
			notify()
		}
	}
	return <-waited
}

// ParseH2loadOutput reads h2load's summary:
//
//	finished in 10.01s, 50213.40 req/s, 3.40MB/s
//	requests: 502134 total, 502134 started, 502134 done, 502134 succeeded, 0 failed, 0 errored, 0 timeout
//	status codes: 502134 2xx, 0 3xx, 0 4xx, 0 5xx
//	...
//	time for request:      120us      1.03ms       280us       123us    94.40%
//
// req/s is h2load's own figure, which divides by the measured period only
// (without the warm-up). Mean latency is the mean of "time for request"
// (stream opened to response complete); h2load prints no percentiles, so
// P50/P99 are left for the per-request log. Errors counts h2load's failed
// requests, which include non-2xx/3xx answers, resets and timeouts.
func ParseH2loadOutput(out string) (WrkResult, error) {
	var (
		r                     WrkResult
		haveFinished, haveReq bool
		succeeded             int64
	)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "finished in "):
			// finished in 10.01s, 50213.40 req/s, 3.40MB/s
			parts := strings.Split(strings.TrimPrefix(line, "finished in "), ",")
			if len(parts) < 2 {
				return WrkResult{}, fmt.Errorf("unexpected h2load line %q", line)
			}
			d, err := parseWrkDuration(strings.TrimSpace(parts[0]))
			if err != nil {
				return WrkResult{}, err
			}
			rps, ok := strings.CutSuffix(strings.TrimSpace(parts[1]), " req/s")
			if !ok {
				return WrkResult{}, fmt.Errorf("unexpected h2load line %q", line)
			}
			v, err := strconv.ParseFloat(rps, 64)
			if err != nil {
				return WrkResult{}, fmt.Errorf("parse h2load req/s %q: %w", rps, err)
			}
			r.Duration, r.RPS, haveFinished = d, v, true
		case strings.HasPrefix(line, "requests:"):
			counts, err := h2loadCounts(strings.TrimPrefix(line, "requests:"))
			if err != nil {
				return WrkResult{}, err
			}
			total, ok1 := counts["total"]
			failed, ok2 := counts["failed"]
			succ, ok3 := counts["succeeded"]
			if !ok1 || !ok2 || !ok3 {
				return WrkResult{}, fmt.Errorf("unexpected h2load line %q", line)
			}
			r.Requests, r.Errors, succeeded, haveReq = total, failed, succ, true
		case strings.HasPrefix(line, "time for request:"):
			f := strings.Fields(strings.TrimPrefix(line, "time for request:"))
			if len(f) < 3 {
				return WrkResult{}, fmt.Errorf("unexpected h2load line %q", line)
			}
			mean, err := parseWrkDuration(f[2])
			if err != nil {
				return WrkResult{}, err
			}
			r.Mean = mean
		}
	}
	if err := sc.Err(); err != nil {
		return WrkResult{}, err
	}
	if !haveFinished || !haveReq {
		return WrkResult{}, errors.New("h2load output has no \"finished in\" or \"requests:\" line")
	}
	if succeeded == 0 && r.Requests > 0 && r.Errors == 0 {
		r.Errors = r.Requests
	}
	return r, nil
}

// h2loadCounts parses "502134 total, 502134 started, 0 failed" into a map.
func h2loadCounts(s string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return nil, fmt.Errorf("unexpected h2load count %q", part)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse h2load count %q: %w", part, err)
		}
		out[f[1]] = n
	}
	return out, nil
}

// H2loadLogLatencies reads an h2load --log-file (one line per request:
// start time in µs since the epoch, status code, request time in µs) and
// returns the request times of the requests that got a 2xx/3xx answer,
// sorted.
func H2loadLogLatencies(r io.Reader) ([]time.Duration, error) {
	var out []time.Duration
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("h2load log line %d: want 3 fields, got %q", n, line)
		}
		status, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("h2load log line %d: status %q: %w", n, f[1], err)
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || us < 0 {
			return nil, fmt.Errorf("h2load log line %d: request time %q", n, f[2])
		}
		if status < 200 || status >= 400 {
			continue
		}
		out = append(out, time.Duration(us)*time.Microsecond)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// percentile returns the nearest-rank percentile p (0 < p <= 100) of sorted
// values; zero for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// lastLines returns the last n lines of s, for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loopbackConnectTo returns addr's port joined to 127.0.0.1, for
// --connect-to.
func loopbackConnectTo(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
