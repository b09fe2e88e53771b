package main

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/snapshot"
)

func TestWithBindFailures(t *testing.T) {
	programmed := func(reason string) []metav1.Condition {
		return []metav1.Condition{
			{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: 3},
			{Type: "Programmed", Status: metav1.ConditionTrue, Reason: reason, ObservedGeneration: 3},
		}
	}
	edge := types.NamespacedName{Namespace: "shop", Name: "edge"}
	other := types.NamespacedName{Namespace: "shop", Name: "other"}
	st := snapshot.GatewayAPIStatus{Gateways: map[types.NamespacedName]gatewayv1.GatewayStatus{
		edge: {Conditions: programmed("Programmed"), Listeners: []gatewayv1.ListenerStatus{
			{Name: "http", Conditions: programmed("Programmed")},
			{Name: "https", Conditions: programmed("Programmed")},
		}},
		other: {Conditions: programmed("Programmed")},
	}}
	spec := &gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"}, Spec: gatewayv1.GatewaySpec{
		Listeners: []gatewayv1.Listener{{Name: "http", Port: 80}, {Name: "https", Port: 443}},
	}}
	failure := bindFailure{key: listenerKey{addr: loopback, port: 80, protocol: gatewayv1.HTTPProtocolType}, gateway: edge, err: "address already in use"}

	if got := withBindFailures(st, []*gatewayv1.Gateway{spec}, nil); got.Gateways[edge].Conditions[1].Status != metav1.ConditionTrue {
		t.Error("no failures changed the status")
	}
	got := withBindFailures(st, []*gatewayv1.Gateway{spec}, []bindFailure{failure})
	gw := got.Gateways[edge]
	if c := meta.FindStatusCondition(gw.Conditions, "Programmed"); c.Status != metav1.ConditionFalse || c.Reason != "AddressNotUsable" ||
		c.ObservedGeneration != 3 || c.Message != "socket HTTP 127.0.0.1:80 cannot be bound: address already in use; the Gateway's other sockets are served" {
		t.Errorf("Gateway Programmed %+v", c)
	}
	if c := meta.FindStatusCondition(gw.Listeners[0].Conditions, "Programmed"); c.Status != metav1.ConditionFalse || c.Reason != "Invalid" {
		t.Errorf("listener on the failed port: Programmed %+v", c)
	}
	if c := meta.FindStatusCondition(gw.Listeners[1].Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("listener on another port: Programmed %+v", c)
	}
	if c := meta.FindStatusCondition(got.Gateways[other].Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Errorf("another Gateway changed: %+v", c)
	}
	if c := meta.FindStatusCondition(st.Gateways[edge].Conditions, "Programmed"); c.Status != metav1.ConditionTrue {
		t.Error("the snapshot's own status was modified")
	}
}
