# Sourced by erp_cpu.sh and erp_instructions.sh: the paths, a work folder
# cleaned up on exit, and erp_setup, which makes a private configuration
# (the shared baselines' atshub_config), a SQLite store with tenant acme and
# an ERP source trusting 127.0.0.1, and sets CFG, PA (the daemon's port,
# exported as ATSHUB_LISTEN) and KEY (the source's API key).
#   BIN_DEFAULT / DUR_DEFAULT: set before sourcing; "$1" / "$2" override them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$here/.." && pwd)"
B="$(cd "$ROOT/../shared/baselines" && pwd)"
BIN="$(readlink -f "${1:-$ROOT/build/atshub}")"; DUR="${2:-$DUR_DEFAULT}"
W="$(mktemp -d /tmp/erp-bench.XXXXXX)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
erp_setup() {
  mkdir -p "$W/a"
  CFG=$(python3 -c "import sys; sys.path.insert(0, '$B'); from atshub_config import private_config; print(private_config('$BIN', '$ROOT', '$W/a'))")
  PA=$(port); export ATSHUB_STORE="sqlite:$W/a/erp.db" ATSHUB_LISTEN="127.0.0.1:$PA"
  "$BIN" -c "$CFG" tenant add acme --json >/dev/null
  KEY=$("$BIN" -c "$CFG" connection add acme erp Main_ERP --set trusted_ips=127.0.0.1 --json |
        python3 -c 'import re, sys; print(re.search(r"\"api_key\":\s*\"([^\"]+)\"", sys.stdin.read()).group(1))')
}
