"""Handshake errors and routing over raw HTTP (spec 4).  After every non-101
answer the server must close the connection."""
import base64
import os
import re

import wse
from wse import HOST, OP_TEXT, RawWS, Server, accept_key, http_request


def request(path="/websocket", method="GET", version="HTTP/1.1", host=HOST, upgrade="websocket",
            connection="Upgrade", key="default", ws_version="13", extra=()):
    """A handshake request with any part left out (None) or changed."""
    if key == "default":
        key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if ws_version is not None:
        lines.append(f"Sec-WebSocket-Version: {ws_version}")
    lines += list(extra)
    return "\r\n".join(lines) + "\r\n\r\n", key


def expect_status(port, data, status, label):
    r = http_request(port, data)
    assert r.status == status, f"{label}: HTTP {r.status}, expected {status}:\n{r.raw[:400]!r}"
    if status != 101:
        assert r.closed, f"{label}: the server kept the connection open after {status}"
    return r


def expect_101(port, data, key, label):
    r = expect_status(port, data, 101, label)
    assert r.headers.get("sec-websocket-accept") == accept_key(key), f"{label}: bad accept {r.raw!r}"
    return r


def test_good_handshake_and_variants():
    with Server() as srv:
        data, key = request()
        expect_101(srv.port, data, key, "plain handshake")
        data, key = request(connection="keep-alive, Upgrade")
        expect_101(srv.port, data, key, "Connection: keep-alive, Upgrade")
        data, key = request(upgrade="WebSocket", connection="upgrade")
        expect_101(srv.port, data, key, "tokens in other case")
        data, key = request(path="/websocket?x=1")
        expect_101(srv.port, data, key, "query string")


def test_method_and_version():
    with Server() as srv:
        expect_status(srv.port, request(method="POST")[0], 405, "POST /websocket")
        expect_status(srv.port, request(version="HTTP/1.0")[0], 400, "HTTP/1.0")


def test_missing_or_bad_headers():
    with Server() as srv:
        expect_status(srv.port, request(host=None)[0], 400, "no Host")
        expect_status(srv.port, request(upgrade=None)[0], 426, "no Upgrade header")
        expect_status(srv.port, request(connection="keep-alive")[0], 400, "Connection without upgrade")
        expect_status(srv.port, request(connection=None)[0], 400, "no Connection header")
        expect_status(srv.port, request(key=None)[0], 400, "no Sec-WebSocket-Key")
        short = base64.b64encode(os.urandom(15)).decode()
        expect_status(srv.port, request(key=short)[0], 400, "key of 15 bytes")
        long = base64.b64encode(os.urandom(17)).decode()
        expect_status(srv.port, request(key=long)[0], 400, "key of 17 bytes")
        expect_status(srv.port, request(key="not base64 at all!!!!!!!")[0], 400, "key not base64")


def test_version_8_gets_426_with_version_13():
    with Server() as srv:
        r = expect_status(srv.port, request(ws_version="8")[0], 426, "Sec-WebSocket-Version: 8")
        assert r.headers.get("sec-websocket-version") == "13", f"426 without the version: {r.raw!r}"
        r = expect_status(srv.port, request(ws_version=None)[0], 426, "no Sec-WebSocket-Version")
        assert r.headers.get("sec-websocket-version") == "13", r.raw


def test_plain_get_of_endpoint_is_426():
    with Server() as srv:
        r = expect_status(srv.port, f"GET /websocket HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 426,
                          "plain GET")
        assert "websocket" in r.headers.get("upgrade", "").lower(), r.raw


def test_garbage_and_oversized_requests():
    with Server() as srv:
        expect_status(srv.port, "HELLO THERE\r\n\r\n", 400, "garbage request line")
        expect_status(srv.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40),
                      400, "a TLS ClientHello")
        big = request(extra=[f"X-Filler: {'a' * 9000}"])[0]
        expect_status(srv.port, big, 431, "9000-byte header")
        many = request(extra=[f"X-H{i}: {'b' * 100}" for i in range(90)])[0]
        assert len(many) > 8192
        expect_status(srv.port, many, 431, "header block over 8 KiB in many lines")


def read_to_close(ws, timeout=5):
    """Everything the server sends until it closes (b'' or a reset)."""
    deadline = ws._deadline(timeout)
    try:
        while True:
            ws._fill(deadline)
    except wse.Closed:
        pass
    return bytes(ws.buf)


def test_request_in_pieces():
    """A handshake that arrives over several reads still gets its 101."""
    with Server() as srv:
        req, key = wse.upgrade_request()
        for cut in (1, 20, len(req) - 1):
            with RawWS(srv.port, handshake=False) as ws:
                ws.send(req[:cut])
                # Give the server the time to read the first piece on its own.
                assert not ws.wait_tcp_close(0.3), f"closed after {cut} bytes of a handshake"
                ws.send(req[cut:])
                deadline = ws._deadline(5)
                while b"\r\n\r\n" not in ws.buf:
                    ws._fill(deadline)
                assert bytes(ws.buf).startswith(b"HTTP/1.1 101"), bytes(ws.buf)
                ws.buf = bytearray(bytes(ws.buf).partition(b"\r\n\r\n")[2])
                ws.echo(OP_TEXT, b"pieces")
        with RawWS(srv.port, handshake=False) as ws:     # one byte per segment
            for b in req:
                ws.send(bytes([b]))
            deadline = ws._deadline(5)
            while b"\r\n\r\n" not in ws.buf:
                ws._fill(deadline)
            assert bytes(ws.buf).startswith(b"HTTP/1.1 101"), bytes(ws.buf)


def test_oversized_request_in_pieces():
    """A header block over 8 KiB that arrives in two reads, the first of at
    most 8 KiB: still 431 (spec: 'header block over 8 KiB -> 431')."""
    with Server() as srv:
        data = request(extra=[f"X-Filler: {'c' * 9000}"])[0].encode()
        results = {}
        for first in (4000, 8192, 8193):
            with RawWS(srv.port, handshake=False) as ws:
                ws.send(data[:first])
                if first <= 8192:
                    # Let the server read the first piece on its own: not
                    # over the limit yet, so it must wait for more.
                    assert not ws.wait_tcp_close(0.3), f"closed after {first} bytes"
                try:
                    ws.send(data[first:])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                results[first] = read_to_close(ws)[:40]
        bad = {k: v for k, v in results.items() if not v.startswith(b"HTTP/1.1 431")}
        assert not bad, f"no 431 when the first read had this many bytes: {bad}"
        with RawWS(srv.port) as ws:       # the server is still fine
            ws.echo(OP_TEXT, b"alive")


def test_routes():
    with Server() as srv:
        expect_status(srv.port, request(path="/nope")[0], 404, "GET /nope")
        expect_status(srv.port, f"GET /nope HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 404, "plain GET /nope")
        r = expect_status(srv.port, f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 200, "healthz")
        assert r.body == b"ok\n", r.raw


def test_origin_allow_list():
    with Server("--allow-origin", "http://good.example") as srv:
        expect_status(srv.port, request(extra=["Origin: http://evil.example"])[0], 403, "evil origin")
        data, key = request(extra=["Origin: http://good.example"])
        expect_101(srv.port, data, key, "allowed origin")
    with Server() as srv:
        data, key = request(extra=["Origin: http://evil.example"])
        expect_101(srv.port, data, key, "any origin without --allow-origin")


def test_own_origin_with_allow_list():
    """--allow-origin keeps the server's own page working: an Origin that
    names the Host the request went to, when that host is an IP literal or
    localhost.  A DNS name never counts that way (DNS rebinding)."""
    with Server("--allow-origin", "https://example.com") as srv:
        own = [
            (f"{HOST}:{srv.port}", f"http://{HOST}:{srv.port}"),
            (f"{HOST}:{srv.port}", f"https://{HOST}:{srv.port}"),
            (f"localhost:{srv.port}", f"http://localhost:{srv.port}"),
            (f"[::1]:{srv.port}", f"http://[::1]:{srv.port}"),
            (HOST, f"http://{HOST}"),
            (f"{HOST}:443", f"https://{HOST}"),
        ]
        for host, origin in own:
            data, key = request(host=host, extra=[f"Origin: {origin}"])
            expect_101(srv.port, data, key, f"own origin {origin} (Host {host})")
        others = [
            (f"evil.example:{srv.port}", f"http://evil.example:{srv.port}"),
            (f"{HOST}:{srv.port}", f"http://{HOST}:{srv.port + 1 if srv.port < 65535 else 1}"),
            (f"{HOST}:{srv.port}", f"http://127.0.0.2:{srv.port}"),
            (f"{HOST}:{srv.port}", "null"),
            (f"{HOST}:80", f"https://{HOST}"),
        ]
        for host, origin in others:
            mark = srv.mark()
            expect_status(srv.port, request(host=host, extra=[f"Origin: {origin}"])[0], 403,
                          f"Origin {origin} with Host {host}")
            srv.wait_for_line(rf"origin refused: Origin \"{re.escape(origin)}\" is not in "
                              rf"--allow-origin nor this server's own \(Host \"{re.escape(host)}\"\)",
                              10, start=mark)
        data, key = request(extra=["Origin: https://example.com"])
        expect_101(srv.port, data, key, "the listed origin")


def test_refused_origin_logged_escaped():
    """The refused Origin is the peer's: its log line shows it escaped and
    cut, one printable line."""
    with Server("--allow-origin", "https://example.com") as srv:
        mark = srv.mark()
        hostile = b"http://ev\til\x80\xff\"x\\" + b"A" * 3000
        data = request(extra=[])[0].encode().replace(b"\r\n\r\n", b"\r\nOrigin: " + hostile + b"\r\n\r\n")
        expect_status(srv.port, data, 403, "hostile Origin")
        m = srv.wait_for_line(r"origin refused: Origin (\S+) is not in --allow-origin", 10, start=mark)
        shown = m.group(1)
        assert shown.startswith(r'"http://ev\x09il\x80\xff\x22x\x5cAAA'), shown
        assert shown.endswith('"...'), shown
        assert len(m.string) < 400, f"log line of {len(m.string)} characters"
        assert all(32 <= ord(ch) < 127 for ch in m.string.rstrip("\n")), repr(m.string)
        mark = srv.mark()
        expect_status(srv.port, request()[0], 403, "no Origin")
        srv.wait_for_line(r"origin refused: no Origin \(--allow-origin is set\)", 10, start=mark)


def test_path_option():
    with Server("--path", "/echo") as srv:
        data, key = request(path="/echo")
        expect_101(srv.port, data, key, "/echo with --path /echo")
        expect_status(srv.port, request(path="/websocket")[0], 404, "/websocket with --path /echo")
        with RawWS(srv.port, path="/echo") as ws:
            ws.echo(OP_TEXT, b"moved")


def test_handshake_then_frames_in_same_write():
    """Frames right behind the request (one write) are echoed."""
    with Server() as srv, RawWS(srv.port, handshake=False) as ws:
        req, key = wse.upgrade_request()
        ws.send(req + wse.frame(OP_TEXT, b"eager") + wse.frame(wse.OP_PING, b"p"))
        deadline = ws._deadline(5)
        while b"\r\n\r\n" not in ws.buf:
            ws._fill(deadline)
        head, _, rest = bytes(ws.buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert accept_key(key).encode() in head
        ws.buf = bytearray(rest)
        assert ws.recv_message(timeout=5) == (OP_TEXT, b"eager")
        f = ws.recv_frame(timeout=5)
        assert (f.opcode, f.payload) == (wse.OP_PONG, b"p"), f
