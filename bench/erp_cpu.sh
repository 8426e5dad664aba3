#!/usr/bin/env bash
# Server CPU per ERP create-job: `atshub serve` (the default configuration,
# erp plugin, SQLite store, integration log on) and the bare libmicrohttpd
# floor of ../shared/baselines, each driven by the shared wrk script
# (-t2 -c32) for DURATION. Prints requests/s, p99 and the server's own CPU
# time (user + system, from /proc/PID/stat) per request. On a shared machine
# requests/s and p99 follow the load; CPU per request much less so, which
# makes it the figure to compare changes with there.
#   bench/erp_cpu.sh [ATSHUB_BIN] [DURATION]     (defaults: build/atshub 10s)
# With PERF=FILE, the daemon is also profiled (perf record --call-graph dwarf)
# for 8 s of its run into FILE.
DUR_DEFAULT=10s
. "$(dirname "$0")/erp_common.sh"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

gcc -O2 -o "$W/mhd_floor" "$B/mhd_floor/mhd_floor.c" -lmicrohttpd
PF=$(port); "$W/mhd_floor" "$PF" 2 >/dev/null 2>&1 & pids+=($!); FLOOR=$!
erp_setup
(cd "$W/a" && exec "$BIN" serve -c "$CFG" >"$W/a/serve.log" 2>&1) & pids+=($!); ATSHUB=$!
wait_port "$PF"; wait_port "$PA"; sleep 1
TCK=$(getconf CLK_TCK)
printf '%-8s %10s %10s %10s %14s\n' server requests req/s p99 cpu_us/request
for name in atshub floor; do
  if [ "$name" = atshub ]; then P=$PA; K=$KEY; PID=$ATSHUB; else P=$PF; K=x; PID=$FLOOR; fi
  if [ -n "${PERF:-}" ] && [ "$name" = atshub ]; then
    perf record -F 2000 --call-graph dwarf -o "$PERF" -p "$PID" -- sleep 8 >/dev/null 2>&1 &
    PERFPID=$!
  fi
  c0=$(cpu_ticks "$PID")
  ERP_API_KEY="$K" wrk -t2 -c32 -d"$DUR" --latency -s "$B/django_erp/wrk/create_job.lua" \
    "http://127.0.0.1:$P/recruitment/integration/erp/create-job/" -- "$name-$(date +%s%N)" >"$W/$name.txt"
  c1=$(cpu_ticks "$PID")
  n=$(grep -o '[0-9]* requests in' "$W/$name.txt" | awk '{print $1}')
  printf '%-8s %10s %10s %10s %14s\n' "$name" "$n" "$(awk '/Requests\/sec/ {print $2}' "$W/$name.txt")" \
    "$(awk '$1 == "99%" {print $2}' "$W/$name.txt")" "$(( (c1 - c0) * 1000000 / TCK / n ))"
  grep -E 'Non-2xx|Socket errors' "$W/$name.txt" | sed "s/^/  $name: /" || true
done
[ -z "${PERFPID:-}" ] || wait "$PERFPID" || true
