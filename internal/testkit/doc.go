// Package testkit is what Portico's tests share: a throwaway CA that mints
// certificates, golden-file comparison with -update, and polling for
// background work. It depends on the standard library only, so the tests
// of any package, the tls package's own included, can use it without an
// import cycle. Loading object fixtures, which needs the builder's kind
// table, is in testkit/fixture.
package testkit
