package controlplane

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNewNetnsReclaimsLeftovers leaves a namespace behind as a killed run
// would (its creator gone, nothing inside) and checks that the next
// NewNetns takes it back instead of skipping its index forever.
func TestNewNetnsReclaimsLeftovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	probe, err := NewNetns()
	if err != nil {
		t.Fatal(err)
	}
	name, index := probe.Name, probe.Index
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}

	// A process that has exited stands for the killed run.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("index %d was taken by a concurrent run before the leftover could be made: %s", index, out)
	}
	deadPID := strconv.Itoa(gone.Process.Pid)
	if err := os.WriteFile(filepath.Join(ownerDir, name), []byte(deadPID), 0o644); err != nil {
		t.Fatal(err)
	}

	n, err := NewNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Index > index {
		// Another run may have reclaimed it first; what matters is that
		// nobody skips it.
		owner, _ := os.ReadFile(filepath.Join(ownerDir, name))
		if strings.TrimSpace(string(owner)) == deadPID {
			t.Fatalf("NewNetns skipped the leftover %s and took index %d", name, n.Index)
		}
	}
}
