#!/bin/sh
# run.sh [-k SUBSTRING] [-v] [test_module.py[::test_func]]...
#
# Runs the wsechod integration tests against the real binary: $WSECHOD
# (default build/wsechod); SAN=1 for an ASan/UBSan build.  Called by
# `make integration` and `make test`.  Always /usr/bin/python3: Debian's
# python3-websockets belongs to it, not to a python3 earlier on PATH.
exec /usr/bin/python3 "$(dirname "$0")/runner.py" "$@"
