"""Handshake timeout against slowloris (spec 5) and idle handling (spec 6)."""
import asyncio
import socket
import time

import wse
from wse import OP_PING, OP_PONG, OP_TEXT, RawWS, Server, ws_connect

PARTIAL = b"GET /websocket HTTP/1.1\r\nHost: x\r\n"


async def echo_until(ws, done, label):
    """Echoes on ws until the future done completes; returns the count."""
    n = 0
    while not done.done():
        msg = f"{label} {n}"
        await ws.send(msg)
        got = await wse.wait_for(ws.recv(), 5, f"{label}: echo {n}")
        assert got == msg, got
        n += 1
        await asyncio.wait([done], timeout=0.05)
    return n


async def test_slowloris_closed_by_handshake_timeout():
    loop = asyncio.get_running_loop()
    with Server("--handshake-timeout", "1", access_log=True) as srv:
        slow = RawWS(srv.port, handshake=False)
        try:
            t0 = time.monotonic()
            slow.send(PARTIAL)
            closed = loop.run_in_executor(None, slow.wait_tcp_close, 6)
            async with ws_connect(srv.uri()) as ws:
                n = await echo_until(ws, closed, "meanwhile")
                elapsed = time.monotonic() - t0
                assert await closed, f"half a request still open after {wse.scaled(6):.1f}s"
                assert elapsed >= 0.5, f"closed after only {elapsed:.2f}s (handshake timeout 1s)"
                assert elapsed <= wse.scaled(6), f"closed after {elapsed:.2f}s"
                assert n >= 1
                # The upgraded connection outlived the handshake timeout.
                await ws.send("after")
                assert await wse.wait_for(ws.recv(), 5, "echo") == "after"
            srv.wait_for_access(r" request=- status=- time=\d+\.\d{3} msgs=0 bytes=0 close=- by=timeout$", 1, 5)
        finally:
            slow.close()


def test_slowloris_dribbling_bytes_does_not_extend_the_timeout():
    """One more header byte every 0.2 s: the handshake timeout still ends it."""
    with Server("--handshake-timeout", "1") as srv, RawWS(srv.port, handshake=False) as slow:
        t0 = time.monotonic()
        slow.send(PARTIAL)
        sent = 0
        filler = b"X-Slow: " + b"a" * 1000
        while True:
            # Waiting for the close is also the pause between bytes.
            if slow.wait_tcp_close(0.2 / wse.FACTOR):
                break
            try:
                slow.send(filler[sent % len(filler):][:1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            assert time.monotonic() - t0 < wse.scaled(6), \
                f"still open after {sent} dribbled bytes and {time.monotonic() - t0:.1f}s"
        elapsed = time.monotonic() - t0
        assert 0.5 <= elapsed <= wse.scaled(6), f"closed after {elapsed:.2f}s"


def test_idle_peer_gets_ping_then_1001():
    with Server("--ping-interval", "0.5", "--idle-timeout", "1.5") as srv, RawWS(srv.port) as ws:
        t0 = time.monotonic()
        f = ws.recv_frame(timeout=4)
        t_ping = time.monotonic() - t0
        assert f.opcode == OP_PING, f"expected a ping, got {f}"
        assert 0.3 <= t_ping <= wse.scaled(2.5), f"ping after {t_ping:.2f}s (interval 0.5s)"
        # Never answered: closed with 1001 (going away).
        code, reason, before = ws.expect_close(6)
        t_close = time.monotonic() - t0
        assert code == 1001, f"idle close with {code} {reason!r}"
        assert all(fr.opcode == OP_PING for fr in before), before
        assert 1.0 <= t_close <= wse.scaled(5), f"idle close after {t_close:.2f}s (timeout 1.5s)"
        # The client completes the close handshake the server started: the
        # server must now close TCP at once (RFC 6455 7.1.1), not after
        # waiting out --close-timeout (5 s).
        t_reply = time.monotonic()
        ws.send_close(1001)
        closed = ws.wait_tcp_close(2)
        assert closed, ("TCP still open %.1fs after the client answered the server's close "
                        "frame" % (time.monotonic() - t_reply))


def raw_ponger(port, seconds):
    """Answers every ping for `seconds`; returns the pings seen."""
    pings = 0
    with RawWS(port) as ws:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                f = ws.recv_frame(deadline=time.monotonic() + left)
            except socket.timeout:
                break
            assert f.opcode == OP_PING, f"answering client got {f}"
            ws.send_frame(OP_PONG, f.payload)
            pings += 1
        # A ping may come before the echo: it is the server doing its job.
        ws.send_frame(OP_TEXT, b"still open")
        controls = []
        assert ws.recv_message(controls=controls) == (OP_TEXT, b"still open")
        assert all(f.opcode == OP_PING for f in controls), controls
    return pings


async def test_clients_answering_pings_stay_open():
    loop = asyncio.get_running_loop()
    with Server("--ping-interval", "0.5", "--idle-timeout", "1.5") as srv:
        raw = loop.run_in_executor(None, raw_ponger, srv.port, 3.0)
        # websockets answers pings by itself; its own keepalive pings are off
        # so that pongs are the only thing it sends.
        async with ws_connect(srv.uri(), ping_interval=None) as ws:
            try:
                await asyncio.wait_for(ws.wait_closed(), 3.0)
                raise AssertionError(f"websockets client closed by the server: {ws.close_code}")
            except asyncio.TimeoutError:
                pass
            await ws.send("after 3 s")
            assert await wse.wait_for(ws.recv(), 5, "echo") == "after 3 s"
        pings = await wse.wait_for(raw, 10, "raw ponging client")
        assert pings >= 2, f"only {pings} pings in 3 s with --ping-interval 0.5"
