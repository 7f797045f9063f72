#!/bin/sh
# deps.sh [GROUP...]: make sure the Debian packages wsechod needs are installed.
#
# Groups: build (compile and link wsechod), test (unit + integration tests),
# fuzz (libFuzzer targets), browser (headless Chromium for the page test),
# prometheus (a Prometheus server scraping --metrics-listen in its test; the
# test runs an instance of its own, the package's service is not used).
# With no group, build and test; with --packages, the packages named.
# With --optional first, a failure to
# install is reported and tolerated (the tests that need it then skip,
# saying why).
# Installs missing packages with apt-get when run as root or with sudo;
# otherwise prints the exact command and fails. When nothing is missing it
# runs one dpkg-query and exits (well under a second).
set -eu

pkgs_build="make gcc pkg-config libev-dev libb64-dev libssl-dev zlib1g-dev libdeflate-dev"
pkgs_test="check curl python3 python3-websockets python3-yaml nodejs npm valgrind mandoc haproxy util-linux"
pkgs_fuzz="clang libclang-rt-14-dev"
pkgs_browser="chromium"
pkgs_prometheus="prometheus"

optional=0
if [ "${1:-}" = "--optional" ]; then
    optional=1
    shift
fi

[ $# -eq 0 ] && set -- build test
want=""
# --packages P...: exactly these packages (scripts/bench-deps.sh uses it).
if [ "${1:-}" = "--packages" ]; then
    shift
    want="$*"
    set --
fi
for group in "$@"; do
    case "$group" in
        build) want="$want $pkgs_build" ;;
        test)  want="$want $pkgs_test" ;;
        fuzz)  want="$want $pkgs_fuzz" ;;
        browser) want="$want $pkgs_browser" ;;
        prometheus) want="$want $pkgs_prometheus" ;;
        *) echo "deps.sh: unknown group '$group' (build, test, fuzz, browser, prometheus)" >&2; exit 2 ;;
    esac
done

# npm comes with some Node.js builds from elsewhere, whose nodejs package
# conflicts with Debian's npm: any npm on PATH will do.
if command -v npm >/dev/null 2>&1; then
    want=$(echo "$want" | tr ' ' '\n' | grep -vx npm | tr '\n' ' ')
fi
# One dpkg-query for all of them; a package counts as present only when
# dpkg says "install ok installed" (unknown ones print nothing).
installed=$(dpkg-query -W -f='${Package} ${Status}\n' $want 2>/dev/null |
            awk '$2 == "install" && $3 == "ok" && $4 == "installed" { print $1 }')
missing=""
for p in $want; do
    case " $(echo $installed) " in
        *" $p "*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "deps.sh: missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
else
    echo "deps.sh: run as root:  apt-get update && apt-get install -y$missing" >&2
    [ $optional -eq 1 ] && exit 0
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty; update only when needed.
if ! $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1; then
    $sudo apt-get update -q >/dev/null 2>&1 || true
    if ! $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null; then
        if [ $optional -eq 1 ]; then
            echo "deps.sh: could not install optional packages:$missing (their tests will skip)" >&2
            exit 0
        fi
        exit 1
    fi
fi
echo "deps.sh: installed:$missing" >&2
