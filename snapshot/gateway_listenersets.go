package snapshot

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

const kindListenerSet = "ListenerSet"

// listenerSetInfo is one ListenerSet whose parent is one of our Gateways.
type listenerSetInfo struct {
	ls   *gatewayv1.ListenerSet
	name types.NamespacedName
	ref  ObjectRef
	// gateway is the parent; the set's listeners join its sockets.
	gateway *gatewayInfo
	// rejectReason is set when the Gateway does not take the set at all
	// (NotAllowed, ParentNotAccepted); its listeners are then not built.
	rejectReason, rejectMsg string
	// specs are the set's entries as Gateway listeners, which they are
	// field for field; listeners are their translations.
	specs     []gatewayv1.Listener
	listeners []*listenerInfo
}

// accepted reports whether the set adds a listener to its Gateway: the
// Gateway allows it and at least one of its listeners can be served.
func (s *listenerSetInfo) accepted() bool {
	return s.rejectReason == "" && slices.ContainsFunc(s.listeners, (*listenerInfo).programmed)
}

// indexListenerSets groups the ListenerSets whose parentRef names one of
// our Gateways by that Gateway, in the precedence the spec gives their
// listeners: oldest first, then by namespace and name. Sets naming any
// other Gateway are left to its controller.
func (t *gatewayTranslator) indexListenerSets(objs *Objects, ours map[types.NamespacedName]bool) map[types.NamespacedName][]*listenerSetInfo {
	sets := slices.Clone(objs.ListenerSets)
	slices.SortFunc(sets, func(a, b *gatewayv1.ListenerSet) int { return olderObject(&a.ObjectMeta, &b.ObjectMeta) })
	byGateway := make(map[types.NamespacedName][]*listenerSetInfo)
	for _, ls := range sets {
		pr := ls.Spec.ParentRef
		if string(deref(pr.Group, gatewayGroup)) != gatewayGroup || string(deref(pr.Kind, kindGateway)) != kindGateway {
			continue
		}
		parent := key(string(deref(pr.Namespace, gatewayv1.Namespace(ls.Namespace))), string(pr.Name))
		if !ours[parent] {
			continue
		}
		s := &listenerSetInfo{
			ls:   ls,
			name: key(ls.Namespace, ls.Name),
			ref:  ObjectRef{Kind: kindListenerSet, Namespace: ls.Namespace, Name: ls.Name},
		}
		for _, e := range ls.Spec.Listeners {
			s.specs = append(s.specs, gatewayv1.Listener(e))
		}
		byGateway[parent] = append(byGateway[parent], s)
		t.listenerSets[s.name] = s
	}
	return byGateway
}

// attachListenerSets merges the listeners of the ListenerSets naming the
// Gateway into its served listeners, after its own. A set's listener that
// conflicts with a listener earlier in precedence (the Gateway's own, or an
// older set's) is not served and the earlier one keeps serving; listeners
// conflicting within one set are all left unserved, as within a Gateway.
func (t *gatewayTranslator) attachListenerSets(info *gatewayInfo) {
	for _, s := range t.setsByGateway[info.name] {
		s.gateway = info
		switch {
		case !t.allowsListenerSet(info, s.ls.Namespace):
			s.rejectReason = string(gatewayv1.ListenerSetReasonNotAllowed)
			s.rejectMsg = fmt.Sprintf("Gateway %s does not allow ListenerSets from namespace %s (spec.allowedListeners)", info.name, s.ls.Namespace)
			t.b.problems.add(s.ref, Warning, s.rejectReason, "%s; its listeners are not served", s.rejectMsg)
			continue
		case !info.accepted():
			s.rejectReason = string(gatewayv1.ListenerSetReasonParentNotAccepted)
			s.rejectMsg = fmt.Sprintf("Gateway %s is not accepted", info.name)
			t.b.problems.add(s.ref, Warning, s.rejectReason, "%s; its listeners are not served", s.rejectMsg)
			continue
		}
		info.sets = append(info.sets, s)
		for i := range s.specs {
			s.listeners = append(s.listeners, t.listener(info, &s.specs[i], s))
		}
		detectConflicts(s.listeners)
		for _, l := range s.listeners {
			// A protocol we do not serve still claims its port: taking a
			// port an earlier listener serves is reported as the
			// conflict it is.
			if l.accepted || l.acceptedReason == string(gatewayv1.ListenerReasonUnsupportedProtocol) {
				conflictWithEarlier(l, info.listeners)
			}
		}
		info.listeners = append(info.listeners, s.listeners...)
	}
}

// conflictWithEarlier marks l conflicted when a valid listener earlier in
// precedence takes its port with another protocol, or its port and
// hostname.
func conflictWithEarlier(l *listenerInfo, earlier []*listenerInfo) {
	for _, e := range earlier {
		if !e.accepted || e.spec.Port != l.spec.Port {
			continue
		}
		switch {
		case e.spec.Protocol != l.spec.Protocol:
			l.conflict(gatewayv1.ListenerReasonProtocolConflict, fmt.Sprintf("port %d is used with protocol %s by listener %s of %s, which takes precedence",
				l.spec.Port, e.spec.Protocol, e.spec.Name, e.owner))
			return
		case e.hostname == l.hostname:
			what := "no hostname"
			if l.hostname != "" {
				what = "hostname " + l.hostname
			}
			l.conflict(gatewayv1.ListenerReasonHostnameConflict, fmt.Sprintf("listener %s of %s has %s on port %d too and takes precedence",
				e.spec.Name, e.owner, what, l.spec.Port))
			return
		}
	}
}

// allowsListenerSet applies the Gateway's spec.allowedListeners to a
// ListenerSet's namespace; without it no ListenerSet is allowed.
func (t *gatewayTranslator) allowsListenerSet(info *gatewayInfo, namespace string) bool {
	al := info.gw.Spec.AllowedListeners
	if al == nil || al.Namespaces == nil {
		return false
	}
	switch deref(al.Namespaces.From, gatewayv1.NamespacesFromNone) {
	case gatewayv1.NamespacesFromAll:
		return true
	case gatewayv1.NamespacesFromSame:
		return namespace == info.gw.Namespace
	case gatewayv1.NamespacesFromSelector:
		if al.Namespaces.Selector == nil {
			return false
		}
		sel, err := metav1.LabelSelectorAsSelector(al.Namespaces.Selector)
		if err != nil {
			t.b.problems.add(info.ref, Error, string(gatewayv1.GatewayReasonInvalid), "spec.allowedListeners.namespaces.selector: %v; no ListenerSet is allowed", err)
			return false
		}
		return sel.Matches(labels.Set(t.labelsOf(namespace)))
	default:
		return false
	}
}

// attachedListenerSets counts the sets that add a served listener.
func (info *gatewayInfo) attachedListenerSets() int32 {
	var n int32
	for _, s := range info.sets {
		if s.accepted() {
			n++
		}
	}
	return n
}

// statusOf is the ListenerSet's status once routes have attached.
func (s *listenerSetInfo) statusOf() gatewayv1.ListenerSetStatus {
	gen := s.ls.Generation
	const typeAccepted, typeProgrammed = string(gatewayv1.ListenerSetConditionAccepted), string(gatewayv1.ListenerSetConditionProgrammed)
	var st gatewayv1.ListenerSetStatus
	if s.rejectReason != "" {
		st.Conditions = []metav1.Condition{
			condition(typeAccepted, false, s.rejectReason, s.rejectMsg, gen),
			condition(typeProgrammed, false, s.rejectReason, s.rejectMsg, gen),
		}
		return st
	}
	var invalid []string
	for _, l := range s.listeners {
		if !l.programmed() {
			invalid = append(invalid, string(l.spec.Name))
		}
	}
	served := s.gateway.served()
	switch {
	case !s.accepted():
		msg := "no listener of the ListenerSet can be served"
		st.Conditions = []metav1.Condition{
			condition(typeAccepted, false, string(gatewayv1.ListenerSetReasonListenersNotValid), msg, gen),
			condition(typeProgrammed, false, string(gatewayv1.ListenerSetReasonListenersNotValid), msg, gen),
		}
	default:
		acc := condition(typeAccepted, true, string(gatewayv1.ListenerSetReasonAccepted), "the ListenerSet is attached to Gateway "+s.gateway.name.String(), gen)
		if len(invalid) > 0 {
			acc.Reason = string(gatewayv1.ListenerSetReasonListenersNotValid)
			acc.Message = fmt.Sprintf("listeners %s are not valid and not served; the others are", strings.Join(invalid, ", "))
		}
		prog := condition(typeProgrammed, true, string(gatewayv1.ListenerSetReasonProgrammed), "the ListenerSet's valid listeners are served", gen)
		if !served {
			prog = condition(typeProgrammed, false, string(gatewayv1.ListenerSetReasonPending), "Gateway "+s.gateway.name.String()+" has no usable address", gen)
		}
		st.Conditions = []metav1.Condition{acc, prog}
	}
	for _, l := range s.listeners {
		st.Listeners = append(st.Listeners, gatewayv1.ListenerEntryStatus(l.status(gen, served)))
	}
	return st
}
