"""The access log (--access-log): one line per connection, every one of
them, written when the connection ends (or at its HTTP answer); nothing
per connection anywhere when it is off, while warnings stay in the main log."""
import os
import re
import signal
import socket
import tempfile

import wse
from wse import OP_BINARY, OP_TEXT, RawWS, Server

# time worker=N peer=ADDR:PORT request=... status=... time=S.mmm msgs=N bytes=N close=... by=...
LINE_RX = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z worker=\d+ peer=127\.0\.0\.1:(\d+) '
                     r'request=(-|"[^"]*") status=(-|\d{3}) time=\d+\.\d{3} msgs=(\d+) '
                     r'bytes=(\d+) close=(-|\d{4}) by=(client|server|error|timeout|reset)$')


def by_port(srv):
    """{client port: fields} of every access line; every line must parse,
    and no port may have two."""
    out = {}
    for line in srv.access_lines():
        m = LINE_RX.match(line)
        assert m, f"access line not in the documented form: {line!r}"
        port = int(m.group(1))
        assert port not in out, f"two lines for port {port}: {out[port]} and {m.groups()}"
        out[port] = m.groups()[1:]
    return out


def http_from(port, data):
    """One HTTP exchange to the server's close; (local port, status line)."""
    with socket.create_connection((wse.HOST, port), timeout=wse.scaled(10)) as s:
        s.sendall(data.encode())
        raw = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            raw += chunk
        return s.getsockname()[1], raw.split(b"\r\n", 1)[0]


def test_one_line_per_connection_with_its_fields():
    with Server("-w", "1", "--handshake-timeout", "1", workers=None, access_log=True) as srv:
        # An echo session the client closes: two messages, 5 + 3 payload bytes.
        with RawWS(srv.port) as ws:
            session = ws.local_port
            ws.echo(OP_TEXT, b"hello")
            ws.echo(OP_BINARY, b"abc")
            ws.send_close(1000)
            ws.expect_close()
        # A 404 for a path with a quote (escaped so that it cannot end the field).
        p404, status = http_from(srv.port, 'GET /no"where HTTP/1.1\r\nHost: x\r\n\r\n')
        assert status == b"HTTP/1.1 404 Not Found", status
        # A plain GET of the endpoint: 426.
        p426, status = http_from(srv.port, "GET /websocket HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 426"), status
        # A protocol error: an unmasked frame, failed with 1002.
        with RawWS(srv.port) as ws:
            bad = ws.local_port
            ws.send(wse.frame(OP_TEXT, b"x", mask=False))
            wse.expect_protocol_close(ws, 1002)
        # Half a request: the handshake timeout ends it.
        with RawWS(srv.port, handshake=False) as slow:
            slow_port = slow.local_port
            slow.send(b"GET /websocket HTTP/1.1\r\n")
            slow.wait_tcp_close(wse.scaled(6))

        srv.wait_for_access(r"by=timeout$", 1, 5)
        lines = by_port(srv)
        # Exactly these five connections, each once.
        assert sorted(lines) == sorted([session, p404, p426, bad, slow_port]), lines
        assert lines[session] == ('"GET /websocket"', "101", "2", "8", "1000", "client"), lines[session]
        assert lines[p404] == ('"GET /no\\x22where"', "404", "0", "0", "-", "server"), lines[p404]
        assert lines[p426] == ('"GET /websocket"', "426", "0", "0", "-", "server"), lines[p426]
        assert lines[bad] == ('"GET /websocket"', "101", "0", "0", "1002", "error"), lines[bad]
        assert lines[slow_port] == ("-", "-", "0", "0", "-", "timeout"), lines[slow_port]
        # The main log has no per-connection line at info; the protocol
        # failure is a warning there.
        assert not srv.find_lines(rf"127\.0\.0\.1:({session}|{p404}|{p426}|{slow_port})\b"), srv.output()
        srv.wait_for_line(rf"warn  \[worker 0 pid \d+\] 127\.0\.0\.1:{bad} failing connection with 1002", 5)


def test_a_404_flood_is_in_the_access_log_in_full_and_not_in_the_main_log():
    n = 200
    with Server("-w", "1", workers=None, access_log=True) as srv:
        for _ in range(n):
            resp = wse.http_request(srv.port, "GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
            assert resp.status == 404, resp
        # Not rate limited: every one of them, no summary.
        srv.wait_for_access(r'request="GET /nothing-here" status=404 ', n, 10)
        assert len(srv.access_lines()) == n, f"{len(srv.access_lines())} access lines for {n} requests"
        assert not any("..." in l for l in srv.access_lines())
        # The main log carries none of them, nor a summary of them: one owed
        # is written at the latest when the worker exits, so stop it first.
        srv.stop()
        assert not srv.find_lines(r"404|http 4xx|more \w+ lines"), srv.output()


def test_access_log_off_writes_no_per_connection_line_and_keeps_warnings():
    # Off is the default; said explicitly here.
    with Server("-w", "1", "--access-log", "off", workers=None) as srv:
        with RawWS(srv.port) as ws:
            good = ws.local_port
            ws.echo(OP_TEXT, b"hello")
            ws.send_close(1000)
            ws.expect_close()
        p404, status = http_from(srv.port, "GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 404"), status
        with RawWS(srv.port) as ws:
            bad = ws.local_port
            ws.send(wse.frame(OP_TEXT, b"\xff"))
            wse.expect_protocol_close(ws, 1007)
        # The warning is there ...
        srv.wait_for_line(rf"warn  \[worker 0 pid \d+\] 127\.0\.0\.1:{bad} failing connection with 1007", 5)
        srv.stop()
        # ... and nothing else about any of the three connections, anywhere
        # in the server's output (stderr: where "stderr" would have sent them).
        about = srv.find_lines(rf"127\.0\.0\.1:({good}|{p404}|{bad})\b")
        assert len(about) == 1 and "failing connection" in about[0].string, srv.output()
        assert not srv.find_lines(r"peer=|request=|status="), srv.output()


def test_access_log_to_stderr():
    with Server("-w", "1", "--access-log", "stderr", workers=None) as srv:
        with RawWS(srv.port) as ws:
            port = ws.local_port
            ws.echo(OP_TEXT, b"hi")
            ws.send_close(1001)
            ws.expect_close()
        srv.wait_for_line(rf"^\S+Z worker=0 peer=127\.0\.0\.1:{port} request=\"GET /websocket\" "
                          r"status=101 time=\d+\.\d{3} msgs=1 bytes=2 close=1001 by=client$", 5)


def test_sigusr1_reopens_the_access_log():
    with Server(access_log=True) as srv:
        path = srv.access_path
        with RawWS(srv.port) as ws:
            first = ws.local_port
            ws.echo(OP_TEXT, b"before")
        srv.wait_for_access(rf"peer=127\.0\.0\.1:{first} ", 1, 5)
        os.rename(path, path + ".1")
        mark = srv.mark()
        srv.signal(signal.SIGUSR1)
        srv.wait_for_line(r"log file reopened", 5, start=mark)
        # The master tells the workers over their channels after reopening
        # its own: a worker's new connection may race its reopen, so keep
        # connecting until a line lands in the new file.
        ports = []

        def in_new_file():
            with RawWS(srv.port) as ws:
                ports.append(ws.local_port)
                ws.echo(OP_TEXT, b"after")
            return os.path.exists(path) and srv.access_lines(rf"peer=127\.0\.0\.1:{ports[-1]} ")

        wse.wait_until(in_new_file, wse.scaled(10), "an access line in the reopened file", interval=0.1)
        with open(path + ".1") as f:
            old = f.read()
        assert f"peer=127.0.0.1:{first} " in old
        assert f"peer=127.0.0.1:{ports[-1]} " not in old, old


def test_reload_switches_the_access_log_for_new_connections():
    port = wse.free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "wsechod.conf")
        a_log, b_log = os.path.join(d, "a.log"), os.path.join(d, "b.log")

        def write_conf(access):
            with open(conf, "w") as f:
                f.write(f"listen = 127.0.0.1:{port}\nworkers = 1\naccess-log = {access}\n")

        def lines_of(path):
            try:
                with open(path) as f:
                    return f.read().splitlines()
            except FileNotFoundError:
                return []

        write_conf(a_log)
        with Server("-c", conf, port=port, workers=None) as srv:
            with RawWS(port) as ws:
                p1 = ws.local_port
                ws.echo(OP_TEXT, b"one")
            wse.wait_until(lambda: any(f"peer=127.0.0.1:{p1} " in l for l in lines_of(a_log)),
                           wse.scaled(5), "the first connection in a.log")
            # A path that cannot be opened: the reload is refused, a.log stays.
            write_conf(os.path.join(d, "missing-dir", "x.log"))
            mark = srv.mark()
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload rejected, configuration unchanged: access log .*missing-dir", 10,
                              start=mark)
            # Now to b.log: new connections are recorded there.
            write_conf(b_log)
            mark = srv.mark()
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload: generation 2 serving", 10, start=mark)
            srv.wait_for_line(r"\] draining", 10, start=mark)
            with RawWS(port) as ws:
                p2 = ws.local_port
                ws.echo(OP_TEXT, b"two")
            wse.wait_until(lambda: any(f"peer=127.0.0.1:{p2} " in l for l in lines_of(b_log)),
                           wse.scaled(5), "the connection after the reload in b.log")
            assert not any(f"peer=127.0.0.1:{p2} " in l for l in lines_of(a_log)), lines_of(a_log)
            assert len(lines_of(a_log)) == 1, lines_of(a_log)
