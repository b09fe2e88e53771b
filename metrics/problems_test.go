package metrics

import "testing"

// TestConfigProblemsZeroSeries: with no problems there is still one
// portico_config_problems series, at 0, so sum() over it is 0 rather than
// empty; with problems there are only their series.
func TestConfigProblemsZeroSeries(t *testing.T) {
	m := New()
	series := func() map[string]float64 {
		t.Helper()
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[string]float64)
		for _, f := range families {
			if f.GetName() != ConfigProblemsName {
				continue
			}
			for _, s := range f.GetMetric() {
				key := ""
				for _, l := range s.GetLabel() {
					key += l.GetName() + "=" + l.GetValue() + ","
				}
				out[key] = s.GetGauge().GetValue()
			}
		}
		return out
	}

	m.Serving(SnapshotServing{})
	if got := series(); len(got) != 1 || got["kind=,severity=,"] != 0 {
		t.Errorf("no problems: series %v, want one at 0", got)
	}

	m.Serving(SnapshotServing{Problems: map[[2]string]int{{"Ingress", "Warning"}: 2}})
	if got := series(); len(got) != 1 || got["kind=Ingress,severity=Warning,"] != 2 {
		t.Errorf("two Ingress warnings: series %v", got)
	}

	m.Serving(SnapshotServing{})
	if got := series(); len(got) != 1 || got["kind=,severity=,"] != 0 {
		t.Errorf("problems fixed: series %v, want one at 0", got)
	}
}
