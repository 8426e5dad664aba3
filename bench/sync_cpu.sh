#!/usr/bin/env bash
# The CPU of one first sync, which a shared VM's load does not inflate the way it does wall
# time: `atshub sync` of an ERecruit simulator with N records per resource (3 x N records)
# into a fresh SQLite store, ROUNDS times. Prints per round the wall time, the CPU time of
# atshub and its plugin processes (perf stat task-clock, children included), peak RSS and
# store bytes. PERF=FILE records a profile of the last round instead (perf record -g).
#   bench/sync_cpu.sh [BUILD_DIR] [N] [ROUNDS]
set -euo pipefail
B="$(readlink -f "${1:-build}")"; N="${2:-30000}"; ROUNDS="${3:-3}"
. "$(dirname "$0")/sync_sim.sh"
sync_sim_start "$B" "$N" sync-cpu
for r in $(seq 1 "$ROUNDS"); do
  rm -f "$W"/a.db*
  export ATSHUB_STORE="sqlite:$W/a.db"
  "$B/atshub" -c "$CFG" tenant add acme --json >/dev/null 2>&1
  "$B/atshub" -c "$CFG" connection add acme erecruit er --set "base_url=$URL" \
    --set client_id=atshub --set client_secret=s3cret --json >/dev/null 2>&1
  if [ -n "${PERF:-}" ] && [ "$r" = "$ROUNDS" ]; then
    perf record -g -o "$PERF" "$B/atshub" -c "$CFG" sync acme er >/dev/null 2>&1
    echo "profile in $PERF"
    continue
  fi
  perf stat -x, -e task-clock -o "$W/stat" /usr/bin/time -f "%e %M" -o "$W/time" \
    "$B/atshub" -c "$CFG" sync acme er >"$W/out" 2>&1
  read -r wall kb <"$W/time"
  cpu=$(grep task-clock "$W/stat" | cut -d, -f1)
  bytes=$(du -bc "$W"/a.db* | tail -n 1 | cut -f1)
  printf 'round %d: %d records, wall %.2f s, CPU %.2f s, peak RSS %.1f MiB, store %.1f MB\n' \
    "$r" $((3 * N)) "$wall" "$(echo "$cpu / 1000" | bc -l)" "$(echo "$kb / 1024" | bc -l)" \
    "$(echo "$bytes / 1000000" | bc -l)"
done
