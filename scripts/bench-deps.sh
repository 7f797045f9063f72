#!/bin/sh
# bench-deps.sh [GROUP...]: make sure what bench/compare.sh needs is installed.
#
# Groups (with none, all of them):
#   tools    gnuplot-nox (charts), util-linux (taskset)
#   tornado  python3-tornado (the Tornado echo peer, run with /usr/bin/python3)
#   go       golang-go, golang-github-gorilla-websocket-dev (the gorilla peer)
#   lws      libwebsockets-dev, pkg-config (the libwebsockets peer)
#   node     nodejs, npm, then the pinned `ws` in bench/peers/node_ws/
# Installs missing Debian packages with apt-get when run as root or with sudo;
# otherwise prints the exact command and fails. When nothing is missing it runs
# one dpkg-query per package and exits. The same style as scripts/deps.sh.
set -eu

pkgs_tools="gnuplot-nox util-linux"
pkgs_tornado="python3 python3-tornado"
pkgs_go="golang-go golang-github-gorilla-websocket-dev"
pkgs_lws="pkg-config libwebsockets-dev"
pkgs_node="nodejs npm"

[ $# -eq 0 ] && set -- tools tornado go lws node
want=""
node=0
for group in "$@"; do
    case "$group" in
        tools)   want="$want $pkgs_tools" ;;
        tornado) want="$want $pkgs_tornado" ;;
        go)      want="$want $pkgs_go" ;;
        lws)     want="$want $pkgs_lws" ;;
        node)    want="$want $pkgs_node"; node=1 ;;
        *) echo "bench-deps.sh: unknown group '$group' (tools, tornado, go, lws, node)" >&2; exit 2 ;;
    esac
done

# nodejs may come from elsewhere than Debian (a node and npm on PATH will do).
if [ $node -eq 1 ] && command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    want=$(echo "$want" | sed 's/ nodejs//; s/ npm//')
fi

# A package counts as present only when dpkg says "install ok installed".
missing=""
for p in $want; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        "install ok installed") ;;
        *) missing="$missing $p" ;;
    esac
done

if [ -n "$missing" ]; then
    echo "bench-deps.sh: missing Debian packages:$missing" >&2
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo"
    else
        echo "bench-deps.sh: run as root:  apt-get update && apt-get install -y$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # The package lists of a fresh machine are empty; update only when needed.
    $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
    }
    echo "bench-deps.sh: installed:$missing" >&2
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
