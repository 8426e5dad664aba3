#!/usr/bin/env bash
# A sustained-load run on one daemon: ERP creates and REST reads at a steady
# pace, with the scheduler syncing an ERecruit simulator every 30 s, for
# MINUTES minutes. Prints, minute by minute, each load's requests, errors and
# p99, and the daemon's RSS and store sizes (database and WAL) every 10 s;
# then a summary: RSS drift over the run, largest WAL, store bytes per
# record, syncs done and failed. A benchmark, not a test: it judges nothing.
#   bench/sustained.sh [BUILD_DIR] [MINUTES] [ERP_DELAY_MS] [READ_DELAY_MS]
# Each of 8 ERP connections waits ERP_DELAY_MS (default 4) between requests,
# each of 4 reader connections READ_DELAY_MS (default 50: under the default
# tenant budget of 100 requests/s).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
B="$(readlink -f "${1:-build}")"; MIN="${2:-10}"; ED="${3:-4}"; RD="${4:-50}"
W="$(mktemp -d /tmp/sustained.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$B/tests/atshub-sim" --provider erecruit --data-size 5000 --max-seconds $((MIN * 60 + 600)) \
  >"$W/sim.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do grep -q listening "$W/sim.log" 2>/dev/null && break; sleep 0.1; done
SIM_URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$W/sim.log" | head -n 1)
P=$(port)
cat >"$W/atshub.ini" <<INI
[core]
workers = 2
key_file = host.key
log_level = info
[http]
listen = 127.0.0.1:$P
threads = 2
[store]
url = sqlite:atshub.db
[sync]
interval_s = 30
[plugins]
erp = $B/plugins/erp.so
erecruit = $B/plugins/erecruit.so
; As measured before plugins ran isolated by default (issue 15).
[plugin.erp]
isolation = in_process
[plugin.erecruit]
isolation = in_process
INI
A=("$B/atshub" -c "$W/atshub.ini")
TENANT_KEY=$("${A[@]}" tenant add acme --json | key_of)
ERP_API_KEY=$("${A[@]}" connection add acme erp Main_ERP --set trusted_ips=127.0.0.1 --json | key_of)
"${A[@]}" connection add acme erecruit er --set "base_url=$SIM_URL" --set client_id=atshub \
  --set client_secret=s3cret --json >/dev/null
export TENANT_KEY ERP_API_KEY
(cd "$W" && exec "${A[@]}" serve >"$W/serve.log" 2>&1) & pids+=($!)
SERVE=${pids[-1]}
for _ in $(seq 1 100); do grep -q "listening on" "$W/serve.log" 2>/dev/null && break; sleep 0.1; done
DPID=$(pgrep -P "$SERVE" atshub || echo "$SERVE")

sample() { # elapsed_s
  local rss db wal
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$DPID/status" 2>/dev/null || echo 0)
  db=$(stat -c %s "$W/atshub.db" 2>/dev/null || echo 0)
  wal=$(stat -c %s "$W/atshub.db-wal" 2>/dev/null || echo 0)
  echo "$1 $rss $db $wal" >>"$W/samples"
}
(t=0; while kill -0 "$DPID" 2>/dev/null; do sample $t; sleep 10; t=$((t + 10)); done) & pids+=($!)

echo "minute  erp_req  erp_err  erp_p99_ms  read_req  read_err  read_p99_ms"
for m in $(seq 1 "$MIN"); do
  wrk -t1 -c8 -d60s --latency -s "$here/wrk/erp_create_paced.lua" \
    "http://127.0.0.1:$P/recruitment/integration/erp/create-job/" -- "m$m-$$" "$ED" >"$W/erp.$m" 2>&1 &
  e=$!
  wrk -t1 -c4 -d60s --latency -s "$here/wrk/rest_read_paced.lua" \
    "http://127.0.0.1:$P/v1/jobs?limit=20" -- "$RD" >"$W/read.$m" 2>&1
  wait $e
  python3 - "$W" "$m" <<'PY'
import re, sys
w, m = sys.argv[1], sys.argv[2]
u = {"us": 0.001, "ms": 1.0, "s": 1000.0}
def row(name):
    t = open(f"{w}/{name}.{m}").read()
    req = int(re.search(r"(\d+) requests in", t).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    err = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    p = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    return req, err, float(p.group(1)) * u[p.group(2)]
e, r = row("erp"), row("read")
print(f"{m:>6}  {e[0]:7d}  {e[1]:7d}  {e[2]:10.2f}  {r[0]:8d}  {r[1]:8d}  {r[2]:11.2f}", flush=True)
PY
done
sample end
python3 - "$W" <<'PY'
import re, sys
w = sys.argv[1]
rows = [l.split() for l in open(f"{w}/samples") if len(l.split()) == 4]
rss = [int(r[1]) / 1024 for r in rows if r[0] != "end" and int(r[0]) >= 120]
wal = max(int(r[3]) for r in rows) / 1e6
db = int(rows[-1][2]) / 1e6
print("elapsed_s  rss_mib  db_mb  wal_mb")
for r in rows:
    print(f"{r[0]:>9}  {int(r[1])/1024:7.1f}  {int(r[2])/1e6:5.1f}  {int(r[3])/1e6:6.1f}")
log = open(f"{w}/serve.log").read()
ok = len(re.findall(r"\[sync\] acme/er \w+: ", log))
failed = len(re.findall(r"WARN .*\[sync\]", log))
if rss:
    mid = sorted(rss)[len(rss) // 2]
    print(f"RSS after the first 2 minutes: {min(rss):.1f}..{max(rss):.1f} MiB "
          f"(median {mid:.1f}; drift {100*(max(rss)-min(rss))/mid:.1f}% of the median)")
print(f"largest WAL {wal:.1f} MB; database {db:.1f} MB at the end")
print(f"syncs: {ok} type runs done, {failed} warnings from the scheduler")
PY
echo "(files in $W)"
