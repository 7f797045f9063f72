#!/bin/sh
# deps.sh [GROUP...]: make sure the Debian packages wsechod needs are installed.
#
# Groups: build (compile and link wsechod), test (unit + integration tests),
# fuzz (libFuzzer targets). With no group, build and test.
# Installs missing packages with apt-get when run as root or with sudo;
# otherwise prints the exact command and fails. When nothing is missing it
# runs one dpkg-query and exits (well under a second).
set -eu

pkgs_build="make gcc pkg-config libev-dev libb64-dev libssl-dev zlib1g-dev"
pkgs_test="check python3 python3-websockets nodejs valgrind mandoc"
pkgs_fuzz="clang libclang-rt-14-dev"

[ $# -eq 0 ] && set -- build test
want=""
for group in "$@"; do
    case "$group" in
        build) want="$want $pkgs_build" ;;
        test)  want="$want $pkgs_test" ;;
        fuzz)  want="$want $pkgs_fuzz" ;;
        *) echo "deps.sh: unknown group '$group' (build, test, fuzz)" >&2; exit 2 ;;
    esac
done

# A package counts as present only when dpkg says "install ok installed".
missing=""
for p in $want; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        "install ok installed") ;;
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
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty; update only when needed.
$sudo apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
}
echo "deps.sh: installed:$missing" >&2
