"""Workers are checked for leaks in sanitizer builds.

Workers leave with _exit, which skips LeakSanitizer's exit-time check; a
sanitizer build runs the check itself before _exit (src/worker.c).  These
tests make every worker lose one block on purpose (WSECHOD_TEST_LEAK=1, a
hook compiled only into sanitizer builds) and stop the server by each normal
path: the report of every worker must reach the server's output, and the
worker must exit with the sanitizer's exit code.  If the check were skipped,
or its report lost, they fail.  In a release build the hook must not exist.
"""
import asyncio
import re
import signal

import wse
from wse import OP_TEXT, RawWS, Server

LEAK_BYTES = 4242           # WSE_TEST_LEAK_BYTES in src/worker.c
SAN_EXIT = 66               # the exitcode wse.Server puts in ASAN_OPTIONS


def require_san():
    if not wse.SAN:
        raise wse.Skip("sanitizer build only (SAN=1): the release binary has no leak check")


def leaky_server(*args):
    # Not a context manager: its exit would (rightly) fail on the reports
    # these tests provoke.  They check the output themselves.
    return Server(*args, env={"WSECHOD_TEST_LEAK": "1"})


def worker_pids(srv):
    pids = sorted(srv.children())
    assert len(pids) == 2, f"expected 2 workers, found {pids}"
    return pids


def echo(srv):
    with RawWS(srv.port) as ws:
        ws.echo(OP_TEXT, b"served before the leak check")


def assert_leak_reported(srv, pids):
    """Every worker in pids reported exactly the planted leak (and nothing
    else), and the master saw it exit with the sanitizer's exit code."""
    for pid in pids:
        m = srv.wait_for_line(rf"worker \d+ \(pid {pid}\b.* (exited with status \d+|killed by .*)", 10)
        assert m.group(1) == f"exited with status {SAN_EXIT}", \
            f"worker {pid} {m.group(1)}, not with the sanitizer's exit code:\n" + srv.output()
        assert srv.find_lines(rf"^=={pid}==ERROR: LeakSanitizer: detected memory leaks"), \
            f"no LeakSanitizer report from worker {pid}:\n" + srv.output()
    leaks = srv.find_lines(r"^(Direct|Indirect) leak of (\d+) byte")
    planted = [m for m in leaks if m.group(1) == "Direct" and int(m.group(2)) == LEAK_BYTES]
    assert len(planted) >= len(pids) and len(planted) == len(leaks), \
        f"expected only the planted {LEAK_BYTES}-byte leaks:\n" + srv.output()
    others = srv.find_lines(r"ERROR: AddressSanitizer|runtime error:")
    assert not others, "unexpected sanitizer report:\n" + srv.output()
    # And the harness fails any ordinary test whose workers leak like this.
    try:
        srv.check_sanitizer()
    except AssertionError:
        pass
    else:
        raise AssertionError("the harness let a worker's leak report pass")


def test_sigterm_stop_checks_workers_for_leaks():
    require_san()
    srv = leaky_server().start()
    try:
        pids = worker_pids(srv)
        echo(srv)
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(wse.scaled(10)) == 0, "master exit status after SIGTERM"
        assert_leak_reported(srv, pids)
    finally:
        srv.stop()


def test_sigquit_drain_checks_workers_for_leaks():
    require_san()
    srv = leaky_server("--drain-timeout", "1", "--close-spread", "0").start()
    try:
        pids = worker_pids(srv)
        with RawWS(srv.port) as ws:
            ws.echo(OP_TEXT, b"open through the drain")
            srv.signal(signal.SIGQUIT)
            code, _, _ = ws.expect_close(wse.scaled(5))
            assert code == 1001, code
            ws.send_close(1001)
        assert srv.wait_exit(wse.scaled(10)) == 0, "master exit status after SIGQUIT"
        assert_leak_reported(srv, pids)
    finally:
        srv.stop()


def test_reload_drain_checks_old_workers_for_leaks():
    require_san()
    srv = leaky_server("--drain-timeout", "1", "--close-spread", "0").start()
    try:
        old = worker_pids(srv)
        echo(srv)
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"reload: generation 2 serving", 10, start=mark)
        # The old generation drains and leaves while the server keeps running.
        assert_leak_reported(srv, old)
        assert srv.proc.poll() is None, "the master left with its old workers"
        echo(srv)
    finally:
        srv.stop()


def test_release_binary_has_no_test_hook():
    if wse.SAN:
        raise wse.Skip("release build only: a sanitizer build carries the hook by design")
    with open(wse.binary(), "rb") as f:
        image = f.read()
    assert b"WSECHOD_TEST_LEAK" not in image, "the leak hook is compiled into the release binary"
    assert b"__lsan_do_leak_check" not in image, "the release binary calls LeakSanitizer"
