package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Grafana variables the dashboard's queries use, as Grafana would
// substitute them: every namespace, and a rate window of a few scrapes at
// the test's 1 s scrape interval.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "10s",
	"${namespace}", ".*",
	"$namespace", ".*",
)

// TestDashboardAgainstPrometheus runs Portico (the binary PORTICO_BIN
// names; make test-dashboards sets it) on a manifest folder under a bounded
// loop of requests on loopback, Debian's prometheus scraping it every
// second, and evaluates every query of portico.json: each must parse and
// return data on a healthy gateway, where a panel would otherwise show
// "No data" instead of 0.
func TestDashboardAgainstPrometheus(t *testing.T) {
	bin := os.Getenv("PORTICO_BIN")
	if bin == "" {
		t.Skip("PORTICO_BIN is not set: run make test-dashboards, which builds Portico and installs prometheus")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed: run make test-dashboards (apt-get install prometheus)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	_, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	manifests := filepath.Join(dir, "manifests")
	if err := os.Mkdir(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	writeManifests := func(round int) {
		// The round in a comment: each rewrite is a snapshot build, so the
		// build panels have data too.
		body := fmt.Sprintf("# round %d\n%s", round, fmt.Sprintf(manifestsTmpl, port))
		// Written aside and renamed: Portico must never read half a file
		// (a missing fallback Service would answer 503).
		tmp := filepath.Join(dir, "app.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Error(err)
			return
		}
		if err := os.Rename(tmp, filepath.Join(manifests, "app.yaml")); err != nil {
			t.Error(err)
		}
	}
	writeManifests(0)

	httpAddr, adminAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	portico := exec.CommandContext(ctx, bin, "--manifests", manifests,
		"--http-addr", httpAddr, "--https-addr", freeAddr(t), "--admin-addr", adminAddr)
	var porticoLog bytes.Buffer
	portico.Stdout, portico.Stderr = &porticoLog, &porticoLog
	if err := portico.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		portico.Process.Kill()
		portico.Wait()
		if t.Failed() {
			t.Logf("portico:\n%s", porticoLog.String())
		}
	}()

	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: portico
  static_configs: [{targets: [%q]}]
`, adminAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.CommandContext(ctx, promBin, "--config.file", config,
		"--storage.tsdb.path", filepath.Join(dir, "tsdb"), "--web.listen-address", promAddr)
	var promLog bytes.Buffer
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		prom.Process.Kill()
		prom.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", promLog.String())
		}
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(host, path string) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+httpAddr+path, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s%s: %s", host, path, resp.Status)
		}
		return nil
	}
	// Until Portico serves the route (bounded; a safety net only).
	for i := 0; ; i++ {
		if get("app.example.test", "/") == nil {
			break
		}
		if i == 300 {
			t.Fatal("Portico did not serve app.example.test within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Traffic to a route and to the fallback, in rounds, until the queries
	// are done: at most 600 rounds of 10 requests, 100 ms apart.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var trafficErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := 1; round <= 600; round++ {
			for i := 0; i < 10; i++ {
				host := "app.example.test"
				if i%3 == 0 {
					host = "unmigrated.example.test"
				}
				if err := get(host, "/page"); err != nil && trafficErr == nil {
					trafficErr = err
				}
			}
			if round%20 == 0 {
				writeManifests(round)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		if trafficErr != nil {
			t.Errorf("traffic: %v", trafficErr)
		}
	}()

	promURL := "http://" + promAddr
	query := func(q string) (int, error) {
		resp, err := client.Get(promURL + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		return len(r.Data.Result), nil
	}
	// Until Prometheus holds a window of samples: 12 scrapes of Portico
	// (bounded to 60 s).
	for i := 0; ; i++ {
		if n, err := query(`count_over_time(up{job="portico"}[1m]) >= 12`); err == nil && n == 1 {
			break
		}
		if i == 600 {
			t.Fatal("Prometheus did not scrape Portico 12 times within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	queries := dashboardQueries(t)
	if len(queries) < 10 {
		t.Fatalf("found %d queries in portico.json", len(queries))
	}
	for _, q := range queries {
		expr := grafanaVariables.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a Grafana variable is left unsubstituted: %s", q.where, expr)
			continue
		}
		if strings.HasPrefix(expr, "label_values(") {
			// A variable's query: Grafana asks for the label's values.
			metric, label, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(expr, "label_values("), ")"), ",")
			if !ok {
				t.Errorf("%s: %s", q.where, expr)
				continue
			}
			n, err := labelValues(client, promURL, strings.TrimSpace(metric), strings.TrimSpace(label))
			if err != nil || n == 0 {
				t.Errorf("%s: %s: %d values, %v", q.where, expr, n, err)
			}
			continue
		}
		n, err := query(expr)
		switch {
		case err != nil:
			t.Errorf("%s: %s: %v", q.where, expr, err)
		case n == 0:
			t.Errorf("%s: no data on a healthy gateway under traffic: %s", q.where, expr)
		}
	}
}

type dashboardQuery struct{ where, expr string }

// dashboardQueries are the panels' targets and the templating variables'
// queries.
func dashboardQueries(t *testing.T) []dashboardQuery {
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
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var out []dashboardQuery
	for _, p := range dash.Panels {
		for i, target := range p.Targets {
			if target.Expr != "" {
				out = append(out, dashboardQuery{fmt.Sprintf("panel %q target %d", p.Title, i), target.Expr})
			}
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			out = append(out, dashboardQuery{"variable " + v.Name, q})
		}
	}
	return out
}

func labelValues(client *http.Client, promURL, metric, label string) (int, error) {
	resp, err := client.Get(promURL + "/api/v1/label/" + label + "/values?" + url.Values{"match[]": {metric}}.Encode())
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	return len(r.Data), nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// One Ingress route and the legacy fallback, both to the test's backend.
const manifestsTmpl = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: shop}
spec:
  ingressClassName: portico
  rules:
  - host: app.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: app, namespace: shop}
subsets:
- addresses: [{ip: 127.0.0.1}]
  ports: [{name: http, port: %[1]s}]
---
apiVersion: v1
kind: Service
metadata: {name: legacy-fallback, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy-fallback, namespace: default}
subsets:
- addresses: [{ip: 127.0.0.1}]
  ports: [{name: http, port: %[1]s}]
`
