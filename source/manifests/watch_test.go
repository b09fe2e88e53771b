package manifests

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"portico.dev/portico/snapshot"
)

// safetyNet bounds every wait in these tests. It is not a speed assertion:
// a change normally lands within a few poll intervals.
const safetyNet = 10 * time.Second

// logBuffer collects log output written from Run's goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is one Source.Run under test.
type running struct {
	changes chan snapshot.Objects
	logs    *logBuffer
}

func startSource(t *testing.T, dir string) *running {
	t.Helper()
	r := &running{changes: make(chan snapshot.Objects, 64), logs: &logBuffer{}}
	src := &Source{
		Dir:      dir,
		Interval: 5 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(o snapshot.Objects) { r.changes <- o }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(safetyNet):
			t.Error("Run did not return after its context ended")
		}
	})
	return r
}

func (r *running) next(t *testing.T) []string {
	t.Helper()
	select {
	case o := <-r.changes:
		return names(o)
	case <-time.After(safetyNet):
		t.Fatalf("no onChange within %v; logs:\n%s", safetyNet, r.logs)
		return nil
	}
}

// waitLog waits until substr has been logged at least n times.
func (r *running) waitLog(t *testing.T, substr string, n int) {
	t.Helper()
	deadline := time.Now().Add(safetyNet)
	for strings.Count(r.logs.String(), substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged %d times; logs:\n%s", substr, n, r.logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

const sentinel = "apiVersion: v1\nkind: Service\nmetadata: {name: sentinel, namespace: shop}\n"

func TestSourceRun(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string
		setup     func(t *testing.T, dir string)
		wantFirst []string
		change    func(t *testing.T, dir string)
		// settled, when set, is logged once the change has been processed;
		// a sentinel file is then added so the next onChange proves that
		// the change itself produced none.
		settled *logWait
		want    []string
		// loggedOnce must appear exactly once in the logs at the end.
		loggedOnce string
	}{
		{
			name:      "edit applies",
			files:     map[string]string{"shop.yaml": serviceWeb},
			wantFirst: []string{"Service shop/web"},
			change: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string]string{"shop.yaml": serviceWeb + "---\n" + ingressWeb})
			},
			want: []string{"Ingress shop/web", "Service shop/web"},
		},
		{
			name:      "new file applies",
			files:     map[string]string{"shop.yaml": serviceWeb},
			wantFirst: []string{"Service shop/web"},
			change: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string]string{"sub/ingress.yaml": ingressWeb})
			},
			want: []string{"Ingress shop/web", "Service shop/web"},
		},
		{
			name:      "typo keeps the last good version of the file",
			files:     map[string]string{"shop.yaml": serviceWeb + "---\n" + ingressWeb},
			wantFirst: []string{"Ingress shop/web", "Service shop/web"},
			change: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string]string{"shop.yaml": serviceWeb + "---\n" + strings.Replace(ingressWeb, "  rules:", "  rules: [", 1)})
			},
			settled:    &logWait{"keeping the 2 object(s)", 1},
			want:       []string{"Ingress shop/web", "Service shop/web", "Service shop/sentinel"},
			loggedOnce: "invalid YAML",
		},
		{
			name:      "deleted file drops its objects",
			files:     map[string]string{"a.yaml": serviceWeb, "b.yaml": ingressWeb},
			wantFirst: []string{"Ingress shop/web", "Service shop/web"},
			change: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"Service shop/web"},
		},
		{
			name:      "rewrite without a change in objects is not a change",
			files:     map[string]string{"shop.yaml": serviceWeb},
			wantFirst: []string{"Service shop/web"},
			change: func(t *testing.T, dir string) {
				path := filepath.Join(dir, "shop.yaml")
				// Same bytes, new mtime: the fingerprint changes.
				writeFiles(t, dir, map[string]string{"shop.yaml": serviceWeb})
				later := time.Now().Add(time.Hour)
				if err := os.Chtimes(path, later, later); err != nil {
					t.Fatal(err)
				}
				// New bytes, same objects.
				writeFiles(t, dir, map[string]string{"shop.yaml": "# reformatted\n" + serviceWeb})
			},
			settled: &logWait{"manifest file read", 2},
			want:    []string{"Service shop/web", "Service shop/sentinel"},
		},
		{
			name:      "fixing a typo applies the fixed version",
			files:     map[string]string{"shop.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n"},
			wantFirst: nil,
			change: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string]string{"shop.yaml": serviceWeb})
			},
			want: []string{"Service shop/web"},
		},
		{
			name: "ConfigMap volume update",
			setup: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string]string{"..2026_01/shop.yaml": serviceWeb})
				mustSymlink(t, "..2026_01", filepath.Join(dir, "..data"))
				mustSymlink(t, filepath.Join("..data", "shop.yaml"), filepath.Join(dir, "shop.yaml"))
			},
			wantFirst: []string{"Service shop/web"},
			change: func(t *testing.T, dir string) {
				// What the kubelet does: write a new folder, point a
				// temporary link at it, rename the link over "..data".
				writeFiles(t, dir, map[string]string{"..2026_02/shop.yaml": strings.Replace(serviceWeb, "name: web", "name: web2", 1)})
				mustSymlink(t, "..2026_02", filepath.Join(dir, "..data_tmp"))
				if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(filepath.Join(dir, "..2026_01")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"Service shop/web2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			r := startSource(t, dir)
			if got := r.next(t); !slices.Equal(got, tt.wantFirst) {
				t.Fatalf("first onChange = %q, want %q", got, tt.wantFirst)
			}
			tt.change(t, dir)
			if tt.settled != nil {
				r.waitLog(t, tt.settled.substr, tt.settled.n)
				writeFiles(t, dir, map[string]string{"zz-sentinel.yaml": sentinel})
			}
			if got := r.next(t); !slices.Equal(got, tt.want) {
				t.Fatalf("onChange after the change = %q, want %q\nlogs:\n%s", got, tt.want, r.logs)
			}
			if tt.loggedOnce != "" {
				if n := strings.Count(r.logs.String(), tt.loggedOnce); n != 1 {
					t.Errorf("%q logged %d times, want once; logs:\n%s", tt.loggedOnce, n, r.logs)
				}
			}
		})
	}
}

type logWait struct {
	substr string
	n      int
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestSourceRunEmptyFolderDeliversOnce(t *testing.T) {
	r := startSource(t, t.TempDir())
	if got := r.next(t); len(got) != 0 {
		t.Fatalf("first onChange = %q, want nothing", got)
	}
}

func TestSourceRunMissingFolder(t *testing.T) {
	src := &Source{Dir: filepath.Join(t.TempDir(), "missing"), Logger: slog.New(slog.DiscardHandler)}
	called := false
	err := src.Run(context.Background(), func(snapshot.Objects) { called = true })
	if err == nil {
		t.Fatal("Run succeeded on a missing folder, want an error")
	}
	if called {
		t.Error("onChange called although the folder could not be read")
	}
}

func TestSourceRunLogsDuplicateOnce(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.yaml": serviceWeb, "b.yaml": serviceWeb})
	r := startSource(t, dir)
	r.next(t)
	// Another change makes the folder be assembled again; the duplicate,
	// still there, must not be logged a second time.
	writeFiles(t, dir, map[string]string{"c.yaml": ingressWeb})
	if got, want := r.next(t), []string{"Ingress shop/web", "Service shop/web"}; !slices.Equal(got, want) {
		t.Fatalf("onChange = %q, want %q", got, want)
	}
	if n := strings.Count(r.logs.String(), "duplicate: already defined"); n != 1 {
		t.Errorf("duplicate logged %d times, want once; logs:\n%s", n, r.logs)
	}
}

func TestSourceRunLogsSkippedKinds(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.yaml": deployment + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: db}\ntype: kubernetes.io/service-account-token\n",
	})
	r := startSource(t, dir)
	r.next(t)
	logs := r.logs.String()
	for _, want := range []string{
		`level=INFO msg="kind apps/v1 Deployment is not served by Portico; skipping it"`,
		`object="Deployment web"`,
		`level=DEBUG msg="skipping Secret of type \"kubernetes.io/service-account-token\": only kubernetes.io/tls and Opaque Secrets are read"`,
		`object="Secret default/db"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}
