#!/bin/bash
# tls_matrix.sh [--runs N] [--duration S] [--hold N] [--servers LIST]
#
# The wss matrix of bench/README.md ("wss"): for wsechod over --tls-listen,
# the raw TLS floor (build/tlsecho) and the peers available here (Node ws
# over https, Python websockets with ssl):
#   - echo, 64 B and 4 KiB, one connection, pipeline 1: messages/s and server
#     CPU (utime+stime of its process tree, /proc) per message;
#   - handshakes/s with --connect-rate -c 50, full and resumed (tickets);
#   - heap per idle TLS connection: RssAnon of the server tree before and
#     after `wsbench --hold N` (all N open, 2 s more), divided by N; the
#     plain wsechod figure beside it.
# One server worker (-w 1), TLS 1.3, an ECDSA P-256 certificate from
# scripts/test-ca.sh (made in a temporary directory, never kept).  Output: a
# markdown table on stdout, the raw figures in $TMP/tls-matrix.tsv.
set -u
cd "$(dirname "$0")/.."
RUNS=2 DURATION=5 HOLD=2000 SERVERS="wsechod tlsecho node websockets"
while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --hold) HOLD=$2; shift ;;
        --servers) SERVERS=${2//,/ }; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "tls_matrix.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
make -s build/wsechod build/wsbench build/tlsecho >/dev/null || exit 1
TMP=$(mktemp -d)
trap 'stop_server; rm -rf "$TMP"' EXIT
sh scripts/test-ca.sh "$TMP" >/dev/null 2>&1 || { echo "test-ca.sh failed" >&2; exit 1; }
CERT=$TMP/ec.pem KEY=$TMP/ec.key
TSV=$TMP/tls-matrix.tsv
SRV=""

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

tree_pids() {
    local p=$1 c
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}
tree_cpu() {        # clock ticks, utime + stime of the tree
    local sum=0 p f
    for p in $(tree_pids "$1"); do
        f=$(awk '{ print $14 + $15 }' /proc/"$p"/stat 2>/dev/null) && sum=$((sum + f))
    done
    echo $sum
}
tree_rss() {
    local sum=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^RssAnon:/ { print $2 }' /proc/"$p"/status 2>/dev/null) && sum=$((sum + ${v:-0}))
    done
    echo $sum
}
tree_sockets() {
    local n=0 p
    for p in $(tree_pids "$1"); do
        n=$((n + $(ls -l /proc/"$p"/fd 2>/dev/null | grep -c socket:)))
    done
    echo $n
}
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    return 1
}
stop_server() {
    [ -n "$SRV" ] || return 0
    kill "$SRV" 2>/dev/null
    wait "$SRV" 2>/dev/null
    SRV=""
}
start_server() {    # NAME PORT [PLAINPORT]
    case $1 in
        wsechod) build/wsechod -w 1 -l "127.0.0.1:$3" --tls-listen "127.0.0.1:$2" \
                     --tls-cert "$CERT" --tls-key "$KEY" --stats-name "tlsm.$2" \
                     --log-level warn 2>>"$TMP/server.log" & ;;
        tlsecho) build/tlsecho "$2" "$CERT" "$KEY" 2>>"$TMP/server.log" & ;;
        node) NODE_PATH=$PWD/tests/integration/node/node_modules:$PWD/bench/peers/node_ws/node_modules \
                  node bench/peers/node_ws/echo_tls.js "$2" "$CERT" "$KEY" 2>>"$TMP/server.log" & ;;
        websockets) /usr/bin/python3 bench/peers/websockets_tls_echo.py "$2" "$CERT" "$KEY" \
                        2>>"$TMP/server.log" & ;;
    esac
    SRV=$!
    wait_port "$2"
}
url() { [ "$1" = tlsecho ] && echo "tls://127.0.0.1:$2" || echo "wss://127.0.0.1:$2/websocket"; }
jnum() { python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))" "$1" "$2" 2>/dev/null; }

echo_cell() {       # NAME SIZE
    local name=$1 size=$2 p q c0 c1 out rate msgs
    p=$(port); q=$(port)
    start_server "$name" "$p" "$q" || return
    out=$TMP/$name-$size.json
    local raw=(); [ "$name" = tlsecho ] && raw=(--raw)
    build/wsbench "${raw[@]}" -c 1 -d 1 -s "$size" "$(url "$name" "$p")" >/dev/null 2>&1   # warm-up
    c0=$(tree_cpu "$SRV")
    build/wsbench "${raw[@]}" -c 1 -p 1 -d "$DURATION" -s "$size" --json "$(url "$name" "$p")" >"$out" 2>/dev/null
    c1=$(tree_cpu "$SRV")
    msgs=$(jnum "$out" messages); rate=$(jnum "$out" msgs_per_sec)
    printf '%s\techo\t%s\t%s\t%s\t%s\n' "$name" "$size" "$msgs" "$rate" \
        "$(awk -v a="$c0" -v b="$c1" -v m="$msgs" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "%.2f", m ? (b - a) / hz * 1e6 / m : 0 }')" >>"$TSV"
    stop_server
}

handshake_cell() {  # NAME full|resumed
    local name=$1 kind=$2 p q c0 c1 out n
    [ "$name" = tlsecho ] && return
    p=$(port); q=$(port)
    start_server "$name" "$p" "$q" || return
    out=$TMP/$name-hs-$kind.json
    local extra=(); [ "$kind" = resumed ] && extra=(--tls-resume)
    c0=$(tree_cpu "$SRV")
    build/wsbench --connect-rate "${extra[@]}" -c 50 -d "$DURATION" --json "$(url "$name" "$p")" >"$out" 2>/dev/null
    c1=$(tree_cpu "$SRV")
    n=$(jnum "$out" connections_completed)
    printf '%s\ths-%s\t0\t%s\t%s\t%s\n' "$name" "$kind" "$n" "$(jnum "$out" conns_per_sec)" \
        "$(awk -v a="$c0" -v b="$c1" -v m="$n" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "%.1f", m ? (b - a) / hz * 1e6 / m : 0 }')" >>"$TSV"
    stop_server
}

hold_cell() {       # NAME [plain]
    local name=$1 mode=${2:-tls} p q r0 r1 s0 cli u
    [ "$name" = tlsecho ] && return
    p=$(port); q=$(port)
    start_server "$name" "$p" "$q" || return
    u=$(url "$name" "$p"); [ "$mode" = plain ] && u="ws://127.0.0.1:$q/websocket"
    build/wsbench -c 1 -d 1 "$u" >/dev/null 2>&1      # first handshake: code paged in
    sleep 1
    r0=$(tree_rss "$SRV"); s0=$(tree_sockets "$SRV")
    build/wsbench --hold "$HOLD" -d 120 --timeout 10s "$u" >/dev/null 2>&1 &
    cli=$!
    for _ in $(seq 1 240); do
        [ $(( $(tree_sockets "$SRV") - s0 )) -ge "$HOLD" ] && break
        sleep 0.25
    done
    sleep 2
    r1=$(tree_rss "$SRV")
    kill -INT "$cli"; wait "$cli" 2>/dev/null
    printf '%s\thold-%s\t0\t%s\t%s\t0\n' "$name" "$mode" "$HOLD" \
        "$(awk -v a="$r0" -v b="$r1" -v n="$HOLD" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')" >>"$TSV"
    stop_server
}

available() {
    case $1 in
        node) command -v node >/dev/null &&
              { [ -f tests/integration/node/node_modules/ws/package.json ] ||
                [ -f bench/peers/node_ws/node_modules/ws/package.json ]; } ;;
        websockets) /usr/bin/python3 -c 'import websockets' 2>/dev/null ;;
        *) return 0 ;;
    esac
}

for name in $SERVERS; do
    available "$name" || { echo "skipping $name: not installed" >&2; continue; }
    for r in $(seq 1 "$RUNS"); do
        echo_cell "$name" 64; echo_cell "$name" 4096
        handshake_cell "$name" full; handshake_cell "$name" resumed
    done
    hold_cell "$name"
    [ "$name" = wsechod ] && hold_cell wsechod plain
done

echo "| server | 64 B: msg/s, server µs/msg | 4 KiB: msg/s, server µs/msg | full handshakes/s, µs each | resumed handshakes/s, µs each | heap per idle connection ($HOLD held) |"
echo "| --- | --- | --- | --- | --- | --- |"
for name in $SERVERS; do
    awk -F'\t' -v n="$name" '
        $1 != n { next }
        $2 == "echo" { e[$3] = e[$3] (e[$3] ? "; " : "") sprintf("%.0f k, %s", $5 / 1000, $6) }
        $2 == "hs-full" { f = f (f ? "; " : "") sprintf("%.0f, %s", $5, $6) }
        $2 == "hs-resumed" { r = r (r ? "; " : "") sprintf("%.0f, %s", $5, $6) }
        $2 == "hold-tls" { h = $5 " B" }
        $2 == "hold-plain" { hp = " (plain: " $5 " B)" }
        END { if (e[64] != "" || f != "")
                printf "| %s | %s | %s | %s | %s | %s%s |\n", n, e[64], e[4096], f ? f : "-", r ? r : "-", h ? h : "-", hp }' "$TSV"
done
