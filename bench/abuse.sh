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

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "abuse.sh: missing ${missing[*]}; install them or run as root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	pkgs=()
	for p in "${missing[@]}"; do
		# nginx-light is the smallest nginx where it still exists (bookworm).
		if [[ $p == nginx ]] && apt-cache show nginx-light >/dev/null 2>&1; then
			p=nginx-light
		fi
		pkgs+=("$p")
	done
	apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi

tmp="$(mktemp -d -t portico-abuse-build-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/abusebench" ./bench/cmd/abusebench
go build -o "$tmp/portico" ./cmd/portico
# The idle flood holds thousands of sockets in the attacker and the proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$tmp/abusebench" -portico "$tmp/portico" -command "make bench-abuse" "$@"
