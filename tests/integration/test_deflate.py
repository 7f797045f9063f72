"""permessage-deflate (RFC 7692) end to end: negotiation with python
websockets (which offers it by default), every window and takeover
combination the client can ask for, a bulk echo in the style of Autobahn's
12.x/13.x, the RSV1 rules, bombs, corrupt data, the Safari guard, and the
plain connection's behaviours (pings, close, prefix, backpressure) over a
deflate connection.

Raw-socket cases compress with Python's zlib (raw deflate, the sync-flush
tail dropped: RFC 7692 7.2.1), independently of the server."""
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import zlib

import wse
from wse import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, Server, ws_connect

PMD = "--permessage-deflate"
TAIL = b"\x00\x00\xff\xff"
RSV1 = 4            # wse.frame's rsv field: RSV1 is its top bit


def deflate(data, co=None):
    co = co or zlib.compressobj(6, zlib.DEFLATED, -15)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(payload, do=None, bits=15):
    do = do or zlib.decompressobj(-bits)
    return do.decompress(payload + TAIL)


def offer(params="client_no_context_takeover"):
    return [f"Sec-WebSocket-Extensions: permessage-deflate; {params}"]


def recv_echo(ws, timeout=10):
    """(opcode, rsv of the first frame, joined payload) of the next message."""
    deadline = ws._deadline(timeout)
    first, parts = None, []
    while True:
        f = ws.recv_frame(deadline=deadline)
        assert f.opcode < 8, f"control frame {f} while waiting for an echo"
        if first is None:
            first = f
            assert f.opcode in (OP_TEXT, OP_BINARY), f
        else:
            assert f.opcode == OP_CONT and f.rsv == 0, f"continuation {f}"
        parts.append(f.payload)
        if f.fin:
            return first.opcode, first.rsv, b"".join(parts)


def raw_echo(ws, opcode, data, do=None, fragments=1):
    """Sends data compressed (in `fragments` frames), returns the inflated echo."""
    payload = deflate(data)
    step = max(1, len(payload) // fragments)
    pieces = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
    for i, p in enumerate(pieces):
        ws.send_frame(opcode if i == 0 else OP_CONT, p, fin=i == len(pieces) - 1,
                      rsv=RSV1 if i == 0 else 0)
    op, rsv, got = recv_echo(ws)
    assert op == opcode
    return inflate(got, do) if rsv & RSV1 else got


# ---- negotiation ----------------------------------------------------------

async def test_python_websockets_negotiates_and_echoes():
    with Server(PMD) as srv:
        async with ws_connect(srv.uri()) as ws:       # compression="deflate" by default
            hdr = ws.response_headers.get("Sec-WebSocket-Extensions", "")
            assert hdr.startswith("permessage-deflate"), hdr
            assert ws.extensions and ws.extensions[0].name == "permessage-deflate", ws.extensions
            for msg in ["hello", "x" * 100000, os.urandom(5000), "", json.dumps(list(range(999)))]:
                await ws.send(msg)
                got = await wse.wait_for(ws.recv(), 10, "echo")
                assert got == msg, f"{len(msg)}-byte message echoed as {len(got)}"


async def test_declined_when_off_and_for_an_8_bit_server_window():
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    with Server() as srv:
        async with ws_connect(srv.uri()) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            assert not ws.extensions
    with Server(PMD) as srv:
        f = ClientPerMessageDeflateFactory(server_max_window_bits=8)
        async with ws_connect(srv.uri(), extensions=[f], compression=None) as ws:
            assert not ws.extensions, ws.response_headers
            await ws.send("still echoed")
            assert await wse.wait_for(ws.recv(), 10) == "still echoed"


# ---- every combination, bulk ----------------------------------------------

def bulk_messages(n, seed, max_size=128 * 1024):
    """n messages of 16 B .. max_size, log-uniform: JSON, text and binary."""
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "\u00e9t\u00e9", "\u20ac", "\U0001f600", "id", "42"]
    out = []
    for i in range(n):
        size = int(16 * (max_size / 16) ** rnd.random())
        kind = i % 3
        if kind == 0:
            obj, s = [], 2
            while s < size:
                item = {"k": rnd.choice(words), "v": rnd.randint(0, 1 << 30), "i": i}
                obj.append(item)
                s += 40
            out.append(json.dumps(obj, ensure_ascii=False))
        elif kind == 1:
            out.append(" ".join(rnd.choice(words) for _ in range(max(1, size // 6))))
        else:
            half = size // 2
            out.append(rnd.randbytes(half) + bytes(size - half))
    return out


async def bulk(uri, factory, msgs, frag_every=4):
    async with ws_connect(uri, extensions=[factory], compression=None,
                          max_queue=None) as ws:
        assert ws.extensions, "permessage-deflate was not negotiated"
        ext = ws.extensions[0]

        async def sender():
            for i, m in enumerate(msgs):
                if i % frag_every == 1 and len(m) > 3:
                    k = len(m) // 3
                    await ws.send([m[:k], m[k:2 * k], m[2 * k:]])
                else:
                    await ws.send(m)

        task = asyncio.ensure_future(sender())
        for i, m in enumerate(msgs):
            got = await wse.wait_for(ws.recv(), 20, f"echo {i}")
            assert got == m, f"message {i} ({len(m)} bytes, {type(m).__name__}) echoed wrong"
        await task
        return ext


def combinations():
    for snct in (False, True):
        for cnct in (False, True):
            for sbits in (None, 9, 12, 15):
                for cbits in (True, None, 9, 15):
                    yield snct, cnct, sbits, cbits


async def run_combinations(server_args, n_msgs, max_size):
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    with Server(PMD, *server_args, "--max-message", "1M") as srv:
        for k, (snct, cnct, sbits, cbits) in enumerate(combinations()):
            f = ClientPerMessageDeflateFactory(server_no_context_takeover=snct,
                                               client_no_context_takeover=cnct,
                                               server_max_window_bits=sbits,
                                               client_max_window_bits=cbits)
            msgs = bulk_messages(n_msgs, k, max_size)
            label = f"snct={snct} cnct={cnct} sbits={sbits} cbits={cbits}"
            try:
                ext = await bulk(srv.uri(), f, msgs)
            except AssertionError as e:
                raise AssertionError(f"{server_args} {label}: {e}") from None
            # The server's answer is binding: what the client agreed to.
            if snct or "--deflate-server-takeover" not in server_args:
                assert ext.remote_no_context_takeover, label
            if sbits:
                assert ext.remote_max_window_bits <= sbits, label


@wse.timeout(240)
async def test_every_combination_takeover_off():
    """64 combinations of what a client can ask, 40 messages each up to 128 KiB."""
    await run_combinations([], 40, 128 * 1024)


@wse.timeout(240)
async def test_every_combination_takeover_on():
    await run_combinations(["--deflate-server-takeover", "--deflate-client-takeover",
                            "--deflate-mem-level", "4", "--deflate-min-size", "0"], 40, 128 * 1024)


@wse.timeout(300)
async def test_bulk_1000_messages_per_setting():
    """Autobahn 12.x/13.x in spirit: 1000 messages of 16 B-128 KiB (JSON, text,
    binary; every fourth fragmented) for the takeover settings on both ends."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    settings = [([], dict(client_max_window_bits=True)),
                (["--deflate-server-takeover", "--deflate-client-takeover"],
                 dict(client_max_window_bits=True)),
                (["--deflate-server-takeover", "--deflate-client-takeover",
                  "--deflate-window-bits", "9", "--deflate-level", "6"],
                 dict(client_max_window_bits=9)),
                ([], dict(server_no_context_takeover=True, client_no_context_takeover=True,
                          server_max_window_bits=10, client_max_window_bits=10))]
    for i, (args, kw) in enumerate(settings):
        with Server(PMD, *args, "--max-message", "1M") as srv:
            t = time.monotonic()
            await bulk(srv.uri(), ClientPerMessageDeflateFactory(**kw),
                       bulk_messages(1000, 100 + i, 128 * 1024))
            assert time.monotonic() - t < wse.scaled(120), f"{args} {kw} took too long"


# ---- the RSV1 rules and bad data ------------------------------------------

def test_rsv1_on_continuation_or_control_frame_is_1002():
    with Server(PMD) as srv:
        with RawWS(srv.port, headers=offer()) as ws:
            assert ws.response_headers["sec-websocket-extensions"].startswith("permessage-deflate")
            ws.send_frame(OP_TEXT, deflate(b"abc"), fin=False, rsv=RSV1)
            ws.send_frame(OP_CONT, deflate(b"def"), fin=True, rsv=RSV1)
            wse.expect_protocol_close(ws, 1002)
        for op in (OP_PING, OP_PONG, OP_CLOSE):
            with RawWS(srv.port, headers=offer()) as ws:
                ws.send_frame(op, b"", rsv=RSV1)
                wse.expect_protocol_close(ws, 1002)
    with Server() as srv:       # without the extension RSV1 is always 1002
        with RawWS(srv.port, headers=offer()) as ws:
            assert "sec-websocket-extensions" not in ws.response_headers
            ws.send_frame(OP_TEXT, deflate(b"abc"), rsv=RSV1)
            wse.expect_protocol_close(ws, 1002)


def test_corrupt_data_and_bad_utf8_are_1007():
    with Server(PMD) as srv:
        with RawWS(srv.port, headers=offer()) as ws:
            ws.send_frame(OP_BINARY, b"\xff\xff\xff\xff\x00", rsv=RSV1)
            wse.expect_protocol_close(ws, 1007)
        with RawWS(srv.port, headers=offer()) as ws:
            ws.send_frame(OP_TEXT, deflate(b"fine \xc3\x28 not"), rsv=RSV1)
            wse.expect_protocol_close(ws, 1007)
        with RawWS(srv.port, headers=offer()) as ws:     # cut inside a character
            ws.send_frame(OP_TEXT, deflate(b"cut \xe2\x82"), rsv=RSV1)
            wse.expect_protocol_close(ws, 1007)
        # Binary is not UTF-8 checked once inflated.
        with RawWS(srv.port, headers=offer()) as ws:
            assert raw_echo(ws, OP_BINARY, b"\xc3\x28" * 100) == b"\xc3\x28" * 100


def rss_anon_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError(f"no RssAnon in /proc/{pid}/status")


def test_bomb_is_1009_at_the_inflated_limit_with_bounded_memory():
    bomb = deflate(bytes(256 << 20))           # 256 MiB of zeros: about 256 KiB on the wire
    assert len(bomb) < 300 * 1024
    with Server(PMD, "-w", "1", "--max-message", "1M", workers=None) as srv:
        worker = srv.children()[0]
        with RawWS(srv.port, headers=offer()) as ws:
            assert raw_echo(ws, OP_TEXT, b"warm up " * 1000) == b"warm up " * 1000
        before = rss_anon_kib(worker)
        for opcode in (OP_BINARY, OP_TEXT):
            with RawWS(srv.port, headers=offer()) as ws:
                ws.send_frame(opcode, bomb, rsv=RSV1)
                before_close = wse.expect_protocol_close(ws, 1009)
                echoed = sum(len(f.payload) for f in before_close)
                assert echoed < 64 * 1024, f"{echoed} compressed bytes echoed before 1009"
        growth = rss_anon_kib(worker) - before
        if not wse.SAN:
            assert growth < 2048, f"worker RssAnon grew {growth} KiB for two bombs"
        # Just under the limit is fine.
        with RawWS(srv.port, headers=offer()) as ws:
            assert raw_echo(ws, OP_BINARY, bytes(1 << 20)) == bytes(1 << 20)


# ---- what a plain connection does, over deflate ---------------------------

def test_uncompressed_messages_and_small_echoes_go_back_uncompressed():
    with Server(PMD, "--deflate-min-size", "100") as srv:
        with RawWS(srv.port, headers=offer()) as ws:
            ws.send_text("plain text")          # RSV1 clear: echoed as it came
            assert recv_echo(ws) == (OP_TEXT, 0, b"plain text")
            ws.send_frame(OP_TEXT, deflate(b"tiny"), rsv=RSV1)
            assert recv_echo(ws) == (OP_TEXT, 0, b"tiny")   # under --deflate-min-size
            big = b"abcdefgh" * 100
            ws.send_frame(OP_TEXT, deflate(big), rsv=RSV1)
            op, rsv, payload = recv_echo(ws)
            assert rsv == RSV1 and inflate(payload) == big and len(payload) < 100


def test_echo_prefix_over_deflate_and_pings_and_close():
    with Server(PMD, "--echo-prefix", "You said: ") as srv:
        with RawWS(srv.port, headers=offer()) as ws:
            assert raw_echo(ws, OP_TEXT, b"hello" * 50) == b"You said: " + b"hello" * 50
            assert raw_echo(ws, OP_TEXT, b"x" * 70000, fragments=3) == b"You said: " + b"x" * 70000
            assert raw_echo(ws, OP_BINARY, b"bin" * 50) == b"bin" * 50    # binary: no prefix
            # A ping between the fragments of a compressed message.
            payload = deflate(b"fragmented " * 40)
            ws.send_frame(OP_TEXT, payload[:10], fin=False, rsv=RSV1)
            ws.send_frame(OP_PING, b"p1")
            ws.send_frame(OP_CONT, payload[10:], fin=True)
            frames = []
            while True:
                f = ws.recv_frame()
                frames.append(f)
                if f.opcode != OP_PONG and f.fin:
                    break
            pongs = [f for f in frames if f.opcode == OP_PONG]
            assert pongs and pongs[0].payload == b"p1" and pongs[0].rsv == 0, frames
            data = b"".join(f.payload for f in frames if f.opcode < 8)
            assert inflate(data) == b"You said: " + b"fragmented " * 40
            ws.send_close(1000)
            code, _, _ = ws.expect_close()
            assert code == 1000
            assert ws.wait_tcp_close()


def test_takeover_streams_carry_context():
    """With client takeover the second identical message is a back reference
    into the first: it only inflates if the server kept its window."""
    with Server(PMD, "--deflate-client-takeover", "--deflate-server-takeover") as srv:
        with RawWS(srv.port, headers=offer("client_max_window_bits")) as ws:
            hdr = ws.response_headers["sec-websocket-extensions"]
            assert "no_context_takeover" not in hdr, hdr
            co, do = zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)
            msg = os.urandom(3000)
            for i in range(3):
                p = deflate(msg, co)
                if i:
                    assert len(p) < 100     # the client's back reference
                ws.send_frame(OP_BINARY, p, rsv=RSV1)
                op, rsv, payload = recv_echo(ws)
                assert rsv == RSV1 and inflate(payload, do) == msg
                if i:
                    assert len(payload) < 100, "the server's echo did not use its context"


SAFARI_15_2 = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
               "(KHTML, like Gecko) Version/15.2 Safari/605.1.15")
SAFARI_15_4 = SAFARI_15_2.replace("Version/15.2", "Version/15.4")


def takeover_anyway(port, ua):
    """A client that agrees to client_no_context_takeover and keeps its
    context anyway (Safari 15.0-15.3): the close code, or None if all echoed."""
    with RawWS(port, headers=offer() + [f"User-Agent: {ua}"]) as ws:
        assert "client_no_context_takeover" in ws.response_headers["sec-websocket-extensions"]
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        msg = os.urandom(2000)
        for _ in range(3):
            ws.send_frame(OP_BINARY, deflate(msg, co), rsv=RSV1)
            f = ws.recv_frame()
            if f.opcode == OP_CLOSE:
                return wse.parse_close(f.payload)[0]
            assert inflate(f.payload) == msg
        return None


def test_safari_guard_keeps_an_inflate_context():
    with Server(PMD) as srv:
        assert takeover_anyway(srv.port, SAFARI_15_2) is None
        assert takeover_anyway(srv.port, SAFARI_15_4) == 1007     # not guarded: the reset shows
    # A yes/no option defaulting to yes is turned off in the file.
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write("deflate-safari-guard = no\n")
        conf.flush()
        with Server(PMD, "-c", conf.name) as srv:
            assert takeover_anyway(srv.port, SAFARI_15_2) == 1007


def test_backpressure_over_deflate():
    """A peer that never reads: the server stops reading it at --high-water
    (compressed output counts), and other peers are served meanwhile."""
    with Server(PMD, "-w", "1", "--high-water", "64K", "--low-water", "16K",
                "--deflate-min-size", "0", workers=None) as srv:
        ws = RawWS(srv.port, headers=offer(), rcvbuf=4096)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        msg = deflate(os.urandom(16384))
        sent = 0
        ws.sock.setblocking(False)
        deadline = time.monotonic() + wse.scaled(10)
        stalled = False
        while time.monotonic() < deadline:
            try:
                ws.sock.send(wse.frame(OP_BINARY, msg, rsv=RSV1))
                sent += 1
            except (BlockingIOError, InterruptedError):
                stalled = True
                break
            except ValueError:
                break
        assert stalled, f"the server kept reading: {sent} messages of 16 KiB taken"
        assert sent < 400, sent
        with RawWS(srv.port, headers=offer()) as other:
            assert raw_echo(other, OP_TEXT, b"others served") == b"others served"
        ws.sock.close()


def test_drain_on_reload_closes_deflate_connections():
    with Server(PMD, "--drain-timeout", "5", "--close-spread", "0") as srv:
        with RawWS(srv.port, headers=offer()) as ws:
            assert raw_echo(ws, OP_TEXT, b"before reload") == b"before reload"
            srv.signal(signal.SIGHUP)
            code, _, before = ws.expect_close(timeout=15)
            assert code in (1001, 1012), code


def worker_counters(srv):
    p = subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}", "--json"],
                       capture_output=True, text=True, timeout=wse.scaled(10))
    assert p.returncode == 0, f"wsechod stats: status {p.returncode}: {p.stderr}"
    return json.loads(p.stdout)["workers"][0]["counters"]


def test_output_of_one_small_piece_is_held_to_high_water():
    """One 16 KiB compressed piece inflates to 16 MiB; echoed at level 0 it
    stays 16 MiB.  A peer that does not read must not make the server queue
    it: the transform pauses at --high-water inside the piece, and resumes
    as the peer reads, and the whole echo arrives intact."""
    size = 16 << 20
    bomb = deflate(bytes(size))
    with Server(PMD, "-w", "1", "--deflate-level", "0", "--max-message", "32M",
                "--high-water", "64K", "--low-water", "16K", workers=None) as srv:
        with RawWS(srv.port, headers=offer(), rcvbuf=65536) as ws:
            ws.send_frame(OP_BINARY, bomb, rsv=RSV1)
            ws.send_frame(OP_PING, b"after")      # held back behind the paused piece
            wse.wait_until(lambda: worker_counters(srv)["backpressure"] >= 1, wse.scaled(10),
                           "backpressure on the non-reading peer")
            # One worker: once another peer's echo is back, the first peer's
            # piece has been handled as far as it goes.
            with RawWS(srv.port, headers=offer()) as other:
                assert raw_echo(other, OP_TEXT, b"served meanwhile") == b"served meanwhile"
            buffered = worker_counters(srv)["bytes_buffered"]
            assert buffered < 1 << 20, f"{buffered} bytes queued for a peer that does not read"
            parts, controls = [], []
            while True:
                f = ws.recv_frame(timeout=30)
                if f.opcode >= 8:
                    controls.append(f)
                    continue
                parts.append(f.payload)
                if f.fin:
                    break
            wire = b"".join(parts)
            assert len(wire) > size // 2, f"{len(wire)} bytes on the wire for {size} zeros at level 0"
            assert inflate(wire) == bytes(size)
            f = controls[0] if controls else ws.recv_frame(timeout=10)
            assert (f.opcode, f.payload) == (OP_PONG, b"after"), f


def test_drain_while_a_piece_is_paused():
    """A reload that closes at once (--drain-timeout 0) a connection whose
    compressed piece is paused at the high-water mark: the paused echo is
    dropped, the close frame goes out after what was queued, and the old
    worker exits cleanly."""
    bomb = deflate(bytes(16 << 20))
    with Server(PMD, "-w", "1", "--deflate-level", "0", "--max-message", "32M",
                "--high-water", "64K", "--low-water", "16K", "--close-spread", "0",
                "--drain-timeout", "0", workers=None) as srv:
        with RawWS(srv.port, headers=offer(), rcvbuf=65536) as ws:
            ws.send_frame(OP_BINARY, bomb, rsv=RSV1)
            wse.wait_until(lambda: worker_counters(srv)["backpressure"] >= 1, wse.scaled(10),
                           "backpressure on the non-reading peer")
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload: generation 2 serving", 20)
            code, _, before = ws.expect_close(timeout=30)
            assert code in (1001, 1012), code
            echoed = sum(len(f.payload) for f in before)
            assert 0 < echoed < 16 << 20, f"{echoed} bytes echoed before the drain's close"
            assert not any(f.fin for f in before if f.opcode < 8), "the paused echo was finished"
        srv.wait_for_line(r"worker 0 \(pid \d+, generation 1\) exited with status 0", 20)
