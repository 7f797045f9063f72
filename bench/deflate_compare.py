#!/usr/bin/env python3
"""The permessage-deflate matrix (issue 12) until wsbench learns --deflate:
server CPU per echoed message, bytes on the wire per echo, and heap per idle
deflate connection, for wsechod (with and without deflate), Node's ws
(perMessageDeflate, threshold 0) and Python websockets (compression on by
default), with context takeover on and off.

The client is this script: raw sockets, its own zlib (level 6, 15 bits),
pipelined 16 deep on one connection, every echo inflated and compared.  It
is the bottleneck, which does not matter: the figures are the server's own
CPU (utime + stime of its processes, /proc) divided by the messages, and the
bytes the server sent.  One run each, so read them as a few percent.

  bench/deflate_compare.py [--servers wsechod,wsechod-plain,node,python]
                           [--hold N] [--quick]
Node's ws is looked up in bench/peers/node_ws/node_modules, then in
tests/integration/node/node_modules (installed by make test).
"""
import argparse
import base64
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TAIL = b"\x00\x00\xff\xff"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    t = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return t / TICK


def rss_anon_kib(pids):
    t = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        t += int(line.split()[1])
        except OSError:
            pass
    return t


def tree(pid):
    out = [pid]
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                          text=True).stdout.split()
    for k in kids:
        out += tree(int(k))
    return out


def payload(kind, seed):
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "user", "id", "value", "status", "ok"]
    if kind == "json64":
        return json.dumps({"id": rnd.randint(0, 99999), "user": rnd.choice(words),
                           "v": rnd.choice(words)}).encode()[:64].ljust(53, b" ")
    n = 4096 if kind == "text4k" else 65536
    out = []
    size = 0
    while size < n:
        w = rnd.choice(words) + rnd.choice([" ", ", ", ". "])
        out.append(w)
        size += len(w)
    return "".join(out).encode()[:n]


class Client:
    def __init__(self, port, takeover, deflate=True):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        offer = ""
        if deflate:
            offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
            if not takeover:
                offer += "; server_no_context_takeover; client_no_context_takeover"
            offer += "\r\n"
        self.s.sendall((f"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"Origin: http://127.0.0.1:{port}\r\n{offer}\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("closed during the handshake")
            buf += d
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        head = head.decode("latin-1")
        assert " 101 " in head.split("\r\n")[0], head
        ext = [l.split(":", 1)[1].strip() for l in head.split("\r\n")
               if l.lower().startswith("sec-websocket-extensions:")]
        self.ext = ext[0] if ext else ""
        self.compress = bool(self.ext)
        self.c_nct = "client_no_context_takeover" in self.ext
        self.s_nct = "server_no_context_takeover" in self.ext
        self.co = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.do = zlib.decompressobj(-15)
        self.rx = 0

    def frame(self, data):
        if self.compress:
            if self.c_nct:
                self.co = zlib.compressobj(6, zlib.DEFLATED, -15)
            p = self.co.compress(data) + self.co.flush(zlib.Z_SYNC_FLUSH)
            data, b0 = p[:-4], 0xC2
        else:
            b0 = 0x82
        n = len(data)
        head = struct.pack("!BB", b0, 0x80 | n) if n < 126 else \
            struct.pack("!BBH", b0, 0x80 | 126, n) if n < 65536 else \
            struct.pack("!BBQ", b0, 0x80 | 127, n)
        return head + b"\0\0\0\0" + data

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise RuntimeError("server closed")
        self.buf += d
        self.rx += len(d)

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        parts, rsv1 = [], None
        while True:
            b0, b1 = self._take(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            p = self._take(n)
            if b0 & 0x0F >= 8:
                continue
            if rsv1 is None:
                rsv1 = bool(b0 & 0x40)
            parts.append(p)
            if b0 & 0x80:
                break
        data = b"".join(parts)
        if rsv1:
            if self.s_nct:
                self.do = zlib.decompressobj(-15)
            data = self.do.decompress(data + TAIL)
        return data


def run_echo(port, takeover, deflate, kind, count, depth=16):
    c = Client(port, takeover, deflate)
    msgs = [payload(kind, i) for i in range(64)]
    frames = None if c.c_nct is False and c.compress else [c.frame(m) for m in msgs]
    sent = got = 0
    c.rx = len(c.buf)
    while got < count:
        while sent < count and sent - got < depth:
            m = msgs[sent % 64]
            c.s.sendall(frames[sent % 64] if frames else c.frame(m))
            sent += 1
        echo = c.recv()
        if echo != msgs[got % 64]:
            raise RuntimeError(f"echo {got} differs ({len(echo)} bytes, {len(msgs[got % 64])} sent)")
        got += 1
    rx = c.rx - len(c.buf)
    c.s.close()
    return c.ext, rx / count


SERVERS = {
    # name: (argv builder for (port, takeover), uses deflate)
    "wsechod": (lambda port, to: [os.path.join(ROOT, "build/wsechod"), "-w", "1", "-l",
                                   f"127.0.0.1:{port}", "--log-level", "warn", "--user", "root",
                                   "--idle-timeout", "0", "--ping-interval", "0",
                                   "--permessage-deflate", "--deflate-min-size", "0"]
                + (["--deflate-server-takeover", "--deflate-client-takeover"] if to else []), True),
    "wsechod-plain": (lambda port, to: [os.path.join(ROOT, "build/wsechod"), "-w", "1", "-l",
                                         f"127.0.0.1:{port}", "--log-level", "warn",
                                         "--user", "root", "--idle-timeout", "0",
                                         "--ping-interval", "0"], False),
    "node": (lambda port, to: ["node", os.path.join(HERE, "peers/node_ws/echo.js"), str(port),
                               "takeover" if to else "notakeover"], True),
    "python": (lambda port, to: [sys.executable, "-c", PY_SERVER, str(port), "1" if to else "0"],
               True),
}

PY_SERVER = r"""
import asyncio, sys, websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
port, to = int(sys.argv[1]), sys.argv[2] == "1"
async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)
async def main():
    f = ServerPerMessageDeflateFactory(server_no_context_takeover=not to,
                                       client_no_context_takeover=not to,
                                       compress_settings={"memLevel": 8})
    async with websockets.serve(echo, "127.0.0.1", port, extensions=[f], compression=None,
                                max_size=None, ping_interval=None):
        await asyncio.Future()
asyncio.run(main())
"""


def start(name, takeover, port):
    argv, deflate = SERVERS[name]
    env = dict(os.environ)
    mods = [os.path.join(HERE, "peers/node_ws/node_modules"),
            os.path.join(ROOT, "tests/integration/node/node_modules")]
    env["NODE_PATH"] = ":".join(m for m in mods if os.path.isdir(m))
    p = subprocess.Popen(argv(port, takeover), env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.2)
            return p, deflate
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"{name} did not start")


def hold(port, takeover, deflate, n):
    conns = [Client(port, takeover, deflate) for _ in range(n)]
    return conns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", default="wsechod-plain,wsechod,node,python")
    ap.add_argument("--hold", type=int, default=1000)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    counts = {"json64": 20000, "text4k": 5000, "text64k": 500}
    if a.quick:
        counts = {k: v // 5 for k, v in counts.items()}
    port = 18800
    rows = []
    for name in a.servers.split(","):
        for takeover in (False, True):
            if name == "wsechod-plain" and takeover:
                continue
            port += 1
            p, deflate = start(name, takeover, port)
            try:
                pids = tree(p.pid)
                for kind, count in counts.items():
                    run_echo(port, takeover, deflate, kind, max(50, count // 20))   # warm up
                    t0 = cpu_seconds(tree(p.pid))
                    ext, wire = run_echo(port, takeover, deflate, kind, count)
                    cpu = cpu_seconds(tree(p.pid)) - t0
                    rows.append((name, takeover, kind, cpu * 1e6 / count, wire, ext))
                    print(f"{name:14} takeover={takeover!s:5} {kind:8} "
                          f"{cpu * 1e6 / count:8.1f} us/msg  {wire:9.1f} B/echo  [{ext}]",
                          flush=True)
                pids = tree(p.pid)
                before = rss_anon_kib(pids)
                conns = hold(port, takeover, deflate, a.hold)
                time.sleep(2)
                after = rss_anon_kib(tree(p.pid))
                per = (after - before) * 1024 / a.hold
                print(f"{name:14} takeover={takeover!s:5} idle heap {per:8.0f} B/conn "
                      f"({a.hold} connections)", flush=True)
                rows.append((name, takeover, "idle", per, None, ""))
                for c in conns:
                    c.s.close()
            finally:
                p.terminate()
                p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
