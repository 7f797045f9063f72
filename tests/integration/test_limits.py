"""Descriptor exhaustion, the connection limit, IPv6, the log file and
SIGUSR1 (issue: pre-fork server, limits and logs)."""
import os
import re
import signal
import socket
import tempfile
import threading
import time

import wse
from wse import OP_TEXT, RawWS, Server


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LowNofileServer(Server):
    """The server under prlimit(1): a hard limit of 64 descriptors (prlimit
    execs it, so the pid is the master's)."""

    def _argv(self):
        return ["prlimit", "--nofile=64:64", "--"] + super()._argv()


def test_emfile_backs_off_without_spinning_and_recovers():
    with LowNofileServer("-w", "1", workers=None) as srv:
        worker = srv.children()[0]
        conns = []
        # More connections than descriptors: the kernel completes them (the
        # backlog is large), the worker cannot accept them all.
        for _ in range(100):
            s = socket.create_connection((wse.HOST, srv.port), timeout=wse.scaled(5))
            conns.append(s)
        srv.wait_for_line(r"accept4 failed: Too many open files", 10)
        c0 = cpu_seconds(worker)
        t0 = time.monotonic()
        # CPU over a second of EMFILE: a fixed interval is what is measured here.
        threading.Event().wait(1.0)
        used = cpu_seconds(worker) - c0
        assert used < 0.3, f"worker used {used:.2f}s of CPU in {time.monotonic() - t0:.1f}s: it spins"
        assert len(srv.find_lines(r"accept4 failed")) == 1, "EMFILE logged more than once"
        for s in conns:
            s.close()
        # Descriptors free again: the worker accepts and serves.
        def serves():
            try:
                with RawWS(srv.port, timeout=2) as ws:
                    ws.send_text("back")
                    return ws.recv_message() == (OP_TEXT, b"back")
            except (OSError, wse.Closed):
                return False
        wse.wait_until(serves, wse.scaled(10), "the worker serving again after EMFILE")
        assert srv.find_lines(r"descriptor limit 64 per process")


def test_connection_limit_answers_503():
    with Server("-w", "1", "--max-connections", "2", workers=None) as srv:
        a = RawWS(srv.port)
        b = RawWS(srv.port)
        resp = wse.http_request(srv.port, wse.upgrade_request()[0])
        assert resp.status == 503, resp
        assert resp.closed
        a.send_text("a")
        assert a.recv_message() == (OP_TEXT, b"a")
        a.close()
        b.close()
        srv.wait_for_line(r"connection limit 2 reached", 5)


def test_ipv6_listener():
    if not socket.has_ipv6:
        raise wse.Skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        raise wse.Skip("no IPv6 loopback here")
    port = wse.free_port()
    with Server("-l", f"[::1]:{port}", port=port) as srv:
        with socket.create_connection(("::1", port), timeout=wse.scaled(5)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK"), data
        assert data.endswith(b"\r\n\r\nok\n"), data


def test_log_file_and_reopen_on_sigusr1():
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "wsechod.log")
        # Debug: a worker's line for each connection, to see where it lands.
        with Server("--log-file", log, "--log-level", "debug", ready=None) as srv:
            wse.wait_until(lambda: os.path.exists(log) and "serving" in open(log).read(),
                           wse.scaled(10), "the serving line in the log file")
            os.rename(log, log + ".1")
            srv.signal(signal.SIGUSR1)
            wse.wait_until(lambda: os.path.exists(log) and "log file reopened" in open(log).read(),
                           wse.scaled(10), "the master writing to the new file")
            # Workers reopened too: their next line lands in the new file.
            with RawWS(srv.port) as ws:
                ws.send_text("x")
                ws.recv_message()
            wse.wait_until(lambda: "open /websocket" in open(log).read(), wse.scaled(10),
                           "a worker's line in the new file")
            assert "open /websocket" not in open(log + ".1").read()


def flood_accounting(srv, line_rx, what, sent):
    """Waits until every one of the sent lines is either in the log or
    counted by a "... and N more WHAT lines" summary; returns (written,
    summaries)."""
    summary_rx = rf"\.\.\. and (\d+) more {re.escape(what)} lines? in the last [\d.]+ s"

    def accounted():
        written = len(srv.find_lines(line_rx))
        held = [int(m.group(1)) for m in srv.find_lines(summary_rx)]
        return (written, held) if written + sum(held) >= sent else None

    # The worker writes a summary within two heartbeats of its window's end.
    written, held = wse.wait_until(accounted, wse.scaled(10), f"{sent} {what} lines accounted for")
    assert written + sum(held) == sent, f"{written} written + {held} summarised != {sent}"
    return written, held


def test_connection_limit_flood_is_logged_as_a_burst_and_a_summary():
    n = 200
    with Server("-w", "1", "--max-connections", "1", workers=None) as srv:
        with RawWS(srv.port) as ws:
            t0 = time.monotonic()
            for _ in range(n):
                resp = wse.http_request(srv.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert resp.status == 503, resp
            seconds = time.monotonic() - t0
            written, held = flood_accounting(srv, r"connection limit 1 reached: answering 503",
                                             "connection limit", n)
            assert held and written <= 10 * (int(seconds) + 2), (written, held, seconds)
            # The one connection inside the limit was not disturbed.
            ws.send_text("still here")
            assert ws.recv_message() == (OP_TEXT, b"still here")
