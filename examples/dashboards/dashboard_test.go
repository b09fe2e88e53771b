// Package dashboards holds the Grafana dashboards shipped with Portico and
// the test that keeps them in step with the metrics Portico exports.
package dashboards

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/metrics"
)

// TestDashboardQueriesExportedMetrics fails when a dashboard queries a
// metric name Portico does not export, e.g. after a rename.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	exported := exportedNames(t)
	raw, err := os.ReadFile("portico.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("portico.json is not valid JSON: %v", err)
	}
	name := regexp.MustCompile(`portico_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, n := range name.FindAllString(target.Expr, -1) {
				queried++
				if !exported[n] {
					t.Errorf("panel %q queries %s, which Portico does not export", p.Title, n)
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("the dashboard queries no Portico metric")
	}
}

// exportedNames gathers every series name Portico exports, histograms with
// their _bucket, _count and _sum series, after touching each collector.
func exportedNames(t *testing.T) map[string]bool {
	m := metrics.New()
	m.Route(metrics.RouteLabels{Kind: "Ingress", Namespace: "ns", Name: "n", Rule: "0/0"}).Observe("GET", 200, 0.01)
	m.Route(metrics.RouteLabels{Kind: "GRPCRoute", Namespace: "ns", Name: "g", Rule: "0/0"}).ObserveGRPC("0")
	m.Passthrough(metrics.RouteLabels{Kind: "TLSRoute", Namespace: "ns", Name: "t", Rule: "0"}, metrics.ModePassthrough, metrics.PassthroughSpliced, 1, 1, 0.1)
	m.ConnectError("ns/svc:80")
	m.SnapshotBuilt(time.Millisecond, true)
	m.Serving(metrics.SnapshotServing{
		Generation:        1,
		Routes:            1,
		Problems:          map[[2]string]int{{"Ingress", "Warning"}: 1},
		CertificateExpiry: map[string]time.Time{"ns/tls": time.Now()},
	})
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := make(map[string]bool)
	for _, f := range families {
		n := f.GetName()
		if !strings.HasPrefix(n, "portico_") {
			continue
		}
		names[n] = true
		if f.GetType().String() == "HISTOGRAM" {
			names[n+"_bucket"], names[n+"_count"], names[n+"_sum"] = true, true, true
		}
	}
	return names
}
