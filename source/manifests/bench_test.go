package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchFolder writes n files of one Service and one Ingress each, with
// mtimes old enough for their fingerprints to be trusted.
func benchFolder(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	old := time.Now().Add(-time.Hour)
	for i := range n {
		name := fmt.Sprintf("app-%03d", i)
		content := strings.ReplaceAll(serviceWeb+"---\n"+ingressWeb, "name: web", "name: "+name)
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Chtimes(path, old, old); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkLoad is the cost of reading and decoding a folder from scratch.
func BenchmarkLoad(b *testing.B) {
	dir := benchFolder(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Load(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPollUnchanged is the cost of one poll when nothing changed:
// what the watcher spends every interval in steady state.
func BenchmarkPollUnchanged(b *testing.B) {
	dir := benchFolder(b, 100)
	l := newLoader(dir)
	if _, err := l.scan(time.Now()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := l.scan(time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if res.dirty {
			b.Fatal("unchanged folder reported as changed")
		}
	}
}
