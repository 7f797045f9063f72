"""Raw-socket protocol cases (spec 3) and isolation of a failing peer (spec 11).

"Expected close code" is the code in the server's close frame; after it the
server must close TCP (recv returns b'')."""
import asyncio
import os
import time

import wse
from wse import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, Server,
                 close_payload, expect_protocol_close, frame, ws_connect)

PROTOCOL_ERROR, BAD_DATA, TOO_BIG, GOING_AWAY = 1002, 1007, 1009, 1001


def check_fails(srv, data, code, label, allowed_echo=None, unfinished=False):
    """Sends data on a fresh connection; the server must fail it with code.
    Data frames echoed before the close must join to a prefix of
    allowed_echo (nothing when None); with unfinished, none of them may end
    a message (the failing message must never be echoed complete)."""
    with RawWS(srv.port) as ws:
        ws.send(data)
        try:
            before = expect_protocol_close(ws, code)
        except AssertionError as e:
            raise AssertionError(f"{label}: {e}") from None
        echoed = b"".join(f.payload for f in before if f.opcode < 8)
        if allowed_echo is None:
            assert not before, f"{label}: frames before the close: {before}"
        else:
            assert allowed_echo.startswith(echoed), \
                f"{label}: echoed {echoed!r} before the close, not a prefix of {allowed_echo!r}"
            if unfinished:
                assert not any(f.fin for f in before if f.opcode < 8), \
                    f"{label}: the failing message was echoed complete: {before}"


# ---- ping / pong ----------------------------------------------------------

def test_ping_gets_pong_with_same_payload():
    with Server() as srv, RawWS(srv.port) as ws:
        for payload in [b"", b"hello", os.urandom(125), "\u20ac".encode()]:
            ws.send_frame(OP_PING, payload)
            f = ws.recv_frame(timeout=5)
            assert (f.fin, f.rsv, f.opcode, f.payload) == (True, 0, OP_PONG, payload), \
                f"ping with {len(payload)} bytes answered by {f}"
        ws.echo(OP_TEXT, b"after pings")


def test_unsolicited_pong_ignored():
    with Server() as srv, RawWS(srv.port) as ws:
        ws.send_frame(OP_PONG, b"unasked")
        ws.send_frame(OP_PONG, b"")
        ws.send_frame(OP_TEXT, b"still echoing")
        f = ws.recv_frame(timeout=5)          # the echo, with nothing before it
        assert (f.fin, f.opcode, f.payload) == (True, OP_TEXT, b"still echoing"), f
        ws.echo(OP_BINARY, b"\x01\x02")


def test_ping_between_fragments():
    with Server() as srv, RawWS(srv.port) as ws:
        # Step by step: the pong arrives while the message is still open.
        ws.send_frame(OP_TEXT, b"Hello, ", fin=False)
        ws.send_frame(OP_PING, b"mid")
        data, pong = [], None
        while pong is None:
            f = ws.recv_frame(timeout=5)
            if f.opcode == OP_PONG:
                pong = f
            else:
                assert f.opcode in (OP_TEXT, OP_CONT) and not f.fin, f"unexpected {f}"
                data.append(f)
        assert pong.payload == b"mid", pong
        ws.send_frame(OP_CONT, b"World", fin=False)
        ws.send_frame(OP_CONT, b"!")
        while not (data and data[-1].fin):
            f = ws.recv_frame(timeout=5)
            assert f.opcode in (OP_TEXT, OP_CONT), f"unexpected {f}"
            data.append(f)
        assert data[0].opcode == OP_TEXT, f"first echoed frame has opcode {data[0].opcode}"
        assert all(f.opcode == OP_CONT for f in data[1:]), data
        assert b"".join(f.payload for f in data) == b"Hello, World!"

        # All in one write, two pings: pongs in order, message whole.
        ws.send(frame(OP_TEXT, b"a" * 200, fin=False) + frame(OP_PING, b"p1")
                + frame(OP_CONT, b"b" * 300, fin=False) + frame(OP_PING, b"p2")
                + frame(OP_CONT, b"c"))
        controls = []
        got = ws.recv_message(timeout=5, controls=controls)
        while len(controls) < 2:
            f = ws.recv_frame(timeout=5)
            controls.append(f)
        assert got == (OP_TEXT, b"a" * 200 + b"b" * 300 + b"c"), (got[0], len(got[1]))
        assert [(f.opcode, f.payload) for f in controls] == [(OP_PONG, b"p1"), (OP_PONG, b"p2")], controls
        ws.echo(OP_TEXT, b"next")


def test_frames_split_across_reads():
    """Control frames and long headers cut into pieces (one byte, then in
    two) are reassembled by the server."""
    with Server() as srv, RawWS(srv.port) as ws:
        payload = os.urandom(125)
        for b in frame(OP_PING, payload):
            ws.send(bytes([b]))
        f = ws.recv_frame(timeout=5)
        assert (f.opcode, f.payload) == (OP_PONG, payload), f
        blob = os.urandom(70000)
        data = frame(OP_BINARY, blob)                 # 64-bit length header: 14 bytes
        for cut in (1, 3, 9, 13):
            ws.send(data[:cut])
            # Let the server read the piece on its own before the rest.
            assert not ws.wait_tcp_close(0.05), f"closed after {cut} header bytes"
            ws.send(data[cut:])
            assert ws.recv_message(timeout=10) == (OP_BINARY, blob), f"cut at {cut}"
        close = frame(OP_CLOSE, close_payload(1000, b"split"))
        ws.send(close[:3])
        assert not ws.wait_tcp_close(0.05)
        ws.send(close[3:])
        code, _, before = ws.expect_close(5)
        assert code == 1000 and not before, (code, before)


# ---- close handshake --------------------------------------------------------

def test_close_handshake():
    with Server() as srv, RawWS(srv.port) as ws:
        ws.send_close(1000, b"bye")
        code, reason, before = ws.expect_close(5)
        assert code == 1000 and not before, (code, reason, before)
        assert ws.wait_tcp_close(5), "server did not close TCP after the close handshake"


def test_close_empty_payload():
    with Server() as srv, RawWS(srv.port) as ws:
        ws.send_close()
        code, reason, before = ws.expect_close(5)
        assert code in (None, 1000) and not before, (code, reason)
        assert ws.wait_tcp_close(5)


def test_data_after_close_is_not_echoed():
    with Server() as srv, RawWS(srv.port) as ws:
        ws.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, b"too late"))
        code, _, before = ws.expect_close(5)
        assert code == 1000 and not before, (code, before)
        assert ws.wait_tcp_close(5)


def test_close_valid_codes_echoed():
    codes = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
             3000, 3999, 4000, 4999]
    with Server() as srv:
        for c in codes:
            with RawWS(srv.port) as ws:
                ws.send_close(c, b"reason")
                got, _, before = ws.expect_close(5)
                assert got == c and not before, f"close {c} answered with {got}"
                assert ws.wait_tcp_close(5), f"close {c}: TCP not closed"
        with RawWS(srv.port) as ws:            # the longest reason a control frame allows
            ws.send_close(1000, b"r" * 123)
            got, _, _ = ws.expect_close(5)
            assert got == 1000, got


def test_close_invalid_codes():
    with Server() as srv:
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]:
            check_fails(srv, frame(OP_CLOSE, close_payload(c)), PROTOCOL_ERROR, f"close code {c}")
        check_fails(srv, frame(OP_CLOSE, b"\x03"), PROTOCOL_ERROR, "1-byte close payload")
        check_fails(srv, frame(OP_CLOSE, close_payload(1000, b"ok \xff\xfe")), BAD_DATA,
                    "close reason with invalid UTF-8")
        check_fails(srv, frame(OP_CLOSE, close_payload(1000, b"\xe2\x82")), BAD_DATA,
                    "close reason with a truncated sequence")


# ---- frame errors -------------------------------------------------------------

def test_rsv_bits():
    with Server() as srv:
        for rsv in (4, 2, 1, 7):
            check_fails(srv, frame(OP_TEXT, b"hi", rsv=rsv), PROTOCOL_ERROR, f"RSV {rsv:03b} on text")
        check_fails(srv, frame(OP_PING, b"hi", rsv=4), PROTOCOL_ERROR, "RSV1 on ping")
        check_fails(srv, frame(OP_TEXT, b"ab", fin=False) + frame(OP_CONT, b"cd", rsv=2),
                    PROTOCOL_ERROR, "RSV2 on continuation", allowed_echo=b"ab")


def test_reserved_opcodes():
    with Server() as srv:
        for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
            check_fails(srv, frame(op, b"x"), PROTOCOL_ERROR, f"opcode {op}")


def test_unmasked_client_frame():
    with Server() as srv:
        check_fails(srv, frame(OP_TEXT, b"hello", mask=False), PROTOCOL_ERROR, "unmasked text")
        check_fails(srv, frame(OP_PING, b"", mask=False), PROTOCOL_ERROR, "unmasked ping")


def test_control_frame_rules():
    with Server() as srv:
        check_fails(srv, frame(OP_PING, os.urandom(126)), PROTOCOL_ERROR, "ping with 126 bytes")
        check_fails(srv, frame(OP_PING, b"x" * 126, length_form=16), PROTOCOL_ERROR,
                    "ping with 16-bit length")
        check_fails(srv, frame(OP_CLOSE, close_payload(1000, b"r" * 124)), PROTOCOL_ERROR,
                    "close with 126 bytes")
        check_fails(srv, frame(OP_PING, b"x", fin=False), PROTOCOL_ERROR, "fragmented ping")
        check_fails(srv, frame(OP_PONG, b"x", fin=False), PROTOCOL_ERROR, "fragmented pong")
        check_fails(srv, frame(OP_CLOSE, close_payload(1000), fin=False), PROTOCOL_ERROR,
                    "fragmented close")


def test_fragmentation_rules():
    with Server() as srv:
        check_fails(srv, frame(OP_CONT, b"orphan"), PROTOCOL_ERROR, "continuation, no message open")
        check_fails(srv, frame(OP_CONT, b"orphan", fin=False), PROTOCOL_ERROR,
                    "non-final continuation, no message open")
        check_fails(srv, frame(OP_TEXT, b"one", fin=False) + frame(OP_TEXT, b"two"),
                    PROTOCOL_ERROR, "text inside an open message", allowed_echo=b"one")
        check_fails(srv, frame(OP_BINARY, b"one", fin=False) + frame(OP_BINARY, b"two", fin=False),
                    PROTOCOL_ERROR, "binary inside an open message", allowed_echo=b"one")
        # A finished message followed by a continuation: nothing open any more.
        check_fails(srv, frame(OP_TEXT, b"done") + frame(OP_CONT, b"more"), PROTOCOL_ERROR,
                    "continuation after a complete message", allowed_echo=b"done")


def test_length_encodings():
    with Server() as srv:
        top = frame(OP_BINARY, b"", length_form=64, declared_len=1 << 63)
        check_fails(srv, top, PROTOCOL_ERROR, "64-bit length with the top bit set")
        check_fails(srv, top[:3], PROTOCOL_ERROR, "64-bit length with the top bit set (3 bytes only)")
        check_fails(srv, frame(OP_TEXT, b"hello", length_form=16), PROTOCOL_ERROR,
                    "16-bit form for length 5")
        check_fails(srv, frame(OP_TEXT, b"x" * 125, length_form=16), PROTOCOL_ERROR,
                    "16-bit form for length 125")
        check_fails(srv, frame(OP_BINARY, b"x" * 200, length_form=64), PROTOCOL_ERROR,
                    "64-bit form for length 200")
        check_fails(srv, frame(OP_BINARY, b"x" * 65535, length_form=64), PROTOCOL_ERROR,
                    "64-bit form for length 65535")
        # The boundaries in their proper forms are fine.
        with RawWS(srv.port) as ws:
            for n in (125, 126, 65535, 65536):
                ws.echo(OP_BINARY, os.urandom(n), timeout=10)


def test_bad_first_byte_alone_fails_fast():
    """A frame that is wrong in its first byte fails without waiting for more."""
    with Server() as srv:
        for b0, label in [(0x80 | 0x40 | OP_TEXT, "RSV1"), (0x80 | 3, "opcode 3"),
                          (OP_PING, "fragmented ping")]:
            with RawWS(srv.port) as ws:
                ws.send(bytes([b0]))
                t0 = time.monotonic()
                expect_protocol_close(ws, PROTOCOL_ERROR)
                assert time.monotonic() - t0 < wse.scaled(5), label


def test_valid_message_then_bad_frame_same_write():
    with Server() as srv, RawWS(srv.port) as ws:
        ws.send(frame(OP_TEXT, b"first") + frame(OP_BINARY, b"\x00" * 300)
                + frame(OP_TEXT, b"bad", rsv=4))
        assert ws.recv_message(timeout=5) == (OP_TEXT, b"first")
        assert ws.recv_message(timeout=5) == (OP_BINARY, b"\x00" * 300)
        code, _, before = ws.expect_close(5)
        assert code == PROTOCOL_ERROR and not before, (code, before)
        assert ws.wait_tcp_close(5)


# ---- UTF-8 --------------------------------------------------------------------

def test_invalid_utf8_fails_fast():
    """Announce 1000 bytes, send 10 with an invalid sequence, never the rest."""
    with Server() as srv, RawWS(srv.port) as ws:
        payload = b"abc\xed\xa0\x80defg"            # a UTF-16 surrogate: never valid
        assert len(payload) == 10
        full = frame(OP_TEXT, payload + b"x" * 990)
        assert len(full) == 2 + 2 + 4 + 1000
        t0 = time.monotonic()
        ws.send(full[:8 + 10])
        code, _, before = ws.expect_close(5)
        elapsed = time.monotonic() - t0
        assert code == BAD_DATA, f"close code {code}, expected 1007"
        assert elapsed < wse.scaled(5), f"1007 after {elapsed:.1f}s"
        echoed = b"".join(f.payload for f in before if f.opcode < 8)
        assert b"abc".startswith(echoed), f"invalid bytes were echoed: {echoed!r}"
        assert ws.wait_tcp_close(5)


def test_invalid_utf8_single_frames():
    with Server() as srv:
        for bad in [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
                    b"\xff", b"\xfe", b"ok\xc3(", b"\xf8\x88\x80\x80\x80"]:
            check_fails(srv, frame(OP_TEXT, b"pre " + bad + b" post"), BAD_DATA,
                        f"text with {bad!r}", allowed_echo=b"pre ", unfinished=True)


def test_invalid_utf8_in_second_fragment():
    with Server() as srv:
        check_fails(srv, frame(OP_TEXT, b"valid start ", fin=False) + frame(OP_CONT, b"then \xff"),
                    BAD_DATA, "invalid second fragment", allowed_echo=b"valid start then ",
                    unfinished=True)
        # Separate writes: the first fragment's echo may come before the failure.
        with RawWS(srv.port) as ws:
            ws.send_frame(OP_TEXT, b"hello ", fin=False)
            ws.send_frame(OP_CONT, b"\xc3\x28", fin=True)
            before = expect_protocol_close(ws, BAD_DATA)
            echoed = b"".join(f.payload for f in before if f.opcode < 8)
            assert b"hello ".startswith(echoed), echoed


def test_invalid_utf8_split_across_fragments():
    with Server() as srv:
        check_fails(srv, frame(OP_TEXT, b"ab\xf4", fin=False) + frame(OP_CONT, b"\x90\x80\x80"),
                    BAD_DATA, "\\xf4 | \\x90 across fragments", allowed_echo=b"ab\xf4", unfinished=True)
        check_fails(srv, frame(OP_TEXT, b"ab\xed", fin=False) + frame(OP_CONT, b"\xa0\x80"),
                    BAD_DATA, "surrogate across fragments", allowed_echo=b"ab\xed", unfinished=True)


def test_truncated_utf8_at_message_end():
    with Server() as srv:
        check_fails(srv, frame(OP_TEXT, b"euro \xe2\x82"), BAD_DATA, "truncated at end",
                    allowed_echo=b"euro \xe2\x82", unfinished=True)
        check_fails(srv, frame(OP_TEXT, b"ok", fin=False) + frame(OP_CONT, b"\xf0\x9f\x98"),
                    BAD_DATA, "truncated at the end of the last fragment",
                    allowed_echo=b"ok\xf0\x9f\x98", unfinished=True)
        check_fails(srv, frame(OP_TEXT, b"a\xe2", fin=False) + frame(OP_CONT, b""),
                    BAD_DATA, "truncated, then an empty final fragment", allowed_echo=b"a\xe2",
                    unfinished=True)


def test_valid_utf8_split_across_fragments_and_binary_not_checked():
    with Server() as srv, RawWS(srv.port) as ws:
        # A 3-byte and a 4-byte character cut between fragments are fine.
        ws.send(frame(OP_TEXT, b"price \xe2", fin=False) + frame(OP_CONT, b"\x82", fin=False)
                + frame(OP_CONT, b"\xac \xf0\x9f", fin=False) + frame(OP_CONT, b"\x98\x80"))
        assert ws.recv_message(timeout=5) == (OP_TEXT, "price \u20ac \U0001f600".encode())
        for blob in [b"\xff\xfe\xfd", b"\xed\xa0\x80", b"ab\xe2\x82"]:
            ws.echo(OP_BINARY, blob)
        ws.send(frame(OP_BINARY, b"\xf4", fin=False) + frame(OP_CONT, b"\x90"))
        assert ws.recv_message(timeout=5) == (OP_BINARY, b"\xf4\x90")


# ---- message size ---------------------------------------------------------------

def test_max_message():
    with Server("--max-message", "1000") as srv:
        with RawWS(srv.port) as ws:
            ws.echo(OP_BINARY, os.urandom(1000))
            ws.echo(OP_TEXT, b"t" * 1000)
            ws.send(frame(OP_TEXT, b"a" * 400, fin=False) + frame(OP_CONT, b"b" * 600))
            assert ws.recv_message(timeout=5) == (OP_TEXT, b"a" * 400 + b"b" * 600)
        check_fails(srv, frame(OP_BINARY, b"x" * 1001), TOO_BIG, "1001-byte message")
        check_fails(srv, frame(OP_TEXT, b"y" * 1001), TOO_BIG, "1001-byte text message")
        check_fails(srv, frame(OP_BINARY, b"a" * 500, fin=False) + frame(OP_CONT, b"b" * 501),
                    TOO_BIG, "fragments totalling 1001", allowed_echo=b"a" * 500)
        check_fails(srv, frame(OP_TEXT, b"a" * 1000, fin=False) + frame(OP_CONT, b"b"),
                    TOO_BIG, "1000 + 1 fragments", allowed_echo=b"a" * 1000)


def test_default_max_message_refused_at_header():
    """One byte over the default 16 MiB: 1009 as soon as the header is seen."""
    with Server() as srv, RawWS(srv.port) as ws:
        ws.send(frame(OP_BINARY, b"", declared_len=16 * 1024 * 1024 + 1))
        expect_protocol_close(ws, TOO_BIG)


# ---- isolation (spec 11) ----------------------------------------------------------

async def test_protocol_error_does_not_disturb_others():
    with Server() as srv:
        bad = RawWS(srv.port)
        bad_worker = srv.worker_of(bad.local_port)
        clients = []
        try:
            # Clients on the failing peer's worker (and most likely on the other one too).
            same = 0
            for _ in range(40):
                ws = await ws_connect(srv.uri())
                clients.append(ws)
                port = ws.transport.get_extra_info("sockname")[1]
                if await asyncio.get_running_loop().run_in_executor(None, srv.worker_of, port) == bad_worker:
                    same += 1
                if same >= 2 and len(clients) >= 4:
                    break
            assert same, "no client landed on the failing peer's worker"
            for i, ws in enumerate(clients):
                await ws.send(f"before {i}")
                assert await wse.wait_for(ws.recv(), 10, "echo") == f"before {i}"
            # A message in progress on another connection survives too.
            raw_other = RawWS(srv.port)
            raw_other.send_frame(OP_TEXT, b"half ", fin=False)
            bad.send(frame(OP_TEXT, b"x", rsv=4))
            expect_protocol_close(bad, PROTOCOL_ERROR)
            for i, ws in enumerate(clients):
                await ws.send(f"after {i}")
                assert await wse.wait_for(ws.recv(), 10, "echo") == f"after {i}"
            raw_other.send_frame(OP_CONT, b"and half")
            controls = []
            assert raw_other.recv_message(timeout=5, controls=controls) == (OP_TEXT, b"half and half")
            raw_other.close()
        finally:
            bad.close()
            for ws in clients:
                await ws.close()
