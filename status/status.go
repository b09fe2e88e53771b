// Package status writes what Portico learned back to the cluster, where
// users look: the address each owned Ingress is reachable on, in its
// status.loadBalancer.ingress; the status of the GatewayClasses, Gateways,
// ListenerSets, HTTPRoutes and BackendTLSPolicies the snapshot computed
// (conditions keep their transition time while unchanged; other
// controllers' route parent and policy ancestor entries, and conditions of
// types we do not own, are never touched); a Kubernetes Event on the object
// for each configuration problem; and the headless Service (with its
// EndpointSlices) that names each accepted Gateway in cluster DNS. It is
// the sink at the end of the one-way flow: it reads the objects and the
// snapshot built from them, and never feeds the serving path.
//
// With several replicas only the leader writes (see Elect), so that
// replicas do not fight over status or repeat Events.
package status

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"portico.dev/portico/snapshot"
)

// Addresses says where Portico is reachable: fixed addresses from a flag,
// or the load-balancer status of a published Service.
type Addresses struct {
	// Fixed are IP addresses or host names.
	Fixed []string
	// Service, when set, is a Service (typically of type LoadBalancer)
	// whose status.loadBalancer.ingress is copied to the Ingresses.
	Service types.NamespacedName
}

// Resolve returns the load-balancer entries to publish, in a stable order.
func (a Addresses) Resolve(services []*corev1.Service) []networkingv1.IngressLoadBalancerIngress {
	var out []networkingv1.IngressLoadBalancerIngress
	for _, addr := range a.Fixed {
		out = append(out, loadBalancerEntry(addr))
	}
	if a.Service.Name != "" {
		for _, svc := range services {
			if svc.Namespace != a.Service.Namespace || svc.Name != a.Service.Name {
				continue
			}
			for _, lb := range svc.Status.LoadBalancer.Ingress {
				out = append(out, networkingv1.IngressLoadBalancerIngress{IP: lb.IP, Hostname: lb.Hostname})
			}
		}
	}
	slices.SortFunc(out, func(x, y networkingv1.IngressLoadBalancerIngress) int {
		return strings.Compare(x.IP+"/"+x.Hostname, y.IP+"/"+y.Hostname)
	})
	return slices.CompactFunc(out, sameEntry)
}

func loadBalancerEntry(addr string) networkingv1.IngressLoadBalancerIngress {
	if net.ParseIP(addr) != nil {
		return networkingv1.IngressLoadBalancerIngress{IP: addr}
	}
	return networkingv1.IngressLoadBalancerIngress{Hostname: addr}
}

func sameEntry(x, y networkingv1.IngressLoadBalancerIngress) bool {
	return x.IP == y.IP && x.Hostname == y.Hostname
}

// desiredStatus returns the load-balancer status an Ingress should have
// and whether it differs from its current one. An owned Ingress gets ours;
// one we do not own loses ours if it still carries exactly ours (we wrote
// it before it changed class), and is otherwise left to its controller.
func desiredStatus(ing *networkingv1.Ingress, owned bool, ours []networkingv1.IngressLoadBalancerIngress) ([]networkingv1.IngressLoadBalancerIngress, bool) {
	current := ing.Status.LoadBalancer.Ingress
	switch {
	case owned && len(ours) > 0:
		return ours, !equalEntries(current, ours)
	case !owned && len(ours) > 0 && len(current) > 0 && equalEntries(current, ours):
		return nil, true
	default:
		return current, false
	}
}

func equalEntries(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y networkingv1.IngressLoadBalancerIngress) bool {
		return sameEntry(x, y) && len(x.Ports) == 0 && len(y.Ports) == 0
	})
}

// Writer writes Ingress and Gateway API status, and problem Events.
type Writer struct {
	Client kubernetes.Interface
	// Gateway writes Gateway API status; nil leaves it alone.
	Gateway gatewayclient.Interface
	// GatewayController is our controllerName: HTTPRoute status.parents
	// entries carrying it are ours to write and remove, the others are
	// left as they are.
	GatewayController gatewayv1.GatewayController
	// Recorder needs a scheme that knows the Gateway API kinds, or their
	// Events cannot name their object.
	Recorder  record.EventRecorder
	Addresses Addresses
	// LeaveIngressStatus leaves every Ingress's status as it is (the
	// --update-status=false flag), so that another controller serving
	// the same Ingresses during a move keeps its addresses there.
	LeaveIngressStatus bool
	Logger             *slog.Logger
	// Now stamps changed conditions; time.Now when nil.
	Now func() time.Time

	mu sync.Mutex
	// evented holds the problems already sent as Events, so that a steady
	// problem is not repeated on every rebuild.
	evented map[snapshot.Problem]bool
}

// Sync brings the cluster in line with one snapshot: the status of every
// Ingress and of the Gateway API objects we own, and an Event for every new
// problem. Errors are logged and returned; the next Sync retries.
func (w *Writer) Sync(ctx context.Context, objs snapshot.Objects, snap *snapshot.Snapshot) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	log := w.logger()

	owned := make(map[types.NamespacedName]bool, len(snap.Ingresses))
	for _, n := range snap.Ingresses {
		owned[n] = true
	}
	ours := w.Addresses.Resolve(objs.Services)
	var firstErr error
	for _, ing := range objs.Ingresses {
		if w.LeaveIngressStatus {
			break
		}
		want, change := desiredStatus(ing, owned[types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}], ours)
		if !change {
			continue
		}
		// Informer objects are shared: write a copy.
		update := ing.DeepCopy()
		update.Status.LoadBalancer.Ingress = want
		_, err := w.Client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{})
		if err != nil {
			log.Warn("writing Ingress status failed; retrying on the next change", "namespace", ing.Namespace, "name", ing.Name, "error", err)
			if firstErr == nil {
				firstErr = fmt.Errorf("Ingress %s/%s status: %w", ing.Namespace, ing.Name, err)
			}
			continue
		}
		log.Debug("Ingress status written", "namespace", ing.Namespace, "name", ing.Name, "addresses", len(want))
	}

	if err := w.syncGatewayAPI(ctx, objs, snap); err != nil && firstErr == nil {
		firstErr = err
	}

	w.recordEvents(objs, snap.Problems)
	return firstErr
}

func (w *Writer) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.Default()
	}
	return w.Logger
}

// recordEvents sends one Event per problem not sent before, on the object
// it is about.
func (w *Writer) recordEvents(objs snapshot.Objects, problems []snapshot.Problem) {
	if w.Recorder == nil {
		return
	}
	now := make(map[snapshot.Problem]bool, len(problems))
	for _, p := range problems {
		now[p] = true
		if w.evented[p] {
			continue
		}
		obj := objs.Find(p.Object)
		if obj == nil {
			continue // the object is gone, or is our own flag (the fallback)
		}
		// Every problem is worth a look; Kubernetes has no third type.
		w.Recorder.Event(obj, corev1.EventTypeWarning, p.Reason, p.Message)
	}
	w.evented = now
}
