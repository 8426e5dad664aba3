#!/usr/bin/env bash
# ERP create-job on PostgreSQL with the CPU of both sides: bench_erp (the
# daemon's core in-process, its HTTP client too) against a fresh database
# on SERVER_URL, while the backends of that database are sampled from
# /proc/PID/stat (the server must run on this machine). Prints bench_erp's
# row, then per create: the backends' CPU, bench_erp's own CPU (daemon and
# client), and the statements per create from pg_stat_statements when the
# server loads it (shared_preload_libraries = pg_stat_statements): calls,
# execution time and WAL bytes per create.
#   bench/erp_pg_cpu.sh BENCH_ERP SERVER_URL [REQUESTS] [WARMUP]
# A benchmark, not a test: it judges nothing. Durability is the server's:
# run it on a cluster with fsync and synchronous_commit on for figures
# (scripts/pgtmp turns both off).
set -euo pipefail
BIN="$(readlink -f "${1:?usage: erp_pg_cpu.sh BENCH_ERP SERVER_URL [REQUESTS] [WARMUP]}")"
SERVER="${2:?usage: erp_pg_cpu.sh BENCH_ERP SERVER_URL [REQUESTS] [WARMUP]}"
N="${3:-4000}"; WU="${4:-500}"
DB="ah_bench_erp_$$"
URL="${SERVER%/*}/$DB"
W="$(mktemp -d /tmp/erp-pg-cpu.XXXXXX)"
cleanup() {
  [ -z "${BPID:-}" ] || kill "$BPID" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -qX "$SERVER" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
psql -qX "$SERVER" -c "CREATE DATABASE $DB" >/dev/null
pss=0
if psql -qXAt "$URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 &&
   psql -qXAt "$URL" -c "SELECT pg_stat_statements_reset()" >/dev/null 2>&1; then
  pss=1
fi
TCK=$(getconf CLK_TCK)
ATSHUB_STORE="$URL" /usr/bin/time -f '%U %S' -o "$W/time" "$BIN" -n "$N" -w "$WU" >"$W/out" 2>"$W/err" &
BPID=$!
# Every backend of the database, sampled until bench_erp ends: the last
# value seen of each pid is its CPU (a backend's counters only grow).
declare -A last
while kill -0 "$BPID" 2>/dev/null; do
  for pid in $(psql -qXAt "$SERVER" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$DB' AND pid <> pg_backend_pid()" 2>/dev/null); do
    v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
    last[$pid]=$v
  done
  sleep 0.2
done
wait "$BPID" || { cat "$W/err" >&2; exit 1; }
BPID=
cat "$W/out"
total=$((N + WU))
be=0; for v in "${last[@]}"; do be=$((be + v)); done
read -r u sy <"$W/time"
awk -v be="$be" -v t="$TCK" -v n="$total" -v u="$u" -v s="$sy" -v k="${#last[@]}" 'BEGIN {
  printf "backends (%d): %.0f us CPU per create; bench_erp (daemon + client): %.0f us per create\n",
    k, be * 1e6 / t / n, (u + s) * 1e6 / n }'
if [ "$pss" = 1 ]; then
  psql -qXA -F ' | ' "$URL" -c "SELECT calls::numeric / $total AS per_create,
      round((total_exec_time * 1000 / $total)::numeric, 1) AS exec_us_per_create,
      round(wal_bytes / $total) AS wal_bytes_per_create,
      left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$DB')
      AND calls >= $total / 2 ORDER BY total_exec_time DESC" | sed 's/^/  /'
fi
