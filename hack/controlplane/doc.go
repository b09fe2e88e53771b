// Package controlplane owns the local Kubernetes control plane that Portico's
// integration tests run against: an etcd, a kube-apiserver and a
// kube-controller-manager started as child processes on loopback, with the
// certificates, tokens and kubeconfigs they need, and their teardown. It also
// owns the network-namespace test hosts (Netns) that stand in for pods, on
// addresses in 10.250.0.0/16.
//
// The binaries are not built here: `make controlplane` (build.sh) builds
// kube-apiserver and kube-controller-manager from the separate tools module
// into bin/controlplane/ and installs Debian's etcd. The package itself only
// depends on modules the root module already requires, so tests anywhere in
// the repository can import it.
//
// The package is Linux-only: it relies on process groups, parent-death
// signals and network namespaces.
package controlplane
