package secretstorage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxLockWait bounds how long Lock waits for a lock another replica holds
// and keeps renewing: far longer than an ACME order takes, so reaching it
// means the holder is stuck rather than busy.
const maxLockWait = 15 * time.Minute

type lockOptions struct {
	ttl  time.Duration
	poll time.Duration
}

// heldLock is a Lease this process holds, renewed until Unlock.
type heldLock struct {
	lease  string
	holder string
	stop   chan struct{}
	done   chan struct{}
}

type heldLocks struct {
	mu sync.Mutex
	m  map[string]*heldLock // by lock name
}

func (s *Storage) leaseName(lock string) string { return objectName(s.prefix, "l", lock) }

// Lock takes the Lease for name, waiting while another holder keeps it
// renewed. A Lease whose holder stopped renewing it for the lock TTL (a
// replica that died mid-order) is taken over.
func (s *Storage) Lock(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, maxLockWait)
	defer cancel()
	leaseName := s.leaseName(name)
	// The holder names this acquisition, not only this replica, so that two
	// goroutines of one process exclude each other too.
	holder := s.holder + "/" + randomToken()
	leases := s.client.CoordinationV1().Leases(s.namespace)
	ttlSeconds := int32((s.locks.ttl + time.Second - 1) / time.Second)
	for {
		now := metav1.NewMicroTime(time.Now())
		_, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:        leaseName,
				Namespace:   s.namespace,
				Labels:      map[string]string{LabelStorage: s.prefix, "app.kubernetes.io/managed-by": "portico"},
				Annotations: map[string]string{AnnotationKey: name},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &holder,
				LeaseDurationSeconds: &ttlSeconds,
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		if err == nil {
			s.startRenewing(name, leaseName, holder)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("lock %s (Lease %s/%s): %w", name, s.namespace, leaseName, err)
		}
		existing, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue // released between our create and get: try again now
		case err != nil:
			return fmt.Errorf("lock %s (Lease %s/%s): %w", name, s.namespace, leaseName, err)
		case expired(existing, time.Now()):
			existing.Spec.HolderIdentity = &holder
			existing.Spec.LeaseDurationSeconds = &ttlSeconds
			existing.Spec.AcquireTime = &now
			existing.Spec.RenewTime = &now
			_, err := leases.Update(ctx, existing, metav1.UpdateOptions{})
			if err == nil {
				s.startRenewing(name, leaseName, holder)
				return nil
			}
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				return fmt.Errorf("take over stale lock %s (Lease %s/%s): %w", name, s.namespace, leaseName, err)
			}
			continue // someone else took it or released it first: look again
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock %s (Lease %s/%s, held by %s): %w", name, s.namespace, leaseName, holderOf(existing), ctx.Err())
		case <-time.After(s.locks.poll):
		}
	}
}

func expired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return now.After(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

func holderOf(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return "nobody"
	}
	return *l.Spec.HolderIdentity
}

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startRenewing keeps a held Lease fresh every third of the TTL, so that
// an order taking longer than the TTL keeps its lock while the process
// lives, and a crashed holder's lock goes stale one TTL after its death.
func (s *Storage) startRenewing(name, leaseName, holder string) {
	h := &heldLock{lease: leaseName, holder: holder, stop: make(chan struct{}), done: make(chan struct{})}
	s.held.mu.Lock()
	if old := s.held.m[name]; old != nil {
		// Cannot happen while the Lease excludes us, unless our previous
		// hold went stale and was taken over: that renewer is useless now.
		close(old.stop)
	}
	s.held.m[name] = h
	s.held.mu.Unlock()

	go func() {
		defer close(h.done)
		ticker := time.NewTicker(s.locks.ttl / 3)
		defer ticker.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-ticker.C:
				if !s.renew(h) {
					return
				}
			}
		}
	}()
}

// renew refreshes the Lease's renew time, and reports false once the Lease
// is no longer ours.
func (s *Storage) renew(h *heldLock) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.locks.ttl/3)
	defer cancel()
	leases := s.client.CoordinationV1().Leases(s.namespace)
	l, err := leases.Get(ctx, h.lease, metav1.GetOptions{})
	if err != nil {
		return !apierrors.IsNotFound(err)
	}
	if holderOf(l) != h.holder {
		return false
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err == nil || !apierrors.IsNotFound(err)
}

// Unlock releases a lock taken by Lock: it stops renewing the Lease and
// deletes it, unless another holder took it over in the meantime.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.held.mu.Lock()
	h := s.held.m[name]
	delete(s.held.m, name)
	s.held.mu.Unlock()
	if h == nil {
		return fmt.Errorf("unlock %s: this process does not hold it", name)
	}
	close(h.stop)
	<-h.done

	leases := s.client.CoordinationV1().Leases(s.namespace)
	l, err := leases.Get(ctx, h.lease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unlock %s (Lease %s/%s): %w", name, s.namespace, h.lease, err)
	}
	if holderOf(l) != h.holder {
		return fmt.Errorf("unlock %s (Lease %s/%s): the lock went stale and is now held by %s", name, s.namespace, h.lease, holderOf(l))
	}
	// The preconditions make the delete a no-op if someone took the Lease
	// over between our read and this call.
	err = leases.Delete(ctx, h.lease, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &l.UID, ResourceVersion: &l.ResourceVersion}})
	if err != nil && !apierrors.IsNotFound(err) {
		if apierrors.IsConflict(err) {
			return errors.New("unlock " + name + ": the lock was taken over while releasing it")
		}
		return fmt.Errorf("unlock %s (Lease %s/%s): %w", name, s.namespace, h.lease, err)
	}
	return nil
}
