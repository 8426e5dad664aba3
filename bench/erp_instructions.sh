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
DUR_DEFAULT=15
. "$(dirname "$0")/erp_common.sh"
erp_setup
# --trace-children: `atshub serve` starts itself again with its malloc
# tunable (core/cli/main.c); the plugin processes are left out.
(cd "$W/a" && exec valgrind --tool=callgrind --trace-children=yes \
   --trace-children-skip='*atshub-plugin-host*' --callgrind-out-file="$W/cg.out" "$BIN" serve -c "$CFG" \
   >"$W/a/serve.log" 2>&1) & pids+=($!)
wait_port "$PA" 600
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
