#!/bin/sh
# npm-deps.sh DIR: installs the npm packages pinned by DIR/package-lock.json
# into DIR/node_modules with `npm ci`, unless they are there already (one
# file compare when nothing changed).  Used for the Node.js test client
# (tests/integration/node).  A failure is reported and tolerated: the Node
# test then skips and says why.
set -u
dir=$1
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.wsechod-lock"; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "npm-deps.sh: npm is missing (scripts/deps.sh installs it): the Node test will skip" >&2
    exit 0
fi
if npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null; then
    cp "$dir/package-lock.json" "$dir/node_modules/.wsechod-lock"
    echo "npm-deps.sh: installed the packages of $dir/package-lock.json" >&2
else
    echo "npm-deps.sh: npm ci in $dir failed: the Node test will skip" >&2
fi
exit 0
