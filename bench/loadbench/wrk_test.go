package loadbench

import (
	"strings"
	"testing"
	"time"
)

const wrkTextOutput = `Running 10s test @ https://bench.example.test:8443/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  12.34ms   78.90%
    Req/Sec    25.00k     1.23k   28.00k    70.00%
  Latency Distribution
     50%    1.10ms
     75%    1.40ms
     90%    1.80ms
     99%    3.20ms
  497512 requests in 10.00s, 80.23MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:  49741.23
Transfer/sec:      8.02MB
`

func TestParseWrkOutput(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    WrkResult
		wantErr string
	}{
		{
			name: "script line wins over the rounded summary",
			out: wrkTextOutput + `LOADBENCH_RESULT {"requests":500000,"duration_us":10000000,"bytes":80000000,` +
				`"connect_errors":0,"read_errors":1,"write_errors":0,"status_errors":2,"timeouts":3,` +
				`"p50_us":1100,"p90_us":1800,"p99_us":3210,"p999_us":9000,"mean_us":1234.5,"max_us":12340}` + "\n",
			want: WrkResult{
				Requests: 500000, Duration: 10 * time.Second, Bytes: 80000000, Errors: 6, RPS: 50000,
				P50: 1100 * time.Microsecond, P90: 1800 * time.Microsecond, P99: 3210 * time.Microsecond,
				P999: 9 * time.Millisecond, Mean: 1234500 * time.Nanosecond, Max: 12340 * time.Microsecond,
			},
		},
		{
			name: "text summary",
			out:  wrkTextOutput,
			want: WrkResult{
				Requests: 497512, Duration: 10 * time.Second, Errors: 22, RPS: 49741.23,
				P50: 1100 * time.Microsecond, P90: 1800 * time.Microsecond, P99: 3200 * time.Microsecond,
				FromText: true,
			},
		},
		{
			name:    "text without latency distribution",
			out:     "  10 requests in 1.00s, 1.00KB read\nRequests/sec:     10.00\n",
			wantErr: "latency distribution",
		},
		{
			name:    "no summary at all",
			out:     "unable to connect to 127.0.0.1:1 Connection refused\n",
			wantErr: "no Requests/sec",
		},
		{
			name:    "malformed script line",
			out:     "LOADBENCH_RESULT {\"requests\":\n",
			wantErr: "parse wrk result line",
		},
		{
			name:    "script line with zero duration",
			out:     `LOADBENCH_RESULT {"requests":0,"duration_us":0}` + "\n",
			wantErr: "non-positive duration",
		},
		{
			name:    "bad latency unit",
			out:     strings.Replace(wrkTextOutput, "1.10ms", "1.10xs", 1),
			wantErr: "invalid wrk duration",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWrkOutput(tt.out)
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

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"456.00us", 456 * time.Microsecond, false},
		{"1.23ms", 1230 * time.Microsecond, false},
		{"10.00s", 10 * time.Second, false},
		{"1.50m", 90 * time.Second, false},
		{"2.00h", 2 * time.Hour, false},
		{"", 0, true},
		{"ms", 0, true},
		{"-1.00ms", 0, true},
		{"abc", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseWrkDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWrkCommand(t *testing.T) {
	cfg := Config{Threads: 2, Connections: 64, Host: "bench.example.test"}
	tests := []struct {
		name   string
		cpu    string
		d      time.Duration
		prefix []string
		secs   string
	}{
		{"pinned", "1", 10 * time.Second, []string{"taskset", "-c", "1", "wrk"}, "10s"},
		{"unpinned", "", 1500 * time.Millisecond, []string{"wrk"}, "2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg.WrkCPU = tt.cpu
			argv := WrkCommand(cfg, "/tmp/s.lua", "https://bench.example.test:1/", tt.d)
			joined := strings.Join(argv, " ")
			if !strings.HasPrefix(joined, strings.Join(tt.prefix, " ")+" ") {
				t.Errorf("command %q does not start with %q", joined, tt.prefix)
			}
			for _, want := range []string{"-t 2", "-c 64", "-d " + tt.secs, "--latency", "-s /tmp/s.lua", "Host: bench.example.test"} {
				if !strings.Contains(joined, want) {
					t.Errorf("command %q lacks %q", joined, want)
				}
			}
			if argv[len(argv)-1] != "https://bench.example.test:1/" {
				t.Errorf("URL is not last: %q", argv)
			}
		})
	}
}
