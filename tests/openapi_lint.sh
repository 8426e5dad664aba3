#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Lints docs/openapi.yaml with two third-party linters: redocly (ruleset
# recommended-strict: every warning is an error) and spectral (ruleset
# spectral:oas, failing on warnings too), so no operation lacks an
# operationId, a description or a 4XX answer. The linters are npm packages
# pinned in tools/package.json that scripts/deps installs into
# tools/node_modules; without them this check is skipped (exit 77), never
# passed. usage: openapi_lint.sh SOURCE_DIR
set -uo pipefail
src="${1:?usage: openapi_lint.sh SOURCE_DIR}"
bin="$src/tools/node_modules/.bin"
doc="$src/docs/openapi.yaml"
if [ ! -x "$bin/redocly" ] || [ ! -x "$bin/spectral" ] || ! command -v node >/dev/null 2>&1; then
  echo "openapi_lint: redocly/spectral are not installed (scripts/deps installs them into tools/node_modules): skipped"
  exit 77
fi
# @redocly/cli 2 runs on node >= 20.19 (Debian 12's own nodejs is 18): an
# older node is a skip that says so, not a failure of the document.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "openapi_lint: redocly needs node >= 20.19, this is node $(node --version): skipped"
  exit 77
fi
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
rc=0
echo "== redocly lint (recommended-strict)"
"$bin/redocly" lint --config "$src/tools/redocly.yaml" "$doc" || rc=1
echo "== spectral lint (spectral:oas, fail on warnings)"
"$bin/spectral" lint -r "$src/tools/.spectral.yaml" --fail-severity=warn "$doc" || rc=1
[ "$rc" = 0 ] && echo "openapi_lint: docs/openapi.yaml passes both linters"
exit "$rc"
