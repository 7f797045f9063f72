#!/bin/sh
# layercheck.sh - the include rules of ARCHITECTURE.md, checked on every build.
#   scripts/layercheck.sh "CORE modules" "INFRA modules" "SERVER modules"
# A rule broken prints the file and the include, and the build fails.
set -u
core=$1 infra=$2 server=$3
# Header-only modules of layer 0 (no .c of their own).
core_hdr="$core batch"
# Layer-2 files that may include a core header besides common.h, and which:
# metrics.c parses its scrape requests with the core HTTP parser.
exempt="metrics:http"
fail=0

in_list() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }

# The quoted includes of a file, one module name a line ("log.h" -> log).
quoted() { sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z0-9_]*\)\.h".*/\1/p' "$1"; }

bad() { echo "layercheck: $1: $2" >&2; fail=1; }

files_of() { for m in $1; do for f in src/$m.c include/$m.h; do [ -f "$f" ] && echo "$f"; done; done; }

# Layer 0: only core headers and the C library (no sockets, libev, log,
# configuration): the core is pure and fuzzable alone.
for f in $(files_of "$core_hdr"); do
    for inc in $(quoted "$f"); do
        in_list "$inc" "$core_hdr" || bad "$f" "layer 0 includes \"$inc.h\" (only core headers)"
    done
    if grep -qE '#[[:space:]]*include[[:space:]]*<(ev\.h|ev\+\+\.h|sys/socket\.h)>' "$f"; then
        bad "$f" "layer 0 includes sockets or libev"
    fi
done

# Within layer 0, the frame layer is the wire alone: the close payload's
# rules (UTF-8 of the reason) live with the message events in msg.c.
for f in src/frame.c include/frame.h; do
    for inc in $(quoted "$f"); do
        in_list "$inc" "common frame" || bad "$f" "the frame layer includes \"$inc.h\" (wire only)"
    done
done

# Layer 1: no libev and nothing of layer 2; and no header of it includes
# config.h (each module owns its types; config.h gathers them).
for f in $(files_of "$infra"); do
    for inc in $(quoted "$f"); do
        in_list "$inc" "$server" && bad "$f" "layer 1 includes layer 2's \"$inc.h\""
    done
    grep -qE '#[[:space:]]*include[[:space:]]*<ev\.h>' "$f" && bad "$f" "layer 1 includes libev"
    case $f in include/*)
        quoted "$f" | grep -qx config && bad "$f" "a layer-1 header includes config.h" ;;
    esac
done

# Layer 2: conn.c alone drives the core; the others see it through conn.h
# (common.h, the shared return codes and macros, is everyone's).
for m in $server; do
    f=src/$m.c
    [ -f "$f" ] || continue
    [ "$m" = conn ] && continue
    allowed=common
    for e in $exempt; do [ "${e%%:*}" = "$m" ] && allowed="$allowed ${e#*:}"; done
    for inc in $(quoted "$f"); do
        if in_list "$inc" "$core_hdr" && ! in_list "$inc" "$allowed"; then
            bad "$f" "includes core header \"$inc.h\" (only conn.c drives the core)"
        fi
    done
done
for m in $server; do
    f=include/$m.h
    [ -f "$f" ] || continue
    for inc in $(quoted "$f"); do
        in_list "$inc" "$core_hdr" && ! in_list "$inc" common &&
            bad "$f" "a layer-2 header includes core header \"$inc.h\""
    done
done
exit $fail
