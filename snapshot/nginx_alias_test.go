package snapshot

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNginxAliasShadowed: an older name (limit-whitelist,
// whitelist-source-range) beside its current annotation is reported and
// ignored, as ingress-nginx reads the alias only when the annotation
// itself is absent or empty.
func TestNginxAliasShadowed(t *testing.T) {
	for alias, current := range nginxAliases {
		for value, shadowed := range map[string]bool{"192.0.2.0/24": true, " ": false} {
			ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{
				NginxPrefix + alias: "203.0.113.0/24", NginxPrefix + current: value}}}
			var got string
			for _, f := range NginxFindings(ing) {
				if f.Annotation == NginxPrefix+alias {
					got = f.Invalid
				}
			}
			if shadowed != strings.Contains(got, "takes precedence") {
				t.Errorf("%s beside %s %q: finding %q, want shadowed %t", alias, current, value, got, shadowed)
			}
		}
	}
}
