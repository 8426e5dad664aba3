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
# One awk over every file (a process per file made this check take 30 s).
# Its input: "H path" for each header, then "F path" for each file; it reads
# each file's quoted includes itself.
order="${layers[*]}"
inc_out="$( { find "$core" -name '*.h' | sort | sed 's/^/H /'
              find "$core" -name '*.[ch]' | sort | sed 's/^/F /'; } |
  awk -v core="$core" -v src="$src" -v order="$order" '
    function layer(path,   rel, top) {
        rel = substr(path, length(core) + 2)
        if (rel ~ /^daemon\./) return "daemon"
        if (index(rel, "/") == 0) return ""
        top = substr(rel, 1, index(rel, "/") - 1)
        return (top in r) ? top : ""
    }
    function base(path) { sub(/.*\//, "", path); return path }
    BEGIN { n = split(order, a, " "); for (i = 1; i <= n; i++) r[a[i]] = i }
    $1 == "H" {
        b = base($2)
        if (b in hl) { print "layers: two headers named " b " under core/: one module, one header"; dup++ }
        hl[b] = layer($2)
        next
    }
    $1 == "F" {
        f = $2; fl = layer(f); rel = substr(f, length(src) + 2)
        if (fl == "") { print "layers: " rel " is in no layer folder"; bad++; next }
        while ((getline line < f) > 0) {
            if (line !~ /^[ \t]*#[ \t]*include[ \t]*"/) continue
            sub(/^[ \t]*#[ \t]*include[ \t]*"/, "", line); sub(/".*/, "", line)
            inc = base(line)
            if (!(inc in hl) || hl[inc] == "") continue # a system or SDK header
            if (r[hl[inc]] > r[fl]) {
                print "layers: " rel " (" fl ") includes " inc " (" hl[inc] "): an upward include"
                bad++
            }
        }
        close(f)
    }
    END { printf "%d %d\n", dup + 0, bad + 0 }')"
echo "$inc_out" | sed '$d' >&2
read -r inc_dup inc_bad <<<"$(echo "$inc_out" | tail -n 1)"
fail=$((fail + inc_dup))
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
keep=()
for o in "${objs[@]}"; do
    # Only objects whose source still exists (a reused build folder keeps
    # the objects of moved files).
    rel="${o#*.dir/}"
    [ -f "$src/${rel%.o}" ] || continue
    [ -n "$(layer_of "$o")" ] || { echo "layers: object $o is in no layer" >&2; continue; }
    keep+=("$o")
done
# One nm each for definitions and uses over every object (-A names the
# object on each line: "OBJ: [VALUE] TYPE SYMBOL").
obj_layers() { # reads nm -A lines; prints "SYMBOL LAYER OBJECT"
    awk '
        { obj = $1; sub(/:[^:]*$/, "", obj); rel = obj; sub(/.*\.dir\/core\//, "", rel)
          if (rel ~ /^daemon\./) l = "daemon"
          else { l = substr(rel, 1, index(rel, "/") - 1) }
          print $NF, l, rel }'
}
nm -A --defined-only -g "${keep[@]}" | awk 'NF == 3' | obj_layers >"$defs"
nm -A -u "${keep[@]}" | obj_layers >"$uses"
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
