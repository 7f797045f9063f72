#!/bin/sh
# valgrind-check.sh: the unit suites and the server under valgrind (memcheck,
# full leak check).  Run by `make valgrind`; slower than `make test SAN=1`,
# which covers the same ground with ASan + UBSan on every run.
#   1. every Check suite in one process (CK_FORK=no), any error fails;
#   2. the server under valgrind through a subset of the integration tests:
#      any "==PID==" line valgrind prints fails the test that saw it.
set -eu
cd "$(dirname "$0")/.."
fail=0
for t in build/tests/test_*; do
    case "$t" in *.o|*.d) continue ;; esac
    printf '%s: ' "$t"
    if CK_FORK=no valgrind -q --error-exitcode=9 --leak-check=full "$t" > /tmp/wse-vg.$$ 2>&1; then
        tail -n 1 /tmp/wse-vg.$$
    else
        echo "FAILED under valgrind"; cat /tmp/wse-vg.$$; fail=1
    fi
done
rm -f /tmp/wse-vg.$$
wrapper=$(mktemp)
cat > "$wrapper" <<WRAP
#!/bin/sh
exec valgrind -q --leak-check=full --show-leak-kinds=definite "$(pwd)/build/wsechod" "\$@"
WRAP
chmod +x "$wrapper"
# Timeouts scale like a sanitizer build's (SAN=1 makes the harness patient).
WSECHOD=$wrapper SAN=1 tests/integration/run.sh test_echo.py test_protocol.py test_handshake.py test_deflate.py \
    test_stats.py || fail=1
rm -f "$wrapper"
exit $fail
