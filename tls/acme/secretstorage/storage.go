// Package secretstorage owns the ACME state that Portico replicas share: a
// certmagic.Storage that keeps each key in its own Kubernetes Secret in one
// namespace, and a certmagic.Locker that takes Lease objects there, so that
// replicas sharing a namespace order a certificate once and every replica
// (and every restart) serves it.
//
// A certmagic key ("certificates/<ca>/<host>/<host>.crt") is a path; Secret
// names cannot hold one, so a Secret is named after a hash of its key and
// carries the key itself in an annotation. Listing selects the Secrets by
// label and filters by that annotation.
package secretstorage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// SecretType marks the Secrets this package writes, so that they are
	// never mistaken for (or watched as) kubernetes.io/tls Secrets.
	SecretType corev1.SecretType = "portico.dev/acme-storage"
	// LabelStorage selects the Secrets and Leases of one storage; its value
	// is the storage's Prefix.
	LabelStorage = "portico.dev/acme-storage"
	// AnnotationKey holds the certmagic key a Secret stores.
	AnnotationKey = "portico.dev/acme-key"
	// AnnotationModified is when the value was last stored (RFC 3339).
	AnnotationModified = "portico.dev/acme-modified"
	// DataKey is the Secret data entry holding the value.
	DataKey = "value"
)

// Storage is a certmagic.Storage backed by Secrets, with locks backed by
// Leases. It is safe for concurrent use; every method talks to the API
// server, which is the only source of truth between replicas.
type Storage struct {
	client    kubernetes.Interface
	namespace string
	prefix    string
	locks     lockOptions
	holder    string

	held heldLocks
}

// Options configures a Storage. Zero fields take the documented default.
type Options struct {
	// Namespace holds the Secrets and Leases. Required.
	Namespace string
	// Prefix starts every Secret and Lease name and is the value of
	// LabelStorage, so two installations can share a namespace. Default
	// "portico-acme".
	Prefix string
	// Identity is written as the holder of the Leases this replica takes
	// (the Pod name). Required.
	Identity string
	// LockTTL is how long a lock stays valid after its holder last renewed
	// it; a replica that dies holding a lock blocks others for at most this
	// long. Default 60s.
	LockTTL time.Duration
	// LockPollInterval is how often a replica waiting for a lock checks
	// whether it is free. Default 2s.
	LockPollInterval time.Duration
}

// New returns a Storage writing to opts.Namespace through client.
func New(client kubernetes.Interface, opts Options) (*Storage, error) {
	if client == nil {
		return nil, errors.New("secret storage needs a Kubernetes client")
	}
	if opts.Namespace == "" {
		return nil, errors.New("secret storage needs a namespace")
	}
	if opts.Identity == "" {
		return nil, errors.New("secret storage needs an identity for its locks")
	}
	if opts.Prefix == "" {
		opts.Prefix = "portico-acme"
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = 60 * time.Second
	}
	if opts.LockPollInterval <= 0 {
		opts.LockPollInterval = 2 * time.Second
	}
	return &Storage{
		client:    client,
		namespace: opts.Namespace,
		prefix:    opts.Prefix,
		holder:    opts.Identity,
		locks:     lockOptions{ttl: opts.LockTTL, poll: opts.LockPollInterval},
		held:      heldLocks{m: make(map[string]*heldLock)},
	}, nil
}

var _ certmagic.Storage = (*Storage)(nil)

// String names the storage in certmagic's logs.
func (s *Storage) String() string {
	return fmt.Sprintf("Kubernetes Secrets %s/%s-*", s.namespace, s.prefix)
}

// objectName maps a key (or lock name) to a Secret or Lease name: readable
// where it can be (the last path element, sanitized) and unique through a
// hash of the whole key. The result is a valid DNS subdomain.
func objectName(prefix, kind, key string) string {
	sum := sha256.Sum256([]byte(key))
	base := sanitize(path.Base(key))
	if len(base) > 80 {
		base = base[:80]
	}
	base = strings.Trim(base, "-.")
	name := prefix + "-" + kind
	if base != "" {
		name += "-" + base
	}
	return name + "-" + hex.EncodeToString(sum[:10])
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

func normalizeKey(key string) string {
	return strings.Trim(path.Clean("/"+key), "/")
}

func (s *Storage) secretName(key string) string { return objectName(s.prefix, "s", key) }

// Store writes value at key, creating its Secret or replacing its value.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	key = normalizeKey(key)
	name := s.secretName(key)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	secrets := s.client.CoreV1().Secrets(s.namespace)
	// Bounded: a conflict means another replica wrote the same key between
	// our read and our write; the last write wins, as on a file system.
	for attempt := 0; attempt < 5; attempt++ {
		existing, err := secrets.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = secrets.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Name:        name,
					Namespace:   s.namespace,
					Labels:      map[string]string{LabelStorage: s.prefix, "app.kubernetes.io/managed-by": "portico"},
					Annotations: map[string]string{AnnotationKey: key, AnnotationModified: now},
				},
				Type: SecretType,
				Data: map[string][]byte{DataKey: value},
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
		case err != nil:
			return fmt.Errorf("store %s: %w", key, err)
		default:
			if got := existing.Annotations[AnnotationKey]; got != key {
				return fmt.Errorf("store %s: Secret %s/%s holds key %q", key, s.namespace, name, got)
			}
			existing.Annotations[AnnotationModified] = now
			existing.Data = map[string][]byte{DataKey: value}
			_, err = secrets.Update(ctx, existing, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("store %s in Secret %s/%s: %w", key, s.namespace, name, err)
		}
		return nil
	}
	return fmt.Errorf("store %s in Secret %s/%s: kept conflicting with concurrent writes", key, s.namespace, name)
}

// get returns the Secret of key, or fs.ErrNotExist.
func (s *Storage) get(ctx context.Context, key string) (*corev1.Secret, error) {
	name := s.secretName(key)
	secret, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s from Secret %s/%s: %w", key, s.namespace, name, err)
	}
	if secret.Annotations[AnnotationKey] != key {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return secret, nil
}

// Load returns the value at key; a missing key is fs.ErrNotExist, which is
// what certmagic tests for.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	secret, err := s.get(ctx, normalizeKey(key))
	if err != nil {
		return nil, err
	}
	return secret.Data[DataKey], nil
}

// list returns the stored keys equal to key or under it as a directory.
func (s *Storage) list(ctx context.Context, key string) ([]storedKey, error) {
	list, err := s.client.CoreV1().Secrets(s.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: LabelStorage + "=" + s.prefix,
	})
	if err != nil {
		return nil, fmt.Errorf("list ACME storage Secrets in %s: %w", s.namespace, err)
	}
	var out []storedKey
	for i := range list.Items {
		sec := &list.Items[i]
		k := sec.Annotations[AnnotationKey]
		if k == "" || sec.Type != SecretType {
			continue
		}
		if key == "" || k == key || strings.HasPrefix(k, key+"/") {
			out = append(out, storedKey{key: k, name: sec.Name, uid: string(sec.UID)})
		}
	}
	return out, nil
}

type storedKey struct{ key, name, uid string }

// Delete removes key, or every key under it when it is a directory.
func (s *Storage) Delete(ctx context.Context, key string) error {
	key = normalizeKey(key)
	keys, err := s.list(ctx, key)
	if err != nil {
		return err
	}
	for _, k := range keys {
		err := s.client.CoreV1().Secrets(s.namespace).Delete(ctx, k.name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s (Secret %s/%s): %w", k.key, s.namespace, k.name, err)
		}
	}
	return nil
}

// Exists reports whether key is stored, as a value or as a directory.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	key = normalizeKey(key)
	if _, err := s.get(ctx, key); err == nil {
		return true
	}
	keys, err := s.list(ctx, key)
	return err == nil && len(keys) > 0
}

// List returns the keys directly under dir, or every key below it when
// recursive, directories included, as a file system would.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = normalizeKey(dir)
	keys, err := s.list(ctx, dir)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, k := range keys {
		rel := k.key
		if dir != "" {
			if k.key == dir {
				continue // a value, not a directory
			}
			rel = strings.TrimPrefix(k.key, dir+"/")
		}
		parts := strings.Split(rel, "/")
		if !recursive {
			add(path.Join(dir, parts[0]))
			continue
		}
		for i := range parts {
			add(path.Join(dir, path.Join(parts[:i+1]...)))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, fs.ErrNotExist)
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a stored value, or a directory when keys lie below it.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = normalizeKey(key)
	secret, err := s.get(ctx, key)
	if err == nil {
		modified, _ := time.Parse(time.RFC3339Nano, secret.Annotations[AnnotationModified])
		if modified.IsZero() {
			modified = secret.CreationTimestamp.Time
		}
		return certmagic.KeyInfo{Key: key, Modified: modified, Size: int64(len(secret.Data[DataKey])), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	keys, err := s.list(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}
