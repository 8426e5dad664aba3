# Sourced by the sync benchmarks (sync_cpu.sh, sync_counts.sh): a temporary folder W, an
# ERecruit simulator of N records per resource in it (stopped, and W removed, on exit), its
# URL, and CFG, a private atshub configuration for BUILD's binary (the shared baselines'
# atshub_config.py).
#   . "$(dirname "$0")/sync_sim.sh"; sync_sim_start BUILD_DIR N NAME   -> W, SIMPID, URL, CFG, ROOT
sync_sim_start() {
  local build="$1" n="$2" name="$3"
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  W="$(mktemp -d "/tmp/$name.XXXXXX")"
  "$build/tests/atshub-sim" --provider erecruit --data-size "$n" --max-seconds 1800 >"$W/sim.log" 2>&1 &
  SIMPID=$!
  trap 'kill $SIMPID 2>/dev/null || true; rm -rf "$W"' EXIT
  for _ in $(seq 1 100); do grep -q listening "$W/sim.log" 2>/dev/null && break; sleep 0.1; done
  URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$W/sim.log" | head -n 1)
  CFG=$(python3 -c "import sys; sys.path.insert(0, '$ROOT/../shared/baselines'); from atshub_config import private_config; print(private_config('$build/atshub', '$ROOT', '$W'))")
}
