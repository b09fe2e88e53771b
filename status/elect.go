package status

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election names the Lease that replicas compete for.
type Election struct {
	Client    kubernetes.Interface
	Namespace string
	// Name of the Lease; replicas of one Portico deployment share it.
	Name string
	// Identity of this replica, unique among them (the Pod name).
	Identity string
	Logger   *slog.Logger
}

// Elect runs for leadership until ctx ends. onLead runs while this replica
// leads, with a context that ends when it stops leading; every replica keeps
// serving traffic either way.
func Elect(ctx context.Context, e Election, onLead func(ctx context.Context)) {
	log := e.Logger
	if log == nil {
		log = slog.Default()
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(e),
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	for ctx.Err() == nil {
		// RunOrDie returns when leadership is lost; compete again.
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   15 * time.Second,
			RenewDeadline:   10 * time.Second,
			RetryPeriod:     2 * time.Second,
			ReleaseOnCancel: true,
			Name:            e.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					log.Info("leading: this replica writes status and Events", "lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
					onLead(ctx)
				},
				OnStoppedLeading: func() {
					log.Info("no longer leading; status is written by another replica", "identity", e.Identity)
				},
				OnNewLeader: func(id string) {
					if id != e.Identity {
						log.Info("another replica leads", "leader", id)
					}
				},
			},
		})
	}
}

func metaFor(e Election) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name}
}
