package snapshot

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// This file reads ingress-nginx's controller ConfigMap (Config.NginxConfigMap):
// its global keys that change request handling become the defaults of every
// Ingress written for ingress-nginx. A key that has an annotation is fed to
// the annotation translation as that annotation's value, on each Ingress
// that does not set the annotation itself, so the two share one model;
// the other keys (HSTS) set nginxDefaults fields. Every key gets a verdict,
// reported on the ConfigMap as annotations are on their Ingress.

// NginxGlobal is one row of the ConfigMap table.
type NginxGlobal struct {
	// Name is the ConfigMap key.
	Name    string
	Verdict NginxVerdict
	// Note says, for an approximate key, how Portico differs; for an
	// unsupported or never-executed one, what Portico does instead.
	Note string
	// Annotation, when set, names the annotation the key is the default
	// of; the key's value is read as that annotation's, and the verdict
	// and note are the annotation's unless the row gives its own.
	Annotation string
}

const (
	hstsNote          = "sent on the backend's responses to HTTPS requests for hosts under an Ingress's spec.tls; the answers Portico makes itself (redirects, 403, 413, 503) carry none, where nginx adds it to every response of a TLS host; without the keys, ingress-nginx's defaults apply (on, max-age 31536000, includeSubDomains)"
	globalSnippetNote = "Portico runs no nginx configuration; every Ingress is served without it"
	// limitStatusNote: routing answers every request over a limit 503.
	limitStatusNote = "Portico answers a request over a limit 503, ingress-nginx's default; 503 is exact, another status is reported and 503 is sent"
)

// nginxGlobalTable lists the keys of ingress-nginx's ConfigMap Portico has
// a verdict on; every other key is reported as unknown.
var nginxGlobalTable = []NginxGlobal{
	{Name: "ssl-redirect", Annotation: "ssl-redirect"},
	{Name: "force-ssl-redirect", Annotation: "force-ssl-redirect"},
	{Name: "hsts", Verdict: NginxApproximate, Note: hstsNote},
	{Name: "hsts-max-age", Verdict: NginxExact},
	{Name: "hsts-include-subdomains", Verdict: NginxExact},
	{Name: "hsts-preload", Verdict: NginxExact},
	{Name: "proxy-body-size", Annotation: "proxy-body-size", Verdict: NginxApproximate, Note: bodySizeNote + "; without the key, ingress-nginx's default 1m applies"},
	{Name: "proxy-connect-timeout", Annotation: "proxy-connect-timeout"},
	{Name: "proxy-next-upstream", Annotation: "proxy-next-upstream"},
	{Name: "proxy-next-upstream-tries", Annotation: "proxy-next-upstream-tries"},
	{Name: "proxy-next-upstream-timeout", Annotation: "proxy-next-upstream-timeout"},
	{Name: "proxy-read-timeout", Annotation: "proxy-read-timeout"},
	{Name: "proxy-send-timeout", Annotation: "proxy-send-timeout"},
	{Name: "whitelist-source-range", Annotation: "whitelist-source-range", Verdict: NginxExact},
	{Name: "denylist-source-range", Annotation: "denylist-source-range", Verdict: NginxExact},
	{Name: "limit-req-status-code", Verdict: NginxApproximate, Note: limitStatusNote},
	{Name: "limit-conn-status-code", Verdict: NginxApproximate, Note: limitStatusNote},
	{Name: "custom-http-errors", Verdict: NginxUnsupported, Note: "ignored: backend error responses are passed to the client unchanged"},
	{Name: "global-allowed-response-headers", Verdict: NginxExact},
	{Name: "use-forwarded-headers", Verdict: NginxApproximate, Note: "Portico never trusts forwarding headers because of a ConfigMap: it keeps X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Forwarded and X-Real-IP only from the peers --trusted-proxies lists (where ingress-nginx with true trusts them from anyone), so list the load balancer's addresses there; false is exact while --trusted-proxies is empty"},
	{Name: "proxy-real-ip-cidr", Verdict: NginxUnsupported, Note: "ignored: list these ranges in --trusted-proxies, whose forwarding headers Portico keeps"},
	{Name: "enable-underscores-in-headers", Verdict: NginxApproximate, Note: "Portico drops request headers whose names contain '_' (nginx's default, false) unless started with --allow-underscores-in-headers, which holds for every route; the value is exact when it matches that flag"},
	{Name: "allow-snippet-annotations", Verdict: NginxApproximate, Note: "snippet annotations are never executed, whatever this says; false is exact"},
	{Name: "http-snippet", Verdict: NginxNeverExecuted, Note: globalSnippetNote},
	{Name: "main-snippet", Verdict: NginxNeverExecuted, Note: globalSnippetNote},
	{Name: "server-snippet", Verdict: NginxNeverExecuted, Note: globalSnippetNote},
	{Name: "location-snippet", Verdict: NginxNeverExecuted, Note: globalSnippetNote},
	{Name: "stream-snippet", Verdict: NginxNeverExecuted, Note: globalSnippetNote},
}

var nginxGlobalByName = func() map[string]*NginxGlobal {
	m := make(map[string]*NginxGlobal, len(nginxGlobalTable))
	for i := range nginxGlobalTable {
		g := &nginxGlobalTable[i]
		if a := nginxByName[g.Annotation]; a != nil && g.Verdict == "" {
			g.Verdict, g.Note = a.Verdict, a.Note
		}
		m[g.Name] = g
	}
	return m
}()

// NginxGlobals returns a copy of the ConfigMap table.
func NginxGlobals() []NginxGlobal { return slices.Clone(nginxGlobalTable) }

// nginxOverrides lists, per annotation a ConfigMap key defaults, the other
// annotations that also override it (ingress-nginx's aliases).
var nginxOverrides = map[string][]string{
	"whitelist-source-range": {"allowlist-source-range"},
}

// nginxDefaults is what the ConfigMap gives every Ingress written for
// ingress-nginx.
type nginxDefaults struct {
	// annotations maps annotation names (without NginxPrefix) to the value
	// an Ingress that does not set them gets.
	annotations map[string]string
	// hsts is the Strict-Transport-Security value for the HTTPS responses
	// of hosts under spec.tls; "" sends none.
	hsts string
	// allowedResponseHeaders is global-allowed-response-headers: the only
	// headers custom-headers may set.
	allowedResponseHeaders []string
}

// globalContext is what a key's verdict depends on beyond its value: the
// process flags the key maps onto.
type globalContext struct {
	trustsProxies, underscores bool
}

// NginxGlobalFindings lists, in key order, every key of ingress-nginx's
// ConfigMap cm with what Portico does with it, for portico check; it
// assumes the flags' defaults (no --trusted-proxies, no
// --allow-underscores-in-headers).
func NginxGlobalFindings(cm *corev1.ConfigMap) []NginxFinding {
	_, findings, _ := readNginxGlobals(cm, globalContext{}, nil)
	return findings
}

// nginxKeyDefaults are ingress-nginx's defaults for the keys whose default
// differs from what Portico does without a ConfigMap. With
// --nginx-configmap set, a key the ConfigMap leaves out, or whose value
// cannot be read and never could, takes them, as under ingress-nginx.
var nginxKeyDefaults = map[string]string{
	"proxy-body-size": "1m",
	"hsts":            "true", "hsts-max-age": "31536000", "hsts-include-subdomains": "true", "hsts-preload": "false",
}

// readNginxGlobals reads cm (nil when it does not exist) into defaults.
// last holds the values of the keys that last read cleanly: a key whose
// value no longer does keeps its last valid value (said in its finding).
// The returned map is this read's valid values, the next build's last.
func readNginxGlobals(cm *corev1.ConfigMap, ctx globalContext, last map[string]string) (*nginxDefaults, []NginxFinding, map[string]string) {
	values := maps.Clone(nginxKeyDefaults)
	valid := make(map[string]string)
	var keys []string
	if cm != nil {
		for k := range cm.Data {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	findings := make([]NginxFinding, 0, len(keys))
	for _, k := range keys {
		raw := cm.Data[k]
		row := nginxGlobalByName[k]
		if row == nil {
			findings = append(findings, NginxFinding{Annotation: k, Verdict: NginxUnknown,
				Note: "not an ingress-nginx ConfigMap key Portico reads; ignored"})
			continue
		}
		f := NginxFinding{Annotation: k, Verdict: row.Verdict, Note: row.Note}
		if row.Verdict != NginxExact && row.Verdict != NginxApproximate {
			findings = append(findings, f)
			continue
		}
		f = checkGlobal(f, row, raw, ctx)
		// Every message ends with what happens without a valid value,
		// which a last valid value or ingress-nginx's default replaces.
		why := f.Invalid
		if i := strings.LastIndex(why, "; "); i > 0 {
			why = why[:i]
		}
		prev, hasPrev := last[k]
		def, hasDefault := nginxKeyDefaults[k]
		switch {
		case f.Invalid == "":
			values[k], valid[k] = raw, raw
		case hasPrev:
			f.Invalid = fmt.Sprintf("%s; its last valid value %q keeps applying", why, prev)
			values[k], valid[k] = prev, prev
		case hasDefault:
			f.Invalid = fmt.Sprintf("%s; ingress-nginx's default %q applies", why, def)
		case row.Annotation != "":
			// Fed as it is: the annotation's own rule applies (an allow
			// list that cannot be read admits nobody; any other is left out).
			values[k] = raw
		}
		findings = append(findings, f)
	}
	d := &nginxDefaults{annotations: make(map[string]string)}
	for k, v := range values {
		if row := nginxGlobalByName[k]; row != nil && row.Annotation != "" {
			d.annotations[row.Annotation] = v
		}
	}
	d.allowedResponseHeaders = splitList(values["global-allowed-response-headers"])
	if on, _ := strconv.ParseBool(strings.TrimSpace(values["hsts"])); on {
		d.hsts = "max-age=" + strings.TrimSpace(values["hsts-max-age"])
		if b, _ := strconv.ParseBool(strings.TrimSpace(values["hsts-include-subdomains"])); b {
			d.hsts += "; includeSubDomains"
		}
		if b, _ := strconv.ParseBool(strings.TrimSpace(values["hsts-preload"])); b {
			d.hsts += "; preload"
		}
	}
	return d, findings, valid
}

// checkGlobal reads one served key's value and returns its finding, with
// Invalid set when the value does not parse, and the verdict of the value
// where it depends on it.
func checkGlobal(f NginxFinding, row *NginxGlobal, raw string, ctx globalContext) NginxFinding {
	v := strings.TrimSpace(raw)
	if row.Annotation != "" {
		// The annotation's reading, on a scratch configuration: grpc keeps
		// the timeouts' verdict approximate, since the key applies to
		// HTTP/2 backends too.
		scratch := nginxConfig{grpc: true}
		g := scratch.apply(f, row.Annotation, raw, func(string) (string, bool) { return "", false })
		g.Invalid = strings.ReplaceAll(strings.ReplaceAll(g.Invalid, "the annotation is", "the key is"), "this Ingress", "every Ingress it applies to")
		return g
	}
	isBool := func() (bool, bool) {
		b, err := strconv.ParseBool(v)
		return b, err == nil
	}
	switch row.Name {
	case "hsts", "hsts-include-subdomains", "hsts-preload":
		if _, ok := isBool(); !ok {
			return f.invalidf("%q is not a boolean (true or false); ingress-nginx's default applies", raw)
		}
	case "hsts-max-age":
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
			return f.invalidf("%q is not a number of seconds; ingress-nginx's default 31536000 applies", raw)
		}
	case "limit-req-status-code", "limit-conn-status-code":
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return f.invalidf("%q is not an HTTP status; 503 is sent", raw)
		}
		if n == 503 {
			f.Verdict, f.Note = NginxExact, ""
		}
	case "global-allowed-response-headers":
		for _, h := range splitList(v) {
			if !validHeaderName(h) {
				return f.invalidf("%q is not a list of header names; custom-headers sets no header", raw)
			}
		}
	case "use-forwarded-headers":
		b, ok := isBool()
		if !ok {
			return f.invalidf("%q is not a boolean (true or false); only --trusted-proxies are trusted", raw)
		}
		if !b && !ctx.trustsProxies {
			f.Verdict, f.Note = NginxExact, ""
		}
	case "enable-underscores-in-headers":
		b, ok := isBool()
		if !ok {
			return f.invalidf("%q is not a boolean (true or false); --allow-underscores-in-headers decides", raw)
		}
		if b == ctx.underscores {
			f.Verdict, f.Note = NginxExact, ""
		}
	case "allow-snippet-annotations":
		b, ok := isBool()
		if !ok {
			return f.invalidf("%q is not a boolean (true or false); snippets are never executed", raw)
		}
		if !b {
			f.Verdict, f.Note = NginxExact, ""
		}
	}
	return f
}

// nginxGlobals reads the ConfigMap Config.NginxConfigMap names, reports
// its keys on it, and returns the defaults it gives; nil when no
// ConfigMap is configured.
func (b *builder) nginxGlobals() *nginxDefaults {
	name := b.cfg.NginxConfigMap
	if name.Name == "" {
		return nil
	}
	ref := ObjectRef{Kind: kindConfigMap, Namespace: name.Namespace, Name: name.Name}
	cm := b.configMap(name)
	if cm == nil {
		b.problems.add(ref, Warning, "NginxConfigMapNotFound",
			"--nginx-configmap names this ConfigMap, which does not exist; ingress-nginx's defaults apply (proxy-body-size 1m, HSTS on)")
	}
	ctx := globalContext{trustsProxies: b.cfg.TrustsProxies, underscores: b.cfg.AllowUnderscoresInHeaders}
	d, findings, valid := readNginxGlobals(cm, ctx, b.prev.nginxGlobals)
	b.next.nginxGlobals = valid
	for _, f := range findings {
		if !f.reported() {
			continue
		}
		reason, msg := f.problem()
		sev := Warning
		if f.Invalid != "" {
			sev = Error
		}
		b.problems.add(ref, sev, reason, "%s", msg)
	}
	return d
}
