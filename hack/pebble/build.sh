#!/usr/bin/env bash
# Builds Pebble, the ACME test server (pinned in go.mod), into bin/pebble for
# the ACME integration tests in tls/acme.
#
# A stamp file next to the binary records what it was built from; when it
# matches, the build is skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out="${PEBBLE_BIN:-$root/bin/pebble}"
GO="${GO:-go}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.4}"

log() { printf 'pebble: %s\n' "$*" >&2; }

version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/letsencrypt/pebble/v2") { print $(i + 1); exit } }' "$here/go.mod")
if [ -z "$version" ]; then
	log "github.com/letsencrypt/pebble/v2 is not pinned in $here/go.mod"
	exit 1
fi
gover=$("$GO" env GOVERSION)
sums=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)
stamp="github.com/letsencrypt/pebble/v2 $version $gover $sums"

if [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
	log "up to date ($stamp)"
	exit 0
fi

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$(dirname "$out")/.pebble-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
log "building pebble $version"
(cd "$here" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$tmp/pebble" github.com/letsencrypt/pebble/v2/cmd/pebble)
mv -f "$tmp/pebble" "$out"
# Written last: an interrupted build leaves no stamp and is redone.
printf '%s\n' "$stamp" >"$out.stamp"
log "built in $(($(date +%s) - start))s"
