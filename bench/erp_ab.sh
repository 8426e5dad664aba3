#!/usr/bin/env bash
# ERP create-job, two atshub builds alternated (A B A B ...) under the shared
# wrk script (`wrk -t2 -c32 --latency`, as side_by_side.sh runs it), each
# `atshub serve` on its own private configuration and fresh SQLite store,
# both started before the first round: on a shared machine the load moves
# req/s and p99 by up to 2x from run to run, so only alternated rounds are
# compared. Prints each round (req/s, p50, p99, the load average before it)
# and the medians per build. LOGS=DIR keeps both daemons' logs;
# ENV_A / ENV_B: VAR=VALUE words for one daemon's environment.
#   bench/erp_ab.sh BIN_A BIN_B [ROUNDS] [DURATION]    (defaults: 3 pairs of 10s)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$here/.." && pwd)"
B="$(cd "$ROOT/../shared/baselines" && pwd)"
A_BIN="$(readlink -f "$1")"; B_BIN="$(readlink -f "$2")"; ROUNDS="${3:-3}"; DUR="${4:-10s}"
W="$(mktemp -d /tmp/erp-ab.XXXXXX)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  [ -z "${LOGS:-}" ] || { mkdir -p "$LOGS"; cp "$W/A/serve.log" "$LOGS/A.log"; cp "$W/B/serve.log" "$LOGS/B.log"; }; rm -rf "$W"; }
trap cleanup EXIT
start() { # name bin [VAR=VALUE...] -> sets PORT_<name>, KEY_<name>
  local n=$1 bin=$2 cfg p key env="${*:3}"
  mkdir -p "$W/$n"
  cfg=$(python3 -c "import sys; sys.path.insert(0, '$B'); from atshub_config import private_config; print(private_config('$bin', '$ROOT', '$W/$n'))")
  p=$(port)
  # each daemon its own admin port (the default configuration's is fixed)
  sed -i "s/^listen = 127.0.0.1:8081\$/listen = 127.0.0.1:$(port)/" "$cfg"
  ATSHUB_STORE="sqlite:$W/$n/erp.db" "$bin" -c "$cfg" tenant add acme --json >/dev/null
  key=$(ATSHUB_STORE="sqlite:$W/$n/erp.db" "$bin" -c "$cfg" connection add acme erp Main_ERP --set trusted_ips=127.0.0.1 --json |
        python3 -c 'import re, sys; print(re.search(r"\"api_key\":\s*\"([^\"]+)\"", sys.stdin.read()).group(1))')
  (cd "$W/$n" && ATSHUB_STORE="sqlite:$W/$n/erp.db" ATSHUB_LISTEN="127.0.0.1:$p" exec env $env "$bin" serve -c "$cfg" \
     >"$W/$n/serve.log" 2>&1) & pids+=($!)
  wait_port "$p"
  eval "PORT_$n=$p KEY_$n=$key"
}
start A "$A_BIN" ${ENV_A:-}; start B "$B_BIN" ${ENV_B:-}; sleep 1
run() { # name round
  local p k; eval "p=\$PORT_$1 k=\$KEY_$1"
  cut -d' ' -f1 /proc/loadavg > "$W/$1.$2.load"
  ERP_API_KEY="$k" wrk -t2 -c32 -d"$DUR" --latency -s "$B/django_erp/wrk/create_job.lua" \
    "http://127.0.0.1:$p/recruitment/integration/erp/create-job/" -- "$1-$(date +%s%N)" > "$W/$1.$2.txt"
  grep -E 'Non-2xx|Socket errors' "$W/$1.$2.txt" | sed "s/^/  $1 round $2: /" || true
}
for r in $(seq 1 "$ROUNDS"); do run A "$r"; run B "$r"; done
python3 - "$W" "$ROUNDS" <<'PY'
import re, statistics, sys
w, n = sys.argv[1], int(sys.argv[2])
u = {"us": 0.001, "ms": 1.0, "s": 1000.0}
def ms(v): m = re.match(r"([\d.]+)(us|ms|s)$", v); return float(m.group(1)) * u[m.group(2)]
for name in ("A", "B"):
    rows = []
    for r in range(1, n + 1):
        t = open(f"{w}/{name}.{r}.txt").read()
        rows.append((float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
                     ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)),
                     ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1)),
                     float(open(f"{w}/{name}.{r}.load").read())))
        print(f"{name} round {r}: req/s {rows[-1][0]:8.0f}  p50 {rows[-1][1]:5.2f} ms  p99 {rows[-1][2]:5.2f} ms  load {rows[-1][3]:.2f}")
    med = [statistics.median(c) for c in zip(*rows)]
    print(f"{name} median: req/s {med[0]:8.0f}  p50 {med[1]:5.2f} ms  p99 {med[2]:5.2f} ms")
PY
