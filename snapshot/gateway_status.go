package snapshot

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The status of a Gateway and of its listeners, once routes have attached.

// statusOf is the Gateway's status once routes have attached.
func (info *gatewayInfo) statusOf() gatewayv1.GatewayStatus {
	gen := info.gw.Generation
	var st gatewayv1.GatewayStatus
	for _, a := range info.addresses {
		if a.IsUnspecified() {
			continue
		}
		st.Addresses = append(st.Addresses, gatewayv1.GatewayStatusAddress{Type: ptrTo(gatewayv1.IPAddressType), Value: a.String()})
	}

	accepted, invalid := 0, 0
	for _, l := range info.own {
		if l.accepted {
			accepted++
		} else {
			invalid++
		}
	}
	var acc metav1.Condition
	const typeAccepted, typeProgrammed = string(gatewayv1.GatewayConditionAccepted), string(gatewayv1.GatewayConditionProgrammed)
	switch {
	case info.unsupportedAddress != "":
		acc = condition(typeAccepted, false, string(gatewayv1.GatewayReasonUnsupportedAddress), info.unsupportedAddress, gen)
	case info.invalidParameters != "":
		acc = condition(typeAccepted, false, string(gatewayv1.GatewayReasonInvalidParameters), info.invalidParameters, gen)
	case accepted == 0:
		acc = condition(typeAccepted, false, string(gatewayv1.GatewayReasonListenersNotValid), "no listener is valid", gen)
	case invalid > 0:
		acc = condition(typeAccepted, true, string(gatewayv1.GatewayReasonListenersNotValid), fmt.Sprintf("%d of %d listeners are not valid and not served", invalid, len(info.own)), gen)
	default:
		acc = condition(typeAccepted, true, string(gatewayv1.GatewayReasonAccepted), "the Gateway is accepted", gen)
	}
	var prog metav1.Condition
	programmed := slices.ContainsFunc(info.listeners, (*listenerInfo).programmed)
	switch {
	case acc.Status == metav1.ConditionFalse:
		prog = condition(typeProgrammed, false, string(gatewayv1.GatewayReasonInvalid), "the Gateway is not accepted", gen)
	case info.addressReason != "":
		prog = condition(typeProgrammed, false, info.addressReason, info.addressMessage, gen)
	case !programmed:
		prog = condition(typeProgrammed, false, string(gatewayv1.GatewayReasonInvalid), "no listener can be served", gen)
	default:
		prog = condition(typeProgrammed, true, string(gatewayv1.GatewayReasonProgrammed), "the Gateway is served", gen)
	}
	st.Conditions = []metav1.Condition{acc, prog}
	if tlsCfg := info.gw.Spec.TLS; tlsCfg != nil && tlsCfg.Backend != nil {
		st.Conditions = append(st.Conditions, info.resolvedRefs(gen))
	}
	if where := insecureFrontendValidation(info.gw); where != "" {
		st.Conditions = append(st.Conditions, condition(string(gatewayv1.GatewayConditionInsecureFrontendValidationMode), true,
			string(gatewayv1.GatewayReasonConfigurationChanged),
			where+" allows clients without a valid certificate (AllowInsecureFallback)", gen))
	}

	served := info.served()
	for _, l := range info.own {
		st.Listeners = append(st.Listeners, l.status(gen, served))
	}
	st.AttachedListenerSets = ptrTo(info.attachedListenerSets())
	return st
}

func (l *listenerInfo) status(gen int64, gatewayServed bool) gatewayv1.ListenerStatus {
	const (
		typeAccepted   = string(gatewayv1.ListenerConditionAccepted)
		typeProgrammed = string(gatewayv1.ListenerConditionProgrammed)
		typeResolved   = string(gatewayv1.ListenerConditionResolvedRefs)
		typeConflicted = string(gatewayv1.ListenerConditionConflicted)
	)
	var conds []metav1.Condition
	if l.accepted {
		conds = append(conds, condition(typeAccepted, true, string(gatewayv1.ListenerReasonAccepted), "the listener is valid", gen))
	} else {
		conds = append(conds, condition(typeAccepted, false, l.acceptedReason, l.acceptedMsg, gen))
	}
	switch {
	case l.conflictReason != "":
		// ListenerSet conformance asks for the conflict as the reason
		// here too; one rule for every listener keeps statuses alike.
		conds = append(conds, condition(typeProgrammed, false, l.conflictReason, l.conflictMsg, gen))
	case !l.programmed():
		msg := "the listener is not valid"
		if l.accepted {
			msg = "the listener has no usable certificate"
		}
		conds = append(conds, condition(typeProgrammed, false, string(gatewayv1.ListenerReasonInvalid), msg, gen))
	case !gatewayServed:
		conds = append(conds, condition(typeProgrammed, false, string(gatewayv1.ListenerReasonPending), "the Gateway has no usable address", gen))
	default:
		conds = append(conds, condition(typeProgrammed, true, string(gatewayv1.ListenerReasonProgrammed), "the listener is served", gen))
	}
	if l.resolvedReason != "" {
		conds = append(conds, condition(typeResolved, false, l.resolvedReason, l.resolvedMsg, gen))
	} else {
		conds = append(conds, condition(typeResolved, true, string(gatewayv1.ListenerReasonResolvedRefs), "all references are resolved", gen))
	}
	if l.conflictReason != "" {
		conds = append(conds, condition(typeConflicted, true, l.conflictReason, l.conflictMsg, gen))
	} else {
		conds = append(conds, condition(typeConflicted, false, string(gatewayv1.ListenerReasonNoConflicts), "no conflicts", gen))
	}
	return gatewayv1.ListenerStatus{
		Name:           l.spec.Name,
		SupportedKinds: l.supportedKinds,
		AttachedRoutes: l.attachedRoutes,
		Conditions:     conds,
	}
}
