package tls

import "portico.dev/portico/hostname"

// Has reports whether a binding (exact, or a wildcard covering the first
// label) serves serverName, that is whether Lookup would return something
// other than the default. Certificates from Secrets win over any other
// source for their names; callers with another source (ACME) ask this
// first.
func (c *Certificates) Has(serverName string) bool {
	if c == nil {
		return false
	}
	name := hostname.Normalize(serverName)
	if name == "" || len(name) > maxHostLen {
		return false
	}
	if c.exact[name] != nil {
		return true
	}
	if i := hostname.FirstKey(name, wildcards); i >= 0 {
		return c.wildcard[name[i:]] != nil
	}
	return false
}
