package snapshot

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
)

// GatewayConfig is what the builder needs to know to serve Gateway API
// objects.
type GatewayConfig struct {
	// ControllerName selects our GatewayClasses (spec.controllerName);
	// empty turns Gateway API support off.
	ControllerName gatewayv1.GatewayController
	// AddressPool hands an address to each Gateway that does not ask for
	// one in spec.addresses. A Gateway keeps the address it was given for
	// as long as it exists.
	AddressPool []netip.Prefix
}

// Listener is one socket a Gateway asks for: every Gateway listener that
// shares an address and port is served by one Listener, its hostnames told
// apart by the route table (and by SNI for HTTPS).
type Listener struct {
	// Address is the IP address to bind.
	Address netip.Addr
	Port    int32
	// Protocol is gatewayv1.HTTPProtocolType, gatewayv1.HTTPSProtocolType
	// or gatewayv1.TLSProtocolType (Routes then holds the TLSRoutes,
	// matched by SNI with the path "/"; Certificates is nil in mode
	// Passthrough).
	Protocol gatewayv1.ProtocolType
	// Terminate is a TLS socket with a listener in mode Terminate: it
	// terminates TLS with Certificates, chosen by SNI as on HTTPS sockets,
	// and splices the decrypted bytes to the TLSRoute's backend. When it
	// also has listeners in mode Passthrough (TLSRouteModeMixed), the
	// hosts those pick (Routes.Passthrough) are passed through instead.
	Terminate bool
	// Gateway is the Gateway whose listeners these are.
	Gateway types.NamespacedName
	// Routes is compiled with routing.CompileListeners: a request is
	// matched only against the routes of the most specific listener whose
	// hostname matches its host. For HTTPS it also answers 421 to a
	// request whose Host selects another listener than its connection's
	// SNI (Routes.AnswerMisdirected).
	Routes *routing.Table
	// Certificates serves the HTTPS (or terminating TLS) listeners'
	// certificateRefs by SNI; nil for HTTP and TLS Passthrough.
	Certificates *porticotls.Certificates
	// ClientValidation is the client certificate validation of this
	// port's HTTPS listeners: the Gateway's spec.tls.frontend perPort entry
	// for Port, else its default; nil validates none. The listener's TLS
	// configuration applies it on every handshake through
	// porticotls.ConfigForClient.
	ClientValidation *porticotls.ClientValidation
}

// GatewayAPIStatus is the status the builder computed for the Gateway API
// objects this controller owns. Conditions carry the observed generation
// but a zero LastTransitionTime: the status writer keeps the time of an
// unchanged condition and stamps changed ones.
type GatewayAPIStatus struct {
	// GatewayClasses whose controllerName is ours, by name.
	GatewayClasses map[string]gatewayv1.GatewayClassStatus
	Gateways       map[types.NamespacedName]gatewayv1.GatewayStatus
	// HTTPRoutes maps each route to its parent statuses written by this
	// controller; other controllers' entries are not in it and must be
	// kept as they are.
	HTTPRoutes map[types.NamespacedName][]gatewayv1.RouteParentStatus
	// GRPCRoutes is HTTPRoutes for GRPCRoutes.
	GRPCRoutes map[types.NamespacedName][]gatewayv1.RouteParentStatus
	// TLSRoutes is HTTPRoutes for TLSRoutes.
	TLSRoutes map[types.NamespacedName][]gatewayv1.RouteParentStatus
	// BackendTLSPolicies maps each policy that one of our Gateways' routes
	// uses to its ancestor statuses written by this controller, one per
	// such Gateway; other controllers' ancestors must be kept as they are.
	BackendTLSPolicies map[types.NamespacedName]gatewayv1.PolicyStatus
	// ListenerSets maps each ListenerSet whose parent is one of our
	// Gateways to its status.
	ListenerSets map[types.NamespacedName]gatewayv1.ListenerSetStatus
	// GatewayServices are the Services to keep for accepted Gateways, by
	// Service namespace and name; Services labelled as Portico's that are
	// not in it are to be deleted.
	GatewayServices map[types.NamespacedName]GatewayService
}
