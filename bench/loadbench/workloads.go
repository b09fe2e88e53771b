package loadbench

import (
	"fmt"
)

// Load generators a workload can use.
const (
	ToolWrk    = "wrk"
	ToolH2load = "h2load"
)

// LargeBodySize is the response body size of the 16k workload.
const LargeBodySize = 16 << 10

// LargeBodyPath is the backend path that answers with LargeBodySize bytes.
const LargeBodyPath = "/16k"

// Hosts10kCount is the number of further hosts the hosts10k workload puts in
// every route table.
const Hosts10kCount = 10000

// Workload is one kind of load. Every workload runs every selected target.
type Workload struct {
	Name        string
	Description string
	// Tool is the load generator: ToolWrk or ToolH2load.
	Tool string
	// Path is the request path; the backend answers LargeBodyPath with a
	// LargeBodySize body and every other path with the small body.
	Path string
	// Close sends "Connection: close" so every request opens a new
	// connection (a new TLS handshake on the TLS targets).
	Close bool
	// ExtraHosts, when positive, replaces Config.ExtraHosts for this
	// workload.
	ExtraHosts int
}

// Workloads returns every known workload, in the order they run.
func Workloads() []Workload {
	return []Workload{
		{
			Name:        "small",
			Description: "HTTPS/1.1 keep-alive, small response",
			Tool:        ToolWrk,
			Path:        "/",
		},
		{
			Name:        "16k",
			Description: fmt.Sprintf("HTTPS/1.1 keep-alive, %d KiB response (served by the backend from a file)", LargeBodySize>>10),
			Tool:        ToolWrk,
			Path:        LargeBodyPath,
		},
		{
			Name:        "h2",
			Description: "HTTP/2 over TLS (ALPN h2) with h2load, multiplexed streams on few connections, small response",
			Tool:        ToolH2load,
			Path:        "/",
		},
		{
			Name:        "handshake",
			Description: "HTTPS/1.1 with `Connection: close`: a new TCP connection and a TLS handshake per request, small response",
			Tool:        ToolWrk,
			Path:        "/",
			Close:       true,
		},
		{
			Name:        "hosts10k",
			Description: fmt.Sprintf("the small workload with %d further hosts in every route table", Hosts10kCount),
			Tool:        ToolWrk,
			Path:        "/",
			ExtraHosts:  Hosts10kCount,
		},
	}
}

// SelectWorkloads returns the named workloads in the canonical order, or
// every workload when names is empty.
func SelectWorkloads(all []Workload, names []string) ([]Workload, error) {
	return selectByName(all, names, "workloads", func(w Workload) string { return w.Name })
}

// SkipReason says why target t cannot take workload w, or "" when it can.
func SkipReason(w Workload, t Target) string {
	if w.Tool == ToolH2load && t.Scheme != "https" {
		return "h2load speaks HTTP/2 over TLS here; the backend serves plain HTTP/1.1 only"
	}
	if w.Tool == ToolH2load && t.NoHTTP2 {
		return "the target serves HTTP/1.1 only"
	}
	return ""
}

// extraHosts is the number of further hosts in the route tables for w.
func (w Workload) extraHosts(cfg Config) int {
	if w.ExtraHosts > 0 {
		return w.ExtraHosts
	}
	return cfg.ExtraHosts
}
