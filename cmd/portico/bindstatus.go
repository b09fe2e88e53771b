package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/snapshot"
)

// bindFailure is a socket a Gateway asked for that could not be bound.
type bindFailure struct {
	key     listenerKey
	gateway types.NamespacedName
	err     string
}

// withBindFailures returns the status the builder computed, with the
// Gateways whose sockets could not be bound marked Programmed=False, and
// so are the listeners on those ports. The builder cannot know: binding
// happens after it, and only this process can tell whether an address is
// usable on this host. st is not modified; untouched Gateways share it.
func withBindFailures(st snapshot.GatewayAPIStatus, gateways []*gatewayv1.Gateway, failures []bindFailure) snapshot.GatewayAPIStatus {
	if len(failures) == 0 {
		return st
	}
	byGateway := make(map[types.NamespacedName][]bindFailure)
	for _, f := range failures {
		byGateway[f.gateway] = append(byGateway[f.gateway], f)
	}
	specs := make(map[types.NamespacedName]*gatewayv1.Gateway, len(gateways))
	for _, gw := range gateways {
		specs[types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}] = gw
	}
	out := st
	out.Gateways = maps.Clone(st.Gateways)
	for name, fs := range byGateway {
		cur, ok := out.Gateways[name]
		if !ok {
			continue
		}
		gs := *cur.DeepCopy()
		var msgs []string
		ports := map[int32]string{}
		for _, f := range fs {
			msg := fmt.Sprintf("socket %s cannot be bound: %s", f.key, f.err)
			msgs = append(msgs, msg)
			ports[f.key.port] = msg
		}
		slices.Sort(msgs)
		generation := int64(0)
		if prog := meta.FindStatusCondition(gs.Conditions, string(gatewayv1.GatewayConditionProgrammed)); prog != nil {
			generation = prog.ObservedGeneration
		}
		setCondition(&gs.Conditions, metav1.Condition{
			Type: string(gatewayv1.GatewayConditionProgrammed), Status: metav1.ConditionFalse,
			Reason:             string(gatewayv1.GatewayReasonAddressNotUsable),
			Message:            strings.Join(msgs, "; ") + "; the Gateway's other sockets are served",
			ObservedGeneration: generation,
		})
		if spec := specs[name]; spec != nil {
			for i := range gs.Listeners {
				ls := &gs.Listeners[i]
				for _, l := range spec.Spec.Listeners {
					msg, failed := ports[int32(l.Port)]
					if l.Name != ls.Name || !failed {
						continue
					}
					setCondition(&ls.Conditions, metav1.Condition{
						Type: string(gatewayv1.ListenerConditionProgrammed), Status: metav1.ConditionFalse,
						Reason: string(gatewayv1.ListenerReasonInvalid), Message: msg, ObservedGeneration: generation,
					})
				}
			}
		}
		out.Gateways[name] = gs
	}
	return out
}

// setCondition replaces the condition of c's type, or adds it, keeping the
// order of the others.
func setCondition(conds *[]metav1.Condition, c metav1.Condition) {
	for i := range *conds {
		if (*conds)[i].Type == c.Type {
			(*conds)[i] = c
			return
		}
	}
	*conds = append(*conds, c)
}
