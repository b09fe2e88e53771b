package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/snapshot"
)

// mergeConditions returns want with the LastTransitionTime of every
// condition whose status, reason and message match the current condition of
// the same type kept from current, and now on every other one, as the
// Gateway API asks: the time says when the condition last changed, not when
// it was last written.
func mergeConditions(current, want []metav1.Condition, now metav1.Time) []metav1.Condition {
	if want == nil {
		return nil
	}
	out := make([]metav1.Condition, len(want))
	for i, c := range want {
		c.LastTransitionTime = now
		for _, cur := range current {
			if cur.Type == c.Type {
				if cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
					c.LastTransitionTime = cur.LastTransitionTime
				}
				break
			}
		}
		out[i] = c
	}
	return out
}

// mergeOwnedConditions is mergeConditions for a condition list other
// controllers may write to as well: the current conditions of a type
// owned does not claim, and want does not hold, are kept as they are, in
// their place, before ours. Conditions of owned types that want no longer
// holds are dropped.
func mergeOwnedConditions(current, want []metav1.Condition, owned func(conditionType string) bool, now metav1.Time) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range current {
		if owned(c.Type) || slices.ContainsFunc(want, func(w metav1.Condition) bool { return w.Type == c.Type }) {
			continue
		}
		out = append(out, c)
	}
	merged := mergeConditions(current, want, now)
	if out == nil {
		return merged
	}
	return append(out, merged...)
}

// The condition types the Gateway API defines for each object: ours to
// write, drop or replace. Types outside these sets that we do not write
// belong to someone else and are kept.
var (
	gatewayClassConditionTypes = conditionTypes(
		string(gatewayv1.GatewayClassConditionStatusAccepted),
		string(gatewayv1.GatewayClassConditionStatusSupportedVersion),
	)
	gatewayConditionTypes = conditionTypes(
		string(gatewayv1.GatewayConditionAccepted),
		string(gatewayv1.GatewayConditionProgrammed),
		string(gatewayv1.GatewayConditionReady),
		string(gatewayv1.GatewayConditionScheduled),
		string(gatewayv1.GatewayConditionAddressesAssigned),
		string(gatewayv1.GatewayConditionResolvedRefs),
		string(gatewayv1.GatewayConditionInsecureFrontendValidationMode),
	)
	listenerSetConditionTypes = conditionTypes(
		string(gatewayv1.ListenerSetConditionAccepted),
		string(gatewayv1.ListenerSetConditionProgrammed),
	)
	listenerConditionTypes = conditionTypes(
		string(gatewayv1.ListenerConditionAccepted),
		string(gatewayv1.ListenerConditionProgrammed),
		string(gatewayv1.ListenerConditionReady),
		string(gatewayv1.ListenerConditionResolvedRefs),
		string(gatewayv1.ListenerConditionConflicted),
		string(gatewayv1.ListenerConditionDetached),
		string(gatewayv1.ListenerConditionOverlappingTLSConfig),
	)
)

func conditionTypes(types ...string) func(string) bool {
	return func(t string) bool { return slices.Contains(types, t) }
}

// desiredGatewayClassStatus is want with transition times merged from the
// class's current status; conditions of other controllers are kept.
func desiredGatewayClassStatus(current, want gatewayv1.GatewayClassStatus, now metav1.Time) gatewayv1.GatewayClassStatus {
	out := *want.DeepCopy()
	out.Conditions = mergeOwnedConditions(current.Conditions, want.Conditions, gatewayClassConditionTypes, now)
	return out
}

// desiredGatewayStatus is want with transition times merged from the
// Gateway's current status, listener by listener name. Conditions of
// types the Gateway API does not define and we do not write, on the
// Gateway and on its listeners, belong to other controllers and are kept.
func desiredGatewayStatus(current, want gatewayv1.GatewayStatus, now metav1.Time) gatewayv1.GatewayStatus {
	out := *want.DeepCopy()
	out.Conditions = mergeOwnedConditions(current.Conditions, want.Conditions, gatewayConditionTypes, now)
	mergeListeners(current.Listeners, out.Listeners, func(l *gatewayv1.ListenerStatus) listenerFields {
		return listenerFields{l.Name, &l.Conditions, &l.SupportedKinds}
	}, now)
	return out
}

// desiredListenerSetStatus is desiredGatewayStatus for a ListenerSet.
func desiredListenerSetStatus(current, want gatewayv1.ListenerSetStatus, now metav1.Time) gatewayv1.ListenerSetStatus {
	out := *want.DeepCopy()
	out.Conditions = mergeOwnedConditions(current.Conditions, want.Conditions, listenerSetConditionTypes, now)
	mergeListeners(current.Listeners, out.Listeners, func(l *gatewayv1.ListenerEntryStatus) listenerFields {
		return listenerFields{l.Name, &l.Conditions, &l.SupportedKinds}
	}, now)
	return out
}

// listenerFields are the fields of a Gateway's or a ListenerSet's listener
// status that a status write merges.
type listenerFields struct {
	name       gatewayv1.SectionName
	conditions *[]metav1.Condition
	kinds      *[]gatewayv1.RouteGroupKind
}

// mergeListeners keeps the transition times of the current listener
// statuses (matched by name) in out, and fills the fields the CRDs require
// even when empty.
func mergeListeners[L any](current, out []L, fields func(*L) listenerFields, now metav1.Time) {
	for i := range out {
		l := fields(&out[i])
		var cur []metav1.Condition
		for j := range current {
			if c := fields(&current[j]); c.name == l.name {
				cur = *c.conditions
				break
			}
		}
		*l.conditions = mergeOwnedConditions(cur, *l.conditions, listenerConditionTypes, now)
		if *l.conditions == nil {
			*l.conditions = []metav1.Condition{}
		}
		if *l.kinds == nil {
			*l.kinds = []gatewayv1.RouteGroupKind{}
		}
	}
}

// desiredRouteParents returns a route's status.parents with ours (the
// entries whose controllerName is controller) replaced by want, transition
// times merged from our current entry for the same parentRef. Entries of
// other controllers are kept as they are, in their place; ours follow them.
func desiredRouteParents(current []gatewayv1.RouteParentStatus, controller gatewayv1.GatewayController,
	want []gatewayv1.RouteParentStatus, now metav1.Time) []gatewayv1.RouteParentStatus {
	// status.parents is required, even when empty.
	out := []gatewayv1.RouteParentStatus{}
	for _, p := range current {
		if p.ControllerName != controller {
			out = append(out, *p.DeepCopy())
		}
	}
	for _, w := range want {
		w = *w.DeepCopy()
		w.ControllerName = controller
		var cur []metav1.Condition
		for _, p := range current {
			if p.ControllerName == controller && equality.Semantic.DeepEqual(p.ParentRef, w.ParentRef) {
				cur = p.Conditions
				break
			}
		}
		w.Conditions = mergeConditions(cur, w.Conditions, now)
		out = append(out, w)
	}
	return out
}

// maxPolicyAncestors is the most status.ancestors entries a policy may
// hold (the CRD's maxItems), all controllers together.
const maxPolicyAncestors = 16

// desiredPolicyAncestors returns a policy's status.ancestors with ours (the
// entries whose controllerName is controller) replaced by want, transition
// times merged from our current entry for the same ancestorRef. Entries of
// other controllers are kept as they are, in their place; ours follow
// them, as many as the list has room for. dropped counts ours left out.
func desiredPolicyAncestors(current []gatewayv1.PolicyAncestorStatus, controller gatewayv1.GatewayController,
	want []gatewayv1.PolicyAncestorStatus, now metav1.Time) (out []gatewayv1.PolicyAncestorStatus, dropped int) {
	// status.ancestors is required, even when empty.
	out = []gatewayv1.PolicyAncestorStatus{}
	for _, a := range current {
		if a.ControllerName != controller {
			out = append(out, *a.DeepCopy())
		}
	}
	for i, w := range want {
		if len(out) >= maxPolicyAncestors {
			return out, len(want) - i
		}
		w = *w.DeepCopy()
		w.ControllerName = controller
		var cur []metav1.Condition
		for _, a := range current {
			if a.ControllerName == controller && equality.Semantic.DeepEqual(a.AncestorRef, w.AncestorRef) {
				cur = a.Conditions
				break
			}
		}
		w.Conditions = mergeConditions(cur, w.Conditions, now)
		out = append(out, w)
	}
	return out, 0
}

// syncGatewayAPI writes the status of every Gateway API object the snapshot
// has status for, and removes ours from routes and policies it no longer
// lists.
func (w *Writer) syncGatewayAPI(ctx context.Context, objs snapshot.Objects, snap *snapshot.Snapshot) error {
	if w.Gateway == nil {
		return nil
	}
	st := snap.GatewayAPI
	var errs []error
	for _, gc := range objs.GatewayClasses {
		want, ok := st.GatewayClasses[gc.Name]
		if !ok {
			continue
		}
		errs = append(errs, w.writeGatewayClass(ctx, gc, want))
	}
	for _, gw := range objs.Gateways {
		want, ok := st.Gateways[types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}]
		if !ok {
			continue
		}
		errs = append(errs, w.writeGateway(ctx, gw, want))
	}
	for _, ls := range objs.ListenerSets {
		want, ok := st.ListenerSets[types.NamespacedName{Namespace: ls.Namespace, Name: ls.Name}]
		if !ok {
			continue
		}
		errs = append(errs, w.writeListenerSet(ctx, ls, want))
	}
	if w.GatewayController != "" {
		for _, r := range objs.HTTPRoutes {
			want := st.HTTPRoutes[types.NamespacedName{Namespace: r.Namespace, Name: r.Name}]
			errs = append(errs, w.writeHTTPRoute(ctx, r, want))
		}
		for _, r := range objs.GRPCRoutes {
			want := st.GRPCRoutes[types.NamespacedName{Namespace: r.Namespace, Name: r.Name}]
			errs = append(errs, w.writeGRPCRoute(ctx, r, want))
		}
		for _, r := range objs.TLSRoutes {
			want := st.TLSRoutes[types.NamespacedName{Namespace: r.Namespace, Name: r.Name}]
			errs = append(errs, w.writeTLSRoute(ctx, r, want))
		}
		for _, p := range objs.BackendTLSPolicies {
			want := st.BackendTLSPolicies[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}]
			errs = append(errs, w.writeBackendTLSPolicy(ctx, p, want.Ancestors))
		}
		errs = append(errs, w.syncGatewayServices(ctx, objs, st.GatewayServices))
	}
	return errors.Join(errs...)
}

func (w *Writer) now() metav1.Time {
	if w.Now != nil {
		return metav1.NewTime(w.Now())
	}
	// The API stores times to the second; a time that survives the round
	// trip unchanged compares equal on the next sync.
	return metav1.NewTime(time.Now().Truncate(time.Second))
}

func (w *Writer) writeGatewayClass(ctx context.Context, obj *gatewayv1.GatewayClass, want gatewayv1.GatewayClassStatus) error {
	return writeOwnedStatus(ctx, w, "GatewayClass", obj, w.Gateway.GatewayV1().GatewayClasses(), (*gatewayv1.GatewayClass).DeepCopy,
		func(o *gatewayv1.GatewayClass) *gatewayv1.GatewayClassStatus { return &o.Status },
		func(cur gatewayv1.GatewayClassStatus, now metav1.Time) gatewayv1.GatewayClassStatus {
			return desiredGatewayClassStatus(cur, want, now)
		})
}

func (w *Writer) writeGateway(ctx context.Context, obj *gatewayv1.Gateway, want gatewayv1.GatewayStatus) error {
	return writeOwnedStatus(ctx, w, "Gateway", obj, w.Gateway.GatewayV1().Gateways(obj.Namespace), (*gatewayv1.Gateway).DeepCopy,
		func(o *gatewayv1.Gateway) *gatewayv1.GatewayStatus { return &o.Status },
		func(cur gatewayv1.GatewayStatus, now metav1.Time) gatewayv1.GatewayStatus {
			return desiredGatewayStatus(cur, want, now)
		})
}

func (w *Writer) writeListenerSet(ctx context.Context, obj *gatewayv1.ListenerSet, want gatewayv1.ListenerSetStatus) error {
	return writeOwnedStatus(ctx, w, "ListenerSet", obj, w.Gateway.GatewayV1().ListenerSets(obj.Namespace), (*gatewayv1.ListenerSet).DeepCopy,
		func(o *gatewayv1.ListenerSet) *gatewayv1.ListenerSetStatus { return &o.Status },
		func(cur gatewayv1.ListenerSetStatus, now metav1.Time) gatewayv1.ListenerSetStatus {
			return desiredListenerSetStatus(cur, want, now)
		})
}

// writeOwnedStatus writes the status of an object whose whole status this
// controller writes (GatewayClass, Gateway, ListenerSet): desired merges
// the current status with what the snapshot wants, and nothing is written
// when that changes nothing.
func writeOwnedStatus[T metav1.Object, S any](ctx context.Context, w *Writer, kind string, obj T, api statusAPI[T],
	deepCopy func(T) T, status func(T) *S, desired func(current S, now metav1.Time) S) error {
	return updateStatus(ctx, w, kind, obj, api, func(o T) (T, bool) {
		want := desired(*status(o), w.now())
		if equality.Semantic.DeepEqual(*status(o), want) {
			var none T
			return none, false
		}
		update := deepCopy(o)
		*status(update) = want
		return update, true
	})
}

func (w *Writer) writeHTTPRoute(ctx context.Context, obj *gatewayv1.HTTPRoute, want []gatewayv1.RouteParentStatus) error {
	return writeRouteParents(ctx, w, "HTTPRoute", obj, w.Gateway.GatewayV1().HTTPRoutes(obj.Namespace), (*gatewayv1.HTTPRoute).DeepCopy,
		func(o *gatewayv1.HTTPRoute) *[]gatewayv1.RouteParentStatus { return &o.Status.Parents }, want)
}

func (w *Writer) writeGRPCRoute(ctx context.Context, obj *gatewayv1.GRPCRoute, want []gatewayv1.RouteParentStatus) error {
	return writeRouteParents(ctx, w, "GRPCRoute", obj, w.Gateway.GatewayV1().GRPCRoutes(obj.Namespace), (*gatewayv1.GRPCRoute).DeepCopy,
		func(o *gatewayv1.GRPCRoute) *[]gatewayv1.RouteParentStatus { return &o.Status.Parents }, want)
}

func (w *Writer) writeTLSRoute(ctx context.Context, obj *gatewayv1.TLSRoute, want []gatewayv1.RouteParentStatus) error {
	return writeRouteParents(ctx, w, "TLSRoute", obj, w.Gateway.GatewayV1().TLSRoutes(obj.Namespace), (*gatewayv1.TLSRoute).DeepCopy,
		func(o *gatewayv1.TLSRoute) *[]gatewayv1.RouteParentStatus { return &o.Status.Parents }, want)
}

// writeRouteParents writes this controller's entries of a route's
// status.parents (HTTPRoute, GRPCRoute, TLSRoute), leaving other controllers'
// entries as they are.
func writeRouteParents[T metav1.Object](ctx context.Context, w *Writer, kind string, obj T, api statusAPI[T],
	deepCopy func(T) T, parents func(T) *[]gatewayv1.RouteParentStatus, want []gatewayv1.RouteParentStatus) error {
	if len(want) == 0 && !slices.ContainsFunc(*parents(obj), func(p gatewayv1.RouteParentStatus) bool {
		return p.ControllerName == w.GatewayController
	}) {
		return nil // neither ours now nor before: another controller's route
	}
	return updateStatus(ctx, w, kind, obj, api, func(o T) (T, bool) {
		desired := desiredRouteParents(*parents(o), w.GatewayController, want, w.now())
		if equality.Semantic.DeepEqual(*parents(o), desired) {
			var none T
			return none, false
		}
		update := deepCopy(o)
		*parents(update) = desired
		return update, true
	})
}

func (w *Writer) writeBackendTLSPolicy(ctx context.Context, obj *gatewayv1.BackendTLSPolicy, want []gatewayv1.PolicyAncestorStatus) error {
	if len(want) == 0 && !slices.ContainsFunc(obj.Status.Ancestors, func(a gatewayv1.PolicyAncestorStatus) bool {
		return a.ControllerName == w.GatewayController
	}) {
		return nil // not used by our Gateways, now or before
	}
	return updateStatus(ctx, w, "BackendTLSPolicy", obj, w.Gateway.GatewayV1().BackendTLSPolicies(obj.Namespace),
		func(o *gatewayv1.BackendTLSPolicy) (*gatewayv1.BackendTLSPolicy, bool) {
			desired, dropped := desiredPolicyAncestors(o.Status.Ancestors, w.GatewayController, want, w.now())
			if equality.Semantic.DeepEqual(o.Status.Ancestors, desired) {
				return nil, false
			}
			if dropped > 0 {
				w.logger().Warn("BackendTLSPolicy status has room for no more ancestors; some of our Gateways using it are not listed",
					"namespace", o.Namespace, "name", o.Name, "omitted", dropped, "max", maxPolicyAncestors)
			}
			update := o.DeepCopy()
			update.Status.Ancestors = desired
			return update, true
		})
}

// statusAPI is what a status write needs of a typed Gateway API client.
type statusAPI[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	UpdateStatus(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// updateStatus writes one object's status: desired returns the object with
// the status to write, and false when its status is already right. It compares
// first against the informer's copy and, after a conflict, against the
// latest version read from the API server. A deleted object is not an
// error.
func updateStatus[T metav1.Object](ctx context.Context, w *Writer, kind string, obj T, api statusAPI[T], desired func(T) (update T, write bool)) error {
	namespace, name := obj.GetNamespace(), obj.GetName()
	fresh, wrote := false, false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if fresh {
			latest, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			obj = latest
		}
		fresh = true
		update, write := desired(obj)
		if !write {
			wrote = false
			return nil
		}
		_, err := api.UpdateStatus(ctx, update, metav1.UpdateOptions{})
		wrote = true
		return err
	})
	log := w.logger()
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		log.Warn("writing status failed; retrying on the next change", "kind", kind, "namespace", namespace, "name", name, "error", err)
		return fmt.Errorf("%s %s status: %w", kind, objectName(namespace, name), err)
	case wrote:
		log.Debug("status written", "kind", kind, "namespace", namespace, "name", name)
	}
	return nil
}

func objectName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
