package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Labels on the Services Portico keeps for Gateways.
const (
	// LabelManagedBy marks objects Portico creates and owns; the status
	// writer deletes the ones no snapshot asks for any more.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "portico"
)

// GatewayService is the headless, selector-less Service Portico keeps in a
// Gateway's namespace for each accepted Gateway, with EndpointSlices
// listing the addresses its sockets are bound to: it gives the Gateway a
// name in cluster DNS (<name>.<namespace>.svc) that tools such as
// external-dns can publish, and it carries the Gateway's
// spec.infrastructure labels and annotations.
type GatewayService struct {
	Gateway    types.NamespacedName
	GatewayUID types.UID
	// Name is the Service's, in the Gateway's namespace.
	Name string
	// Labels are spec.infrastructure.labels plus the Gateway API's
	// gateway-name label and LabelManagedBy, which win over the former.
	Labels      map[string]string
	Annotations map[string]string
	Ports       []GatewayServicePort
	// Addresses are the Gateway's addresses that other hosts can reach:
	// loopback and unspecified (every interface) addresses are left out,
	// and the API server would refuse them in EndpointSlices anyway.
	Addresses []netip.Addr
}

// GatewayServicePort is one port the Gateway's listeners serve.
type GatewayServicePort struct {
	Name string
	Port int32
}

// gatewayServices computes the Service of every accepted Gateway. A
// Service of that name that Portico does not manage is left alone and
// reported.
func (t *gatewayTranslator) gatewayServices(services []*corev1.Service) map[types.NamespacedName]GatewayService {
	existing := make(map[types.NamespacedName]*corev1.Service, len(services))
	for _, s := range services {
		existing[key(s.Namespace, s.Name)] = s
	}
	out := make(map[types.NamespacedName]GatewayService)
	for _, info := range t.gateways {
		if !info.accepted() {
			continue
		}
		name := key(info.gw.Namespace, gatewayServiceName(info.gw.Name))
		if s := existing[name]; s != nil && s.Labels[LabelManagedBy] != ManagedBy {
			t.b.problems.add(info.ref, Warning, "GatewayServiceConflict",
				"Service %s exists and is not managed by Portico; the Gateway's Service is not written (rename or remove that Service)", name)
			continue
		}
		svc := GatewayService{
			Gateway:     info.name,
			GatewayUID:  info.gw.UID,
			Name:        name.Name,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		}
		if inf := info.gw.Spec.Infrastructure; inf != nil {
			for k, v := range inf.Labels {
				svc.Labels[string(k)] = string(v)
			}
			for k, v := range inf.Annotations {
				svc.Annotations[string(k)] = string(v)
			}
		}
		svc.Labels[gatewayv1.GatewayNameLabelKey] = info.gw.Name
		svc.Labels[LabelManagedBy] = ManagedBy
		for _, l := range info.listeners {
			if !l.programmed() || slices.ContainsFunc(svc.Ports, func(p GatewayServicePort) bool { return p.Port == int32(l.spec.Port) }) {
				continue
			}
			svc.Ports = append(svc.Ports, GatewayServicePort{
				Name: fmt.Sprintf("%s-%d", strings.ToLower(string(l.spec.Protocol)), l.spec.Port),
				Port: int32(l.spec.Port),
			})
		}
		slices.SortFunc(svc.Ports, func(a, b GatewayServicePort) int { return int(a.Port - b.Port) })
		if info.served() {
			for _, a := range info.addresses {
				if !a.IsLoopback() && !a.IsUnspecified() {
					svc.Addresses = append(svc.Addresses, a)
				}
			}
		}
		out[name] = svc
	}
	return out
}

// gatewayServiceName names a Gateway's Service "portico-<gateway>". A
// Service name is a DNS label (63 characters, no dots) while a Gateway
// name is a DNS subdomain: a name that does not fit is shortened and
// suffixed with a hash of the Gateway name, so that names stay distinct.
func gatewayServiceName(gateway string) string {
	name := "portico-" + gateway
	if len(name) <= 63 && !strings.Contains(name, ".") {
		return name
	}
	sum := sha256.Sum256([]byte(gateway))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	name = strings.ReplaceAll(name, ".", "-")
	if len(name) > 63-len(suffix) {
		name = strings.TrimRight(name[:63-len(suffix)], "-")
	}
	return name + suffix
}
