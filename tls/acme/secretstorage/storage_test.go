package secretstorage_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"portico.dev/portico/hack/controlplane"
	"portico.dev/portico/tls/acme/secretstorage"
)

// TestStorage runs against a real API server: Secret names, labels,
// annotations and Lease semantics are what the API server enforces, not
// what a fake would accept.
func TestStorage(t *testing.T) {
	cp := controlplane.StartForTest(t, controlplane.Options{})
	client := cp.Client()
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "portico-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newStorage := func(t *testing.T, identity string) *secretstorage.Storage {
		s, err := secretstorage.New(client, secretstorage.Options{
			Namespace: "portico-system", Identity: identity,
			LockTTL: 3 * time.Second, LockPollInterval: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("values", func(t *testing.T) { testValues(t, newStorage(t, "replica-a"), client) })
	t.Run("locks", func(t *testing.T) { testLocks(t, newStorage(t, "replica-a"), newStorage(t, "replica-b"), client) })
}

func testValues(t *testing.T, s *secretstorage.Storage, client kubernetes.Interface) {
	ctx := context.Background()
	const crt = "certificates/acme-v02.example-directory/app.example.test/app.example.test.crt"
	const key = "certificates/acme-v02.example-directory/app.example.test/app.example.test.key"
	const other = "certificates/acme-v02.example-directory/b.example.test/b.example.test.crt"

	if _, err := s.Load(ctx, crt); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: got %v, want fs.ErrNotExist", err)
	}
	if s.Exists(ctx, crt) {
		t.Fatal("Exists of a missing key is true")
	}
	for k, v := range map[string]string{crt: "cert-1", key: "key-1", other: "other"} {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Store(ctx, crt, []byte("cert-2")); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	got, err := s.Load(ctx, crt)
	if err != nil || string(got) != "cert-2" {
		t.Fatalf("Load after overwrite = %q, %v; want cert-2", got, err)
	}

	info, err := s.Stat(ctx, crt)
	if err != nil || !info.IsTerminal || info.Size != int64(len("cert-2")) || info.Modified.IsZero() {
		t.Errorf("Stat(file) = %+v, %v", info, err)
	}
	info, err = s.Stat(ctx, "certificates/acme-v02.example-directory")
	if err != nil || info.IsTerminal {
		t.Errorf("Stat(directory) = %+v, %v; want a directory", info, err)
	}
	if _, err := s.Stat(ctx, "certificates/nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) error = %v, want fs.ErrNotExist", err)
	}
	if !s.Exists(ctx, "certificates") {
		t.Error("Exists(directory) is false")
	}

	list, err := s.List(ctx, "certificates/acme-v02.example-directory", false)
	if want := []string{"certificates/acme-v02.example-directory/app.example.test", "certificates/acme-v02.example-directory/b.example.test"}; err != nil || !slices.Equal(list, want) {
		t.Errorf("List = %q, %v; want %q", list, err, want)
	}
	list, err = s.List(ctx, "certificates", true)
	want := []string{
		"certificates/acme-v02.example-directory",
		"certificates/acme-v02.example-directory/app.example.test",
		crt, key,
		"certificates/acme-v02.example-directory/b.example.test",
		other,
	}
	slices.Sort(want)
	if err != nil || !slices.Equal(list, want) {
		t.Errorf("List recursive = %q, %v; want %q", list, err, want)
	}

	// What an operator sees: typed, labelled Secrets naming their key.
	secrets, err := client.CoreV1().Secrets("portico-system").List(ctx, metav1.ListOptions{LabelSelector: secretstorage.LabelStorage})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 3 {
		t.Errorf("%d Secrets stored, want 3", len(secrets.Items))
	}
	for _, sec := range secrets.Items {
		if sec.Type != secretstorage.SecretType || sec.Annotations[secretstorage.AnnotationKey] == "" {
			t.Errorf("Secret %s: type %q, key %q", sec.Name, sec.Type, sec.Annotations[secretstorage.AnnotationKey])
		}
	}

	// Deleting a directory deletes what is under it, and nothing else.
	if err := s.Delete(ctx, "certificates/acme-v02.example-directory/app.example.test"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, crt) || s.Exists(ctx, key) {
		t.Error("keys under a deleted directory still exist")
	}
	if !s.Exists(ctx, other) {
		t.Error("a key outside the deleted directory is gone")
	}
	if err := s.Delete(ctx, crt); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
}

func testLocks(t *testing.T, a, b *secretstorage.Storage, client kubernetes.Interface) {
	ctx := context.Background()
	const name = "issue_cert_app.example.test"

	if err := a.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	// While replica a holds the lock (and keeps renewing it past the TTL),
	// replica b cannot take it.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := b.Lock(short, name)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second replica Lock while held: %v, want a deadline error", err)
	}

	acquired := make(chan error, 1)
	go func() { acquired <- b.Lock(ctx, name) }()
	if err := a.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := <-acquired; err != nil {
		t.Fatalf("second replica Lock after release: %v", err)
	}
	if err := b.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, name); err == nil {
		t.Error("Unlock of a lock not held succeeded")
	}

	// A holder that died leaves a Lease nobody renews: it is taken over.
	leases, err := client.CoordinationV1().Leases("portico-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Items) != 0 {
		t.Fatalf("%d Leases left after every lock was released", len(leases.Items))
	}
	const stale = "issue_cert_stale.example.test"
	if err := a.Lock(ctx, stale); err != nil {
		t.Fatal(err)
	}
	// Simulate the holder's death: backdate the Lease as if its renewals
	// had stopped long ago (the renewer keeps running but finds it is no
	// longer the holder once b takes over).
	list, err := client.CoordinationV1().Leases("portico-system").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("Leases: %v, %v", list, err)
	}
	l := list.Items[0]
	past := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	dead := "dead-replica/0"
	l.Spec.RenewTime, l.Spec.HolderIdentity = &past, &dead
	if _, err := client.CoordinationV1().Leases("portico-system").Update(ctx, &l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx, stale); err != nil {
		t.Fatalf("taking over a stale lock: %v", err)
	}
	got, err := client.CoordinationV1().Leases("portico-system").Get(ctx, l.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := holder(got); len(h) < len("replica-b") || h[:len("replica-b")] != "replica-b" {
		t.Errorf("stale Lease holder after takeover = %q, want replica-b/...", h)
	}
	if err := a.Unlock(ctx, stale); err == nil {
		t.Error("the replica whose lock was taken over released it")
	}
	if err := b.Unlock(ctx, stale); err != nil {
		t.Fatal(err)
	}
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
