#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The TypeScript example (examples/typescript): generates its client types
# from docs/openapi.yaml (openapi-typescript), type-checks the program
# (tsc --noEmit, strict), builds it, and runs it against the daemon and the
# ERecruit simulator (check_events_api's "typescript" case). Skipped (77)
# without node and the example's npm packages (scripts/deps installs them).
# usage: ts_example.sh SOURCE_DIR CHECK_EVENTS_API_EXE
set -euo pipefail
src="${1:?usage: ts_example.sh SOURCE_DIR EXE}"
exe="${2:?usage: ts_example.sh SOURCE_DIR EXE}"
ex="$src/examples/typescript"
bin="$ex/node_modules/.bin"
if ! command -v node >/dev/null 2>&1 || [ ! -x "$bin/tsc" ] || [ ! -x "$bin/openapi-typescript" ]; then
  echo "ts_example: node or the example's npm packages are not installed (scripts/deps installs them): skipped"
  exit 77
fi
cd "$ex"
echo "== openapi-typescript docs/openapi.yaml -> src/schema.d.ts"
"$bin/openapi-typescript" ../../docs/openapi.yaml -o src/schema.d.ts
echo "== tsc --noEmit (strict)"
"$bin/tsc" --noEmit
echo "== tsc (build)"
"$bin/tsc"
echo "== the program against the daemon and the ERecruit simulator"
AH_TS_EXAMPLE="$ex/dist/main.js" CK_RUN_CASE=typescript "$exe"
