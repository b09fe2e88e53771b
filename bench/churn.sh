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

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_require churn.sh nginx:nginx taskset:util-linux

hack/controlplane/build.sh
go build -o bin/portico ./cmd/portico
go build -o bin/churnbench ./bench/cmd/churnbench
exec bin/churnbench run -portico bin/portico "${args[@]}"
