#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Validates every answer the integration suites received from the REST API
# against docs/openapi.yaml with Prism's validator (tests/openapi_traffic.js).
# Each suite records its traffic as ctest runs it (tests/traffic_run.sh,
# into TRAFFIC_DIR/NAME.jsonl); ctest runs this after them (DEPENDS). A suite
# whose log is missing or older than its executable (not run since it was
# built, or failed) is run here, recording. Fails on a suite failure or on
# any violation; skipped (77) without node and Prism.
#   usage: openapi_traffic.sh SOURCE_DIR TRAFFIC_DIR SUITE_EXE...
set -uo pipefail
src="${1:?usage: openapi_traffic.sh SOURCE_DIR TRAFFIC_DIR SUITE_EXE...}"
dir="${2:?usage: openapi_traffic.sh SOURCE_DIR TRAFFIC_DIR SUITE_EXE...}"
shift 2
if ! command -v node >/dev/null 2>&1 || [ ! -d "$src/tools/node_modules/@stoplight/prism-http" ]; then
  echo "openapi_traffic: node or @stoplight/prism-http is not installed (scripts/deps installs them): skipped"
  exit 77
fi
here="$(cd "$(dirname "$0")" && pwd)"
log="$(mktemp /tmp/atshub-traffic.XXXXXX)"
trap 'rm -f "$log"' EXIT
for exe in "$@"; do
  name="$(basename "$exe")"
  rec="$dir/$name.jsonl"
  if [ -f "$rec" ] && [ "$rec" -nt "$exe" ]; then
    echo "== $name: $(wc -l <"$rec") exchanges, recorded by its own run"
  else
    echo "== $name (not run since it was built: run here, traffic recorded)"
    bash "$here/traffic_run.sh" "$rec" "$exe" || { echo "openapi_traffic: $name failed"; exit 1; }
  fi
  cat "$rec" >>"$log"
done
node "$src/tests/openapi_traffic.js" "$src" "$log"
