#!/usr/bin/env bash
# Load-independent counts of one first sync (`atshub sync`, ERecruit simulator, 3 x N records,
# a fresh SQLite store), to judge a change by on a shared VM where wall and CPU time move
# with the load:
#   - WAL bytes: the bytes atshub writes to the store's -wal file (strace -e pwrite64), and
#     the store's size after;
#   - instructions (CG=1, needs valgrind; slow: use a small N): user-space instructions
#     counted by callgrind per thread of atshub and of its plugin process: atshub's busiest
#     thread (the engine's), all of atshub's, all of the plugin process's. The engine and
#     the fetch (bus worker and plugin process) overlap one page deep: the sync goes as
#     fast as the larger of the two and the two cores allow.
#   bench/sync_counts.sh [BUILD_DIR] [N]            (defaults: build 30000)
set -euo pipefail
B="$(readlink -f "${1:-build}")"; N="${2:-30000}"
. "$(dirname "$0")/sync_sim.sh"
sync_sim_start "$B" "$N" sync-counts
setup() {
  rm -f "$W"/a.db*
  export ATSHUB_STORE="sqlite:$W/a.db"
  "$B/atshub" -c "$CFG" tenant add acme --json >/dev/null 2>&1
  "$B/atshub" -c "$CFG" connection add acme erecruit er --set "base_url=$URL" \
    --set client_id=atshub --set client_secret=s3cret --json >/dev/null 2>&1
}
setup
strace -f -e trace=pwrite64 -e signal=none -o "$W/strace" "$B/atshub" -c "$CFG" sync acme er \
  >"$W/out" 2>&1
# pwrite64(FD, "...", LEN, OFF) = LEN: the WAL's descriptor is the one whose writes start
# with a WAL header (offset 0, 32 bytes).
wal=$(python3 - "$W/strace" <<'PY'
import re, sys
fds = {}
hdr = set()
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r'pwrite64\((\d+), .*, (\d+), (\d+)\) = (\d+)', line)
    if not m:
        continue
    fd, n, off = m.group(1), int(m.group(2)), int(m.group(3))
    fds[fd] = fds.get(fd, 0) + n
    if off == 0 and n == 32:
        hdr.add(fd)
print(sum(v for k, v in fds.items() if k in hdr))
PY
)
bytes=$(du -bc "$W"/a.db* | tail -n 1 | cut -f1)
printf 'WAL bytes written %.1f MB, store %.1f MB (%d records)\n' "$(echo "$wal / 1000000" | bc -l)" \
  "$(echo "$bytes / 1000000" | bc -l)" $((3 * N))
if [ -n "${CG:-}" ]; then
  setup
  (cd "$W" && valgrind --tool=callgrind --separate-threads=yes --trace-children=yes \
     --callgrind-out-file="$W/cg.%p.out" "$B/atshub" -c "$CFG" sync acme er >"$W/out" \
     2>"$W/vg.log") || { tail -20 "$W/vg.log" "$W/out"; exit 1; }
  total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' || true; }
  tot=0; top=0; plug=0
  for f in "$W"/cg.*.out*; do
    t=$(total "$f"); t=${t:-0}
    if grep -q '^cmd:.*atshub-plugin-host' "$f"; then
      plug=$((plug + t))
    else
      tot=$((tot + t)); [ "$t" -gt "$top" ] && top=$t
    fi
  done
  r=$((3 * N))
  printf 'instructions a record: engine thread %.0f, atshub %.0f, plugin process %.0f\n' \
    "$(echo "$top / $r" | bc -l)" "$(echo "$tot / $r" | bc -l)" "$(echo "$plug / $r" | bc -l)"
  [ -z "${KEEP:-}" ] || cp "$W"/cg.*.out* "$KEEP"/ 2>/dev/null || true
fi
