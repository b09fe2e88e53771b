package tls

import "strings"

// Has reports whether a binding (exact, or a wildcard covering the first
// label) serves serverName, that is whether Lookup would return something
// other than the default. Certificates from Secrets win over any other
// source for their names; callers with another source (ACME) ask this
// first.
func (c *Certificates) Has(serverName string) bool {
	if c == nil {
		return false
	}
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if name == "" || len(name) > maxHostLen {
		return false
	}
	if c.exact[name] != nil {
		return true
	}
	if dot := strings.IndexByte(name, '.'); dot > 0 && dot < len(name)-1 {
		return c.wildcard[name[dot+1:]] != nil
	}
	return false
}
