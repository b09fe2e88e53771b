package loadbench

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const h2loadOutput = `starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 2s of warm-up time and 5s of main duration for measurements.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2

finished in 7.00s, 72892.00 req/s, 4.94MB/s
requests: 364460 total, 364460 started, 364460 done, 364450 succeeded, 10 failed, 4 errored, 1 timeout
status codes: 364450 2xx, 0 3xx, 6 4xx, 0 5xx
traffic: 24.68MB (25876660) total, 10.02MB (10510656) headers (space savings 51.02%), 1.04MB (1094860) data
                     min         max         mean         sd        +/- sd
time for request:       31us      3.76ms       487us       132us    86.21%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :   18125.73    18306.09    18218.19       80.66    50.00%
`

func TestParseH2loadOutput(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    WrkResult
		wantErr string
	}{
		{
			name: "timing-based run",
			out:  h2loadOutput,
			want: WrkResult{Requests: 364460, Duration: 7 * time.Second, Errors: 10, RPS: 72892, Mean: 487 * time.Microsecond},
		},
		{
			name: "millisecond mean",
			out:  strings.Replace(h2loadOutput, "       487us  ", "      1.25ms  ", 1),
			want: WrkResult{Requests: 364460, Duration: 7 * time.Second, Errors: 10, RPS: 72892, Mean: 1250 * time.Microsecond},
		},
		{
			name: "nothing succeeded counts every request as an error",
			out: "finished in 3.00s, 10.00 req/s, 0B/s\n" +
				"requests: 20 total, 20 started, 20 done, 0 succeeded, 0 failed, 0 errored, 0 timeout\n",
			want: WrkResult{Requests: 20, Duration: 3 * time.Second, Errors: 20, RPS: 10},
		},
		{
			name:    "no protocol negotiated",
			out:     "starting benchmark...\nNo protocol negotiated. Aborted.\n",
			wantErr: "no \"finished in\"",
		},
		{
			name:    "bad req/s",
			out:     strings.Replace(h2loadOutput, "72892.00 req/s", "many req/s", 1),
			wantErr: "parse h2load req/s",
		},
		{
			name:    "bad count",
			out:     strings.Replace(h2loadOutput, "10 failed", "ten failed", 1),
			wantErr: "parse h2load count",
		},
		{
			name:    "missing failed count",
			out:     strings.Replace(h2loadOutput, ", 10 failed", "", 1),
			wantErr: "unexpected h2load line",
		},
		{
			name:    "bad duration",
			out:     strings.Replace(h2loadOutput, "finished in 7.00s", "finished in soon", 1),
			wantErr: "invalid wrk duration",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseH2loadOutput(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestH2loadLogLatencies(t *testing.T) {
	us := time.Microsecond
	tests := []struct {
		name    string
		log     string
		want    []time.Duration
		wantErr string
	}{
		{"empty", "", nil, ""},
		{
			name: "sorted, failures left out",
			log:  "1795431899152025\t200\t550\n1795431899152025\t200\t379\n1795431899152026\t404\t10\n1795431899152027\t-1\t5\n\n1795431899152028\t304\t400\n",
			want: []time.Duration{379 * us, 400 * us, 550 * us},
		},
		{"too few fields", "1795431899152025\t200\n", nil, "want 3 fields"},
		{"bad status", "1795431899152025\tok\t12\n", nil, "status"},
		{"bad time", "1795431899152025\t200\t-3\n", nil, "request time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := H2loadLogLatencies(strings.NewReader(tt.log))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var hundred []time.Duration
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i))
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 100", hundred, 50, 50},
		{"p99 of 100", hundred, 99, 99},
		{"p99.9 of 100", hundred, 99.9, 100},
		{"p100", hundred, 100, 100},
		{"p50 of 3", []time.Duration{1, 2, 3}, 50, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestH2loadCommand(t *testing.T) {
	cfg := Config{H2Clients: 16, H2Streams: 10, Programs: map[string]string{"h2load": "/usr/bin/h2load"}}
	tests := []struct {
		name   string
		cpu    string
		warmup time.Duration
		want   string
	}{
		{"pinned with warm-up", "1", 2 * time.Second,
			"taskset -c 1 /usr/bin/h2load -c 16 -m 10 -t 1 -D 5 --warm-up-time 2 --connect-to 127.0.0.1:8443 --log-file /w/h2.log https://bench.example.test:8443/"},
		{"unpinned without warm-up", "", 0,
			"/usr/bin/h2load -c 16 -m 10 -t 1 -D 5 --connect-to 127.0.0.1:8443 --log-file /w/h2.log https://bench.example.test:8443/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg.WrkCPU = tt.cpu
			got := strings.Join(H2loadCommand(cfg, "https://bench.example.test:8443/", "127.0.0.1:8443", "/w/h2.log", tt.warmup, 4500*time.Millisecond), " ")
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSelectWorkloads(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		want    []string
		wantErr bool
	}{
		{"all by default", nil, []string{"small", "16k", "h2", "handshake", "hosts10k"}, false},
		{"canonical order kept", []string{"hosts10k", "small"}, []string{"small", "hosts10k"}, false},
		{"unknown", []string{"small", "h3"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectWorkloads(Workloads(), tt.names)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			var names []string
			for _, g := range got {
				names = append(names, g.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %q, want %q", names, tt.want)
			}
		})
	}
}

func TestSkipReasonAndWrkClose(t *testing.T) {
	byName := map[string]Workload{}
	for _, w := range Workloads() {
		byName[w.Name] = w
	}
	for _, tg := range Targets() {
		got := SkipReason(byName["h2"], tg) != ""
		if want := tg.Scheme != "https" || tg.NoHTTP2; got != want {
			t.Errorf("h2 skips %s = %v, want %v", tg.Name, got, want)
		}
		if SkipReason(byName["small"], tg) != "" {
			t.Errorf("small skips %s", tg.Name)
		}
	}
	cfg := Config{Threads: 2, Connections: 64, Host: "bench.example.test"}
	argv := strings.Join(wrkCommand(cfg, "/s.lua", "https://bench.example.test:1/", time.Second, byName["handshake"].Close), " ")
	if !strings.HasSuffix(argv, "-H Connection: close https://bench.example.test:1/") {
		t.Errorf("handshake command %q", argv)
	}
	if strings.Contains(strings.Join(WrkCommand(cfg, "/s.lua", "https://bench.example.test:1/", time.Second), " "), "Connection") {
		t.Error("keep-alive command closes connections")
	}
	if n := byName["hosts10k"].extraHosts(Config{ExtraHosts: 3}); n != Hosts10kCount {
		t.Errorf("hosts10k extra hosts = %d", n)
	}
	if n := byName["small"].extraHosts(Config{ExtraHosts: 3}); n != 3 {
		t.Errorf("small extra hosts = %d", n)
	}
}

// h2load must present the virtual host as SNI and :authority while
// connecting to loopback, and negotiate HTTP/2.
func TestH2loadSendsVirtualHostOverLoopback(t *testing.T) {
	requirePrograms(t, "h2load")
	pair := benchKeyPair(t)
	var (
		mu     sync.Mutex
		snis   = map[string]int{}
		hosts  = map[string]int{}
		protos = map[string]int{}
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hosts[r.Host]++
			protos[r.Proto]++
			if r.TLS != nil {
				snis[r.TLS.ServerName]++
			}
			mu.Unlock()
			_, _ = w.Write([]byte("ok"))
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()

	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cfg := Config{H2Clients: 2, H2Streams: 2, Warmup: time.Second, Duration: time.Second}
	res, err := runH2load(context.Background(), cfg, "https://bench.example.test:"+port+"/", "127.0.0.1:"+port, filepath.Join(t.TempDir(), "h2.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.RPS <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Errors != 0 {
		t.Errorf("result = %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(snis) != 1 || snis["bench.example.test"] == 0 {
		t.Errorf("SNI seen = %v, want only bench.example.test", snis)
	}
	if len(hosts) != 1 || hosts["bench.example.test:"+port] == 0 {
		t.Errorf(":authority seen = %v, want only bench.example.test:%s", hosts, port)
	}
	if len(protos) != 1 || protos["HTTP/2.0"] == 0 {
		t.Errorf("protocols seen = %v, want only HTTP/2.0", protos)
	}
}
