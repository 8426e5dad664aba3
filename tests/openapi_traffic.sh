#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs integration suites with their REST traffic recorded
# (AH_TEST_TRAFFIC_LOG, tests/support/harness.c), then validates every
# answer they received against docs/openapi.yaml with Prism's validator
# (tests/openapi_traffic.js). Fails on a suite failure or on any violation;
# skipped (77) without node and Prism. usage: openapi_traffic.sh SOURCE_DIR SUITE_EXE...
set -uo pipefail
src="${1:?usage: openapi_traffic.sh SOURCE_DIR SUITE_EXE...}"
shift
if ! command -v node >/dev/null 2>&1 || [ ! -d "$src/tools/node_modules/@stoplight/prism-http" ]; then
  echo "openapi_traffic: node or @stoplight/prism-http is not installed (scripts/deps installs them): skipped"
  exit 77
fi
log="$(mktemp /tmp/atshub-traffic.XXXXXX)"
trap 'rm -f "$log"' EXIT
for exe in "$@"; do
  echo "== $(basename "$exe") (traffic recorded)"
  AH_TEST_TRAFFIC_LOG="$log" "$exe" || { echo "openapi_traffic: $(basename "$exe") failed"; exit 1; }
done
node "$src/tests/openapi_traffic.js" "$src" "$log"
