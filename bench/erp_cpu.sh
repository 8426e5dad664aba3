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
# for 8 s of its run into FILE. With THREADS=1, the daemon's run is followed
# by its threads' share: user and system CPU and voluntary / involuntary
# context switches, each per request (/proc/PID/task/*/stat and status).
DUR_DEFAULT=10s
. "$(dirname "$0")/erp_common.sh"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# tid name utime stime voluntary nonvoluntary, a line per thread of $1
task_snap() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm")" \
      "$(sed 's/.*) //' "$t/stat" | awk '{print $12, $13}')" \
      "$(awk '/^(non)?voluntary_ctxt_switches/ {printf "%s ", $2}' "$t/status")"
  done | sort
}

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
  [ -z "${THREADS:-}" ] || [ "$name" != atshub ] || task_snap "$PID" >"$W/tasks0"
  ERP_API_KEY="$K" wrk -t2 -c32 -d"$DUR" --latency -s "$B/django_erp/wrk/create_job.lua" \
    "http://127.0.0.1:$P/recruitment/integration/erp/create-job/" -- "$name-$(date +%s%N)" >"$W/$name.txt"
  c1=$(cpu_ticks "$PID")
  [ -z "${THREADS:-}" ] || [ "$name" != atshub ] || task_snap "$PID" >"$W/tasks1"
  n=$(grep -o '[0-9]* requests in' "$W/$name.txt" | awk '{print $1}')
  printf '%-8s %10s %10s %10s %14s\n' "$name" "$n" "$(awk '/Requests\/sec/ {print $2}' "$W/$name.txt")" \
    "$(awk '$1 == "99%" {print $2}' "$W/$name.txt")" "$(( (c1 - c0) * 1000000 / TCK / n ))"
  grep -E 'Non-2xx|Socket errors' "$W/$name.txt" | sed "s/^/  $name: /" || true
done
[ -z "${PERFPID:-}" ] || wait "$PERFPID" || true
if [ -n "${THREADS:-}" ]; then
  n=$(grep -o '[0-9]* requests in' "$W/atshub.txt" | awk '{print $1}')
  printf '\natshub threads, per request: %-14s %8s %8s %8s %8s\n' thread user_us sys_us vcs ncs
  join "$W/tasks0" "$W/tasks1" | awk -v n="$n" -v tck="$TCK" '
    { u = ($8 - $3) * 1e6 / tck / n; s = ($9 - $4) * 1e6 / tck / n
      if (u + s > 0) printf "%-41s %8.1f %8.1f %8.2f %8.2f\n", $2, u, s, ($10 - $5) / n, ($11 - $6) / n }'
fi
