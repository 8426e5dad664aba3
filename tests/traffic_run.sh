#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs one integration suite with its REST traffic recorded into LOG
# (AH_TEST_TRAFFIC_LOG, tests/support/harness.c), for check_openapi_traffic
# (openapi_traffic.sh) to validate against docs/openapi.yaml. LOG is there
# only after a run that passed: the traffic goes to LOG.part meanwhile, and
# a failed run leaves no log.
#   usage: traffic_run.sh LOG SUITE_EXE [ARG...]
set -uo pipefail
log="${1:?usage: traffic_run.sh LOG SUITE_EXE [ARG...]}"
shift
mkdir -p "$(dirname "$log")"
rm -f "$log" "$log.part"
AH_TEST_TRAFFIC_LOG="$log.part" "$@"
rc=$?
if [ "$rc" -eq 0 ]; then
  touch "$log.part" # a suite may send no REST request at all
  mv "$log.part" "$log"
else
  rm -f "$log.part"
fi
exit "$rc"
