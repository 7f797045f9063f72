#!/usr/bin/env python3
"""Heap per idle permessage-deflate connection (issue 12), until wsbench
learns --deflate: a one-worker wsechod with the given options, N raw
connections that offer permessage-deflate and stay idle, the worker's RssAnon
before and after (as bench/README.md measures --hold), divided by N.  With
--warm each connection first echoes one 32 KiB compressed message of random
bytes, which touches every page of its own zlib windows (the worst case of a
takeover connection; without takeover the worker's streams are shared).

  bench/deflate_hold.py [--n N] [--warm] [--offer PARAMS] -- WSECHOD ARGS...
"""
import argparse
import base64
import os
import socket
import struct
import subprocess
import sys
import time
import zlib


def rss_anon_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout.split()
    return [int(p) for p in out]


def frame(opcode, payload, rsv1):
    b0 = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    head = struct.pack("!BB", b0, 0x80 | n) if n < 126 else \
        struct.pack("!BBH", b0, 0x80 | 126, n) if n < 65536 else \
        struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload      # a zero mask leaves the payload as it is


def connect(port, offer):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    ext = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    s.sendall((f"GET /websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{ext}\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head = buf.split(b"\r\n\r\n")[0].decode()
    return s, head


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise EOFError
        out += d
    return out


def warm(s, compressed):
    co = zlib.compressobj(1, zlib.DEFLATED, -15)
    data = os.urandom(32768)
    p = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    s.sendall(frame(2, p[:-4] if compressed else data, compressed))
    got = 0
    while True:
        b0, b1 = recv_exact(s, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", recv_exact(s, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", recv_exact(s, 8))[0]
        recv_exact(s, n)
        got += n
        if b0 & 0x80:
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--warm", action="store_true")
    ap.add_argument("--offer", default="permessage-deflate; client_max_window_bits")
    ap.add_argument("--port", type=int, default=18790)
    ap.add_argument("server", nargs="+")
    a = ap.parse_args()
    srv = subprocess.Popen(a.server + ["-w", "1", "-l", f"127.0.0.1:{a.port}",
                                       "--log-level", "warn", "--idle-timeout", "0",
                                       "--ping-interval", "0", "--user", "root"])
    try:
        time.sleep(0.5)
        worker = children(srv.pid)[0]
        s, head = connect(a.port, a.offer)      # warm the worker (first handshake, buffers)
        compressed = "permessage-deflate" in head
        warm(s, compressed)
        s.close()
        time.sleep(0.3)
        before = rss_anon_kib(worker)
        socks = []
        for _ in range(a.n):
            s, _ = connect(a.port, a.offer)
            if a.warm:
                warm(s, compressed)
            socks.append(s)
        time.sleep(2)
        after = rss_anon_kib(worker)
        ext = [l for l in head.split("\r\n") if l.lower().startswith("sec-websocket-extensions")]
        print(f"{' '.join(a.server[1:])} | offer: {a.offer} | answer: {ext[0] if ext else 'none'} "
              f"| warm={a.warm} | n={a.n} | RssAnon {before} -> {after} KiB | "
              f"{(after - before) * 1024 / a.n:.0f} B per connection")
        for s in socks:
            s.close()
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    sys.exit(main())
