#!/usr/bin/env bash
# User-space instructions per ERP create-job, counted by valgrind's callgrind
# over every thread of `atshub serve` (the default configuration: erp
# plugin, SQLite store, integration log on) while the shared wrk script
# drives it. Unlike requests/s or CPU time it does not move with the load of
# a shared machine, which makes it the figure to compare a change with there
# (it misses the kernel's share: system calls, context switches, and it
# counts a `rep stosb` memset byte by byte). Needs valgrind.
#   bench/erp_instructions.sh [ATSHUB_BIN] [SECONDS]    (defaults: build/atshub 15)
# With KEEP=FILE the callgrind profile is kept (callgrind_annotate FILE).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$here/.." && pwd)"
B="$(cd "$ROOT/../shared/baselines" && pwd)"
BIN="$(readlink -f "${1:-$ROOT/build/atshub}")"; DUR="${2:-15}"
W="$(mktemp -d /tmp/erp-instr.XXXXXX)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p "$W/a"
CFG=$(python3 -c "import sys; sys.path.insert(0, '$B'); from atshub_config import private_config; print(private_config('$BIN', '$ROOT', '$W/a'))")
PA=$(port); export ATSHUB_STORE="sqlite:$W/a/erp.db" ATSHUB_LISTEN="127.0.0.1:$PA"
"$BIN" -c "$CFG" tenant add acme --json >/dev/null
KEY=$("$BIN" -c "$CFG" connection add acme erp Main_ERP --set trusted_ips=127.0.0.1 --json |
      python3 -c 'import re, sys; print(re.search(r"\"api_key\":\s*\"([^\"]+)\"", sys.stdin.read()).group(1))')
(cd "$W/a" && exec valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$BIN" serve -c "$CFG" \
   >"$W/a/serve.log" 2>&1) & pids+=($!)
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PA") 2>/dev/null && break; sleep 0.2; done
URL="http://127.0.0.1:$PA/recruitment/integration/erp/create-job/"
# Warm up (caches, statements prepared), then count from zero.
ERP_API_KEY="$KEY" wrk -t1 -c8 -d3s -s "$B/django_erp/wrk/create_job.lua" "$URL" -- "w$(date +%s%N)" >/dev/null
callgrind_control -z >/dev/null
ERP_API_KEY="$KEY" wrk -t2 -c32 -d"${DUR}s" -s "$B/django_erp/wrk/create_job.lua" "$URL" -- "m$(date +%s%N)" >"$W/wrk.txt"
callgrind_control -d >/dev/null; sleep 1
n=$(grep -o '[0-9]* requests in' "$W/wrk.txt" | awk '{print $1}')
grep -E 'Non-2xx|Socket errors' "$W/wrk.txt" || true
f=$(ls -t "$W"/cg.out* | head -1)
tot=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "requests $n  instructions/request $(( tot / n ))"
[ -z "${KEEP:-}" ] || cp "$f" "$KEEP"
