#!/usr/bin/env python3
"""The permessage-deflate matrix (issue 12) until wsbench learns --deflate:
server CPU per echoed message, bytes on the wire per echo, and heap per idle
deflate connection, for wsechod (with and without deflate), Node's ws
(perMessageDeflate, threshold 0), Python websockets (compression on by
default), Tornado (get_compression_options), gorilla (EnableCompression) and
libwebsockets (its permessage-deflate extension), with context takeover on
and off.  The peers are bench/peers/*, built here as bench/compare.sh builds
them (scripts/bench-deps.sh installs what they need); a cell a server cannot
negotiate (gorilla with takeover, Tornado 6.2 without) is printed as not
supported, and an answer that does not match the offer stops the run.

The client is this script: raw sockets, its own zlib (level 6, 15 bits),
pipelined 16 deep on one connection, every echo inflated and compared.  It
is the bottleneck, which does not matter: the figures are the server's own
CPU (utime + stime of its processes, /proc) divided by the messages, and the
bytes the server sent.  --runs N passes over the whole matrix N times,
interleaved so that load from elsewhere falls on every server, and prints
median [min-max] per cell.

  bench/deflate_compare.py [--servers wsechod-plain,wsechod,node,python,
                                     tornado,gorilla,lws,lws-64k]
                           [--runs N] [--hold N] [--port-base P] [--quick | --scale F]
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
    # Debian's interpreter, whose python3-websockets the tests install.
    "python": (lambda port, to: ["/usr/bin/python3", "-c", PY_SERVER, str(port), "1" if to else "0"],
               True),
    # Tornado and lws take takeover from the client's offer (no server switch).
    "tornado": (lambda port, to: ["/usr/bin/python3", os.path.join(HERE, "peers/tornado_echo.py"),
                                  "--deflate", str(port)], True),
    "gorilla": (lambda port, to: ["env", "GOMAXPROCS=1",
                                  os.path.join(ROOT, "build/peers/gorilla_echo"), str(port),
                                  "deflate"], True),
    "lws": (lambda port, to: [os.path.join(ROOT, "build/peers/lws_echo"), str(port), "deflate"],
            True),
    # lws with 64 KiB pmd buffers instead of its 1 KiB default: whole messages.
    "lws-64k": (lambda port, to: [os.path.join(ROOT, "build/peers/lws_echo"), str(port),
                                  "deflate-64k"], True),
}

# Cells a server cannot serve as asked: said so, not measured.
UNSUPPORTED = {
    ("gorilla", True): "gorilla/websocket supports no context takeover only "
                       "(it always answers server_no_context_takeover; client_no_context_takeover)",
    ("tornado", False): "Tornado 6.2 drops extension parameters without '=' "
                        "(httputil._parse_header), so it never sees *_no_context_takeover "
                        "and always answers with takeover",
}


def build_peer(name):
    """Build the compiled peers as bench/compare.sh does (Debian's packages,
    no module download).  Returns why it cannot run, or None."""
    out = os.path.join(ROOT, "build/peers")
    os.makedirs(out, exist_ok=True)
    if name == "gorilla":
        if not os.path.isdir("/usr/share/gocode/src/github.com/gorilla/websocket"):
            return "golang-github-gorilla-websocket-dev is not installed (scripts/bench-deps.sh go)"
        env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOPROXY="off",
                   GOFLAGS="", GOCACHE=os.path.join(out, "go-cache"))
        cmd = ["go", "build", "-o", os.path.join(out, "gorilla_echo"),
               os.path.join(HERE, "peers/gorilla_echo.go")]
    elif name in ("lws", "lws-64k"):
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libwebsockets"],
                               capture_output=True, text=True)
        if flags.returncode:
            return "libwebsockets-dev is not installed (scripts/bench-deps.sh lws)"
        env = None
        cmd = ["cc", "-std=gnu11", "-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE",
               os.path.join(HERE, "peers/lws_echo.c"), "-o", os.path.join(out, "lws_echo")] + \
            flags.stdout.split()
    elif name == "node":
        mods = [os.path.join(HERE, "peers/node_ws/node_modules/ws"),
                os.path.join(ROOT, "tests/integration/node/node_modules/ws")]
        ok = any(os.path.isdir(m) for m in mods)
        return None if ok else "the ws package is not installed (scripts/bench-deps.sh node)"
    elif name == "python":
        ok = subprocess.run(["/usr/bin/python3", "-c", "import websockets"],
                            capture_output=True).returncode == 0
        return None if ok else "python3-websockets is not installed (scripts/deps.sh test)"
    elif name == "tornado":
        ok = subprocess.run(["/usr/bin/python3", "-c", "import tornado"],
                            capture_output=True).returncode == 0
        return None if ok else "python3-tornado is not installed (scripts/bench-deps.sh tornado)"
    else:
        return None
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    except OSError as e:
        return f"{cmd[0]}: {e.strerror} (scripts/bench-deps.sh)"
    return None if r.returncode == 0 else f"did not build: {r.stderr.strip()[:300]}"

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


def port_in_use(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start(name, takeover, port):
    # Another helper's server on this port would answer for ours: refuse.
    if port_in_use(port):
        raise RuntimeError(f"port {port} is already in use (--port-base)")
    argv, deflate = SERVERS[name]
    env = dict(os.environ)
    mods = [os.path.join(HERE, "peers/node_ws/node_modules"),
            os.path.join(ROOT, "tests/integration/node/node_modules")]
    env["NODE_PATH"] = ":".join(m for m in mods if os.path.isdir(m))
    p = subprocess.Popen(argv(port, takeover), env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and p.poll() is None:
        if port_in_use(port):
            time.sleep(0.2)
            return p, deflate
        time.sleep(0.05)
    p.kill()
    p.wait()
    raise RuntimeError(f"{name} did not start")


def check_ext(name, takeover, deflate, ext):
    """The negotiated extension must be what the cell is about."""
    if not deflate:
        return
    if not ext:
        raise RuntimeError(f"{name} did not accept permessage-deflate")
    nct = "server_no_context_takeover" in ext and "client_no_context_takeover" in ext
    if nct == takeover:
        raise RuntimeError(f"{name} answered [{ext}] to an offer with takeover={takeover}")


def hold(port, takeover, deflate, n):
    conns = [Client(port, takeover, deflate) for _ in range(n)]
    return conns


def measure(name, takeover, port, counts, n_hold, results):
    """One run of one server and takeover setting: every message size, then
    the idle heap.  Appends to results[(name, takeover, kind)]."""
    p, deflate = start(name, takeover, port)
    try:
        for kind, count in counts.items():
            run_echo(port, takeover, deflate, kind, max(50, count // 20))   # warm up
            t0 = cpu_seconds(tree(p.pid))
            ext, wire = run_echo(port, takeover, deflate, kind, count)
            cpu = cpu_seconds(tree(p.pid)) - t0
            check_ext(name, takeover, deflate, ext)
            results.setdefault((name, takeover, kind), []).append((cpu * 1e6 / count, wire))
            print(f"{name:14} takeover={takeover!s:5} {kind:8} "
                  f"{cpu * 1e6 / count:8.1f} us/msg  {wire:9.1f} B/echo  [{ext}]", flush=True)
        before = rss_anon_kib(tree(p.pid))
        conns = hold(port, takeover, deflate, n_hold)
        time.sleep(2)
        after = rss_anon_kib(tree(p.pid))
        per = (after - before) * 1024 / n_hold
        print(f"{name:14} takeover={takeover!s:5} idle heap {per:8.0f} B/conn "
              f"({n_hold} connections)", flush=True)
        results.setdefault((name, takeover, "idle"), []).append((per, None))
        for c in conns:
            c.s.close()
    finally:
        pids = tree(p.pid)
        p.terminate()
        p.wait()
        # wsechod's worker outlives its master by a moment; the next cell
        # must not find this one's listener.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{q}") for q in pids):
            time.sleep(0.05)


def fmt(values):
    """median [min-max] of a cell's runs."""
    v = sorted(values)
    med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    f = (lambda x: f"{x:,.1f}") if v[-1] < 100 else (lambda x: f"{x:,.0f}")
    return f(med) if len(v) == 1 else f"{f(med)} [{f(v[0])}–{f(v[-1])}]"


def summary(results, servers, unsupported):
    kinds = ["json64", "text4k", "text64k"]
    print("\n| server | takeover | " + " | ".join(f"{k} µs" for k in kinds) + " | "
          + " | ".join(f"{k} B" for k in kinds) + " | idle heap B/conn |")
    print("| --- " * 9 + "|")
    for name in servers:
        for takeover in (False, True):
            if (name, takeover) in unsupported:
                print(f"| {name} | {'on' if takeover else 'off'} | not supported " + "| " * 6 + "|")
                continue
            if (name, takeover, "idle") not in results:
                continue
            cpu = [fmt([r[0] for r in results[(name, takeover, k)]]) for k in kinds]
            wire = [f"{results[(name, takeover, k)][0][1]:,.0f}" for k in kinds]
            idle = fmt([r[0] for r in results[(name, takeover, "idle")]])
            print(f"| {name} | {'on' if takeover else 'off'} | " + " | ".join(cpu + wire)
                  + f" | {idle} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers",
                    default="wsechod-plain,wsechod,node,python,tornado,gorilla,lws,lws-64k")
    ap.add_argument("--hold", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1,
                    help="passes over the whole matrix, interleaved (median [min-max])")
    ap.add_argument("--port-base", type=int, default=18800)
    ap.add_argument("--quick", action="store_true", help="a fifth of the messages")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="messages per cell times this (the CPU clock ticks 10 ms: more "
                         "messages resolve close cells)")
    a = ap.parse_args()
    counts = {"json64": 20000, "text4k": 5000, "text64k": 500}
    if a.quick:
        a.scale /= 5
    counts = {k: max(50, int(v * a.scale)) for k, v in counts.items()}
    servers = []
    for name in a.servers.split(","):
        why = build_peer(name)
        if why:
            print(f"{name:14} not measured: {why}", flush=True)
        else:
            servers.append(name)
    unsupported = {}
    results = {}
    for run in range(a.runs):
        print(f"run {run + 1}/{a.runs}, load average {os.getloadavg()[0]:.2f}", flush=True)
        port = a.port_base
        for name in servers:
            for takeover in (False, True):
                if name == "wsechod-plain" and takeover:
                    continue
                if (name, takeover) in UNSUPPORTED:
                    if run == 0:
                        print(f"{name:14} takeover={takeover!s:5} not supported: "
                              f"{UNSUPPORTED[(name, takeover)]}", flush=True)
                    unsupported[(name, takeover)] = True
                    continue
                port += 1
                try:
                    measure(name, takeover, port, counts, a.hold, results)
                except (RuntimeError, OSError) as e:
                    print(f"{name:14} takeover={takeover!s:5} failed: {e}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    summary(results, servers, unsupported)
    return 0


if __name__ == "__main__":
    sys.exit(main())
