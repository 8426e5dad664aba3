#!/usr/bin/env bash
# Where an ERP create-job's tail comes from: while the shared wrk script
# drives `atshub serve` (the default configuration: erp plugin, SQLite store)
# for ROUNDS runs of DURATION, a probe client sends one create every 5 ms on
# its own connection and a sampler reads, every ~3 ms, the state and kernel
# wait channel of the committer, checkpointer and bus threads and the size
# of the WAL file. Prints each wrk run's req/s and p99, then the slowest
# probe requests, each with the samples taken while it was in flight: a
# stall shows which thread held things up and where it waited (this found
# a 1 GiB WAL trimmed under the store's lock, and the writer's wait for a
# checkpoint pass; bench/README.md, "Night of 2026-12-05").
#   bench/erp_stalls.sh [ATSHUB_BIN] [DURATION] [ROUNDS] [SLOWEST]
#   (defaults: build/atshub 10s 2 5)
DUR_DEFAULT=10s
. "$(dirname "$0")/erp_common.sh"
ROUNDS="${3:-2}"; SLOWEST="${4:-5}"
erp_setup
(cd "$W/a" && exec "$BIN" serve -c "$CFG" >"$W/a/serve.log" 2>&1) & pids+=($!); ATSHUB=$!
wait_port "$PA"; sleep 1
URL="http://127.0.0.1:$PA/recruitment/integration/erp/create-job/"
secs=$(( ${DUR%s} * ROUNDS + 4 ))

python3 - "$PA" "$KEY" "$W/probe.txt" "$secs" <<'PY' & PP=$!; pids+=($PP)
import http.client, json, sys, time
port, key, out, dur = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port)
end, i = time.monotonic() + dur, 0
with open(out, "w") as f:
    while time.monotonic() < end:
        i += 1
        body = json.dumps({"action": "create_job", "source_name": "Main_ERP",
                           "title": f"probe {time.time_ns()} {i}",
                           "application_url": "https://careers.example.com/job/1"})
        t0 = time.monotonic()
        c.request("POST", "/recruitment/integration/erp/create-job/", body,
                  {"Content-Type": "application/json", "X-API-Key": key})
        r = c.getresponse(); r.read()
        f.write(f"{t0:.4f} {(time.monotonic() - t0) * 1000:.2f} {r.status}\n")
        time.sleep(0.005)
PY

python3 - "$ATSHUB" "$PP" "$W/a/erp.db-wal" >"$W/samples.txt" <<'PY' & SP=$!; pids+=($SP)
import os, sys, time
pid, pp, wal = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = ("ah-commit", "ah-checkpoint", "ah-bus")
tasks = {}
for t in os.listdir(f"/proc/{pid}/task"):
    name = open(f"/proc/{pid}/task/{t}/comm").read().strip()
    if name in names:
        tasks[t] = name
while True:
    try:
        os.kill(pp, 0)
    except OSError:
        break
    now = time.monotonic()
    try:
        size = os.stat(wal).st_size
    except OSError:
        size = 0
    st = []
    for tid, name in tasks.items():
        try:
            state = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()[0]
            wchan = open(f"/proc/{pid}/task/{tid}/wchan").read()
        except OSError:
            continue
        st.append(f"{name}:{state}/{wchan}")
    print(f"{now:.4f} wal={size} " + " ".join(st), flush=True)
    time.sleep(0.003)
PY

for r in $(seq 1 "$ROUNDS"); do
  ERP_API_KEY="$KEY" wrk -t2 -c32 -d"$DUR" --latency -s "$B/django_erp/wrk/create_job.lua" "$URL" \
    -- "stall$r-$(date +%s%N)" >"$W/wrk.txt"
  printf 'wrk round %s: %s req/s, p99 %s\n' "$r" \
    "$(awk '/Requests\/sec/ {print $2}' "$W/wrk.txt")" "$(awk '$1 == "99%" {print $2}' "$W/wrk.txt")"
done
wait "$PP" "$SP" 2>/dev/null || true
bad=$(awk '$3 != 200' "$W/probe.txt" | wc -l)
echo "probe: $(wc -l <"$W/probe.txt") requests, $bad not 200"
sort -k2 -n -r "$W/probe.txt" | head -n "$SLOWEST" | while read -r t ms status; do
  echo "--- probe at $t: $ms ms (HTTP $status); samples while in flight:"
  awk -v a="$t" -v b="$(python3 -c "print($t + $ms / 1000 + 0.003)")" '$1 >= a && $1 <= b' "$W/samples.txt" |
    uniq -f1 | head -20
done
