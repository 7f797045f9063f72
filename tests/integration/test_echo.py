"""Echo through the python websockets client (spec 1) and --echo-prefix (spec 9)."""
import asyncio
import os
import random

import wse
from wse import OP_BINARY, OP_TEXT, RawWS, Server, ws_connect

SIZES = [0, 1, 125, 126, 65535, 65536]


def text_of(n, seed=0):
    rnd = random.Random(seed + n)
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(n))


async def test_text_sizes():
    with Server() as srv:
        async with ws_connect(srv.uri()) as ws:
            for n in SIZES:
                msg = text_of(n)
                await ws.send(msg)
                got = await wse.wait_for(ws.recv(), 10, f"echo of {n} text bytes")
                assert isinstance(got, str), f"{n}: text came back as {type(got).__name__}"
                assert got == msg, f"{n}-byte text echoed as {len(got)} characters"


async def test_text_multibyte_utf8():
    # 2-, 3- and 4-byte sequences, also straddling the 125/126 length boundary.
    samples = ["h\u00e9llo \u20ac \U0001d11e", "\u00e9" * 63, "\u20ac" * 42, "\U0001f600" * 16384]
    with Server() as srv:
        async with ws_connect(srv.uri()) as ws:
            for msg in samples:
                await ws.send(msg)
                got = await wse.wait_for(ws.recv(), 10, "echo")
                assert got == msg, f"{len(msg.encode())}-byte UTF-8 text changed in the echo"


async def test_binary_sizes():
    with Server() as srv:
        async with ws_connect(srv.uri()) as ws:
            for n in SIZES:
                msg = os.urandom(n)
                await ws.send(msg)
                got = await wse.wait_for(ws.recv(), 10, f"echo of {n} binary bytes")
                assert isinstance(got, bytes), f"{n}: binary came back as {type(got).__name__}"
                assert got == msg, f"{n}-byte binary echoed as {len(got)} different bytes"


@wse.timeout(60)
async def test_16mib_messages():
    """16 MiB exactly is the default --max-message and must be accepted."""
    n = 16 * 1024 * 1024
    with Server() as srv:
        async with ws_connect(srv.uri()) as ws:
            blob = os.urandom(n)
            await ws.send(blob)
            got = await wse.wait_for(ws.recv(), 30, "echo of 16 MiB binary")
            assert len(got) == n and got == blob, f"16 MiB binary echoed as {len(got)} bytes"
            text = "x" * (n - 3) + "\u20ac"          # 16 MiB of UTF-8, ending in a 3-byte char
            await ws.send(text)
            got = await wse.wait_for(ws.recv(), 30, "echo of 16 MiB text")
            assert got == text, f"16 MiB text echoed as {len(got)} characters"
            await ws.send("still here")
            assert await wse.wait_for(ws.recv(), 10, "echo") == "still here"


async def test_fragmented_messages():
    with Server() as srv:
        async with ws_connect(srv.uri()) as ws:
            cases = [
                ["ab", "cd", "ef"],
                ["", "x", ""],
                [text_of(200, 1), text_of(70000, 2), "\u20ac" * 10],
                [os.urandom(10), os.urandom(0), os.urandom(65536), os.urandom(3)],
                [os.urandom(126)] * 20,
            ]
            for frags in cases:
                await ws.send(frags)
                got = await wse.wait_for(ws.recv(), 10, "echo of a fragmented message")
                want = frags[0][:0].join(frags)
                assert type(got) is type(want), f"fragmented {type(want).__name__} came back as {type(got).__name__}"
                assert got == want, f"fragmented message ({len(frags)} fragments) echoed wrong"
            # A message whose fragments arrive over time (async iterator).
            q = asyncio.Queue()

            async def parts():
                for i in range(5):
                    yield await q.get()

            sender = asyncio.ensure_future(ws.send(parts()))
            for i in range(5):
                await q.put(f"part{i}-")
            await wse.wait_for(sender, 10, "sending fragments")
            got = await wse.wait_for(ws.recv(), 10, "echo")
            assert got == "part0-part1-part2-part3-part4-", got


async def test_many_messages_pipelined():
    count = 1000
    msgs = [(text_of(i % 300, i) if i % 2 else os.urandom(i % 500)) for i in range(count)]
    with Server() as srv:
        async with ws_connect(srv.uri(), max_queue=None) as ws:
            async def send_all():
                for m in msgs:
                    await ws.send(m)

            async def recv_all():
                return [await ws.recv() for _ in range(count)]

            _, got = await wse.wait_for(asyncio.gather(send_all(), recv_all()), 30,
                                        f"{count} pipelined echoes")
            for i, (a, b) in enumerate(zip(msgs, got)):
                assert a == b, f"message {i} of {count} echoed wrong or out of order"


def test_raw_pipelined_frames_in_one_write():
    """Hundreds of small frames in one TCP write come back in order."""
    count = 400
    msgs = [(OP_TEXT, text_of(i % 130, i).encode()) if i % 3 else (OP_BINARY, os.urandom(i % 200))
            for i in range(count)]
    with Server() as srv, RawWS(srv.port) as ws:
        ws.send(b"".join(wse.frame(op, p) for op, p in msgs))
        for i, want in enumerate(msgs):
            got = ws.recv_message(timeout=10)
            assert got == want, f"pipelined frame {i}: got opcode {got[0]} len {len(got[1])}, " \
                                f"want opcode {want[0]} len {len(want[1])}"


def test_raw_frames_split_byte_by_byte():
    """A frame arriving one byte per TCP segment is still echoed."""
    with Server() as srv, RawWS(srv.port) as ws:
        for op, payload in [(OP_TEXT, "h\u00e9llo \u20ac".encode()), (OP_BINARY, os.urandom(300))]:
            data = wse.frame(op, payload)
            for b in data:
                ws.send(bytes([b]))
            assert ws.recv_message(timeout=10) == (op, payload)


# ---- --echo-prefix (spec 9) ------------------------------------------------

async def test_echo_prefix():
    prefix = "You said: "
    with Server("--echo-prefix", prefix) as srv:
        async with ws_connect(srv.uri()) as ws:
            await ws.send("hi")
            assert await wse.wait_for(ws.recv(), 10, "echo") == "You said: hi"
            await ws.send("")
            assert await wse.wait_for(ws.recv(), 10, "echo") == "You said: "
            blob = os.urandom(1000)
            await ws.send(blob)
            assert await wse.wait_for(ws.recv(), 10, "echo") == blob, "binary got a prefix"
            await ws.send(["frag", "mented ", "text"])
            got = await wse.wait_for(ws.recv(), 10, "echo")
            assert got == "You said: fragmented text", f"fragmented text echoed as {got!r}"
            big = text_of(70000)
            await ws.send(big)
            assert await wse.wait_for(ws.recv(), 10, "echo") == prefix + big


def test_echo_prefix_raw_fragments():
    """The prefix goes before the first fragment only, also for pipelined messages."""
    with Server("--echo-prefix", "> ") as srv, RawWS(srv.port) as ws:
        ws.send(wse.frame(OP_TEXT, b"one ", fin=False) + wse.frame(0, b"two ", fin=False)
                + wse.frame(0, b"three") + wse.frame(OP_TEXT, b"four")
                + wse.frame(OP_BINARY, b"\x00\x01"))
        assert ws.recv_message(timeout=10) == (OP_TEXT, b"> one two three")
        assert ws.recv_message(timeout=10) == (OP_TEXT, b"> four")
        assert ws.recv_message(timeout=10) == (OP_BINARY, b"\x00\x01")
