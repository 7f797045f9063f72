"""
--metrics-listen: GET /metrics from a process of its own (src/metrics.c).

The text is `wsechod stats --prometheus` plus wsechod_build_info and
wsechod_start_time_seconds; HEAD has no body; other methods get 405 with
Allow, other paths 404; a slow request is closed at the timeout; more than
the connection cap are answered 503; stopped workers cannot stall it; the
master respawns it and rebinds it on reload; it never shares a WebSocket
port and holds no writable mapping of the segment.
"""
import json
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import time

import wse
from wse import HOST, OP_TEXT, RawWS, Server

TIMEOUT = 5.0           # WSE_METRICS_TIMEOUT
MAX_CONNS = 16          # WSE_METRICS_MAX_CONNS
EXTRA = re.compile(r"^(# (HELP|TYPE) )?wsechod_(build_info|start_time_seconds)\b")
READY = r"\[metrics pid (\d+)\] serving /metrics on (\S+)"


class MetricsServer(Server):
    """A Server with --metrics-listen on a free loopback port of its own."""

    def __init__(self, *args, **kw):
        self.mport = wse.free_port()
        super().__init__(*args, "--metrics-listen", f"{HOST}:{self.mport}", **kw)

    def start(self):
        super().start()
        m = self.wait_for_line(READY)
        self.metrics_pid = int(m.group(1))
        return self


def start_metrics_server(*args, **kw):
    """Another try when the two free ports happened to be one."""
    for attempt in range(3):
        srv = MetricsServer(*args, **kw)
        try:
            return srv.start()
        except wse.ServerError:
            srv.stop()
            if attempt == 2 or not any("overlaps" in l or "in use" in l for l in srv.lines):
                raise
    raise AssertionError("unreachable")


class running:
    def __init__(self, *args, **kw):
        self.args, self.kw = args, kw

    def __enter__(self):
        self.srv = start_metrics_server(*self.args, **self.kw)
        return self.srv

    def __exit__(self, et, ev, tb):
        return self.srv.__exit__(et, ev, tb)


def curl(port, *args, path="/metrics"):
    """(status, headers, body) of curl's request to 127.0.0.1:port."""
    p = subprocess.run(["curl", "-sS", "--max-time", str(wse.scaled(5)), "-D", "-", *args,
                        f"http://{HOST}:{port}{path}"], capture_output=True, timeout=wse.scaled(10))
    assert p.returncode == 0, f"curl: status {p.returncode}: {p.stderr.decode()}"
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def metrics_text(port):
    status, headers, body = curl(port)
    assert status == 200, (status, body)
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    assert int(headers["content-length"]) == len(body)
    return body.decode()


def cli_text(srv):
    p = subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}",
                        "--prometheus"], capture_output=True, text=True, timeout=wse.scaled(10))
    assert p.returncode == 0, p.stderr
    return p.stdout


def total(text, name, labels=""):
    """Sum of the samples of a metric whose labels include `labels`."""
    rx = re.compile(rf"^{name}(\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(m.group(2)) for m in rx.finditer(text) if labels in (m.group(1) or ""))


def echo_workload(port, clients, messages):
    for c in range(clients):
        ws = RawWS(port)
        for i in range(messages):
            payload = f"message {c}.{i}"
            ws.send_text(payload)
            assert ws.recv_message() == (OP_TEXT, payload.encode())
        ws.send_close(1000)
        ws.expect_close()
        ws.wait_tcp_close()
        ws.close()


def settle(srv, clients):
    """Closes are counted after the client saw them: wait until they are."""
    wse.wait_until(lambda: total(metrics_text(srv.mport), "wsechod_connections_closed_total",
                                 'cause="client"') == clients,
                   wse.scaled(10), "the closes counted")


def raw(port, data, timeout=10):
    """Sends data, reads to the server's close: (head, body) as bytes."""
    with socket.create_connection((HOST, port), timeout=wse.scaled(timeout)) as s:
        s.sendall(data)
        out = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, sep, body = bytes(out).partition(b"\r\n\r\n")
    assert sep, out
    return head.decode("latin-1"), body


def status_of(head):
    return int(head.split("\r\n")[0].split()[1])


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


# ---- the text ---------------------------------------------------------------

def test_text_is_the_cli_text_plus_build_info_and_start_time():
    with running() as srv:
        echo_workload(srv.port, clients=3, messages=7)
        settle(srv, 3)
        # No traffic from here on: both readers see the same counters.
        body = metrics_text(srv.mport)
        cli = cli_text(srv)
        lines = body.splitlines()
        extra = [l for l in lines if EXTRA.match(l)]
        rest = "".join(l + "\n" for l in lines if not EXTRA.match(l))
        assert rest == cli, "the endpoint's counters differ from `wsechod stats --prometheus`"
        assert total(body, "wsechod_messages_received_total") == 21
        assert total(body, "wsechod_messages_sent_total", 'type="text"') == 21

        version = subprocess.run([wse.binary(), "-V"], capture_output=True, text=True,
                                 timeout=10).stdout
        v, rev = re.fullmatch(r"wsechod (\S+) \((\S+)\)\n", version).groups()
        assert f'wsechod_build_info{{version="{v}",revision="{rev}"}} 1' in extra, extra
        info = json.loads(subprocess.run(
            [wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}", "--json"],
            capture_output=True, text=True, timeout=wse.scaled(10)).stdout)
        ms = info["header"]["start_time_ms"]
        assert f"wsechod_start_time_seconds {ms // 1000}.{ms % 1000:03d}" in extra, extra
        assert "# TYPE wsechod_build_info gauge" in extra
        assert "# TYPE wsechod_start_time_seconds gauge" in extra
        assert abs(ms / 1000 - time.time()) < 600


def test_head_has_the_headers_of_get_and_no_body():
    with running() as srv:
        get_status, get_headers, get_body = curl(srv.mport)
        head, body = raw(srv.mport, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(head) == 200 and get_status == 200
        assert body == b"", body[:100]
        assert int(header(head, "content-length")) == len(get_body) > 1000
        assert header(head, "connection") == "close"
        p = subprocess.run(["curl", "-sS", "-I", "-o", "/dev/null", "-w",
                            "%{http_code} %{size_download}", f"http://{HOST}:{srv.mport}/metrics"],
                           capture_output=True, text=True, timeout=wse.scaled(10))
        assert p.stdout == "200 0", (p.stdout, p.stderr)


def test_other_methods_get_405_with_allow_and_other_paths_404():
    with running() as srv:
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            status, headers, _ = curl(srv.mport, "-X", method)
            assert status == 405, (method, status)
            assert headers["allow"] == "GET, HEAD", headers
        for path in ("/", "/metrics/", "/metricsx", "/Metrics", "/websocket", "/healthz"):
            status, _, _ = curl(srv.mport, path=path)
            assert status == 404, (path, status)
        # A query string changes nothing.
        status, _, body = curl(srv.mport, path="/metrics?name[]=x")
        assert status == 200 and b"wsechod_build_info" in body
        assert srv.find_lines(r"\[metrics pid \d+\] metrics: 127\.0\.0\.1:\d+ used a method other")


def test_bad_and_oversized_requests_get_400_and_431():
    with running() as srv:
        head, _ = raw(srv.mport, b"GET /metrics HTTP/1.1\nHost: x\n\n")
        assert status_of(head) == 400, head
        head, _ = raw(srv.mport, b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n")
        assert status_of(head) == 431, head
        assert metrics_text(srv.mport)


def test_not_served_on_the_websocket_port():
    with running() as srv:
        r = wse.http_request(srv.port, f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\n\r\n")
        assert r.status == 404 and b"wsechod_" not in r.body


# ---- bounds -----------------------------------------------------------------

@wse.timeout(40)
def test_slow_request_is_closed_at_the_timeout_and_others_are_served_meanwhile():
    with running() as srv:
        s = socket.create_connection((HOST, srv.mport))
        t0 = time.monotonic()
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        served_meanwhile = False
        closed_at = None
        limit = wse.scaled(TIMEOUT) + 3
        # One header byte every 0.2 s: progress must not extend the deadline.
        while closed_at is None and time.monotonic() - t0 < limit:
            try:
                s.send(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            if not served_meanwhile:
                served_meanwhile = bool(metrics_text(srv.mport))
            r, _, _ = select.select([s], [], [], 0.2)
            if r:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert data == b"", f"a response to an unfinished request: {data[:200]!r}"
                closed_at = time.monotonic()
        s.close()
        assert closed_at is not None, f"slow request still open after {limit:.1f}s"
        elapsed = closed_at - t0
        assert elapsed >= TIMEOUT - 0.5, f"closed after {elapsed:.2f}s, before the timeout"
        assert served_meanwhile
        srv.wait_for_line(r"\[metrics pid \d+\] metrics: 127\.0\.0\.1:\d+ still sending its "
                          r"request after 5 s: closed")


def test_connections_over_the_cap_get_503_and_the_cap_frees_up():
    with running() as srv:
        idle = [socket.create_connection((HOST, srv.mport)) for _ in range(MAX_CONNS)]
        try:
            # Accepted in order: these 16 are in before the next one.
            with socket.create_connection((HOST, srv.mport), timeout=wse.scaled(5)) as extra:
                out = bytearray()
                while chunk := extra.recv(4096):
                    out += chunk
            head = out.decode("latin-1")
            assert status_of(head) == 503, head
            assert header(head, "retry-after") == "1"
            srv.wait_for_line(r"metrics: 16 connections open, the most allowed")
        finally:
            for s in idle:
                s.close()
        # Their closes are seen: scrapes work again, before any timeout.
        t0 = time.monotonic()
        wse.wait_until(lambda: curl(srv.mport)[0] == 200, wse.scaled(TIMEOUT), "a 200 again")
        assert time.monotonic() - t0 < TIMEOUT


def test_stopped_workers_do_not_stall_it():
    with running(workers=2) as srv:
        echo_workload(srv.port, clients=1, messages=5)
        workers = [k for k in srv.children() if k != srv.metrics_pid]
        assert len(workers) == 2, (workers, srv.metrics_pid)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            body = metrics_text(srv.mport)
            assert time.monotonic() - t0 < wse.scaled(2)
            assert total(body, "wsechod_messages_received_total") == 5
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)


# ---- the process ------------------------------------------------------------

def test_killed_metrics_process_is_respawned():
    with running() as srv:
        old = srv.metrics_pid
        mark = srv.mark()
        os.kill(old, signal.SIGKILL)
        srv.wait_for_line(rf"metrics process \(pid {old}\) killed by signal 9.*; respawning",
                          start=mark)
        m = srv.wait_for_line(READY, start=mark)
        assert int(m.group(1)) != old
        assert metrics_text(srv.mport)


def test_holds_no_mapping_of_the_segment():
    with running() as srv:
        seg = f"/dev/shm/wsechod.{srv.port}"
        master = open(f"/proc/{srv.pid}/maps").read()
        assert seg in master, "the master maps its segment (the check below means something)"
        assert seg not in open(f"/proc/{srv.metrics_pid}/maps").read()


def test_stops_with_the_master():
    srv = start_metrics_server()
    pid, st = srv.metrics_pid, wse.proc_stat(srv.metrics_pid)
    srv.stop()
    srv.check_stop()
    assert wse.wait_pid_gone(pid, st[2], wse.scaled(5))
    assert srv.find_lines(rf"metrics process \(pid {pid}\) exited with status 0")


@wse.timeout(60)
def test_reload_rebinds_a_changed_address_and_keeps_the_old_one_if_the_new_fails():
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "wsechod.conf")
        a, b = wse.free_port(), wse.free_port()
        open(conf, "w").write(f"metrics-listen = {HOST}:{a}\n")
        with Server("-c", conf) as srv:
            first = int(srv.wait_for_line(READY).group(1))
            assert metrics_text(a)

            mark = srv.mark()
            open(conf, "w").write(f"metrics-listen = {HOST}:{b}\n")
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload: generation 2 serving", start=mark)
            m = srv.wait_for_line(READY, start=mark)
            second = int(m.group(1))
            assert m.group(2) == f"{HOST}:{b}" and second != first
            assert metrics_text(b)
            # The old process closes its copy of the socket as it exits.
            srv.wait_for_line(rf"metrics process \(pid {first}\) exited with status 0",
                              start=mark)
            try:
                socket.create_connection((HOST, a), timeout=2).close()
                raise AssertionError(f"port {a} still accepts after the reload")
            except ConnectionRefusedError:
                pass

            # A new address that cannot be bound rejects the reload.
            with socket.socket() as squatter:
                squatter.bind((HOST, 0))
                squatter.listen()
                c = squatter.getsockname()[1]
                mark = srv.mark()
                open(conf, "w").write(f"metrics-listen = {HOST}:{c}\n")
                srv.signal(signal.SIGHUP)
                srv.wait_for_line(r"reload: cannot listen on the new metrics-listen address; "
                                  r"configuration unchanged", start=mark)
                assert metrics_text(b)

            mark = srv.mark()
            open(conf, "w").write("metrics-listen = off\n")
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload: generation 3 serving", start=mark)
            srv.wait_for_line(rf"metrics: stopped listening on {HOST}:{b}", start=mark)
            srv.wait_for_line(rf"metrics process \(pid {second}\) exited with status 0",
                              start=mark)
            try:
                socket.create_connection((HOST, b), timeout=2).close()
                raise AssertionError(f"port {b} still accepts with metrics-listen off")
            except ConnectionRefusedError:
                pass


# ---- configuration ----------------------------------------------------------

def check(*args):
    return subprocess.run([wse.binary(), "-t", *args], capture_output=True, text=True,
                          timeout=10)


def test_config_refuses_a_metrics_address_on_a_websocket_port():
    p = wse.free_port()
    for listen, metrics in ((f"127.0.0.1:{p}", f"127.0.0.1:{p}"),
                            (f"0.0.0.0:{p}", f"127.0.0.1:{p}"),
                            (f"127.0.0.1:{p}", f"*:{p}"),
                            (f"[::]:{p}", f"[::1]:{p}")):
        r = check("-l", listen, "--metrics-listen", metrics)
        assert r.returncode == 2, (listen, metrics, r.stdout)
        assert f"metrics-listen '{metrics}' overlaps listen address '{listen}'" in r.stderr, \
            r.stderr
    for listen, metrics in ((f"127.0.0.1:{p}", f"127.0.0.2:{p}"),
                            (f"[::]:{p}", f"127.0.0.1:{p}"),
                            (f"127.0.0.1:{p}", f"127.0.0.1:{p + 1}"),
                            (f"127.0.0.1:{p}", "off")):
        r = check("-l", listen, "--metrics-listen", metrics)
        assert r.returncode == 0, (listen, metrics, r.stderr)
    r = check("--metrics-listen", "localhost:9100")
    assert r.returncode == 2 and "(or off)" in r.stderr, r.stderr
    r = check("--metrics-listen", "127.0.0.1:1", "--metrics-listen", "127.0.0.1:2")
    assert r.returncode == 2 and "at most 1" in r.stderr, r.stderr


def test_command_line_off_overrides_the_file():
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "wsechod.conf")
        p = wse.free_port()
        open(conf, "w").write(f"listen = 127.0.0.1:{p}\nmetrics-listen = 127.0.0.1:{p}\n")
        assert check("-c", conf).returncode == 2
        assert check("-c", conf, "--metrics-listen", "off").returncode == 0
