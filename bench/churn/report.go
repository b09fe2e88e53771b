package churn

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// WriteMarkdown writes the run's tables and the command that made them.
func WriteMarkdown(w io.Writer, r *Result, command string) error {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "# Certificate churn\n\n")
	fmt.Fprintf(&b, "Written by `%s` on %s (%s, %d CPUs as Go sees them). Do not edit by hand.\n\n",
		command, r.Started.UTC().Format(time.DateOnly), runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(&b, "%d branded hosts, each with its own certificate (ECDSA P-256, signed by one benchmark CA). "+
		"For %s, %d changes per second alternate between replacing one host's certificate and editing one host's routes, "+
		"while %d clients open new TLS connections (full handshakes, no resumption) to random hosts and verify the certificate against the CA and the host name",
		c.Hosts, c.Duration, c.ChangesPerSecond, c.LoadWorkers)
	if c.LoadCPU != "" {
		fmt.Fprintf(&b, " (the load generator pinned to CPU %s)", c.LoadCPU)
	}
	fmt.Fprintf(&b, ". Both proxies get %d workers.\n\n", c.Workers)
	b.WriteString("- **Portico** reads Secrets and Ingresses from a real kube-apiserver (etcd, apiserver and controller-manager run on the same machine); a change is one `Update` call.\n")
	b.WriteString("- **nginx** reads certificate files and one server block per host; a change rewrites a file and reloads nginx (`SIGHUP`), as a config-file proxy must.\n\n")
	b.WriteString("| Target | Handshakes/s | Worst second | p50 | p99 | Max | Failed | Wrong certificate | Changes/s applied (errors) | Stale after 5 s | Peak RSS |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range r.Targets {
		if t.Err != "" {
			fmt.Fprintf(&b, "| %s | failed: %s |||||||||\n", t.Name, oneLine(t.Err))
			continue
		}
		l := t.Load
		fmt.Fprintf(&b, "| %s | %.0f | %d | %s | %s | %s | %d | %d | %.1f (%d) | %d of %d | %s |\n",
			t.Name, l.Rate(), l.MinSecond(), ms(l.P50), ms(l.P99), ms(l.Max), l.Failed, l.Wrong,
			t.ChangeRate, t.ChangeErrors, t.Stale, t.Checked, mib(t.PeakRSS))
	}
	if p, n := find(r.Targets, "portico"), find(r.Targets, "nginx"); p != nil && n != nil && p.Err == "" && n.Err == "" && n.Load.Rate() > 0 && n.Load.P99 > 0 {
		fmt.Fprintf(&b, "\nPortico ÷ nginx: handshakes/s %.2f×, p99 %.2f×, worst second %.2f×.\n",
			p.Load.Rate()/n.Load.Rate(), float64(p.Load.P99)/float64(n.Load.P99), ratio(p.Load.MinSecond(), n.Load.MinSecond()))
	}
	for _, t := range r.Targets {
		if len(t.Load.FirstErrors) > 0 {
			kinds := make([]string, 0, len(t.Load.ErrorKinds))
			for k, n := range t.Load.ErrorKinds {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			}
			slices.Sort(kinds)
			fmt.Fprintf(&b, "\nErrors seen by the clients of %s, by kind: %s", t.Name, strings.Join(kinds, ", "))
			if t.Load.FailedMedian > 0 {
				fmt.Fprintf(&b, "; a failed handshake took %s to fail (median)", ms(t.Load.FailedMedian))
			}
			b.WriteString(". The first of each kind:\n")
			for _, e := range t.Load.FirstErrors {
				fmt.Fprintf(&b, "- `%s`\n", oneLine(e))
			}
		}
	}
	if len(r.Memory) > 0 {
		fmt.Fprintf(&b, "\n## Memory with many certificates\n\nEach target loaded with one certificate, Secret and Ingress (or server block) per host, idle, five seconds after every host was served its certificate.\n\n")
		b.WriteString("| Target | Hosts | RSS | Time until every host served |\n|---|---:|---:|---:|\n")
		for _, m := range r.Memory {
			if m.Err != "" {
				fmt.Fprintf(&b, "| %s | %d | failed: %s | |\n", m.Name, m.Hosts, oneLine(m.Err))
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %.1f s |\n", m.Name, m.Hosts, mib(m.RSS), m.Load.Seconds())
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func find(ts []TargetResult, name string) *TargetResult {
	for i := range ts {
		if ts[i].Name == name {
			return &ts[i]
		}
	}
	return nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}
