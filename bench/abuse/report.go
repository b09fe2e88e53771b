package abuse

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// Report is what WriteMarkdown prints.
type Report struct {
	Date     time.Time
	Command  string
	Machine  string
	Config   Config
	Results  []Result
	Notes    []string
	Finished bool
}

// WriteMarkdown writes the results as a Markdown section that can go into
// docs/benchmarks.md as it is: how the run was made, what each attack is,
// and one table with a row per attack and proxy.
func WriteMarkdown(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	c := r.Config
	s := c.Settings
	fmt.Fprintf(bw, "## Under attack\n\n")
	fmt.Fprintf(bw, "A normal load (wrk, HTTPS/1.1 keep-alive, `GET /`, %d connections, %d threads, %s measured) runs through each proxy "+
		"while one attack runs against the same listener; the attack starts %s before the load. Every proxy forwards to the same "+
		"nginx backend through a counting TCP relay on loopback. %d workers per proxy (GOMAXPROCS for Portico).\n\n",
		c.Load.Connections, c.Load.Threads, c.Load.Duration, c.Ramp, c.Load.Workers)
	fmt.Fprintf(bw, "| attack | what the attacker does |\n|---|---|\n")
	for _, a := range c.Attacks {
		what := a.Description
		switch a.Name {
		case "rapid-reset":
			what += fmt.Sprintf(": %d connections, %d streams per batch, %s pause, at most %d streams", s.ResetConns, s.ResetBatch, s.ResetPause, s.ResetMaxStreams)
		case "slow-body":
			what += fmt.Sprintf(": %d connections, Content-Length %d, 1 byte per %s", s.SlowConns, s.SlowBodySize, s.SlowInterval)
		case "idle":
			what += fmt.Sprintf(": %d connections", s.IdleConns)
		}
		fmt.Fprintf(bw, "| `%s` | %s |\n", a.Name, what)
	}
	fmt.Fprintf(bw, "\n| attack | proxy | normal req/s | p50 | p99 | p99 × no attack | errors | peak RSS | backend connects | attacker |\n")
	fmt.Fprintf(bw, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	baseline := map[string]time.Duration{}
	for _, res := range r.Results {
		if res.Attack == "none" && res.Err == nil {
			baseline[res.Target] = res.Load.P99
		}
	}
	for _, res := range r.Results {
		if res.Err != nil {
			fmt.Fprintf(bw, "| `%s` | %s | failed: %s | | | | | | | |\n", res.Attack, res.Target, oneLine(res.Err.Error(), 160))
			continue
		}
		ratio := "–"
		if b := baseline[res.Target]; b > 0 && res.Attack != "none" {
			ratio = fmt.Sprintf("×%.1f", float64(res.Load.P99)/float64(b))
		}
		attacker := "–"
		if res.Attack != "none" {
			attacker = res.Attacker.String()
		}
		fmt.Fprintf(bw, "| `%s` | %s | %.0f | %s | %s | %s | %d | %.1f MiB | %d | %s |\n",
			res.Attack, res.Target, res.Load.RPS, latency(res.Load.P50), latency(res.Load.P99), ratio,
			res.Load.Errors, float64(res.Memory.RSS)/(1<<20), res.BackendConnects, attacker)
	}
	fmt.Fprintf(bw, "\nBackend connects count every connection the proxy opened to the backend during the attack and the load, "+
		"the load's own included (see the `none` rows). Errors are wrk's socket errors and non-2xx/3xx answers.\n")
	if len(r.Notes) > 0 {
		fmt.Fprintf(bw, "\n")
		for _, n := range r.Notes {
			fmt.Fprintf(bw, "- %s\n", n)
		}
	}
	fmt.Fprintf(bw, "\nRun %s on %s: `%s`", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Machine, r.Command)
	if !r.Finished {
		fmt.Fprintf(bw, " (stopped early)")
	}
	fmt.Fprintf(bw, "\n")
	return bw.Flush()
}

func latency(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func oneLine(s string, limit int) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '|' {
			r = ' '
		}
		out = append(out, r)
	}
	if len(out) > limit {
		out = append(out[:limit], '…')
	}
	return string(out)
}
