package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"portico.dev/portico/snapshot"
	"portico.dev/portico/status"
)

// statusLoop hands the latest (objects, snapshot) pair to the status writer
// (Ingress and Gateway API status, and Events)
// while this replica leads. Only the newest pair matters: status is
// computed from scratch each time, so intermediate ones are skipped.
type statusLoop struct {
	writer   *status.Writer
	election status.Election
	log      *slog.Logger

	mu      sync.Mutex
	objs    snapshot.Objects
	snap    *snapshot.Snapshot
	pending chan struct{}
}

// kubeClients are the API clients of Kubernetes mode; gateway is nil when
// Gateway API support is off.
type kubeClients struct {
	kube    kubernetes.Interface
	gateway gatewayclient.Interface
}

// eventScheme names the kinds Events are recorded on: Events carry the
// object's kind, which informer copies leave out of their TypeMeta.
func eventScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(scheme.AddToScheme(s))
	utilruntime.Must(gatewayv1.Install(s))
	return s
}

func newStatusLoop(cfg *config, clients *kubeClients, logger *slog.Logger) *statusLoop {
	client := clients.kube
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(eventScheme(), corev1.EventSource{Component: "portico"})
	return &statusLoop{
		writer: &status.Writer{
			Client: client, Recorder: recorder, Addresses: cfg.Publish, LeaveIngressStatus: !cfg.UpdateStatus, Logger: logger,
			Gateway: clients.gateway, GatewayController: gatewayv1.GatewayController(cfg.GatewayControllerName),
		},
		election: status.Election{
			Client:    client,
			Namespace: cfg.LeaderElectionNamespace,
			Name:      cfg.LeaderElectionID,
			Identity:  cfg.Identity,
			Logger:    logger,
		},
		log:     logger,
		pending: make(chan struct{}, 1),
	}
}

// offer records the newest objects and snapshot; it never blocks the
// publisher.
func (l *statusLoop) offer(objs snapshot.Objects, snap *snapshot.Snapshot) {
	l.mu.Lock()
	l.objs, l.snap = objs, snap
	l.mu.Unlock()
	select {
	case l.pending <- struct{}{}:
	default:
	}
}

// Bounds of the delay before a failed status write is tried again when no
// new snapshot comes first; it doubles after each failure.
const (
	statusRetryMin = time.Second
	statusRetryMax = 30 * time.Second
)

func (l *statusLoop) run(ctx context.Context) {
	status.Elect(ctx, l.election, func(leading context.Context) {
		retry := time.NewTimer(0)
		defer retry.Stop()
		backoff := statusRetryMin
		// A new leader syncs at once: the previous one may have left work.
		syncNow := func() {
			if l.syncLatest(leading) == nil {
				retry.Stop()
				backoff = statusRetryMin
				return
			}
			// Status must converge even when nothing changes any more: a
			// write that failed (the API server restarting, a webhook
			// timing out) is tried again.
			retry.Reset(backoff)
			backoff = min(2*backoff, statusRetryMax)
		}
		for {
			select {
			case <-leading.Done():
				return
			case <-l.pending:
				syncNow()
			case <-retry.C:
				syncNow()
			}
		}
	})
}

// syncLatest writes the newest snapshot's status; the writer logs errors.
func (l *statusLoop) syncLatest(ctx context.Context) error {
	l.mu.Lock()
	objs, snap := l.objs, l.snap
	l.mu.Unlock()
	if snap == nil {
		return nil
	}
	return l.writer.Sync(ctx, objs, snap)
}
