#!/usr/bin/env bash
# Builds the control-plane binaries the integration tests run
# (kube-apiserver and kube-controller-manager, pinned in tools/go.mod) into
# bin/controlplane/, and installs etcd and iproute2 from Debian when missing.
#
# A stamp file next to the binaries records what they were built from; when
# it matches, the (roughly ten minute) build is skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tools="$here/tools"
out="${CONTROLPLANE_BIN:-$root/bin/controlplane}"
GO="${GO:-go}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.4}"

log() { printf 'controlplane: %s\n' "$*" >&2; }

# Debian packages: etcd (etcd-server) for the API server's storage and ip
# (iproute2) for the network-namespace test hosts.
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ((${#missing[@]})); then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
	log "installing ${missing[*]}"
	"${sudo[@]}" apt-get update
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${missing[@]}"
fi

version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$tools/go.mod")
if [ -z "$version" ]; then
	log "k8s.io/kubernetes is not pinned in $tools/go.mod"
	exit 1
fi
gover=$("$GO" env GOVERSION)
# The stamp covers the pinned version, the toolchain and the whole module
# graph, so bumping any dependency in tools/go.sum triggers a rebuild.
sums=$(cat "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -c1-16)
stamp="k8s.io/kubernetes $version $gover $sums"

bins=(kube-apiserver kube-controller-manager)
up_to_date=1
for b in "${bins[@]}"; do
	[ -x "$out/$b" ] || up_to_date=0
done
if [ "$up_to_date" = 1 ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
	log "up to date ($stamp)"
	exit 0
fi

# Same -X variables as Kubernetes' own release build, so the binaries report
# v1.37.x through /version instead of v0.0.0-master.
major=${version#v}
major=${major%%.*}
minor=${version#v*.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
log "downloading modules for k8s.io/kubernetes $version"
(cd "$tools" && "$GO" mod download)
log "modules ready after $(($(date +%s) - start))s"

start=$(date +%s)
log "building ${bins[*]} (about ten minutes on two cores)"
(cd "$tools" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$tmp/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
for b in "${bins[@]}"; do
	mv -f "$tmp/$b" "$out/$b"
done
# Written last: an interrupted build leaves no stamp and is redone.
printf '%s\n' "$stamp" >"$out/.stamp"
log "built in $(($(date +%s) - start))s: $(cd "$out" && du -h "${bins[@]}" | tr '\t\n' ' ')"
