package loadbench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// wrkScript is loaded into every wrk run.
//
// wrk derives both the TLS SNI and the Host header from the URL host, and
// resolves that host through the system resolver. Overriding wrk.resolve
// lets the URL carry the real virtual host name (so SNI is
// bench.example.test, exactly as a real client sends it) while the
// connections go to loopback, without touching /etc/hosts.
//
// done() prints exact figures (microseconds, raw counts) as one JSON line,
// because wrk's human-readable summary rounds latencies to two decimals.
const wrkScript = `
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    "` + wrkResultPrefix + `",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
`

// wrkResultPrefix marks the machine-readable line written by wrkScript.
const wrkResultPrefix = "LOADBENCH_RESULT "

// WrkResult is what one wrk run measured.
type WrkResult struct {
	Requests int64
	Duration time.Duration
	Bytes    int64
	// Errors counts socket errors (connect, read, write, timeout) and
	// responses outside 2xx/3xx. A run with errors is reported, not hidden.
	Errors   int64
	RPS      float64
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	P999     time.Duration
	Mean     time.Duration
	Max      time.Duration
	FromText bool // figures came from the rounded human-readable summary
}

// wrkLine mirrors the JSON written by wrkScript.
type wrkLine struct {
	Requests      int64   `json:"requests"`
	DurationUS    int64   `json:"duration_us"`
	Bytes         int64   `json:"bytes"`
	ConnectErrors int64   `json:"connect_errors"`
	ReadErrors    int64   `json:"read_errors"`
	WriteErrors   int64   `json:"write_errors"`
	StatusErrors  int64   `json:"status_errors"`
	Timeouts      int64   `json:"timeouts"`
	P50US         int64   `json:"p50_us"`
	P90US         int64   `json:"p90_us"`
	P99US         int64   `json:"p99_us"`
	P999US        int64   `json:"p999_us"`
	MeanUS        float64 `json:"mean_us"`
	MaxUS         int64   `json:"max_us"`
}

// ParseWrkOutput extracts a WrkResult from wrk's standard output. It prefers
// the exact line written by wrkScript and falls back to the human-readable
// summary that wrk --latency prints, so output from a plain wrk run parses
// too.
func ParseWrkOutput(out string) (WrkResult, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), strings.TrimSpace(wrkResultPrefix))
		if !ok {
			continue
		}
		var l wrkLine
		if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &l); err != nil {
			return WrkResult{}, fmt.Errorf("parse wrk result line: %w", err)
		}
		if l.DurationUS <= 0 {
			return WrkResult{}, errors.New("wrk result line reports a non-positive duration")
		}
		us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
		return WrkResult{
			Requests: l.Requests,
			Duration: us(l.DurationUS),
			Bytes:    l.Bytes,
			Errors:   l.ConnectErrors + l.ReadErrors + l.WriteErrors + l.StatusErrors + l.Timeouts,
			RPS:      float64(l.Requests) / (float64(l.DurationUS) / 1e6),
			P50:      us(l.P50US),
			P90:      us(l.P90US),
			P99:      us(l.P99US),
			P999:     us(l.P999US),
			Mean:     time.Duration(l.MeanUS * float64(time.Microsecond)),
			Max:      us(l.MaxUS),
		}, nil
	}
	return parseWrkText(out)
}

// parseWrkText reads wrk's human-readable summary:
//
//	  Latency Distribution
//	     50%    1.10ms
//	     99%    3.20ms
//	  497512 requests in 10.00s, 80.23MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 0
//	  Non-2xx or 3xx responses: 12
//	Requests/sec:  49741.23
func parseWrkText(out string) (WrkResult, error) {
	var (
		r                 WrkResult
		haveRPS, haveReqs bool
		haveP50, haveP99  bool
	)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return WrkResult{}, fmt.Errorf("parse Requests/sec %q: %w", f[1], err)
			}
			r.RPS, haveRPS = v, true
		case len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return WrkResult{}, err
			}
			switch f[0] {
			case "50%":
				r.P50, haveP50 = d, true
			case "90%":
				r.P90 = d
			case "99%":
				r.P99, haveP99 = d, true
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return WrkResult{}, fmt.Errorf("parse request count %q: %w", f[0], err)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return WrkResult{}, err
			}
			r.Requests, r.Duration, haveReqs = n, d, true
		case len(f) >= 3 && f[0] == "Socket" && f[1] == "errors:":
			// connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return WrkResult{}, fmt.Errorf("parse socket errors: %w", err)
				}
				r.Errors += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return WrkResult{}, fmt.Errorf("parse non-2xx count: %w", err)
			}
			r.Errors += n
		}
	}
	if err := sc.Err(); err != nil {
		return WrkResult{}, err
	}
	if !haveRPS || !haveReqs {
		return WrkResult{}, errors.New("wrk output has no Requests/sec or request count line")
	}
	if !haveP50 || !haveP99 {
		return WrkResult{}, errors.New("wrk output has no latency distribution (run wrk with --latency)")
	}
	r.FromText = true
	return r, nil
}

// parseWrkDuration parses wrk's time format: a decimal number followed by
// us, ms, s, m or h.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{
		// Longest suffixes first: "ms" and "us" also end in "s".
		{"us", time.Microsecond},
		{"ms", time.Millisecond},
		{"s", time.Second},
		{"m", time.Minute},
		{"h", time.Hour},
	}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, fmt.Errorf("invalid wrk duration %q", s)
		}
		return time.Duration(v * float64(u.unit)), nil
	}
	return 0, fmt.Errorf("invalid wrk duration %q", s)
}
