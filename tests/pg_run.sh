#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs one Check suite on the PostgreSQL engine (tests/CMakeLists.txt,
# ah_check_pg): usage: pg_run.sh EXE NAME. AH_TEST_PG_URL names the server
# (scripts/test starts a throwaway one); without it the suite is skipped
# (exit 77). The suite's tests create databases named after NAME and drop
# them; whatever a crashed test left behind is dropped here at the end.
set -uo pipefail
exe="${1:?usage: pg_run.sh EXE NAME}"
name="${2:?usage: pg_run.sh EXE NAME}"
if [ -z "${AH_TEST_PG_URL:-}" ]; then
  echo "$name: no PostgreSQL server (set AH_TEST_PG_URL=postgresql://..., or run scripts/test, which starts one): skipped"
  exit 77
fi
# The browser tests (the pages atshub serves) are the same pages on either
# engine: the SQLite entry drives Chromium (harness.h, ah_t_browser).
export AH_TEST_ENGINE=postgresql AH_TEST_SUITE="$name" AH_TEST_BROWSER=0
"$exe"
rc=$?
if command -v psql >/dev/null 2>&1; then
  # One session drops them all (\gexec runs each row as a statement): a
  # suite leaves ~130 databases, and a psql (Debian's is a Perl wrapper)
  # and a server backend started for each were a twentieth of the plain
  # run's CPU.
  prefix="ah_${name#check_}_"
  printf '%s\n' "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', datname) FROM pg_database
    WHERE datname LIKE '${prefix//_/\\_}%' \\gexec" |
    psql -qAtX "$AH_TEST_PG_URL" >/dev/null 2>&1
fi
exit $rc
