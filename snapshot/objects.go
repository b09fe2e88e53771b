package snapshot

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Objects is everything a source (the manifest folder or the Kubernetes API)
// currently holds that the builder reads. Sources hand the builder their own
// copies; the builder never mutates them.
type Objects struct {
	Ingresses      []*networkingv1.Ingress
	IngressClasses []*networkingv1.IngressClass
	Services       []*corev1.Service
	Endpoints      []*corev1.Endpoints
	EndpointSlices []*discoveryv1.EndpointSlice
	// Secrets holds only Secrets of type kubernetes.io/tls.
	Secrets []*corev1.Secret
}
