package snapshot

import (
	"strconv"
	"strings"

	"portico.dev/portico/routing"
)

// This file reads proxy-redirect-from and proxy-redirect-to (the
// Location and Refresh rewrite of nginx's proxy_redirect),
// enable-access-log and satisfy.

const proxyRedirectNote = "a Location or Refresh URL of the backend's responses that starts with proxy-redirect-from (ignoring case) has that start replaced by proxy-redirect-to, as nginx's proxy_redirect; off and default (which never matches under ingress-nginx) rewrite nothing; a regular expression (~) or an nginx variable in either value is refused and reported"

// applyAccess reads the proxy-redirect pair, enable-access-log and satisfy.
func (nc *nginxConfig) applyAccess(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "proxy-redirect-from", "proxy-redirect-to":
		if v == "" || strings.ContainsAny(v, " \t") || !validFieldValue(v) {
			return f.invalidf("%q is not a URL prefix; Location headers are passed unchanged", raw), true
		}
		if strings.HasPrefix(v, "~") || strings.Contains(v, "$") {
			return f.invalidf("%q is a regular expression or uses an nginx variable, which Portico does not expand; Location headers are passed unchanged", raw), true
		}
		// A plain prefix is served as nginx serves it.
		f.Verdict, f.Note = NginxExact, ""
		if name == "proxy-redirect-to" {
			return f, true
		}
		to, ok := get("proxy-redirect-to")
		if v == "off" || v == "default" || !ok || to == "off" {
			return f, true
		}
		if to == "" || strings.ContainsAny(to, " \t~$") || !validFieldValue(to) {
			// proxy-redirect-to's own finding says why.
			return f, true
		}
		nc.locationRewrite = &routing.LocationRewrite{From: v, To: to}
	case "enable-access-log":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f.invalidf("%q is not a boolean (true or false); the route is logged", raw), true
		}
		nc.noAccessLog = !b
	case "satisfy":
		switch v {
		case "any":
			nc.satisfyAny = true
		case "all":
		default:
			return f.invalidf("%q is not any or all; both the address and the authentication are checked", raw), true
		}
	default:
		return f, false
	}
	return f, true
}

// finishSatisfy keeps satisfy any only where it has both checks to choose
// from (with one, any and all are the same) and neither failed closed: an
// allow list or auth-url that does not parse denies everyone, which a
// password must not get around.
func (nc *nginxConfig) finishSatisfy() []NginxFinding {
	if !nc.satisfyAny {
		return nil
	}
	hasAuth := (nc.basic != nil) || (nc.auth != nil && nc.auth.URL != "")
	hasAllow := nc.admission != nil && len(nc.admission.Allow) > 0
	if !hasAuth || !hasAllow {
		nc.satisfyAny = false
		return nil
	}
	if nc.failedClosed {
		nc.satisfyAny = false
		return []NginxFinding{{Annotation: NginxPrefix + "satisfy", Verdict: NginxExact,
			Invalid: "any is not applied while an allow list or auth-url that does not parse denies every request; a password does not get around it"}}
	}
	return nil
}
