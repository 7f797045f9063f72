"""The pass-through echo (ARCHITECTURE.md) end to end, through the real
connection: with context takeover both ways and client_max_window_bits <=
server_max_window_bits the echo of a compressed message is the client's own
payload, byte for byte; uncompressed messages in between go back
uncompressed and leave both histories alone; a BFINAL message is passed
through and ends pass-through, after which the echoes are the server's own
and still refer only to what the client's decompressor holds.  Where W_c >
W_s, the echo is recompressed and a reference just past 2^W_s (valid for the
client's compressor) never reaches the client's decompressor.

The client is Python's zlib with takeover on both of its streams, its
decompressor sized to the server's promised window.  Each compressed message
starts with an empty stored block (valid at the byte boundary where every
message starts, and changing no history), which no server compressor
emits: an echo equal to what was sent was passed through."""
import os
import zlib

from wse import OP_BINARY, OP_TEXT, RawWS, Server

PMD = ("--permessage-deflate", "--deflate-server-takeover", "--deflate-client-takeover",
       "--deflate-level", "1")
TAIL = b"\x00\x00\xff\xff"
EMPTY_STORED = b"\x00\x00\x00\xff\xff"
RSV1 = 4


class Client:
    """A takeover client: compressor with window w_c, decompressor w_s."""

    def __init__(self, ws, w_c, w_s):
        self.ws = ws
        self.w_c = max(w_c, 9)              # zlib deflates 8 as 9
        self.co = zlib.compressobj(9, zlib.DEFLATED, -self.w_c)
        self.w_s = w_s
        self.do = zlib.decompressobj(-w_s)
        self.sent = self.got = b""          # the two histories (compressed messages)

    def compress(self, data, bfinal=False):
        self.sent = (self.sent + data)[-(1 << 15):]
        if not bfinal:
            out = self.co.compress(data) + self.co.flush(zlib.Z_SYNC_FLUSH)
            assert out.endswith(TAIL)
            return EMPTY_STORED + out[:-4]
        out = EMPTY_STORED + self.co.compress(data) + self.co.flush(zlib.Z_FINISH)
        # The compressor's next message starts a new DEFLATE stream on the
        # same window (RFC 7692 7.2.2 keeps the window across it).
        self.co = zlib.compressobj(9, zlib.DEFLATED, -self.w_c,
                                   zdict=self.sent[-(1 << self.w_c):])
        return out

    def receive(self):
        first, parts = None, []
        while True:
            f = self.ws.recv_frame()
            assert f.opcode < 8, f
            first = first or f
            parts.append(f.payload)
            if f.fin:
                break
        payload = b"".join(parts)
        if not first.rsv & RSV1:
            return first.opcode, False, payload, payload
        plain = self.do.decompress(payload + TAIL)
        self.got = (self.got + plain)[-(1 << 15):]
        if self.do.eof:         # a BFINAL block: keep the window, as 7.2.2 says
            self.do = zlib.decompressobj(-self.w_s, zdict=self.got[-(1 << self.w_s):])
        return first.opcode, True, payload, plain

    def echo(self, opcode, data, compress=True, bfinal=False):
        """Sends data; returns whether the echo was the sent payload itself."""
        sent = self.compress(data, bfinal) if compress else data
        self.ws.send_frame(opcode, sent, rsv=RSV1 if compress else 0)
        op, compressed, payload, plain = self.receive()
        assert op == opcode and plain == data
        if not compress:
            assert not compressed           # RSV1 clear goes back clear
        return compress and compressed and payload == sent


def offer(w_c, w_s):
    return [f"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits={w_c}; "
            f"server_max_window_bits={w_s}"]


def run(port, w_c, w_s):
    """Returns how many compressed echoes were the client's own bytes."""
    far = os.urandom(((1 << w_s) + 100) // 2).hex().encode()   # text, past 2^W_s
    same = 0
    with RawWS(port, headers=offer(w_c, w_s)) as ws:
        c = Client(ws, w_c, w_s)
        same += c.echo(OP_TEXT, b"")
        same += c.echo(OP_TEXT, b'{"hello": "world", "n": [1, 2, 3]}')
        c.echo(OP_TEXT, b"plain, in between", compress=False)
        same += c.echo(OP_TEXT, far)
        c.echo(OP_BINARY, os.urandom(100), compress=False)
        same += c.echo(OP_TEXT, far)                # a reference 2^W_s + 100 back
        same += c.echo(OP_BINARY, b"final block " * 50, bfinal=True)
        after = c.echo(OP_BINARY, b"final block " * 50)     # refers across it
        assert not after, "still passing through after a BFINAL message"
        assert not c.echo(OP_TEXT, far)
    return same


def test_pass_through_where_the_windows_allow_it():
    with Server(*PMD) as srv:
        for w_c, w_s in ((15, 15), (9, 15), (12, 12), (8, 9)):
            assert run(srv.port, w_c, w_s) == 5, (w_c, w_s)


def test_recompressed_where_the_client_window_is_larger():
    with Server(*PMD) as srv:
        for w_c, w_s in ((15, 14), (10, 9), (13, 12)):
            assert run(srv.port, w_c, w_s) == 0, (w_c, w_s)


def test_echo_prefix_is_never_passed_through():
    with Server(*PMD, "--echo-prefix", "> ") as srv:
        with RawWS(srv.port, headers=offer(15, 15)) as ws:
            c = Client(ws, 15, 15)
            for msg in (b"one", b"one two", b"one two one two"):
                sent = c.compress(msg)
                ws.send_frame(OP_TEXT, sent, rsv=RSV1)
                op, compressed, payload, plain = c.receive()
                assert plain == b"> " + msg and payload != sent
