package snapshot

import (
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Kind is one kind of object the builder reads: how it is named, whether it
// lives in a namespace, the defaults the API server gives it, and its list
// in Objects. Sources, the status writer and the test fixtures all read
// this one table, so serving a new kind is a field in Objects and a row in
// Kinds.
type Kind struct {
	// Name is the kind as manifests and problems spell it.
	Name         string
	GroupVersion schema.GroupVersion
	Namespaced   bool

	is      func(runtime.Object) bool
	def     func(runtime.Object)
	add     func(*Objects, runtime.Object)
	findRef func(*Objects, ObjectRef) runtime.Object
}

// Default applies, in place, the defaults the API server applies on
// create, for sources that have no API server (a manifest folder, test
// fixtures).
func (k *Kind) Default(obj runtime.Object) {
	if k.def != nil {
		k.def(obj)
	}
}

// object is what every kind in the table is: a typed API object with
// metadata.
type object interface {
	metav1.Object
	runtime.Object
}

// kindOf builds the table row of kind T, whose objects live in the list
// that field points at in an Objects.
func kindOf[T object](name string, gv schema.GroupVersion, namespaced bool, field func(*Objects) *[]T, def func(T)) Kind {
	k := Kind{
		Name:         name,
		GroupVersion: gv,
		Namespaced:   namespaced,
		is: func(obj runtime.Object) bool {
			_, ok := obj.(T)
			return ok
		},
		add: func(objs *Objects, obj runtime.Object) {
			list := field(objs)
			*list = append(*list, obj.(T))
		},
		findRef: func(objs *Objects, ref ObjectRef) runtime.Object {
			for _, o := range *field(objs) {
				if o.GetNamespace() == ref.Namespace && o.GetName() == ref.Name {
					return o
				}
			}
			return nil
		},
	}
	if def != nil {
		k.def = func(obj runtime.Object) { def(obj.(T)) }
	}
	return k
}

var gatewayGroupVersion = schema.GroupVersion(gatewayv1.GroupVersion)

// Kinds lists every kind of object in Objects.
var Kinds = []Kind{
	kindOf("Ingress", networkingv1.SchemeGroupVersion, true, func(o *Objects) *[]*networkingv1.Ingress { return &o.Ingresses }, nil),
	kindOf("IngressClass", networkingv1.SchemeGroupVersion, false, func(o *Objects) *[]*networkingv1.IngressClass { return &o.IngressClasses }, nil),
	kindOf("Service", corev1.SchemeGroupVersion, true, func(o *Objects) *[]*corev1.Service { return &o.Services }, nil),
	kindOf("Endpoints", corev1.SchemeGroupVersion, true, func(o *Objects) *[]*corev1.Endpoints { return &o.Endpoints }, nil),
	kindOf("EndpointSlice", discoveryv1.SchemeGroupVersion, true, func(o *Objects) *[]*discoveryv1.EndpointSlice { return &o.EndpointSlices }, nil),
	kindOf("Secret", corev1.SchemeGroupVersion, true, func(o *Objects) *[]*corev1.Secret { return &o.Secrets }, mergeStringData),
	kindOf("Namespace", corev1.SchemeGroupVersion, false, func(o *Objects) *[]*corev1.Namespace { return &o.Namespaces }, defaultNamespace),
	kindOf("GatewayClass", gatewayGroupVersion, false, func(o *Objects) *[]*gatewayv1.GatewayClass { return &o.GatewayClasses }, nil),
	kindOf("Gateway", gatewayGroupVersion, true, func(o *Objects) *[]*gatewayv1.Gateway { return &o.Gateways }, defaultGateway),
	kindOf("HTTPRoute", gatewayGroupVersion, true, func(o *Objects) *[]*gatewayv1.HTTPRoute { return &o.HTTPRoutes }, defaultHTTPRoute),
	kindOf("GRPCRoute", gatewayGroupVersion, true, func(o *Objects) *[]*gatewayv1.GRPCRoute { return &o.GRPCRoutes }, defaultGRPCRoute),
	kindOf("TLSRoute", gatewayGroupVersion, true, func(o *Objects) *[]*gatewayv1.TLSRoute { return &o.TLSRoutes }, defaultTLSRoute),
	kindOf("ReferenceGrant", gatewayGroupVersion, true, func(o *Objects) *[]*gatewayv1.ReferenceGrant { return &o.ReferenceGrants }, nil),
	kindOf("ListenerSet", gatewayGroupVersion, true, func(o *Objects) *[]*gatewayv1.ListenerSet { return &o.ListenerSets }, defaultListenerSet),
	// Its CRD declares no defaults for spec fields.
	kindOf("BackendTLSPolicy", gatewayGroupVersion, true, func(o *Objects) *[]*gatewayv1.BackendTLSPolicy { return &o.BackendTLSPolicies }, nil),
	// CA bundles (ca.crt) for BackendTLSPolicies and Gateway client
	// certificate validation; other ConfigMaps are kept too, unread.
	kindOf("ConfigMap", corev1.SchemeGroupVersion, true, func(o *Objects) *[]*corev1.ConfigMap { return &o.ConfigMaps }, nil),
	// Cluster-wide CA bundles the same references may name.
	kindOf("ClusterTrustBundle", certificatesv1.SchemeGroupVersion, false, func(o *Objects) *[]*certificatesv1.ClusterTrustBundle { return &o.ClusterTrustBundles }, nil),
}

// KindOf returns the row of Kinds that obj's Go type belongs to, or nil
// for a kind the builder does not read.
func KindOf(obj runtime.Object) *Kind {
	for i := range Kinds {
		if Kinds[i].is(obj) {
			return &Kinds[i]
		}
	}
	return nil
}

// Add appends obj to its kind's list. It reports false, adding nothing,
// for an object of a kind not in Kinds.
func (o *Objects) Add(obj runtime.Object) bool {
	k := KindOf(obj)
	if k == nil {
		return false
	}
	k.add(o, obj)
	return true
}

// Find returns the object ref names, or nil when there is none (or its
// kind is not in Kinds).
func (o *Objects) Find(ref ObjectRef) runtime.Object {
	for i := range Kinds {
		if Kinds[i].Name == ref.Kind {
			return Kinds[i].findRef(o, ref)
		}
	}
	return nil
}
