package snapshot

import (
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
)

// ClusterTrustBundles (certificates.k8s.io) hold CA bundles cluster-wide,
// published by whoever runs the CA; Gateway frontend validation and
// BackendTLSPolicies may name one where they would name a ConfigMap. Being
// cluster-scoped, a bundle needs no ReferenceGrant.
const kindClusterTrustBundle = "ClusterTrustBundle"

func isClusterTrustBundle(group, kind string) bool {
	return group == certificatesv1.GroupName && kind == kindClusterTrustBundle
}

// clusterTrustBundle returns the PEM bundle of the named ClusterTrustBundle,
// checked like a ConfigMap's.
func (t *gatewayTranslator) clusterTrustBundle(name string) ([]byte, error) {
	b := t.trustBundles[name]
	if b == nil {
		return nil, fmt.Errorf("ClusterTrustBundle %s not found", name)
	}
	if err := checkPEMCertificates(b.Spec.TrustBundle); err != nil {
		return nil, fmt.Errorf("ClusterTrustBundle %s: spec.trustBundle %v", name, err)
	}
	return []byte(b.Spec.TrustBundle), nil
}
