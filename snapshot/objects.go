package snapshot

import (
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
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

	// Gateway API objects (sigs.k8s.io/gateway-api/apis/v1). Sources leave
	// them empty when the CRDs are not installed.
	GatewayClasses  []*gatewayv1.GatewayClass
	Gateways        []*gatewayv1.Gateway
	HTTPRoutes      []*gatewayv1.HTTPRoute
	GRPCRoutes      []*gatewayv1.GRPCRoute
	TLSRoutes       []*gatewayv1.TLSRoute
	ReferenceGrants []*gatewayv1.ReferenceGrant
	// ListenerSets add listeners to Gateways that allow them.
	ListenerSets []*gatewayv1.ListenerSet
	// Namespaces are read for Gateway listeners' allowedRoutes selectors.
	Namespaces []*corev1.Namespace
	// BackendTLSPolicies (gateway.networking.k8s.io/v1) make Gateway
	// routes speak TLS to the Services they target.
	BackendTLSPolicies []*gatewayv1.BackendTLSPolicy
	// ConfigMaps hold CA bundles (key "ca.crt") that BackendTLSPolicies
	// and Gateway frontend TLS validation refer to, and ingress-nginx's
	// controller ConfigMap (Config.NginxConfigMap), which must be handed
	// over whole. Sources may hand over only the ConfigMaps those name.
	ConfigMaps []*corev1.ConfigMap
	// ClusterTrustBundles (certificates.k8s.io/v1) are CA bundles the
	// same references may name instead of a ConfigMap.
	ClusterTrustBundles []*certificatesv1.ClusterTrustBundle
}
