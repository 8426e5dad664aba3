#!/usr/bin/env bash
# Reads beside writes on one `atshub serve`: ERP creates at full speed (the
# shared wrk script, 16 connections) and, at the same time, paced REST reads
# of the same tenant (GET /v1/jobs?limit=20, 4 connections each pausing
# 50 ms: under the tenant's default budget of 100 requests/s), for DURATION.
# Prints each load's requests/s, p50 and p99. On SQLite (no SERVER_URL) or
# on a fresh database of the PostgreSQL server SERVER_URL (dropped after).
# A benchmark, not a test: it judges nothing.
#   [SETTLE=SECONDS] bench/read_beside_writes.sh [BUILD_DIR] [SERVER_URL|-] [DURATION]
# SETTLE (default 4): how long the loads wait after the daemon starts (its
# reads' connection fails its first sync's token requests, retried, then).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
B="$(readlink -f "${1:-build}")"; SERVER="${2:--}"; DUR="${3:-10s}"
BASE="$(cd "$here/../../shared/baselines" && pwd)"
W="$(mktemp -d /tmp/read-beside.XXXXXX)"; pids=()
DB="ah_read_beside_$$"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$SERVER" = - ] || psql -qX "$SERVER" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
if [ "$SERVER" = - ]; then
  URL="sqlite:atshub.db"
else
  psql -qX "$SERVER" -c "CREATE DATABASE $DB" >/dev/null
  URL="${SERVER%/*}/$DB"
fi
P=$(port)
cat >"$W/atshub.ini" <<INI
[core]
workers = 2
key_file = host.key
[http]
listen = 127.0.0.1:$P
threads = 2
[store]
url = $URL
[sync]
interval_s = 86400
[plugins]
erp = $B/plugins/erp.so
erecruit = $B/plugins/erecruit.so
[plugin.erp]
isolation = in_process
[plugin.erecruit]
isolation = in_process
INI
A=("$B/atshub" -c "$W/atshub.ini")
cd "$W"
TENANT_KEY=$("${A[@]}" tenant add acme --json | key_of)
ERP_API_KEY=$("${A[@]}" connection add acme erp Main_ERP --set trusted_ips=127.0.0.1 --json | key_of)
export TENANT_KEY ERP_API_KEY
# The reads' connection: its records are the store's (no provider is asked;
# its scheduled sync at start fails at once and is not tried again here).
"${A[@]}" connection add acme erecruit er --set base_url=http://127.0.0.1:9 --set client_id=x \
  --set client_secret=y --json >/dev/null
("${A[@]}" serve >"$W/serve.log" 2>&1) & pids+=($!)
wait_port "$P"
# SETTLE seconds (default 4) past that first sync's failed token requests:
# before e4fef16 their retries held the tenant's share of the workers, and
# the reads waited (SETTLE=0 shows it on such a build).
sleep "${SETTLE:-4}"
wrk -t1 -c16 -d"$DUR" --latency -s "$BASE/django_erp/wrk/create_job.lua" \
  "http://127.0.0.1:$P/recruitment/integration/erp/create-job/" -- "rbw-$$" >"$W/erp.txt" 2>&1 &
e=$!
wrk -t1 -c4 -d"$DUR" --latency -s "$here/wrk/rest_read_paced.lua" \
  "http://127.0.0.1:$P/v1/jobs?limit=20" -- 50 >"$W/read.txt" 2>&1
wait "$e"
printf '%-6s %10s %10s %10s  %s\n' load req/s p50 p99 errors
for k in erp read; do
  printf '%-6s %10s %10s %10s  %s\n' "$k" "$(awk '/Requests\/sec/ {print $2}' "$W/$k.txt")" \
    "$(awk '$1 == "50%" {print $2}' "$W/$k.txt")" "$(awk '$1 == "99%" {print $2}' "$W/$k.txt")" \
    "$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$W/$k.txt" || echo none)"
done
