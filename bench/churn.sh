#!/usr/bin/env bash
# Runs the certificate churn benchmark (bench/churn): Portico fed by a local
# kube-apiserver and nginx fed by files and reloads, through the same
# schedule of certificate and route changes under a handshake load. Writes
# bench/results/churn.md; --docs also writes docs/benchmarks-churn.md.
# Other arguments go to `churnbench run` (see its -h), for example
# -duration 20s -hosts 200 -memory-hosts 0 for a quick look.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.4}"

args=()
for a in "$@"; do
	if [[ $a == --docs ]]; then
		args+=(-docs docs/benchmarks-churn.md)
	else
		args+=("$a")
	fi
done

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "churn.sh: missing ${missing[*]}; install them or run as root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

hack/controlplane/build.sh
go build -o bin/portico ./cmd/portico
go build -o bin/churnbench ./bench/cmd/churnbench
exec bin/churnbench run -portico bin/portico "${args[@]}"
