#!/bin/sh
# bench-deps.sh [GROUP...]: make sure what bench/compare.sh needs is installed.
#
# Groups (with none, all of them):
#   tools    gnuplot-nox (charts), util-linux (taskset)
#   tornado  python3-tornado (the Tornado echo peer, run with /usr/bin/python3)
#   go       golang-go, golang-github-gorilla-websocket-dev (the gorilla peer)
#   lws      libwebsockets-dev, pkg-config (the libwebsockets peer)
#   node     nodejs, npm, then the pinned `ws` in bench/peers/node_ws/
#   deflate  libdeflate-dev (also a build dependency: scripts/deps.sh build)
#   tls      openssl, libssl-dev (build/tlsecho, the test CA), python3-websockets
#            (the Python wss peer); the Node wss peer is the node group's ws
# Missing Debian packages are installed by scripts/deps.sh --packages (as root
# or with sudo; otherwise it prints the exact command and fails).
set -eu

pkgs_tools="gnuplot-nox util-linux"
pkgs_tornado="python3 python3-tornado"
pkgs_go="golang-go golang-github-gorilla-websocket-dev"
pkgs_lws="pkg-config libwebsockets-dev"
pkgs_node="nodejs npm"
pkgs_deflate="pkg-config libdeflate-dev"
pkgs_tls="openssl libssl-dev python3 python3-websockets"

[ $# -eq 0 ] && set -- tools tornado go lws node deflate tls
want=""
node=0
for group in "$@"; do
    case "$group" in
        tools)   want="$want $pkgs_tools" ;;
        tornado) want="$want $pkgs_tornado" ;;
        go)      want="$want $pkgs_go" ;;
        lws)     want="$want $pkgs_lws" ;;
        node)    want="$want $pkgs_node"; node=1 ;;
        deflate) want="$want $pkgs_deflate" ;;
        tls)     want="$want $pkgs_tls" ;;
        *) echo "bench-deps.sh: unknown group '$group' (tools, tornado, go, lws, node, deflate, tls)" >&2; exit 2 ;;
    esac
done

# nodejs may come from elsewhere than Debian (a node and npm on PATH will do).
if [ $node -eq 1 ] && command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    want=$(echo "$want" | sed 's/ nodejs//; s/ npm//')
fi

# The Debian part is scripts/deps.sh's: the same check and install.
if [ -n "$(echo $want)" ]; then
    sh "$(dirname "$0")/deps.sh" --packages $want
fi

# The Node peer's `ws`, at the exact version pinned in its package.json.
if [ $node -eq 1 ]; then
    dir=$(cd "$(dirname "$0")/.." && pwd)/bench/peers/node_ws
    want_ws=$(sed -n 's/.*"ws": *"\([^"]*\)".*/\1/p' "$dir/package.json")
    have_ws=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/ws/package.json" 2>/dev/null || true)
    if [ "$have_ws" != "$want_ws" ]; then
        echo "bench-deps.sh: npm install ws@$want_ws in bench/peers/node_ws" >&2
        (cd "$dir" && npm install --no-audit --no-fund --silent >/dev/null)
    fi
fi
exit 0
