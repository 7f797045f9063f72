"""--proxy-protocol with raw sockets: v1 and v2 headers give the logged peer
address; a missing or malformed header is refused and harms nobody else."""
import socket
import struct

import wse
from wse import OP_TEXT, RawWS, Server

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, sport, dst="127.0.0.1", dport=80, command=0x21, tlv=b""):
    block = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport) + tlv
    return SIG + bytes([command, 0x11]) + struct.pack("!H", len(block)) + block


def exchange(port, data, timeout=5):
    """Sends data; returns (what came back until the server closed, closed?)."""
    with socket.create_connection((wse.HOST, port), timeout=wse.scaled(timeout)) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
                if b"\r\n\r\n" in out and out.startswith(b"HTTP/1.1 101"):
                    return out, False
        except ConnectionResetError:
            return out, True


def test_v1_and_v2_headers_set_the_logged_client_address():
    with Server("--proxy-protocol", access_log=True) as srv:
        req, _ = wse.upgrade_request()
        out, closed = exchange(srv.port, b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 80\r\n" + req)
        assert out.startswith(b"HTTP/1.1 101"), out
        srv.wait_for_access(r" peer=203\.0\.113\.7:4242 request=\"GET /websocket\" status=101 ", 1, 5)
        out, closed = exchange(srv.port, b"PROXY TCP6 2001:db8::5 ::1 5353 80\r\n" + req)
        assert out.startswith(b"HTTP/1.1 101"), out
        srv.wait_for_access(r" peer=\[2001:db8::5\]:5353 request=\"GET /websocket\" status=101 ", 1, 5)
        out, closed = exchange(srv.port, v2("198.51.100.9", 6000, tlv=b"\x04\x00\x01x") + req)
        assert out.startswith(b"HTTP/1.1 101"), out
        srv.wait_for_access(r" peer=198\.51\.100\.9:6000 request=\"GET /websocket\" status=101 ", 1, 5)
        # A health check: v2 LOCAL, the balancer's own address stays.
        local = SIG + b"\x20\x00\x00\x00"
        out, closed = exchange(srv.port, local + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"ok\n") and closed, out


def test_missing_or_malformed_header_is_refused_and_others_are_unaffected():
    with Server("--proxy-protocol") as srv:
        good = socket.create_connection((wse.HOST, srv.port), timeout=wse.scaled(5))
        req, key = wse.upgrade_request()
        good.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 1111 80\r\n" + req)
        head = b""
        while b"\r\n\r\n" not in head:
            head += good.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        bad_inputs = [
            req,                                                   # no header at all
            b"PROXY TCP4 1.2.3.256 127.0.0.1 1 2\r\n" + req,      # octet 256
            b"PROXY TCP4 1.2.3.4  127.0.0.1 1 2\r\n" + req,       # double space
            SIG[:11] + b"X" + req,                                 # signature broken
            SIG + b"\x21\x12\x00\x0c" + bytes(12) + req,          # UDP
            b"PROXY " + b"A" * 200 + b"\r\n",                      # too long
        ]
        for data in bad_inputs:
            out, closed = exchange(srv.port, data)
            assert out == b"" and closed, (data[:40], out)
        # The log line is written before the close, but read by the harness's
        # own thread: wait for it to arrive.
        wse.wait_until(lambda: len(srv.find_lines(r"refused: no valid PROXY protocol header"))
                       == len(bad_inputs), wse.scaled(5), "a refusal logged for each bad header")
        # The good connection still echoes.
        good.sendall(wse.frame(OP_TEXT, b"still here"))
        data = b""
        while len(data) < 12:
            data += good.recv(4096)
        assert data == b"\x81\x0astill here", data
        good.close()


def test_without_the_option_a_proxy_header_is_a_bad_request():
    with Server() as srv:
        req, _ = wse.upgrade_request()
        resp = wse.http_request(srv.port, b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n" + req)
        assert resp.status == 400, resp
