#!/usr/bin/env bash
# Runs Portico's load benchmark: Portico, the backend alone, and peer proxies
# under the same wrk load, all on 127.0.0.1. Prints a Markdown report and
# writes it to bench/results/latest.md.
#
# Environment:
#   BENCH_DURATION  measured seconds per run (default 10s)
#   BENCH_WARMUP    unrecorded warm-up per run (default 2s)
#   BENCH_ROUNDS    rounds; every round runs every target once (default 3)
#   BENCH_TARGETS   comma-separated targets (default: all; see loadbench -h)
#   BENCH_WORKLOADS comma-separated workloads: small,16k,h2,handshake,hosts10k (default: all)
#   BENCH_DOCS      1 also writes docs/benchmarks.md (same as --docs)
#   BENCH_HOSTS     further host-N.example.test routes in every route table (default 0)
#   BENCH_PORTICO   a prebuilt Portico binary to use instead of building one
# Arguments: --docs also writes the report to docs/benchmarks.md, with the
# notes of bench/profile-notes.md; others are passed to loadbench (for
# example -v).
set -euo pipefail

docs=""
case "${BENCH_DOCS:-}" in
1 | true | yes | on) docs=1 ;;
esac
args=()
for a in "$@"; do
	if [[ $a == --docs ]]; then
		docs=1
	else
		args+=("$a")
	fi
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.4}"

# Install the load generator and peers from Debian packages if missing.
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_require run.sh wrk:wrk nginx:nginx taskset:util-linux h2load:nghttp2-client haproxy:haproxy caddy:caddy

tmp="$(mktemp -d -t portico-bench-build-XXXXXX)"
bench_pid=""
cleanup() {
	if [[ -n $bench_pid ]]; then
		kill -TERM "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

go build -o "$tmp/loadbench" ./bench/cmd/loadbench

portico="${BENCH_PORTICO:-}"
if [[ -z $portico ]]; then
	portico="$tmp/portico"
	if ! go build -o "$portico" ./cmd/portico; then
		echo "run.sh: Portico does not build; benchmarking the other targets" >&2
		portico=""
	fi
fi

# The command as the report shows it: what reproduces this run.
cmdline=""
for v in BENCH_DURATION BENCH_WARMUP BENCH_ROUNDS BENCH_TARGETS BENCH_WORKLOADS BENCH_HOSTS BENCH_PORTICO; do
	if [[ -n ${!v:-} ]]; then
		cmdline+="$v=${!v} "
	fi
done
cmdline+="bench/run.sh"
if [[ -n $docs ]]; then
	cmdline+=" --docs"
fi
if ((${#args[@]} > 0)); then
	cmdline+=" ${args[*]}"
fi

docs_args=(-docs "")
if [[ -n $docs ]]; then
	docs_args=(-docs docs/benchmarks.md -profile-notes bench/profile-notes.md)
fi
"$tmp/loadbench" -portico "$portico" -out bench/results/latest.md -command "$cmdline" "${docs_args[@]}" ${args[@]+"${args[@]}"} &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
