#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The layer check: core/'s folders are layers, and a lower layer never calls
# up. Two views of the same rule, both must hold:
#   - includes: a file includes only headers of its own layer or below;
#   - the link graph: every symbol an object of core uses that another
#     object of core defines is defined in the same layer or below.
# The layers, lowest first (core/daemon.c is a layer of its own, below the
# CLI that runs it):
#   base store net plugin host engine api admin daemon cli
#
# usage: tests/layers.sh SOURCE_DIR BUILD_DIR
# Prints each violation and "N passed, N failed" for the two checks.
set -euo pipefail
src="${1:?usage: layers.sh SOURCE_DIR BUILD_DIR}"
bld="${2:?usage: layers.sh SOURCE_DIR BUILD_DIR}"
core="$src/core"

layers=(base store net plugin host engine api admin daemon cli)
declare -A rank
for i in "${!layers[@]}"; do rank[${layers[$i]}]=$i; done

# The layer of a path under core/ (relative or absolute), or "" when none.
layer_of() {
    local rel="${1#"$core"/}"
    rel="${rel#*CMakeFiles/*.dir/core/}"
    case "$rel" in
    daemon.*) echo daemon ;;
    */*) local top="${rel%%/*}"; [ -n "${rank[$top]:-}" ] && echo "$top" || echo "" ;;
    *) echo "" ;;
    esac
}

fail=0
pass=0

# --- includes -------------------------------------------------------------
declare -A header_layer
while IFS= read -r h; do
    b="$(basename "$h")"
    if [ -n "${header_layer[$b]:-}" ]; then
        echo "layers: two headers named $b under core/: one module, one header" >&2
        fail=$((fail + 1))
    fi
    header_layer[$b]="$(layer_of "$h")"
done < <(find "$core" -name '*.h' | sort)

inc_bad=0
while IFS= read -r f; do
    fl="$(layer_of "$f")"
    if [ -z "$fl" ]; then
        echo "layers: ${f#"$src"/} is in no layer folder" >&2
        inc_bad=$((inc_bad + 1))
        continue
    fi
    while IFS= read -r inc; do
        hl="${header_layer[$inc]:-}"
        [ -n "$hl" ] || continue # a system or SDK header
        if [ "${rank[$hl]}" -gt "${rank[$fl]}" ]; then
            echo "layers: ${f#"$src"/} ($fl) includes $inc ($hl): an upward include" >&2
            inc_bad=$((inc_bad + 1))
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | xargs -r -n1 basename)
done < <(find "$core" -name '*.[ch]' | sort)
if [ "$inc_bad" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi

# --- the link graph -------------------------------------------------------
mapfile -t objs < <(find "$bld/CMakeFiles" -path '*.dir/core/*' -name '*.o' | sort)
if [ "${#objs[@]}" -eq 0 ]; then
    echo "layers: no core objects under $bld/CMakeFiles: build first" >&2
    echo "0 passed, 2 failed"
    exit 1
fi
defs="$(mktemp)"
uses="$(mktemp)"
trap 'rm -f "$defs" "$uses"' EXIT
for o in "${objs[@]}"; do
    # Only objects whose source still exists (a reused build folder keeps
    # the objects of moved files).
    rel="${o#*.dir/}"
    [ -f "$src/${rel%.o}" ] || continue
    l="$(layer_of "$o")"
    [ -n "$l" ] || { echo "layers: object $o is in no layer" >&2; continue; }
    nm --defined-only -g "$o" | awk -v l="$l" -v o="${o##*/core/}" 'NF == 3 { print $3, l, o }' >>"$defs"
    nm -u "$o" | awk -v l="$l" -v o="${o##*/core/}" '{ print $NF, l, o }' >>"$uses"
done
order="${layers[*]}"
link_bad="$(awk -v order="$order" '
    BEGIN { n = split(order, a, " "); for (i = 1; i <= n; i++) r[a[i]] = i }
    NR == FNR { if (!($1 in def)) { def[$1] = $2; where[$1] = $3 } next }
    ($1 in def) && r[def[$1]] > r[$2] {
        printf "layers: %s (%s) calls %s, defined in %s (%s): an upward call\n", $3, $2, $1, where[$1], def[$1]
        bad++
    }
    END { exit bad > 0 }' "$defs" "$uses" >&2; echo $?)"
if [ "$link_bad" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
