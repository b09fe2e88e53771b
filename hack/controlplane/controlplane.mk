# Local Kubernetes control plane for the integration tests (hack/controlplane).
#   make controlplane   build kube-apiserver and kube-controller-manager into
#                       bin/controlplane/ and install etcd (Debian etcd-server)
#   make cluster-up     run etcd, kube-apiserver and kube-controller-manager in
#                       the background on loopback; kubeconfig at
#                       bin/cluster/kubeconfig
#   make cluster-down   stop them
# Expects GO to be set and GOTOOLCHAIN exported by the including Makefile.

CONTROLPLANE_BIN ?= bin/controlplane
CLUSTER_DIR ?= bin/cluster
CLUSTER_CMD := bin/cluster-ctl

.PHONY: controlplane cluster-up cluster-down cluster-ctl

controlplane:
	GO="$(GO)" CONTROLPLANE_BIN="$(abspath $(CONTROLPLANE_BIN))" hack/controlplane/build.sh

cluster-ctl:
	$(GO) build -o $(CLUSTER_CMD) ./hack/controlplane/cmd/cluster

cluster-up: controlplane cluster-ctl
	$(CLUSTER_CMD) up -dir $(CLUSTER_DIR) -bin-dir $(CONTROLPLANE_BIN)

cluster-down: cluster-ctl
	$(CLUSTER_CMD) down -dir $(CLUSTER_DIR)
