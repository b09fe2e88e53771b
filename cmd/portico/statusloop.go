package main

import (
	"context"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"portico.dev/portico/snapshot"
	"portico.dev/portico/status"
)

// statusLoop hands the latest (objects, snapshot) pair to the status writer
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

func newStatusLoop(cfg *config, client kubernetes.Interface, logger *slog.Logger) *statusLoop {
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "portico"})
	return &statusLoop{
		writer: &status.Writer{Client: client, Recorder: recorder, Addresses: cfg.Publish, Logger: logger},
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

func (l *statusLoop) run(ctx context.Context) {
	status.Elect(ctx, l.election, func(leading context.Context) {
		// A new leader syncs at once: the previous one may have left work.
		l.syncLatest(leading)
		for {
			select {
			case <-leading.Done():
				return
			case <-l.pending:
				l.syncLatest(leading)
			}
		}
	})
}

func (l *statusLoop) syncLatest(ctx context.Context) {
	l.mu.Lock()
	objs, snap := l.objs, l.snap
	l.mu.Unlock()
	if snap == nil {
		return
	}
	_ = l.writer.Sync(ctx, objs, snap) // logged by the writer; retried on the next change
}
