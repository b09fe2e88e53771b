#!/usr/bin/env bash
# Runs the abuse benchmark: a normal wrk load through Portico and through
# nginx while each is under HTTP/2 rapid reset, slow uploads and an idle
# connection flood, all on 127.0.0.1, about three minutes in all. Prints a
# Markdown table and writes it to bench/results/abuse.md.
#
# Arguments are passed to abusebench (go run ./bench/cmd/abusebench -h), for
# example -targets portico -attacks none,rapid-reset -v.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.4}"

# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_require abuse.sh wrk:wrk nginx:nginx

tmp="$(mktemp -d -t portico-abuse-build-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/abusebench" ./bench/cmd/abusebench
go build -o "$tmp/portico" ./cmd/portico
# The idle flood holds thousands of sockets in the attacker and the proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$tmp/abusebench" -portico "$tmp/portico" -command "make bench-abuse" "$@"
