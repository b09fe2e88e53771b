package status

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/snapshot"
)

// endpointSliceManager names Portico as the writer of a Gateway Service's
// EndpointSlices, so that the EndpointSlice controller leaves them alone.
const endpointSliceManager = "portico.dev"

// syncGatewayServices keeps the Services (and their EndpointSlices) the
// snapshot computed for our Gateways, and deletes the Services Portico
// manages that no Gateway asks for any more. It compares against the
// source's copies and writes only what differs. The Service is owned by
// its Gateway and the EndpointSlices by the Service, so deleting a Gateway
// lets the garbage collector remove both even while Portico is down.
func (w *Writer) syncGatewayServices(ctx context.Context, objs snapshot.Objects, want map[types.NamespacedName]snapshot.GatewayService) error {
	services := make(map[types.NamespacedName]*corev1.Service)
	for _, s := range objs.Services {
		services[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}
	slices := make(map[types.NamespacedName]*discoveryv1.EndpointSlice)
	for _, s := range objs.EndpointSlices {
		slices[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}
	var errs []error
	for name, gs := range want {
		svc, err := w.ensureGatewayService(ctx, name, gs, services[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for family, suffix := range map[discoveryv1.AddressType]string{discoveryv1.AddressTypeIPv4: "-ipv4", discoveryv1.AddressTypeIPv6: "-ipv6"} {
			sliceName := types.NamespacedName{Namespace: name.Namespace, Name: name.Name + suffix}
			errs = append(errs, w.ensureGatewayEndpointSlice(ctx, sliceName, svc, gs, family, slices[sliceName]))
		}
	}
	for name, s := range services {
		if _, wanted := want[name]; wanted || s.Labels[snapshot.LabelManagedBy] != snapshot.ManagedBy || s.Labels[gatewayv1.GatewayNameLabelKey] == "" {
			continue
		}
		err := w.Client.CoreV1().Services(name.Namespace).Delete(ctx, name.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting Service %s: %w", name, err))
			continue
		}
		w.logger().Info("deleted the Service of a Gateway that is gone or no longer ours", "namespace", name.Namespace, "name", name.Name)
	}
	return errors.Join(errs...)
}

// ensureGatewayService creates or updates one Gateway's Service and
// returns it as the API server has it (for the EndpointSlices' owner).
func (w *Writer) ensureGatewayService(ctx context.Context, name types.NamespacedName, gs snapshot.GatewayService, current *corev1.Service) (*corev1.Service, error) {
	api := w.Client.CoreV1().Services(name.Namespace)
	desired := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   name.Namespace,
			Name:        name.Name,
			Labels:      maps.Clone(gs.Labels),
			Annotations: maps.Clone(gs.Annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gatewayv1.GroupVersion.String(),
				Kind:       "Gateway",
				Name:       gs.Gateway.Name,
				UID:        gs.GatewayUID,
				Controller: new(true),
			}},
		},
		Spec: corev1.ServiceSpec{
			// Headless and without selector: DNS answers with the
			// EndpointSlices' addresses, the Gateway's own.
			ClusterIP: corev1.ClusterIPNone,
			Ports:     servicePorts(gs.Ports),
		},
	}
	if current == nil {
		created, err := api.Create(ctx, desired, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Created by an earlier run the source has not listed yet.
			current, err = api.Get(ctx, name.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("Service %s: %w", name, err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("creating Service %s: %w", name, err)
		} else {
			w.logger().Info("created the Service of a Gateway", "namespace", name.Namespace, "name", name.Name, "gateway", gs.Gateway.String())
			return created, nil
		}
	}
	if current.Labels[snapshot.LabelManagedBy] != snapshot.ManagedBy {
		// The builder reports this; never take over a user's Service.
		return nil, fmt.Errorf("Service %s is not managed by Portico", name)
	}
	if equality.Semantic.DeepEqual(current.Labels, desired.Labels) &&
		equality.Semantic.DeepEqual(current.Annotations, desired.Annotations) &&
		equality.Semantic.DeepEqual(current.OwnerReferences, desired.OwnerReferences) &&
		current.Spec.ClusterIP == corev1.ClusterIPNone && len(current.Spec.Selector) == 0 &&
		samePorts(current.Spec.Ports, desired.Spec.Ports) {
		return current, nil
	}
	update := current.DeepCopy()
	update.Labels, update.Annotations, update.OwnerReferences = desired.Labels, desired.Annotations, desired.OwnerReferences
	update.Spec.Selector = nil
	update.Spec.Ports = desired.Spec.Ports
	// clusterIP is immutable: a Service that lost it is replaced.
	if update.Spec.ClusterIP != corev1.ClusterIPNone {
		if err := api.Delete(ctx, name.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("replacing Service %s: %w", name, err)
		}
		return nil, fmt.Errorf("Service %s was not headless; deleted, to be created again", name)
	}
	updated, err := api.Update(ctx, update, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating Service %s: %w", name, err)
	}
	return updated, nil
}

// ensureGatewayEndpointSlice keeps the EndpointSlice of one address family
// of a Gateway's Service, or deletes it when the Gateway has no address of
// that family.
func (w *Writer) ensureGatewayEndpointSlice(ctx context.Context, name types.NamespacedName, svc *corev1.Service, gs snapshot.GatewayService,
	family discoveryv1.AddressType, current *discoveryv1.EndpointSlice) error {
	api := w.Client.DiscoveryV1().EndpointSlices(name.Namespace)
	var endpoints []discoveryv1.Endpoint
	for _, a := range gs.Addresses {
		if a.Is4() != (family == discoveryv1.AddressTypeIPv4) {
			continue
		}
		endpoints = append(endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
		})
	}
	if len(endpoints) == 0 {
		if current == nil {
			return nil
		}
		if err := api.Delete(ctx, name.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting EndpointSlice %s: %w", name, err)
		}
		return nil
	}
	labels := maps.Clone(gs.Labels)
	labels[discoveryv1.LabelServiceName] = svc.Name
	labels[discoveryv1.LabelManagedBy] = endpointSliceManager
	desired := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: name.Namespace,
			Name:      name.Name,
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, Controller: new(true),
			}},
		},
		AddressType: family,
		Endpoints:   endpoints,
	}
	for _, p := range gs.Ports {
		desired.Ports = append(desired.Ports, discoveryv1.EndpointPort{Name: new(p.Name), Port: new(p.Port), Protocol: new(corev1.ProtocolTCP)})
	}
	if current == nil {
		_, err := api.Create(ctx, desired, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating EndpointSlice %s: %w", name, err)
		}
		return nil
	}
	if current.AddressType != family {
		return fmt.Errorf("EndpointSlice %s has address type %s, want %s", name, current.AddressType, family)
	}
	if equality.Semantic.DeepEqual(current.Labels, desired.Labels) && equality.Semantic.DeepEqual(current.OwnerReferences, desired.OwnerReferences) &&
		equality.Semantic.DeepEqual(current.Endpoints, desired.Endpoints) && equality.Semantic.DeepEqual(current.Ports, desired.Ports) {
		return nil
	}
	update := current.DeepCopy()
	update.Labels, update.OwnerReferences, update.Endpoints, update.Ports = desired.Labels, desired.OwnerReferences, desired.Endpoints, desired.Ports
	if _, err := api.Update(ctx, update, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating EndpointSlice %s: %w", name, err)
	}
	return nil
}

func servicePorts(ports []snapshot.GatewayServicePort) []corev1.ServicePort {
	out := make([]corev1.ServicePort, 0, len(ports))
	for _, p := range ports {
		out = append(out, corev1.ServicePort{Name: p.Name, Port: p.Port, Protocol: corev1.ProtocolTCP})
	}
	return out
}

// samePorts compares the fields Portico sets; the API server fills in
// others (targetPort).
func samePorts(current, want []corev1.ServicePort) bool {
	if len(current) != len(want) {
		return false
	}
	for i := range want {
		if current[i].Name != want[i].Name || current[i].Port != want[i].Port || current[i].Protocol != want[i].Protocol {
			return false
		}
	}
	return true
}
