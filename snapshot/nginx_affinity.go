package snapshot

import (
	"strconv"
	"strings"
	"time"

	"portico.dev/portico/routing"
	"portico.dev/portico/upstream"
)

// This file reads ingress-nginx's session affinity annotations (affinity:
// cookie and its session-cookie-* options, upstream-hash-by) onto the
// Backend's Affinity (upstream/affinity.go).

// nginxDefaultCookieName is ingress-nginx's session-cookie-name default.
const nginxDefaultCookieName = "INGRESSCOOKIE"

// nginxAffinity is what the affinity annotations of one Ingress ask for.
type nginxAffinity struct {
	// cookie is set by affinity: cookie; its Path is the
	// session-cookie-path, "" when the routes' own paths apply.
	cookie *upstream.SessionCookie
	// options holds the session-cookie-* values read before it is known
	// whether affinity: cookie is set.
	options upstream.SessionCookie
	hashBy  *upstream.HashKey
}

func (nc *nginxConfig) affinityRules() *nginxAffinity {
	if nc.affinity == nil {
		nc.affinity = &nginxAffinity{options: upstream.SessionCookie{Name: nginxDefaultCookieName, Mode: upstream.AffinityBalanced}}
	}
	return nc.affinity
}

// applyAffinity reads the session affinity annotations.
func (nc *nginxConfig) applyAffinity(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "affinity":
		if v != "cookie" {
			return f.invalidf("%q is not cookie, the one affinity type ingress-nginx has; requests are spread round-robin", raw), true
		}
		a := nc.affinityRules()
		a.cookie = &a.options
	case "affinity-mode":
		if v != upstream.AffinityBalanced && v != upstream.AffinityPersistent {
			return f.invalidf("%q is not balanced or persistent; balanced applies", raw), true
		}
		nc.affinityRules().options.Mode = v
	case "session-cookie-name":
		if !validCookieName(v) {
			return f.invalidf("%q is not a cookie name; %s is used", raw, nginxDefaultCookieName), true
		}
		nc.affinityRules().options.Name = v
	case "session-cookie-path":
		if !strings.HasPrefix(v, "/") || !validCookieAttr(v) {
			return f.invalidf("%q is not a cookie path (it must start with /); the route's path is used", raw), true
		}
		nc.affinityRules().options.Path = v
	case "session-cookie-domain":
		d := strings.TrimPrefix(v, ".")
		if d == "" || validateHost(strings.ToLower(d)) != "" || strings.HasPrefix(d, "*") {
			return f.invalidf("%q is not a domain name; the cookie names no domain", raw), true
		}
		nc.affinityRules().options.Domain = v
	case "session-cookie-secure", "session-cookie-conditional-samesite-none":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f.invalidf("%q is not a boolean (true or false); false applies", raw), true
		}
		if name == "session-cookie-secure" {
			nc.affinityRules().options.Secure = b
		} else {
			nc.affinityRules().options.ConditionalSameSiteNone = b
		}
	case "session-cookie-samesite":
		var s string
		for _, ok := range []string{"None", "Lax", "Strict"} {
			if strings.EqualFold(v, ok) {
				s = ok
			}
		}
		if s == "" {
			return f.invalidf("%q is not None, Lax or Strict; the cookie has no SameSite attribute", raw), true
		}
		nc.affinityRules().options.SameSite = s
	case "session-cookie-max-age", "session-cookie-expires":
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return f.invalidf("%q is not a number of seconds; the cookie lasts for the browser session", raw), true
		}
		d := time.Duration(n) * time.Second
		if name == "session-cookie-max-age" {
			nc.affinityRules().options.MaxAge = d
		} else {
			nc.affinityRules().options.Expires = d
		}
	case "session-cookie-change-on-failure":
		if _, err := strconv.ParseBool(v); err != nil {
			return f.invalidf("%q is not a boolean (true or false); false applies", raw), true
		}
	case "upstream-hash-by":
		k, err := upstream.ParseHashKey(v)
		if err != nil {
			return f.invalidf("%q: %v; requests are spread round-robin", raw, err), true
		}
		nc.affinityRules().hashBy = k
		// Every variable of the expression is read as nginx reads it.
		f.Verdict, f.Note = NginxExact, ""
	default:
		return f, false
	}
	return f, true
}

// finishAffinity settles the affinity of an Ingress once every annotation
// is read: the session-cookie-* options mean nothing without affinity:
// cookie, and a cookie wins over upstream-hash-by, as in ingress-nginx.
func (nc *nginxConfig) finishAffinity(findings []NginxFinding) {
	a := nc.affinity
	if a == nil {
		return
	}
	if a.cookie != nil && a.hashBy != nil {
		a.hashBy = nil
		for i := range findings {
			if findings[i].Annotation == NginxPrefix+"upstream-hash-by" && findings[i].Invalid == "" {
				findings[i].Invalid = "affinity: cookie is set and takes precedence (as in ingress-nginx); the annotation is ignored"
			}
		}
	}
	if a.cookie == nil && a.hashBy == nil {
		nc.affinity = nil
	}
}

// affinityFor returns the Affinity of one route of the Ingress: its cookie
// path, when session-cookie-path does not set one, is the route's path,
// as nginx's location path; regexPath reports a regular expression path,
// for which ingress-nginx requires session-cookie-path.
func (a *nginxAffinity) affinityFor(r *routing.Route, key []byte) (aff upstream.Affinity, regexPath bool) {
	if a.hashBy != nil {
		return upstream.Affinity{HashBy: a.hashBy}, false
	}
	c := *a.cookie
	c.Key = key
	if c.Path == "" {
		switch r.PathKind {
		case routing.PathPrefix, routing.PathExact:
			c.Path = r.Path
		case routing.PathRegex:
			regexPath = true
		}
		if c.Path == "" {
			c.Path = "/"
		}
	}
	return upstream.Affinity{Cookie: &c}, regexPath
}

// validCookieName reports whether v is an RFC 6265 cookie name (a token).
func validCookieName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validCookieAttr reports whether v can be a cookie attribute value: no
// control characters, no ';'.
func validCookieAttr(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c == ';' || c >= 0x7f {
			return false
		}
	}
	return true
}
