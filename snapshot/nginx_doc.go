package snapshot

//go:generate go run ../hack/nginxdoc ../docs/ingress-nginx.md

import (
	"fmt"
	"io"
	"strings"
)

// NginxCounts counts the annotation table's rows by Portico's verdict and
// by the peers'.
type NginxCounts struct {
	Total                                             int
	Exact, Approximate, Unsupported, NeverExecuted    int
	TraefikYes, TraefikPartial, Ingress2GatewayYes    int
	TraefikNo, Ingress2GatewayNo, Ingress2GatewayPart int
}

// CountNginx counts the annotation table.
func CountNginx() NginxCounts {
	var c NginxCounts
	for _, a := range nginxTable {
		c.Total++
		switch a.Verdict {
		case NginxExact:
			c.Exact++
		case NginxApproximate:
			c.Approximate++
		case NginxUnsupported:
			c.Unsupported++
		case NginxNeverExecuted:
			c.NeverExecuted++
		}
		switch a.Traefik {
		case "yes":
			c.TraefikYes++
		case "partial":
			c.TraefikPartial++
		default:
			c.TraefikNo++
		}
		switch a.Ingress2Gateway {
		case "yes":
			c.Ingress2GatewayYes++
		case "partial":
			c.Ingress2GatewayPart++
		default:
			c.Ingress2GatewayNo++
		}
	}
	return c
}

// WriteNginxDoc writes docs/ingress-nginx.md from the annotation table,
// so that the page cannot drift from the code (TestNginxDocUpToDate).
func WriteNginxDoc(w io.Writer) error {
	c := CountNginx()
	var sb strings.Builder
	sb.WriteString(`# ingress-nginx annotations

<!-- Generated from snapshot/nginx_table.go by ` + "`make docs-ingress-nginx`" + ` (go generate ./snapshot); do not edit. -->

Portico reads the ` + "`nginx.ingress.kubernetes.io/*`" + ` annotations of the
Ingresses it serves. Those it implements translate onto the same route
model HTTPRoute filters use; every other one is reported on its Ingress,
never silently ignored: a Warning Event naming the annotation and what
Portico does instead, counted in ` + "`portico_config_problems`" + `. Unknown
annotations are reported the same way. Snippets (raw nginx configuration,
the class of CVE-2025-1974) are never executed. A value Portico cannot
read is reported (` + "`InvalidNginxAnnotation`" + `) and leaves that annotation
out, while the rest of the Ingress serves; an allow list that cannot be
read admits nobody, as in ingress-nginx.

Run ` + "`portico check --manifests DIR`" + ` (or ` + "`--kubeconfig FILE`" + `,
` + "`-o json`" + `) to see the verdict of every annotation on your Ingresses
before switching; [the migration guide](migration.md#from-ingress-nginx)
shows how to serve the ` + "`nginx`" + ` class side by side with ingress-nginx.

## Counts

`)
	fmt.Fprintf(&sb, "| | annotations | exact | approximate | unsupported | never executed (snippets) |\n")
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| Portico | %d | %d | %d | %d | %d |\n\n", c.Total, c.Exact, c.Approximate, c.Unsupported, c.NeverExecuted)
	fmt.Fprintf(&sb, "| Peer | supported | partial | not supported |\n|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| Traefik's ingress-nginx provider | %d | %d | %d |\n", c.TraefikYes, c.TraefikPartial, c.TraefikNo)
	fmt.Fprintf(&sb, "| ingress2gateway's ingress-nginx provider | %d | %d | %d |\n\n", c.Ingress2GatewayYes, c.Ingress2GatewayPart, c.Ingress2GatewayNo)
	sb.WriteString(`Portico's ` + "`exact`" + ` and ` + "`approximate`" + ` annotations are served; the note
says how an approximate one differs. Traefik's column is its provider's
documentation page (` + "`reference/routing-configuration/kubernetes/ingress-nginx.md`" + `):
"partial" where the page lists a limitation. ingress2gateway's column is
whether its ingress-nginx provider (v1.x) converts the annotation, often
into implementation-specific resources rather than plain Gateway API.

Behaviours that hold for every Ingress written for ingress-nginx (one of
its annotations, the ` + "`nginx`" + ` class, or a class of ` + "`--adopt-ingress-classes`" + `): HTTPS redirects are on (308) for
hosts listed under ` + "`spec.tls`" + ` unless ` + "`ssl-redirect: \"false\"`" + `; a host where one
Ingress sets ` + "`use-regex`" + ` or ` + "`rewrite-target`" + ` matches every Prefix path of every
Ingress as a case-insensitive regular expression anchored at the start
only, longest path first (reported on the Ingresses that did not ask for
it). ingress-nginx's controller ConfigMap is read only when
` + "`--nginx-configmap`" + ` names it ([below](#the-controller-configmap)).

Basic authentication (` + "`auth-type: basic`" + `) reads its users from an Opaque
Secret in the Ingress's namespace, which Portico watches by name (it
never lists every Secret); a wrong or missing password is answered 401
with ` + "`WWW-Authenticate: Basic realm=\"...\"`" + `, and the ` + "`Authorization`" + ` header
reaches the backend, as nginx passes it. An Ingress whose authentication
cannot be checked (digest, a missing Secret or ` + "`auth`" + ` key, a line that is
not ` + "`user:hash`" + `) is answered 503 and reported, never served open; ingress-nginx
denies such a location with 503 too. bcrypt and MD5-crypt acceptances
are remembered (` + "`--basic-auth-cache-size`" + `), so a client that sends the same
credentials pays for the hash once.

## Every annotation

| Annotation | Portico | How it differs, or what Portico does instead | Traefik | ingress2gateway |
|---|---|---|---|---|
`)
	for _, a := range nginxTable {
		note := strings.ReplaceAll(a.Note, "|", `\|`)
		fmt.Fprintf(&sb, "| `%s` | %s | %s | %s | %s |\n", a.Name, a.Verdict, note, a.Traefik, a.Ingress2Gateway)
	}
	writeNginxGlobalDoc(&sb)
	_, err := io.WriteString(w, sb.String())
	return err
}

// writeNginxGlobalDoc writes the ConfigMap section from nginxGlobalTable.
func writeNginxGlobalDoc(sb *strings.Builder) {
	sb.WriteString(`
## The controller ConfigMap

With ` + "`--nginx-configmap NAMESPACE/NAME`" + ` (ingress-nginx's Helm chart names it
` + "`ingress-nginx/ingress-nginx-controller`" + `), Portico reads ingress-nginx's
controller ConfigMap: in Kubernetes mode by a watch of that one object
(selected by name on the server, so one more watch connection and one
ConfigMap in memory; the role needs get, list and watch on ConfigMaps in
its namespace, which the chart grants), in manifest-folder mode the
ConfigMap of that namespace and name in the folder. Edits apply live.

A key that has an annotation is the default of that annotation for every
Ingress written for ingress-nginx (one of its annotations, the ` + "`nginx`" + ` class,
or an adopted class), read exactly as the annotation is; an annotation on
the Ingress overrides it, as in ingress-nginx (` + "`allowlist-source-range`" + `
overrides the ` + "`whitelist-source-range`" + ` key too). Ingresses of Portico's own
class without ingress-nginx annotations are not affected.

Every key is reported on the ConfigMap as annotations are on their
Ingress: a Warning Event for each key not served exactly, with what
Portico does instead, counted in ` + "`portico_config_problems`" + `; ` + "`portico check`" + ` lists them with
` + "`--nginx-configmap NAMESPACE/NAME`" + `. A value that does not parse
(` + "`InvalidNginxConfigMapKey`" + `) keeps the key's last valid value while Portico
runs; with none, the key is left out (` + "`proxy-body-size`" + ` and the ` + "`hsts`" + ` keys
take ingress-nginx's default, as below), except that an allow list that
cannot be read admits nobody, as the annotation.

Where ingress-nginx's default differs from what Portico does without a
ConfigMap, a key the ConfigMap leaves out takes ingress-nginx's default
once the flag is set, as the Ingresses had it before the move:
` + "`proxy-body-size`" + ` 1m, and HSTS on (` + "`max-age=31536000; includeSubDomains`" + `) for
hosts under ` + "`spec.tls`" + `. Without the flag neither applies: no body limit
and no Strict-Transport-Security header. Every other key left out keeps
Portico's behaviour, which is ingress-nginx's default or the flag the
table names.

Trust in forwarding headers never comes from the ConfigMap: anyone who
may edit it could otherwise let every client name its own address and so
pass the source-range lists. ` + "`use-forwarded-headers: \"true\"`" + ` is reported
as approximate and changes nothing; Portico keeps ` + "`X-Forwarded-*`" + ` only from
the peers ` + "`--trusted-proxies`" + ` lists, so list the load balancer there
(` + "`0.0.0.0/0,::/0`" + ` to trust every peer, as ingress-nginx with ` + "`true`" + ` does).

| Key | Portico | Annotation it defaults | How it differs, or what Portico does instead |
|---|---|---|---|
`)
	for _, g := range nginxGlobalTable {
		annotation := ""
		if g.Annotation != "" {
			annotation = "`" + g.Annotation + "`"
		}
		// nginxGlobalByName gave the rows that have an annotation its
		// verdict and note.
		fmt.Fprintf(sb, "| `%s` | %s | %s | %s |\n", g.Name, g.Verdict, annotation, strings.ReplaceAll(g.Note, "|", `\|`))
	}
	sb.WriteString("\nEvery other key is reported as unknown and ignored.\n")
}
