#!/usr/bin/env bash
# ERP create-job on several `atshub serve` sharing one PostgreSQL database
# (issue 14, docs/scaling.md's figures). A benchmark, not a test: it judges
# nothing.
#   bench/cluster.sh BUILD_DIR SERVER_URL [INSTANCES] [SECONDS] [CONNECTIONS]
# SERVER_URL: a postgresql:// URL of a server where a database may be created
# (scripts/pgtmp start DIR prints one; its durability is off, see below).
# A fresh database is made for the run and dropped after it. Each instance
# has its own tenant with an ERP source (creates of one tenant commit one
# after another: its job-id sequence row), and its own wrk with
# CONNECTIONS / INSTANCES keep-alive connections (default 32 in all), for
# SECONDS (default 20) after 3 s of warm-up. Prints per instance and in all:
# requests/s, p50, p99 (wrk's latency distribution). MIX=1: every instance
# serves every tenant (one wrk per instance and tenant, the connections
# spread over them), as behind a load balancer: groups of two instances then
# hold rows of the same tenants. TENANTS=T (with MIX=1): T tenants rather
# than one per instance.
#
# synchronous_commit and fsync are whatever the server has: scripts/pgtmp
# turns both off; for figures with durability on, run
#   psql URL -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on"
# on a server started without them on its command line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
B="$(readlink -f "${1:?usage: cluster.sh BUILD_DIR SERVER_URL [INSTANCES] [SECONDS] [CONNECTIONS]}")"
SERVER="${2:?usage: cluster.sh BUILD_DIR SERVER_URL [INSTANCES] [SECONDS] [CONNECTIONS]}"
N="${3:-1}"; SECS="${4:-20}"; CONNS="${5:-32}"
W="$(mktemp -d /tmp/atshub-cluster.XXXXXX)"
DB="ah_bench_cluster_$$"
URL="${SERVER%/*}/$DB"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -qX "$SERVER" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

psql -qX "$SERVER" -c "CREATE DATABASE $DB" >/dev/null
ports=()
for i in $(seq 1 "$N"); do
  P=$(port); ports+=("$P")
  cat >"$W/i$i.ini" <<INI
[core]
workers = 2
key_file = host.key
log_level = warn
[http]
listen = 127.0.0.1:$P
threads = 4
[store]
url = $URL
[sync]
interval_s = 0
[admin]
socket = $W/i$i.sock
[plugins]
erp = $B/plugins/erp.so
[plugin.erp]
isolation = in_process
INI
done
A=("$B/atshub" -c "$W/i1.ini")
MIX="${MIX:-0}"
T="${TENANTS:-$N}"; [ "$MIX" = 1 ] || T="$N"
keys=()
for i in $(seq 1 "$T"); do
  (cd "$W" && "${A[@]}" tenant add "t$i" --json >/dev/null)
  keys+=("$(cd "$W" && "${A[@]}" connection add "t$i" erp Main_ERP --set trusted_ips=127.0.0.1 --json | key_of)")
done
for i in $(seq 1 "$N"); do
  (cd "$W" && exec "$B/atshub" -c "$W/i$i.ini" serve >"$W/i$i.log" 2>&1) & pids+=($!)
done
for i in $(seq 1 "$N"); do
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/${ports[$((i - 1))]}") 2>/dev/null && break
    sleep 0.1
  done
done

per=$((CONNS / N)); [ "$MIX" = 1 ] && per=$((per / T)); [ "$per" -ge 1 ] || per=1
run() { # seconds tag
  local w=() ts
  for i in $(seq 1 "$N"); do
    ts=("$i"); [ "$MIX" = 1 ] && ts=($(seq 1 "$T"))
    for t in "${ts[@]}"; do
      ERP_API_KEY="${keys[$((t - 1))]}" wrk -t1 -c"$per" -d"$1"s --latency \
        -s "$here/wrk/erp_create_paced.lua" \
        "http://127.0.0.1:${ports[$((i - 1))]}/recruitment/integration/erp/create-job/" \
        -- "$2-i$i-t$t-$$" 0 >"$W/wrk.$2.$i.$t" 2>&1 & w+=($!)
    done
  done
  for p in "${w[@]}"; do wait "$p"; done
}
run 3 warm
run "$SECS" timed
python3 - "$W" "$N" "$SECS" "$per" "$MIX" <<'PY'
import glob, re, sys
w, n, secs, per, mix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
u = {"us": 0.001, "ms": 1.0, "s": 1000.0}
tot, err, p99s = 0.0, 0, []
print(f"instances {n}, {per} connections per wrk, {secs} s" + (", every instance serving every tenant" if mix else ""))
print("wrk       req/s     errors  p50_ms   p99_ms")
for f in sorted(glob.glob(f"{w}/wrk.timed.*")):
    t = open(f).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    e = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    q = {k: float(v) * u[s] for k, v, s in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)}
    name = "i%s t%s" % tuple(f.rsplit(".", 2)[1:])
    print(f"{name:8s}  {rps:8.0f}  {e:6d}  {q['50']:7.2f}  {q['99']:7.2f}")
    tot += rps; err += e; p99s.append(q['99'])
print(f"all       {tot:8.0f}  {err:6d}           {max(p99s):7.2f} (worst p99)")
PY
grep -h "ERROR\|deadlock" "$W"/i*.log | sort | uniq -c | sort -rn | head -5 || true
