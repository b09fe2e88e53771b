# Sourced by the benchmark scripts (run.sh, abuse.sh, churn.sh): what they
# share.

# bench_require SCRIPT COMMAND:PACKAGE... installs, from Debian packages,
# the package of every command that is not on PATH. nginx becomes
# nginx-light where that still exists (bookworm), the smallest nginx.
bench_require() {
	local script=$1 spec missing=() pkgs=() p
	shift
	for spec in "$@"; do
		command -v "${spec%%:*}" >/dev/null || missing+=("${spec#*:}")
	done
	((${#missing[@]} > 0)) || return 0
	if [[ $(id -u) -ne 0 ]]; then
		echo "$script: missing ${missing[*]}; install them or run as root" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	for p in "${missing[@]}"; do
		if [[ $p == nginx ]] && apt-cache show nginx-light >/dev/null 2>&1; then
			p=nginx-light
		fi
		pkgs+=("$p")
	done
	apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}
