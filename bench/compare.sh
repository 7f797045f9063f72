#!/usr/bin/env bash
# bench/compare.sh - wsechod beside the servers a user would otherwise pick:
# one run, one machine, the same load generator (build/wsbench) for all.
#
#   bench/compare.sh [--runs N] [--duration T] [--quick] [--servers LIST]
#                    [--tls] [--no-multi] [--no-install] [--hold N] [--help]
#   bench/compare.sh --report bench/results/run-DATE     (tables again, no runs)
#   bench/compare.sh --charts-from bench/charts          (charts again from *.dat)
#
# Every server listens on 127.0.0.1 only, and everything here talks to
# 127.0.0.1 only.  See bench/README.md for what each figure means.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

RUNS=3
DURATION=5          # seconds per run
QUICK=0
MULTI=1
INSTALL=1
HOLD_N=10000
CR_CONNS=100        # connections cycling at once in the handshake test
TLS_SERVERS="wsechod-tls tls-raw node-tls websockets-tls"
SERVERS_ALL="wsechod raw lws gorilla node tornado tornado-prefix wsechod-deflate node-deflate $TLS_SERVERS"
SERVERS=$SERVERS_ALL
SIZES="64 4096 65536"
TLS_SIZES="64 4096"     # the wss matrix's message sizes
REPORT=""
CHARTS_FROM=""
# A run is "wsbench-bound" (marked ‡) when wsbench's core was at least
# BOUND_CLI % busy and the server's below BOUND_SRV %: wsbench, not the server,
# set the rate.  One rule for every table and chart.
BOUND_CLI=95
BOUND_SRV=90
CONNS="100 1000"
PIPES="1 16"

usage() {
    cat <<'EOF'
Usage: bench/compare.sh [OPTIONS]

Builds wsechod, wsbench, the raw TCP and TLS floors and the peer servers, then
runs N rounds; in each round, for each server in turn (the order rotating from
round to round): starts it on a free 127.0.0.1 port pinned to CPU 0, runs each
cell of the matrix once with wsbench pinned to CPU 1, stops it.  Writes
bench/results/RESULTS-<date>.md (and the raw runs, the wsbench JSON and the
charts beside it).

  --runs N        runs per matrix cell; the table shows the median, min and max
                  (default 3)
  --duration T    length of one run in seconds, like 5 or 5s (default 5)
  --quick         a tiny matrix to smoke-test the driver: 64 B and 4 KiB,
                  100 connections, pipeline 1 and 16, 1 run of 1 s,
                  --hold 1000, no multi-worker run (about 2 minutes)
  --servers LIST  comma-separated subset of:
                  wsechod,raw,lws,gorilla,node,tornado,tornado-prefix,
                  wsechod-deflate,node-deflate (permessage-deflate without
                  context takeover, text messages, wsbench --deflate),
                  wsechod-tls,tls-raw,node-tls,websockets-tls (the wss
                  matrix: 64 B and 4 KiB echo over wss, full and resumed
                  handshakes, heap per idle TLS connection; tls-raw is the
                  raw TLS echo floor, build/tlsecho)
  --tls           the wss matrix alone: --servers wsechod-tls,tls-raw,
                  node-tls,websockets-tls
  --no-multi      skip the wsechod 1-worker / 2-worker unpinned run
  --no-install    do not run scripts/bench-deps.sh; skip what is missing
  --hold N        idle connections for the heap-per-connection figure
                  (default 10000)
  --report DIR    write the tables and charts again from an earlier run's
                  bench/results/run-DATE/ (runs nothing)
  --charts-from DIR
                  draw every chart data file DIR/*.dat again as DIR/NAME.png
                  and DIR/NAME.svg (runs nothing; bench/charts holds the
                  figures of bench/README.md)
  -h, --help      this text

Exit status: 0 when every wsechod run had zero errors, 1 otherwise, 2 usage.
EOF
}

die() { echo "compare.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) [ $# -ge 2 ] || die "--runs needs a number"; RUNS=$2; shift ;;
        --runs=*) RUNS=${1#*=} ;;
        --duration) [ $# -ge 2 ] || die "--duration needs a time"; DURATION=$2; shift ;;
        --duration=*) DURATION=${1#*=} ;;
        --quick) QUICK=1 ;;
        --servers) [ $# -ge 2 ] || die "--servers needs a list"; SERVERS=${2//,/ }; shift ;;
        --servers=*) SERVERS=${1#*=}; SERVERS=${SERVERS//,/ } ;;
        --tls) SERVERS=$TLS_SERVERS ;;
        --no-multi) MULTI=0 ;;
        --no-install) INSTALL=0 ;;
        --hold) [ $# -ge 2 ] || die "--hold needs a number"; HOLD_N=$2; shift ;;
        --hold=*) HOLD_N=${1#*=} ;;
        --report) [ $# -ge 2 ] || die "--report needs a directory"; REPORT=$2; shift ;;
        --report=*) REPORT=${1#*=} ;;
        --charts-from) [ $# -ge 2 ] || die "--charts-from needs a directory"; CHARTS_FROM=$2; shift ;;
        --charts-from=*) CHARTS_FROM=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done
DURATION=${DURATION%s}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a whole number >= 1"
[[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] && [ "$DURATION" != 0 ] || die "--duration must be seconds, like 5 or 5s"
[[ $HOLD_N =~ ^[1-9][0-9]*$ ]] || die "--hold must be a whole number >= 1"
for s in $SERVERS; do
    [[ " $SERVERS_ALL " == *" $s "* ]] || die "unknown server '$s' (one of: $SERVERS_ALL)"
done
if [ $QUICK -eq 1 ]; then
    RUNS=1; DURATION=1; SIZES="64 4096"; CONNS="100"; PIPES="1 16"; HOLD_N=1000; MULTI=0
fi

STAMP=$(date +%Y-%m-%d-%H%M)
OUT=bench/results
if [ -n "$REPORT" ]; then
    REPORT=${REPORT%/}
    [ -f "$REPORT/meta.sh" ] || die "$REPORT/meta.sh not found: not a run directory of compare.sh"
    STAMP=${REPORT##*/run-}
fi
RUNDIR=$OUT/run-$STAMP
GNUPLOT_LOG=$RUNDIR/gnuplot.log
if [ -n "$CHARTS_FROM" ]; then
    [ -d "$CHARTS_FROM" ] || die "--charts-from: $CHARTS_FROM is not a directory"
    GNUPLOT_LOG=/dev/stderr
else
    mkdir -p "$RUNDIR" || exit 1
fi
RESULTS=$OUT/RESULTS-$STAMP.md
TSV=$OUT/runs-$STAMP.tsv
CLK_TCK=$(getconf CLK_TCK)
# An echo, or a handshake, later than this is an error (slow peers at 64 KiB
# x 16 x 1000; TLS handshakes of 100 connections at once on a busy machine).
WSBENCH_TIMEOUT=30s
T_START=$(date +%s)

log() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- pinning
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    PIN_SRV=(taskset -c 0)
    PIN_CLI=(taskset -c 1)
    PIN_NOTE="servers pinned to CPU 0 (taskset -c 0), wsbench pinned to CPU 1 (taskset -c 1)"
else
    PIN_SRV=()
    PIN_CLI=()
    PIN_NOTE="NOT pinned ($NCPU CPU(s) or no taskset): server and wsbench share the cores"
fi

# ---------------------------------------------------------------- cleanup
CUR_SRV=""          # pid of the server running now
CUR_CLI=""          # pid of the timeout(1) running wsbench now
TLS_DIR=""          # the throwaway test CA and certificates of the wss servers
cleanup() {
    if [ -n "$CUR_CLI" ]; then
        kill -INT "$CUR_CLI" 2>/dev/null
        wait "$CUR_CLI" 2>/dev/null
    fi
    [ -n "$CUR_SRV" ] && stop_server
    [ -n "$TLS_DIR" ] && rm -rf "$TLS_DIR"
}
trap 'cleanup; exit 130' INT TERM
trap 'cleanup' EXIT

# ---------------------------------------------------------------- /proc
# The server's process tree: its pid and every descendant (wsechod's workers).
tree_pids() {
    local root=$1 f line rest pid ppid
    declare -A kids=()
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        pid=${line%% *}
        rest=${line##*) }
        rest=${rest#* }
        ppid=${rest%% *}
        kids[$ppid]+=" $pid"
    done
    local queue=("$root") found=() p
    while [ ${#queue[@]} -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        [ -d "/proc/$p" ] || continue
        found+=("$p")
        # shellcheck disable=SC2206
        [ -n "${kids[$p]:-}" ] && queue+=(${kids[$p]})
    done
    echo "${found[@]}"
}

# utime+stime+cutime+cstime of the whole tree, in clock ticks.  Every thread
# is in its process's utime/stime; reaped children are in cutime/cstime.
tree_ticks() {
    local sum=0 p line rest
    for p in $(tree_pids "$1"); do
        read -r line 2>/dev/null <"/proc/$p/stat" || continue
        rest=${line##*) }
        # shellcheck disable=SC2086
        set -- $rest
        sum=$((sum + ${12} + ${13} + ${14} + ${15}))
    done
    echo $sum
}

# RssAnon of the whole tree, in KiB: anonymous resident memory (heap,
# stacks), from /proc/PID/status.  Not VmRSS: the first handshake pages in ~2.5 MB of libcrypto and libc code (RssFile),
# a one-time cost shared with every process that maps them, which is not
# memory per connection.
tree_rss() {
    local sum=0 p k v
    for p in $(tree_pids "$1"); do
        while read -r k v _; do
            [ "$k" = "RssAnon:" ] && sum=$((sum + v))
        done 2>/dev/null <"/proc/$p/status"
    done
    echo $sum
}

# Open sockets of the whole tree.
tree_sockets() {
    local n=0 p
    for p in $(tree_pids "$1"); do
        n=$((n + $(find "/proc/$p/fd" -lname 'socket:*' 2>/dev/null | wc -l)))
    done
    echo $n
}

# Busy clock ticks of the whole machine (/proc/stat), to see what else ran.
machine_ticks() {
    local user nice system irq softirq steal
    read -r _ user nice system _ _ irq softirq steal _ </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# CPU seconds the shell's reaped children used so far, user + system.
# (times runs in this shell, not in a $(...) subshell, whose children are not ours.)
children_cpu() {
    times >"$RUNDIR/.times"
    # second line: "0m1.234s 0m0.567s"
    tail -n 1 "$RUNDIR/.times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } printf "%.3f\n", s }'
}

# ---------------------------------------------------------------- build
SKIPPED=()          # "server: reason"
declare -A AVAILABLE=()

need_group() {      # bench-deps.sh GROUP, unless --no-install
    [ $INSTALL -eq 1 ] || return 0
    bash scripts/bench-deps.sh "$@" >>"$RUNDIR/deps.log" 2>&1
}

skip() {
    SKIPPED+=("$1: $2")
    warn "SKIP $1: $2"
}

build_all() {
    log "== build"
    need_group tools || warn "bench-deps.sh tools failed (see $RUNDIR/deps.log)"
    # Three tries, 20 s apart: a tree being edited may fail to link for a moment.
    local try
    for try in 1 2 3; do
        make --no-print-directory build/wsechod build/wsbench >"$RUNDIR/build.log" 2>&1 && break
        if [ $try -eq 3 ]; then
            cat "$RUNDIR/build.log" >&2
            die "make build/wsechod build/wsbench failed"
        fi
        warn "make build/wsechod build/wsbench failed; trying again in 20 s (see $RUNDIR/build.log)"
        sleep 20
    done
    if [ ! -x build/rawecho ] || [ bench/rawecho.c -nt build/rawecho ]; then
        if grep -q '^\$(BUILD)/rawecho:' Makefile; then
            make --no-print-directory build/rawecho >>"$RUNDIR/build.log" 2>&1
        else
            cc -std=gnu11 -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror -D_GNU_SOURCE \
                bench/rawecho.c -o build/rawecho >>"$RUNDIR/build.log" 2>&1
        fi
    fi
    AVAILABLE[wsechod]=1
    AVAILABLE[wsechod-deflate]=1
    if [ -x build/rawecho ]; then AVAILABLE[raw]=1; else skip raw "build/rawecho did not build (see $RUNDIR/build.log)"; fi
    mkdir -p build/peers

    local want=" $SERVERS "
    # shellcheck disable=SC2046  # pkg-config's flags are words
    if [[ $want == *" lws "* ]]; then
        need_group lws
        if ! pkg-config --exists libwebsockets 2>/dev/null; then
            skip lws "libwebsockets-dev is not installed (scripts/bench-deps.sh lws)"
        elif [ -x build/peers/lws_echo ] && [ build/peers/lws_echo -nt bench/peers/lws_echo.c ] ||
            cc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE bench/peers/lws_echo.c -o build/peers/lws_echo \
                $(pkg-config --cflags --libs libwebsockets) >>"$RUNDIR/build.log" 2>&1; then
            AVAILABLE[lws]=1
        else
            skip lws "bench/peers/lws_echo.c did not build (see $RUNDIR/build.log)"
        fi
    fi
    if [[ $want == *" gorilla "* ]]; then
        need_group go
        if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/gorilla/websocket ]; then
            skip gorilla "golang-go or golang-github-gorilla-websocket-dev is not installed (scripts/bench-deps.sh go)"
        elif [ -x build/peers/gorilla_echo ] && [ build/peers/gorilla_echo -nt bench/peers/gorilla_echo.go ] ||
            GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$ROOT/build/peers/go-cache" \
                go build -o build/peers/gorilla_echo bench/peers/gorilla_echo.go >>"$RUNDIR/build.log" 2>&1; then
            AVAILABLE[gorilla]=1
        else
            skip gorilla "bench/peers/gorilla_echo.go did not build (see $RUNDIR/build.log)"
        fi
    fi
    if [[ $want == *" node "* || $want == *" node-deflate "* ]]; then
        need_group node
        if ! command -v node >/dev/null 2>&1; then
            skip node "node is not installed (scripts/bench-deps.sh node)"
        elif [ ! -f bench/peers/node_ws/node_modules/ws/package.json ]; then
            skip node "the ws package is not installed in bench/peers/node_ws (scripts/bench-deps.sh node)"
        else
            AVAILABLE[node]=1
            AVAILABLE[node-deflate]=1
        fi
    fi
    if [[ $want == *"-tls "* || $want == *" tls-raw "* ]]; then
        [[ $want == *" node-tls "* ]] && need_group node
        build_tls
    fi
    if [[ $want == *" tornado"* ]]; then
        need_group tornado
        if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import tornado' 2>/dev/null; then
            AVAILABLE[tornado]=1
            AVAILABLE[tornado-prefix]=1
        else
            skip tornado "python3-tornado is not installed (scripts/bench-deps.sh tornado)"
            skip tornado-prefix "python3-tornado is not installed (scripts/bench-deps.sh tornado)"
        fi
    fi
}

# The wss servers: one ECDSA P-256 certificate from scripts/test-ca.sh, made
# in a private temporary directory for this run and removed at exit.
build_tls() {
    local n
    need_group tls
    if ! make --no-print-directory build/tlsecho >>"$RUNDIR/build.log" 2>&1; then
        skip tls-raw "build/tlsecho did not build (see $RUNDIR/build.log)"
    else
        AVAILABLE[tls-raw]=1
    fi
    if TLS_DIR=$(mktemp -d) && sh scripts/test-ca.sh "$TLS_DIR" >>"$RUNDIR/build.log" 2>&1; then
        TLS_CERT=$TLS_DIR/ec.pem
        TLS_KEY=$TLS_DIR/ec.key
        AVAILABLE[wsechod-tls]=1
    else
        for n in $TLS_SERVERS; do skip "$n" "scripts/test-ca.sh failed (see $RUNDIR/build.log)"; done
        unset 'AVAILABLE[tls-raw]'
        return
    fi
    if ! command -v node >/dev/null 2>&1 || [ ! -f bench/peers/node_ws/node_modules/ws/package.json ]; then
        skip node-tls "node or the ws package in bench/peers/node_ws is not installed (scripts/bench-deps.sh node)"
    else
        AVAILABLE[node-tls]=1
    fi
    if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
        AVAILABLE[websockets-tls]=1
    else
        skip websockets-tls "python3-websockets is not installed (scripts/bench-deps.sh tls)"
    fi
}

# ---------------------------------------------------------------- servers
server_label() {
    case "$1" in
        wsechod) echo "wsechod -w 1" ;;
        wsechod-w1) echo "wsechod -w 1 (unpinned)" ;;
        wsechod-w2) echo "wsechod -w 2 (unpinned)" ;;
        raw) echo "raw TCP (epoll)" ;;
        lws) echo "libwebsockets $(pkg-config --modversion libwebsockets 2>/dev/null | sed 's/-$//')" ;;
        gorilla) echo "Go gorilla/websocket ($(go version 2>/dev/null | awk '{print $3}'))" ;;
        node) echo "Node ws $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' bench/peers/node_ws/node_modules/ws/package.json 2>/dev/null) (node $(node --version 2>/dev/null))" ;;
        tornado) echo "Tornado $(/usr/bin/python3 -c 'import tornado; print(tornado.version)' 2>/dev/null) (pure echo)" ;;
        tornado-prefix) echo "Tornado (tutorial, \"You said: \")" ;;
        wsechod-deflate) echo "wsechod -w 1 --permessage-deflate" ;;
        node-deflate) echo "$(server_label node) perMessageDeflate" ;;
        wsechod-tls) echo "wsechod -w 1 over TLS" ;;
        tls-raw) echo "raw TLS (epoll, OpenSSL $(openssl version 2>/dev/null | awk '{print $2}'))" ;;
        node-tls) echo "$(server_label node) over https" ;;
        websockets-tls) echo "Python websockets $(/usr/bin/python3 -c 'import websockets; print(websockets.__version__)' 2>/dev/null) + ssl" ;;
    esac
}

# server_cmd NAME PORT -> SRV_CMD (array) and SRV_PIN (array)
server_cmd() {
    local name=$1 port=$2
    SRV_PIN=("${PIN_SRV[@]}")
    case "$name" in
        wsechod) SRV_CMD=(build/wsechod -w 1 --log-level warn -l "127.0.0.1:$port") ;;
        wsechod-w1) SRV_PIN=(); SRV_CMD=(build/wsechod -w 1 --log-level warn -l "127.0.0.1:$port") ;;
        wsechod-w2) SRV_PIN=(); SRV_CMD=(build/wsechod -w 2 --log-level warn -l "127.0.0.1:$port") ;;
        raw) SRV_CMD=(build/rawecho "$port") ;;
        lws) SRV_CMD=(build/peers/lws_echo "$port") ;;
        gorilla) SRV_CMD=(env GOMAXPROCS=1 build/peers/gorilla_echo "$port") ;;
        node) SRV_CMD=(node bench/peers/node_ws/echo.js "$port") ;;
        tornado) SRV_CMD=(/usr/bin/python3 bench/peers/tornado_echo.py "$port") ;;
        tornado-prefix) SRV_CMD=(/usr/bin/python3 bench/peers/tornado_echo.py --prefix "$port") ;;
        wsechod-deflate) SRV_CMD=(build/wsechod -w 1 --log-level warn --permessage-deflate
                                  --deflate-min-size 0 -l "127.0.0.1:$port") ;;
        node-deflate) SRV_CMD=(node bench/peers/node_ws/echo.js "$port" notakeover) ;;
        wsechod-tls) SRV_CMD=(build/wsechod -w 1 --log-level warn -l off --tls-listen "127.0.0.1:$port"
                              --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY") ;;
        tls-raw) SRV_CMD=(build/tlsecho "$port" "$TLS_CERT" "$TLS_KEY") ;;
        node-tls) SRV_CMD=(node bench/peers/node_ws/echo_tls.js "$port" "$TLS_CERT" "$TLS_KEY") ;;
        websockets-tls) SRV_CMD=(/usr/bin/python3 bench/peers/websockets_tls_echo.py "$port" "$TLS_CERT" "$TLS_KEY") ;;
    esac
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Ports from a random base below the ephemeral range (32768-60999), so that
# wsbench's own connections never take the one a server is about to use.
NEXT_PORT=$((20000 + RANDOM % 10000))
free_port() {       # -> CUR_PORT (runs in this shell: no $(...))
    local i
    for i in $(seq 1 200); do
        NEXT_PORT=$((NEXT_PORT + 1))
        if ! port_busy $NEXT_PORT; then
            CUR_PORT=$NEXT_PORT
            return 0
        fi
    done
    return 1
}

# start_server NAME -> CUR_SRV, CUR_PORT
start_server() {
    local name=$1 i
    free_port || { warn "no free port"; return 1; }
    server_cmd "$name" "$CUR_PORT"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    "${SRV_PIN[@]}" "${SRV_CMD[@]}" >>"$RUNDIR/server-$name.log" 2>&1 &
    CUR_SRV=$!
    for i in $(seq 1 150); do      # up to 30 s
        if ! kill -0 "$CUR_SRV" 2>/dev/null; then
            wait "$CUR_SRV" 2>/dev/null
            warn "$name exited at start (see $RUNDIR/server-$name.log)"
            CUR_SRV=""
            return 1
        fi
        if port_busy "$CUR_PORT"; then
            log "   started $(server_label "$name"): pid $CUR_SRV, 127.0.0.1:$CUR_PORT${SRV_PIN[*]:+, ${SRV_PIN[*]}}"
            sleep 0.3
            return 0
        fi
        sleep 0.2
    done
    warn "$name did not accept on 127.0.0.1:$CUR_PORT within 30 s"
    stop_server
    return 1
}

stop_server() {
    [ -n "$CUR_SRV" ] || return 0
    local pids i p
    pids=$(tree_pids "$CUR_SRV")
    kill -TERM "$CUR_SRV" 2>/dev/null
    for i in $(seq 1 50); do
        kill -0 "$CUR_SRV" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$CUR_SRV" 2>/dev/null && kill -KILL "$CUR_SRV" 2>/dev/null
    wait "$CUR_SRV" 2>/dev/null
    # Descendants it left (by pid, all started by this script).
    for p in $pids; do
        [ "$p" = "$CUR_SRV" ] && continue
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
    CUR_SRV=""
}

# ---------------------------------------------------------------- one run
ERRORS_WSECHOD=()
ERRORS_PEERS=()
# json_num FILE KEY: the first number after "KEY":
json_num() {
    sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1
}
json_errors() {     # the sum of the "errors" object
    sed -n 's/.*"errors": *{\([^}]*\)}.*/\1/p' "$1" | tr ',' '\n' | awk -F: '{ s += $2 } END { print s + 0 }'
}

# wsb TIMEOUT_S OUTFILE ARGS...: run wsbench pinned, bounded; sets WSB_RC,
# WSB_CLI (its CPU seconds) and WSB_WALL.
wsb() {
    local limit=$1 out=$2 c0 c1 t0 t1
    shift 2
    children_cpu >"$RUNDIR/.c0"; c0=$(cat "$RUNDIR/.c0")
    t0=$(date +%s.%N)
    # timeout(1) bounds it (SIGINT, then SIGKILL 10 s later) and passes on our signals.
    timeout -s INT -k 10 "$limit" "${PIN_CLI[@]}" build/wsbench "$@" >"$out" 2>"$out.err" &
    CUR_CLI=$!
    wait "$CUR_CLI"
    WSB_RC=$?
    CUR_CLI=""
    t1=$(date +%s.%N)
    children_cpu >"$RUNDIR/.c1"; c1=$(cat "$RUNDIR/.c1")
    WSB_CLI=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')
    WSB_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    if [ "$WSB_RC" -eq 2 ]; then
        cat "$out.err" >&2
        die "wsbench rejected its command line (build/wsbench $*): has its CLI changed?"
    fi
}

# CPU seconds that neither the server nor wsbench used (other processes on
# the machine, and this script), from machine ticks M0..M1.
other_cpu() {       # M0 M1 SERVER_CPU
    awk -v a="$1" -v b="$2" -v t="$CLK_TCK" -v s="$3" -v c="$WSB_CLI" \
        'BEGIN { o = (b - a) / t - s - c; if (o < 0) o = 0; printf "%.3f", o }'
}

flag_errors() {     # NAME WHAT FILE ERRS
    local name=$1 what=$2 file=$3 errs=$4 detail
    detail=$(sed -n 's/.*"errors": *{\([^}]*\)}.*/\1/p' "$file")
    if [[ $name == wsechod* ]]; then
        ERRORS_WSECHOD+=("$name $what: $errs errors ($detail); $file")
        warn ""
        warn "!!!!!! ERROR: wsechod $what: $errs wsbench errors ($detail) -- see $file"
        warn ""
    else
        ERRORS_PEERS+=("$name $what: $errs errors ($detail)")
    fi
}

# wsbench's message flags for a server: binary messages, or for the
# permessage-deflate servers text compressed both ways (--deflate).
msg_flags() {       # NAME [hold]
    case "$1" in
        *-deflate) echo "--deflate" ;;
        *) [ "${2:-}" = hold ] || echo "--binary" ;;
    esac
}

is_tls() { [[ $1 == *-tls || $1 == tls-raw ]]; }
is_raw() { [ "$1" = raw ] || [ "$1" = tls-raw ]; }

# The URL wsbench drives the server NAME at (raw floors: --raw blocks).
server_url() {      # NAME -> URL
    case "$1" in
        raw) echo "tcp://127.0.0.1:$CUR_PORT" ;;
        tls-raw) echo "tls://127.0.0.1:$CUR_PORT" ;;
        *-tls) echo "wss://127.0.0.1:$CUR_PORT/websocket" ;;
        *) echo "ws://127.0.0.1:$CUR_PORT/websocket" ;;
    esac
}

sizes_of() {        # NAME -> the message sizes of its matrix
    if is_tls "$1"; then echo "$TLS_SIZES"; else echo "$SIZES"; fi
}

echo_run() {        # NAME SIZE CONNS PIPE RUN
    local name=$1 size=$2 conns=$3 pipe=$4 run=$5 out k0 k1 m0 m1 msgs rate errs cpu other args
    out=$RUNDIR/$name-s$size-c$conns-p$pipe-r$run.json
    if is_raw "$name"; then
        args=(--raw -t 1 -c "$conns" -s "$size" -p "$pipe" -d "$DURATION" --timeout "$WSBENCH_TIMEOUT" --json "$(server_url "$name")")
    else
        args=(-t 1 -c "$conns" -s "$size" -p "$pipe" -d "$DURATION" $(msg_flags "$name") --timeout "$WSBENCH_TIMEOUT" --json "$(server_url "$name")")
    fi
    k0=$(tree_ticks "$CUR_SRV"); m0=$(machine_ticks)
    wsb "$(awk -v d="$DURATION" 'BEGIN { print int(d + 60) }')" "$out" "${args[@]}"
    m1=$(machine_ticks); k1=$(tree_ticks "$CUR_SRV")
    msgs=$(json_num "$out" messages); msgs=${msgs:-0}
    rate=$(json_num "$out" msgs_per_sec); rate=${rate:-0}
    errs=$(json_errors "$out")
    [ -s "$out" ] || errs=-1
    cpu=$(awk -v a="$k0" -v b="$k1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    other=$(other_cpu "$m0" "$m1" "$cpu")
    printf '%s\techo\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$size" "$conns" "$pipe" "$run" \
        "$msgs" "$rate" "$errs" "$cpu" "$WSB_CLI" "$WSB_WALL" "$WSB_RC" "$other" >>"$TSV"
    printf '   %-15s %6s B c%-4s p%-2s run %s/%s: %10.0f msg/s  srv %5.2f s CPU (%s s/M msgs)  cpu%% srv %3.0f wsbench %3.0f other %3.0f  errors %s\n' \
        "$name" "$size" "$conns" "$pipe" "$run" "$RUNS" "$rate" "$cpu" \
        "$(awk -v c="$cpu" -v m="$msgs" 'BEGIN { if (m > 0) printf "%.2f", c / m * 1e6; else printf "n/a" }')" \
        "$(awk -v c="$cpu" -v w="$WSB_WALL" 'BEGIN { printf "%.0f", 100 * c / w }')" \
        "$(awk -v c="$WSB_CLI" -v w="$WSB_WALL" 'BEGIN { printf "%.0f", 100 * c / w }')" \
        "$(awk -v c="$other" -v w="$WSB_WALL" 'BEGIN { printf "%.0f", 100 * c / w }')" "$errs"
    if [ "$errs" != 0 ] || { [ "$WSB_RC" != 0 ] && [[ $name == wsechod* ]]; }; then
        flag_errors "$name" "echo ${size} B c$conns p$pipe run $run (exit $WSB_RC)" "$out" "$errs"
    fi
}

# Handshakes; over TLS "full" (no session offered) or "resumed" (each
# connection offers the thread's last session ticket: --tls-resume).
connect_run() {     # NAME RUN [full|resumed]
    local name=$1 run=$2 kind=${3:-full} test=connect out k0 k1 m0 m1 hs rate errs cpu other resumed tlshs extra=()
    [ "$kind" = resumed ] && test=connect-resumed extra=(--tls-resume)
    out=$RUNDIR/$name-$test-r$run.json
    k0=$(tree_ticks "$CUR_SRV"); m0=$(machine_ticks)
    wsb "$(awk -v d="$DURATION" 'BEGIN { print int(d + 60) }')" "$out" \
        --connect-rate "${extra[@]}" -t 1 -c "$CR_CONNS" -s 64 $(msg_flags "$name") -d "$DURATION" \
        --timeout "$WSBENCH_TIMEOUT" --json "$(server_url "$name")"
    m1=$(machine_ticks); k1=$(tree_ticks "$CUR_SRV")
    # Completed cycles (handshake and echo); over TLS also the TLS handshakes
    # made and how many of them the server resumed.
    hs=$(json_num "$out" connections_completed); hs=${hs:-0}
    resumed=$(json_num "$out" tls_resumed); resumed=${resumed:-0}
    tlshs=$(json_num "$out" tls_handshakes); tlshs=${tlshs:-0}
    rate=$(json_num "$out" conns_per_sec); rate=${rate:-0}
    errs=$(json_errors "$out")
    [ -s "$out" ] || errs=-1
    cpu=$(awk -v a="$k0" -v b="$k1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    other=$(other_cpu "$m0" "$m1" "$cpu")
    printf '%s\t%s\t64\t%s\t1\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$test" "$CR_CONNS" "$run" \
        "$hs" "$rate" "$errs" "$cpu" "$WSB_CLI" "$WSB_WALL" "$WSB_RC" "$other" "$resumed" "$tlshs" >>"$TSV"
    printf '   %-15s handshakes%s c%s run %s/%s: %10.0f /s  srv %5.2f s CPU  cpu%% srv %3.0f wsbench %3.0f  errors %s\n' \
        "$name" "$(is_tls "$name" && echo " ($kind, $resumed of $tlshs resumed)")" "$CR_CONNS" "$run" "$RUNS" "$rate" "$cpu" \
        "$(awk -v c="$cpu" -v w="$WSB_WALL" 'BEGIN { printf "%.0f", 100 * c / w }')" \
        "$(awk -v c="$WSB_CLI" -v w="$WSB_WALL" 'BEGIN { printf "%.0f", 100 * c / w }')" "$errs"
    if [ "$errs" != 0 ] || { [ "$WSB_RC" != 0 ] && [[ $name == wsechod* ]]; }; then
        flag_errors "$name" "$test run $run (exit $WSB_RC)" "$out" "$errs"
    fi
}

# Heap per idle connection: server RSS before, open HOLD_N idle connections,
# wait until the server holds them all (its socket count) and 2 s more, RSS
# again, then stop wsbench (SIGINT: it closes them all cleanly).
hold_run() {        # NAME
    local name=$1 out rss0 rss1 s0 s i est allopen errs t0 tsample
    out=$RUNDIR/$name-hold.json
    if is_tls "$name"; then
        # OpenSSL fetches and caches its algorithms at the first handshake
        # (heap, once per process): not memory per connection.
        wsb 30 "$RUNDIR/$name-warmup.json" -t 1 -c 1 -d 500ms "$(server_url "$name")"
        sleep 0.5
    fi
    rss0=$(tree_rss "$CUR_SRV")
    s0=$(tree_sockets "$CUR_SRV")
    t0=$(date +%s.%N)
    timeout -s INT -k 30 150 "${PIN_CLI[@]}" build/wsbench --hold "$HOLD_N" $(msg_flags "$name" hold) -t 1 -d 120 --timeout 10s --json \
        "$(server_url "$name")" >"$out" 2>"$out.err" &
    CUR_CLI=$!
    for i in $(seq 1 180); do       # up to 90 s
        kill -0 "$CUR_CLI" 2>/dev/null || break
        s=$(tree_sockets "$CUR_SRV")
        [ $((s - s0)) -ge "$HOLD_N" ] && break
        sleep 0.5
    done
    sleep 2
    rss1=$(tree_rss "$CUR_SRV")
    tsample=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
    s=$(tree_sockets "$CUR_SRV")
    kill -INT "$CUR_CLI" 2>/dev/null      # timeout(1) passes it on to wsbench
    wait "$CUR_CLI"
    WSB_RC=$?
    CUR_CLI=""
    est=$(json_num "$out" established); est=${est:-0}
    allopen=$(json_num "$out" all_open_s); allopen=${allopen:-0}
    errs=$(json_errors "$out")
    [ -s "$out" ] || errs=-1
    # hold rows: msgs = established, rate = heap bytes per connection,
    # cpu = RSS before (KiB), cli = RSS after (KiB), wall = sample time (s)
    local per
    per=$(awk -v a="$rss0" -v b="$rss1" -v n="$HOLD_N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    printf '%s\thold\t0\t%s\t0\t1\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t0\n' "$name" "$HOLD_N" "$est" "$per" "$errs" \
        "$rss0" "$rss1" "$tsample" "$WSB_RC" >>"$TSV"
    log "   $(printf '%-15s' "$name") hold $HOLD_N: $est established (all by ${allopen} s; RSS sampled at ${tsample} s with $((s - s0)) server sockets), RSS $rss0 -> $rss1 KiB = $per B per connection, errors $errs"
    if awk -v a="$allopen" -v t="$tsample" 'BEGIN { exit !(a == 0 || a > t) }'; then
        warn "   WARNING: $name: not all $HOLD_N connections were open when RSS was sampled"
    fi
    if [ "$errs" != 0 ] || { [ "$WSB_RC" != 0 ] && [[ $name == wsechod* ]]; }; then
        flag_errors "$name" "hold $HOLD_N (exit $WSB_RC; established $est)" "$out" "$errs"
    fi
}

# A short check that the tutorial handler answers, and how: wsbench counts
# each "You said: ..." reply as a mismatch, so it can't measure throughput.
prefix_check() {
    local out=$RUNDIR/tornado-prefix-check.json mm
    wsb 30 "$out" -t 1 -c 10 -s 64 -d 1 --json -v "ws://127.0.0.1:$CUR_PORT/websocket"
    mm=$(json_num "$out" mismatch); mm=${mm:-0}
    PREFIX_NOTE="a 1 s check with 10 connections got $mm replies, each \"You said: \" + message, which wsbench counts as a mismatch (\"$(grep -m1 -o 'error: .*' "$out.err" 2>/dev/null | sed 's/^error: //')\") and answers by dropping the connection"
    log "   tornado-prefix: $PREFIX_NOTE"
}
PREFIX_NOTE=""

# ---------------------------------------------------------------- a server
# One round of one server: started afresh, each cell of its matrix run once
# (run RUN), stopped.  The first round also measures the heap per idle
# connection, on the freshly started server before any other test.
bench_round() {     # NAME RUN [MATRIX_ONLY]
    local name=$1 run=$2 only=${3:-} s c p
    [ "$name" = tornado-prefix ] && [ "$run" -gt 1 ] && return
    log ""
    log "== $(server_label "$name") (round $run of $RUNS)"
    start_server "$name" || { skip "$name" "did not start in round $run (see $RUNDIR/server-$name.log)"; return; }
    if ! is_raw "$name" && [ -z "$only" ] && [ "$run" = 1 ]; then
        hold_run "$name"
    fi
    if [ "$name" = tornado-prefix ]; then
        prefix_check
        stop_server
        return
    fi
    if ! is_raw "$name"; then
        connect_run "$name" "$run"
        is_tls "$name" && connect_run "$name" "$run" resumed
    fi
    for s in $(sizes_of "$name"); do
        for c in $CONNS; do
            for p in $PIPES; do
                if ! kill -0 "$CUR_SRV" 2>/dev/null; then
                    warn "!!!!!! $name died during the matrix (see $RUNDIR/server-$name.log)"
                    [[ $name == wsechod* ]] && ERRORS_WSECHOD+=("$name died during the matrix (round $run)")
                    CUR_SRV=""
                    return
                fi
                echo_run "$name" "$s" "$c" "$p" "$run"
            done
        done
    done
    stop_server
}

# RUNS rounds over the servers, interleaved: the order rotates from round to
# round, so that what else the machine did at some moment is spread over the
# servers rather than landing on one of them.
bench_rounds() {    # MATRIX_ONLY("" or matrix-only) NAME...
    local only=$1 r i k
    shift
    local names=("$@")
    k=${#names[@]}
    [ "$k" -gt 0 ] || return 0
    for r in $(seq 1 "$RUNS"); do
        for i in $(seq 0 $((k - 1))); do
            bench_round "${names[$(( (i + r - 1) % k ))]}" "$r" "$only"
        done
    done
}

# ---------------------------------------------------------------- tables
# agg NAME KIND SIZE CONNS PIPE COL: "median min max n" of column COL of the
# TSV (7 = msgs, 8 = rate, 9 = errors, 10 = srv cpu s, 11 = wsbench cpu s,
# 12 = wall s, 14 = other cpu s), or 0 = srv cpu seconds per million
# messages, -1 = srv cpu %, -2 = wsbench cpu %, -3 = other cpu %.
agg() {
    awk -F'\t' -v n="$1" -v k="$2" -v s="$3" -v c="$4" -v p="$5" -v col="$6" '
        $1 == n && $2 == k && $3 == s && $4 == c && $5 == p {
            if (col == 0) { if ($7 > 0) print $10 / $7 * 1e6 }
            else if (col == -1) { if ($12 > 0) print 100 * $10 / $12 }
            else if (col == -2) { if ($12 > 0) print 100 * $11 / $12 }
            else if (col == -3) { if ($12 > 0) print 100 * $14 / $12 }
            else print $col
        }' "$TSV" | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print ""; exit }
            med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print med, v[1], v[NR], NR
        }'
}

fmt_rate() {        # 12345.6 -> 12.3k
    awk -v v="$1" 'BEGIN {
        if (v == "") { printf "n/a"; exit }
        if (v >= 1e6) printf "%.2fM", v / 1e6
        else if (v >= 1e4) printf "%.0fk", v / 1e3
        else if (v >= 1e3) printf "%.1fk", v / 1e3
        else printf "%.0f", v }'
}
fmt_cpu() {
    awk -v v="$1" 'BEGIN {
        if (v == "") { printf "n/a"; exit }
        if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.2f", v }'
}
size_name() {
    case "$1" in
        64) echo "64 B" ;; 4096) echo "4 KiB" ;; 65536) echo "64 KiB" ;;
        *) if [ $(($1 % 1024)) -eq 0 ]; then echo "$(($1 / 1024)) KiB"; else echo "$1 B"; fi ;;
    esac
}

# Servers that have echo rows, in table order.
echo_servers() {
    local n
    for n in "$@"; do
        awk -F'\t' -v n="$n" '$1 == n && $2 == "echo" { f = 1; exit } END { exit !f }' "$TSV" 2>/dev/null && echo "$n"
    done
}

short_name() {
    case "$1" in
        wsechod) echo "wsechod" ;; wsechod-w1) echo "wsechod w1 unpinned" ;; wsechod-w2) echo "wsechod w2 unpinned" ;;
        raw) echo "raw TCP" ;; lws) echo "libwebsockets" ;; gorilla) echo "gorilla" ;;
        node) echo "Node ws" ;; tornado) echo "Tornado" ;; tornado-prefix) echo "Tornado prefix" ;;
        wsechod-deflate) echo "wsechod deflate" ;; node-deflate) echo "Node ws deflate" ;;
        wsechod-tls) echo "wsechod" ;; tls-raw) echo "raw TLS" ;; node-tls) echo "Node ws" ;;
        websockets-tls) echo "Python websockets" ;;
    esac
}

# bound_mark NAME KIND S C P: "‡" when most of the cell's runs were
# wsbench-bound (BOUND_CLI, BOUND_SRV above)
bound_mark() {
    awk -F'\t' -v n="$1" -v k="$2" -v s="$3" -v c="$4" -v p="$5" -v bc="$BOUND_CLI" -v bs="$BOUND_SRV" '
        $1 == n && $2 == k && $3 == s && $4 == c && $5 == p && $12 > 0 {
            r++; if (100 * $11 / $12 >= bc && 100 * $10 / $12 < bs) b++ }
        END { if (r && b * 2 > r) printf "‡" }' "$TSV"
}

# cell_marks NAME S C P: "!" errors, "‡" wsbench-bound
cell_marks() {
    local e
    e=$(agg "$1" echo "$2" "$3" "$4" 9 | awk '{ print $3 }')
    [ -n "$e" ] && [ "$e" != 0 ] && printf '!'
    bound_mark "$1" echo "$2" "$3" "$4"
}

# The one sentence that says what the marks mean, under every table that has them.
MARKS_NOTE="! = that cell had wsbench errors; ‡ = wsbench-bound: in most of the cell's runs wsbench's core was ≥ $BOUND_CLI% busy and the server's < $BOUND_SRV%, so wsbench, not the server, set the rate"

# echo_table TITLE WHAT SERVERS...   WHAT = cpu | rate
echo_table() {
    local title=$1 what=$2 n s c p hdr sep row v m ratio raw_v ws_v
    shift 2
    local names=("$@")
    hdr="| size | conns | pipeline |"
    sep="|---:|---:|---:|"
    for n in "${names[@]}"; do hdr+=" $(short_name "$n") |"; sep+="---:|"; done
    # wsechod's CPU over its floor's: plain over raw TCP, wss over raw TLS.
    local with_ratio=0 ra="" rb=""
    if [[ " ${names[*]} " == *" raw "* ]] && [[ " ${names[*]} " == *" wsechod "* ]]; then
        ra=wsechod rb=raw
    elif [[ " ${names[*]} " == *" tls-raw "* ]] && [[ " ${names[*]} " == *" wsechod-tls "* ]]; then
        ra=wsechod-tls rb=tls-raw
    fi
    if [ "$what" = cpu ] && [ -n "$ra" ]; then
        with_ratio=1; hdr+=" wsechod / $(short_name "$rb") |"; sep+="---:|"
    fi
    echo "$title"
    echo
    echo "$hdr"
    echo "$sep"
    for s in $TABLE_SIZES; do
        for c in $CONNS; do
            for p in $PIPES; do
                row="| $(size_name "$s") | $c | $p |"
                for n in "${names[@]}"; do
                    if [ "$what" = cpu ]; then
                        v=$(agg "$n" echo "$s" "$c" "$p" 0)
                        m=$(cell_marks "$n" "$s" "$c" "$p")
                        [ -n "$v" ] && row+=" $(fmt_cpu "${v%% *}")$m |" || row+=" n/a |"
                    else
                        v=$(agg "$n" echo "$s" "$c" "$p" 8)
                        m=$(cell_marks "$n" "$s" "$c" "$p")
                        if [ -n "$v" ]; then
                            set -- $v
                            if [ "$4" -gt 1 ]; then
                                row+=" $(fmt_rate "$1")$m [$(fmt_rate "$2")–$(fmt_rate "$3")] |"
                            else
                                row+=" $(fmt_rate "$1")$m |"
                            fi
                        else
                            row+=" n/a |"
                        fi
                    fi
                done
                if [ $with_ratio -eq 1 ]; then
                    raw_v=$(agg "$rb" echo "$s" "$c" "$p" 0); ws_v=$(agg "$ra" echo "$s" "$c" "$p" 0)
                    if [ -n "$raw_v" ] && [ -n "$ws_v" ]; then
                        ratio=$(awk -v a="${ws_v%% *}" -v b="${raw_v%% *}" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else printf "n/a" }')
                    else
                        ratio="n/a"
                    fi
                    row+=" $ratio |"
                fi
                echo "$row"
            done
        done
    done
    echo
}

# CPU% of server and wsbench per cell, to see which side was the bottleneck.
load_table() {
    local n s c p row v w o
    local names=("$@")
    local hdr="| size | conns | pipeline |" sep="|---:|---:|---:|"
    for n in "${names[@]}"; do hdr+=" $(short_name "$n") |"; sep+="---:|"; done
    echo "$hdr"
    echo "$sep"
    for s in $TABLE_SIZES; do
        for c in $CONNS; do
            for p in $PIPES; do
                row="| $(size_name "$s") | $c | $p |"
                for n in "${names[@]}"; do
                    v=$(agg "$n" echo "$s" "$c" "$p" -1); w=$(agg "$n" echo "$s" "$c" "$p" -2)
                    o=$(agg "$n" echo "$s" "$c" "$p" -3)
                    if [ -n "$v" ]; then
                        row+=" $(awk -v a="${v%% *}" -v b="${w%% *}" -v c="${o%% *}" 'BEGIN { printf "%.0f / %.0f / %.0f", a, b, c }') |"
                    else
                        row+=" n/a |"
                    fi
                done
                echo "$row"
            done
        done
    done
    echo
}

# The two table cells of NAME's heap figure: " per connection | before → after |".
hold_cells() {
    local v per
    v=$(awk -F'\t' -v n="$1" '$1 == n && $2 == "hold" { print $7, $8, $9, $10, $11; exit }' "$TSV")
    if [ -z "$v" ]; then
        echo " n/a | n/a |"
        return
    fi
    set -- $v
    per=$(awk -v b="$2" 'BEGIN { if (b >= 10240) printf "%.1f KiB", b / 1024; else printf "%d B", b }')
    [ "$1" -lt "$HOLD_N" ] && per+=" (only $1 established)"
    [ "$3" != 0 ] && per+=" !"
    echo " $per | $4 → $5 KiB |"
}

server_table() {
    local n hs est rss0 rss1 v w row
    echo "| server | handshakes/s (median [min–max], $CR_CONNS cycling) | server CPU µs per handshake | CPU % server / wsbench | heap per idle connection ($HOLD_N held) | RssAnon before → after |"
    echo "|---|---:|---:|---:|---:|---:|"
    for n in "$@"; do
        awk -F'\t' -v n="$n" '$1 == n && $2 != "echo" { f = 1; exit } END { exit !f }' "$TSV" 2>/dev/null || continue
        row="| $(server_label "$n") |"
        v=$(agg "$n" connect 64 "$CR_CONNS" 1 8)
        if [ -n "$v" ]; then
            set -- $v
            row+=" $(fmt_rate "$1") [$(fmt_rate "$2")–$(fmt_rate "$3")] |"
            v=$(agg "$n" connect 64 "$CR_CONNS" 1 0)
            row+=" $(awk -v x="${v%% *}" 'BEGIN { printf "%.1f", x }') |"
            v=$(agg "$n" connect 64 "$CR_CONNS" 1 -1); w=$(agg "$n" connect 64 "$CR_CONNS" 1 -2)
            row+=" $(awk -v a="${v%% *}" -v b="${w%% *}" 'BEGIN { printf "%.0f / %.0f", a, b }')$(bound_mark "$n" connect 64 "$CR_CONNS" 1 | sed 's/^./ &/') |"
        else
            row+=" n/a | n/a | n/a |"
        fi
        row+=$(hold_cells "$n")
        echo "$row"
    done
    echo
}

# The wss servers' handshakes (full and resumed) and heap per idle TLS
# connection, with plain wsechod's heap beside when this run measured it.
tls_server_table() {
    local n v row k
    echo "| server | full handshakes/s (median [min–max]) | µs server CPU per full handshake | resumed handshakes/s | µs per resumed handshake | resumed (of all) | heap per idle TLS connection ($HOLD_N held) | RssAnon before → after |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for n in "$@"; do
        awk -F'\t' -v n="$n" '$1 == n { f = 1; exit } END { exit !f }' "$TSV" 2>/dev/null || continue
        row="| $(server_label "$n") |"
        for k in connect connect-resumed; do
            v=$(agg "$n" "$k" 64 "$CR_CONNS" 1 8)
            if [ -n "$v" ]; then
                set -- $v
                row+=" $(fmt_rate "$1")$(bound_mark "$n" "$k" 64 "$CR_CONNS" 1) [$(fmt_rate "$2")–$(fmt_rate "$3")] |"
                v=$(agg "$n" "$k" 64 "$CR_CONNS" 1 0)
                row+=" $(awk -v x="${v%% *}" 'BEGIN { printf "%.0f", x }') |"
            else
                row+=" n/a | n/a |"
            fi
        done
        v=$(awk -F'\t' -v n="$n" '$1 == n && $2 == "connect-resumed" { r += $15; h += $16 } END { if (h) printf "%.0f%%", 100 * r / h }' "$TSV")
        row+=" ${v:-n/a} |"
        row+=$(hold_cells "$n")
        echo "$row"
    done
    v=$(awk -F'\t' '$1 == "wsechod" && $2 == "hold" { print $8; exit }' "$TSV")
    [ -n "$v" ] && echo "| wsechod -w 1, plain ws:// (for comparison) | | | | | | $v B | |"
    echo
}

# ---------------------------------------------------------------- charts
# A chart is drawn from a data file that describes itself, so that
# --charts-from can draw it again without the run (or from figures copied out
# of a results table, as bench/charts/*.dat are).  '#' lines name it:
#   # title: TEXT          # ylabel: TEXT          # format: rate | cpu
# then tab-separated: a header row (size, conns, pipeline, then for each
# server its name and "marks"), and one row per cell: size label, connections,
# pipeline, then for each server its median ('-' = not measured) and its marks
# ('!', '‡' as in the tables; '.' = none).
chart_data() {      # WHAT(rate|cpu) DATFILE TITLE YLABEL SERVERS...
    local what=$1 dat=$2 title=$3 ylabel=$4 n s c p v m line
    shift 4
    {
        printf '# title: %s\n# ylabel: %s\n# format: %s\n' "$title" "$ylabel" "$what"
        line="size\tconns\tpipeline"
        for n in "$@"; do line+="\t$(short_name "$n")\tmarks"; done
        printf '%b\n' "$line"
        for s in $SIZES; do
            for c in $CONNS; do
                for p in $PIPES; do
                    line="$(size_name "$s")\t$c\t$p"
                    for n in "$@"; do
                        if [ "$what" = rate ]; then v=$(agg "$n" echo "$s" "$c" "$p" 8); else v=$(agg "$n" echo "$s" "$c" "$p" 0); fi
                        m=$(cell_marks "$n" "$s" "$c" "$p")
                        line+="\t${v%% *}"
                        [ -n "$v" ] || line+="-"
                        line+="\t${m:-.}"
                    done
                    printf '%b\n' "$line"
                done
            done
        done
    } >"$dat"
}

# Clustered bars on a log scale, one cluster per cell, one colour per server,
# each cell's marks drawn above its bar.  Sized to be read at the width of a
# README page (about 800 px): 1000 px wide, 16 pt text; white background, so
# that the black text stays readable on a dark page.
render_chart() {    # DATFILE OUTBASE -> OUTBASE.png and OUTBASE.svg
    local dat=$1 base=$2 title ylabel what hdr nser nrows i col x w xtics size conns pipe
    local colors=("#7f7f7f" "#1f5fbf" "#e8871e" "#2ca02c" "#d62728" "#8c5fbf" "#17becf" "#bcbd22")
    command -v gnuplot >/dev/null 2>&1 || { warn "gnuplot is not installed: no charts (scripts/bench-deps.sh tools)"; return 1; }
    title=$(sed -n 's/^# title: //p' "$dat")
    ylabel=$(sed -n 's/^# ylabel: //p' "$dat")
    what=$(sed -n 's/^# format: //p' "$dat")
    hdr=$(grep -v -m1 '^#' "$dat")
    nser=$(( ($(awk -F'\t' '{ print NF }' <<<"$hdr") - 3) / 2 ))
    [ "$nser" -ge 1 ] || { warn "$dat: no servers in its header row"; return 1; }
    nrows=0
    xtics=""
    while IFS=$'\t' read -r size conns pipe _; do
        xtics+="\"$size\\nc$conns\\np$pipe\" $nrows, "
        nrows=$((nrows + 1))
    done < <(grep -v '^#' "$dat" | tail -n +2)
    w=$(awk -v n="$nser" 'BEGIN { printf "%.4f", 0.84 / n }')
    local plot="plot"
    for i in $(seq 1 "$nser"); do
        col=$((2 + 2 * i))
        x=$(awk -v i="$i" -v n="$nser" -v w="$w" 'BEGIN { printf "%.4f", (i - 1 - (n - 1) / 2) * w }')
        plot+=" '$dat' using (\$0 + $x):$col:($w) with boxes lc rgb '${colors[$(( (i - 1) % ${#colors[@]} ))]}' title columnheader($col),"
        plot+=" '' using (\$0 + $x):(column($col) * 1.25):(strcol($((col + 1))) eq '.' ? '' : strcol($((col + 1)))) with labels font ',15' notitle,"
    done
    plot=${plot%,}
    local fmt="set format y '%g'"
    [ "$what" = rate ] && fmt="set format y '%.0s%c'"
    local script="
set datafile missing '-'
set datafile separator '\t'
set datafile commentschars '#'
set key autotitle columnheader
set label 2 \"$title\" at screen 0.5, screen 0.965 center
set ylabel \"$ylabel\"
set xlabel \"each cell: message size, c = connections, p = pipeline (messages in flight per connection)\" offset 0,-1.6
set label 1 \"‡ wsbench-bound: its core ≥ $BOUND_CLI% busy, the server's < $BOUND_SRV% (wsbench set the rate)    ! wsbench errors\" at screen 0.5, screen 0.04 center
set logscale y
set grid ytics
set style fill solid 0.9 border rgb 'black'
set xtics (${xtics%, }) scale 0
set key at screen 0.5, screen 0.93 center top horizontal maxcols 6 samplen 1.5
set tmargin 5.5
set bmargin 7.5
set xrange [-0.55:$nrows - 0.45]
set yrange [*:*]
set lmargin 10
$fmt
"
    gnuplot <<EOF 2>>"$GNUPLOT_LOG"
set terminal pngcairo size 1000,700 font 'sans,16' fontscale 0.75 background rgb 'white'
set output '$base.png'
$script
$plot
set terminal svg size 1000,700 fixed font 'sans,16' background rgb 'white'
set output '$base.svg'
replot
EOF
    [ -s "$base.png" ] && [ -s "$base.svg" ]
}

chart() {           # WHAT(rate|cpu) BASENAME TITLE YLABEL SERVERS...
    local what=$1 base=$2 title=$3 ylabel=$4
    shift 4
    chart_data "$what" "$OUT/$base.dat" "$title" "$ylabel" "$@"
    render_chart "$OUT/$base.dat" "$OUT/$base"
}

machine_line() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: *//')
    echo "$NCPU CPU(s) (nproc), $cpu, Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
}

# ---------------------------------------------------------------- main
if [ -n "$CHARTS_FROM" ]; then
    CHARTS_FROM=${CHARTS_FROM%/}
    drawn=0
    for dat in "$CHARTS_FROM"/*.dat; do
        [ -f "$dat" ] || continue
        render_chart "$dat" "${dat%.dat}" || die "could not draw $dat"
        log "compare.sh: drew ${dat%.dat}.png and ${dat%.dat}.svg"
        drawn=$((drawn + 1))
    done
    [ $drawn -gt 0 ] || die "--charts-from: no .dat files in $CHARTS_FROM"
    trap - EXIT
    exit 0
fi
if [ -n "$REPORT" ]; then
    # shellcheck disable=SC1091
    . "$REPORT/meta.sh"
    TSV=$OUT/runs-$STAMP.tsv
    RESULTS=$OUT/RESULTS-$STAMP.md
    [ -f "$TSV" ] || die "$TSV not found"
else
log "compare.sh: $(machine_line)"
log "compare.sh: $PIN_NOTE"
log "compare.sh: $RUNS run(s) of ${DURATION}s per cell, in rounds; sizes $SIZES B (wss: $TLS_SIZES B); connections $CONNS; pipeline $PIPES; hold $HOLD_N"
log "compare.sh: results in $RESULTS (raw runs $TSV, wsbench JSON in $RUNDIR/)"
: >"$TSV"
build_all

ORDER=()
for n in $SERVERS_ALL; do
    [[ " $SERVERS " == *" $n "* ]] || continue
    if [ -n "${AVAILABLE[$n]:-}" ]; then ORDER+=("$n"); fi
done
bench_rounds "" "${ORDER[@]}"

if [ $MULTI -eq 1 ] && [[ " $SERVERS " == *" wsechod "* ]]; then
    log ""
    log "== multi-worker: wsechod -w 1 and -w 2, NOT pinned (wsbench still on CPU 1):"
    log "   on a $NCPU-core machine the load generator shares the cores with the workers"
    bench_rounds matrix-only wsechod-w1 wsechod-w2
fi
T_END=$(date +%s)
ELAPSED=$((T_END - T_START))
declare -p RUNS DURATION QUICK SERVERS SIZES TLS_SIZES CONNS PIPES HOLD_N CR_CONNS PIN_NOTE ELAPSED \
    SKIPPED ERRORS_WSECHOD ERRORS_PEERS PREFIX_NOTE WSBENCH_TIMEOUT | sed 's/^declare -[-a-zA-Z]* //; s/^/declare -g /' \
    | sed 's/^declare -g \([A-Z_]*\)=(/declare -ga \1=(/' >"$RUNDIR/meta.sh"
fi

# ---------------------------------------------------------------- report
MAIN=()
for n in raw wsechod lws gorilla node tornado; do
    [ -n "$(echo_servers "$n")" ] && MAIN+=("$n")
done
DEFL=()
for n in wsechod wsechod-deflate node-deflate; do
    [ -n "$(echo_servers "$n")" ] && DEFL+=("$n")
done
MULTIS=()
for n in wsechod wsechod-w1 wsechod-w2; do
    [ -n "$(echo_servers "$n")" ] && MULTIS+=("$n")
done
TLS=()
for n in tls-raw wsechod-tls node-tls websockets-tls; do
    [ -n "$(echo_servers "$n")" ] && TLS+=("$n")
done
TABLE_SIZES=$SIZES

CHARTS=""
if [ ${#MAIN[@]} -gt 0 ]; then
    if chart rate "msgs-$STAMP" "Messages per second (median of $RUNS x ${DURATION}s; server on 1 core, binary messages; higher is better)" \
        "messages per second (log scale)" "${MAIN[@]}"; then
        CHARTS+="- messages per second: \`$OUT/msgs-$STAMP.png\`, \`$OUT/msgs-$STAMP.svg\`"$'\n'
    fi
    if chart cpu "cpu-$STAMP" "Server CPU seconds per million echoed messages (median; lower is better)" \
        "server CPU seconds per million messages (log scale)" "${MAIN[@]}"; then
        CHARTS+="- CPU seconds per million messages: \`$OUT/cpu-$STAMP.png\`, \`$OUT/cpu-$STAMP.svg\`"$'\n'
    fi
fi

{
    echo "# wsechod beside its peers — $(date '+%Y-%m-%d %H:%M %Z')"
    echo
    echo "Machine: $(machine_line)."
    echo "Pinning: $PIN_NOTE."
    echo "Load: build/wsbench, 1 thread, binary messages (raw TCP: \`--raw\` blocks), --timeout $WSBENCH_TIMEOUT;"
    echo "each cell is the median of $RUNS run(s) of ${DURATION}s. Full run took $((ELAPSED / 60)) min $((ELAPSED % 60)) s."
    echo "Command: \`bench/compare.sh --runs $RUNS --duration $DURATION$([ $QUICK -eq 1 ] && echo ' --quick')$([ "$SERVERS" != "$SERVERS_ALL" ] && echo " --servers ${SERVERS// /,}")\`"
    echo
    if [ ${#ERRORS_WSECHOD[@]} -gt 0 ]; then
        echo "## ⚠ WSECHOD HAD ERRORS"
        echo
        for e in "${ERRORS_WSECHOD[@]}"; do echo "- $e"; done
        echo
    else
        echo "Every wsbench run against wsechod had zero errors."
        echo
    fi
    if [ ${#SKIPPED[@]} -gt 0 ]; then
        echo "Skipped:"
        echo
        for e in "${SKIPPED[@]}"; do echo "- $e"; done
        echo
    fi
    if [ ${#MAIN[@]} -gt 0 ]; then
        echo_table "## Server CPU seconds per million echoed messages (median; lower is better)" cpu "${MAIN[@]}"
        echo "Server CPU: utime+stime+cutime+cstime of the server's whole process tree (/proc/PID/stat), after the run"
        echo "less before, divided by the messages wsbench counted. $MARKS_NOTE."
        echo
        echo_table "## Messages per second (median [min–max]; higher is better)" rate "${MAIN[@]}"
        echo "### CPU use during the echo runs: server % / wsbench % / everything else % of one core (median)"
        echo
        echo "\"Everything else\" is the machine's busy time (/proc/stat) less the server's and wsbench's: other"
        echo "processes on this shared machine (and the driver). Where it is high, that cell's rate is the less trustworthy."
        echo
        load_table "${MAIN[@]}"
    fi
    PLAIN_ROWS=$(server_table wsechod raw lws gorilla node tornado tornado-prefix wsechod-w1 wsechod-w2 \
        wsechod-deflate node-deflate)
    if [ "$(printf '%s\n' "$PLAIN_ROWS" | grep -c '^| ')" -gt 1 ]; then
    echo "## Handshakes and idle connections"
    echo
    printf '%s\n\n' "$PLAIN_ROWS"
    echo "Handshakes: \`wsbench --connect-rate -c $CR_CONNS\` (connect, handshake, one 64 B echo, close; repeat)."
    echo "Server CPU per handshake: the same server CPU as above, divided by the handshakes. ‡ = wsbench-bound, as above"
    echo "(wsbench's core ≥ $BOUND_CLI% busy, the server's < $BOUND_SRV%): the rate is wsbench's limit; compare the CPU µs per handshake."
    echo "Heap per idle connection: (RssAnon of the server's process tree with $HOLD_N idle connections open − RssAnon before) / $HOLD_N,"
    echo "measured on a freshly started server before any other test. RssAnon (/proc/PID/status) is anonymous resident memory:"
    echo "heap and stacks, not the shared library code that VmRSS also counts."
    echo
    if [ -n "$PREFIX_NOTE" ]; then
        echo "Tornado prefix (the tutorial's \`\"You said: \" + message\`): $PREFIX_NOTE."
        echo "Its echo throughput is therefore not measured; its heap figure is above; the pure-echo Tornado handler"
        echo "stands in for it in the echo tables (the same code path plus one string concatenation)."
        echo
    fi
    fi
    if [ ${#DEFL[@]} -gt 1 ]; then
        echo "## permessage-deflate (no context takeover)"
        echo
        echo "wsbench \`--deflate\`: text messages (printable ASCII of the pattern, which compresses to about 80 %),"
        echo "each compressed by wsbench and sent with RSV1, every echo inflated and compared; the servers compress"
        echo "every echo (wsechod \`--deflate-min-size 0\`, level 1; Node ws threshold 0, level 6). The wsechod column is"
        echo "the uncompressed baseline (binary messages, as above). Bytes on the wire and the takeover cells:"
        echo "bench/deflate_compare.py."
        echo
        echo_table "### Server CPU seconds per million echoed messages" cpu "${DEFL[@]}"
        echo_table "### Messages per second" rate "${DEFL[@]}"
        echo "$MARKS_NOTE."
        echo
    fi
    if [ ${#TLS[@]} -gt 0 ]; then
        TABLE_SIZES=$TLS_SIZES
        echo "## wss: the TLS matrix"
        echo
        echo "TLS 1.3 (wsbench's default; TLS_AES_256_GCM_SHA384), one ECDSA P-256 certificate from scripts/test-ca.sh; every server"
        echo "one process (wsechod \`-w 1\`), pinned as above. Raw TLS: build/tlsecho, the plain floor's I/O over OpenSSL,"
        echo "driven with \`wsbench --raw tls://\`."
        echo
        echo_table "### Server CPU seconds per million echoed messages over TLS (median; lower is better)" cpu "${TLS[@]}"
        echo_table "### Messages per second over TLS (median [min–max]; higher is better)" rate "${TLS[@]}"
        echo "$MARKS_NOTE."
        echo
        echo "### CPU use over TLS: server % / wsbench % / everything else % of one core (median)"
        echo
        load_table "${TLS[@]}"
        echo "### Handshakes and idle TLS connections"
        echo
        tls_server_table wsechod-tls node-tls websockets-tls
        echo "Handshakes: \`wsbench --connect-rate -c $CR_CONNS\` over wss (TCP connect, TLS handshake, upgrade, one 64 B echo, close;"
        echo "repeat); resumed: the same with \`--tls-resume\` (each connection offers its thread's last session ticket; the"
        echo "\"resumed\" column is the share the server accepted). ‡ as above."
        echo "Heap per idle TLS connection: as for plain, after one warm-up connection (OpenSSL's first handshake caches"
        echo "its algorithms on the heap, once per process)."
        echo
        TABLE_SIZES=$SIZES
    fi
    if [ ${#MULTIS[@]} -gt 1 ]; then
        echo "## wsechod with 1 and 2 workers (not pinned)"
        echo
        echo "The servers are not pinned here; wsbench stays on CPU 1. On this $NCPU-core machine the load generator"
        echo "shares the cores with the workers, so the 2-worker figures are what is left after wsbench's share."
        echo
        echo_table "### Messages per second" rate "${MULTIS[@]}"
        echo_table "### Server CPU seconds per million messages" cpu "${MULTIS[@]}"
        echo "$MARKS_NOTE."
        echo
        echo "### CPU use: server % / wsbench % / everything else % of one core"
        echo
        load_table "${MULTIS[@]}"
    fi
    if [ ${#ERRORS_PEERS[@]} -gt 0 ]; then
        echo "## Peer errors (wsbench's count; not wsechod's)"
        echo
        for e in "${ERRORS_PEERS[@]}"; do echo "- $e"; done
        echo
    fi
    if [ -n "$CHARTS" ]; then
        echo "## Charts"
        echo
        printf '%s' "$CHARTS"
        echo
    fi
    echo "Raw runs: \`$TSV\` (columns: server, test, size, conns, pipeline, run, messages, rate, errors,"
    echo "server CPU s, wsbench CPU s, wall s, wsbench exit, other CPU s, and on connect rows TLS handshakes resumed and made;"
    echo "hold rows: established, bytes/conn, errors, RssAnon before KiB, RssAnon after KiB, sample s)."
} >"$RESULTS"

log ""
cat "$RESULTS"
log ""
log "compare.sh: wrote $RESULTS in $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
if [ ${#ERRORS_WSECHOD[@]} -gt 0 ]; then
    warn ""
    warn "!!!!!! compare.sh: wsechod had wsbench errors in ${#ERRORS_WSECHOD[@]} run(s):"
    for e in "${ERRORS_WSECHOD[@]}"; do warn "!!!!!!   $e"; done
    exit 1
fi
exit 0
