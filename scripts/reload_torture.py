#!/usr/bin/python3
"""Reload torture: live traffic through wsechod while its master gets SIGHUPs.

With --upgrade, live upgrades instead of reloads: the server runs from a copy
of the binary in a temporary directory, and before every upgrade that copy is
replaced by a fresh one (a new file, as a package manager installs it); then
`wsechod -s upgrade` starts it, and must report success, each time.

It starts the server itself (on 127.0.0.1 only), then runs, until the last
reload has drained:

  * CLIENTS long-lived connections, each echoing numbered messages one at a
    time and checking every reply byte for byte.  A connection closed by the
    server with 1001/1012 (a drain) reconnects; a message that was in flight
    at that moment is sent again (after its close frame the server may not
    echo, RFC 6455 5.5.1) and counted as "retried", not lost.
  * a stream of short connections, one every CONNECT_INTERVAL: connect,
    handshake, one echo, close.
  * RELOADS SIGHUPs over the run, every third one right after another.

With --tls, every client speaks wss:// to a --tls-listen address (the chain
verified against a test CA made by scripts/test-ca.sh in the temporary
directory), and before every SIGHUP the certificate and key files are swapped
(RSA and ECDSA in turn, each written anew and renamed over the old one).
After each reload that is not followed at once by another, new handshakes
must see the new certificate's serial within --timeout.

At the end it prints the counts and exits 1 if any connect failed, any
connection was reset or closed without a close frame, any message was lost or
corrupted, or the kernel's ListenDrops/ListenOverflows moved.

Only the standard library: its WebSocket client is small and strict, so a
protocol slip of the server is seen, not papered over.
"""
import argparse
import asyncio
import base64
import hashlib
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    """The server sent a close frame."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Broken(Exception):
    """The connection ended without a close frame (EOF, reset)."""


class Client:
    """A minimal RFC 6455 client over asyncio streams."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    @classmethod
    async def connect(cls, port, timeout, tls=None):
        """tls: an ssl.SSLContext (wss://, the chain checked for localhost)."""
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls,
                                    server_hostname="localhost" if tls else None), timeout)
        key = base64.b64encode(os.urandom(16))
        w.write(b"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
        want = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or want not in head:
            w.close()
            raise Broken("handshake refused: " + head.split(b"\r\n")[0].decode(errors="replace"))
        return cls(r, w)

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.w.write(head + mask + masked)

    async def recv_frame(self):
        try:
            b0, b1 = await self.r.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.r.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.r.readexactly(8))[0]
            return b0 >> 7, b0 & 0x0F, await self.r.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise Broken(str(e) or type(e).__name__)

    async def recv_message(self):
        """The next data message; pings answered; Closed on a close frame."""
        parts, opcode = [], None
        while True:
            fin, op, payload = await self.recv_frame()
            if op == 0x9:
                self.send(0xA, payload)
            elif op == 0xA:
                pass
            elif op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise Closed(code)
            else:
                if opcode is None:
                    opcode = op
                parts.append(payload)
                if fin:
                    return opcode, b"".join(parts)

    async def finish_close(self, code, timeout):
        """Answer the server's close and wait for its FIN (it closes first)."""
        try:
            self.send(0x8, struct.pack("!H", code))
            await self.w.drain()
            await asyncio.wait_for(self.r.read(), timeout)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        self.w.close()

    async def close(self, timeout):
        self.send(0x8, struct.pack("!H", 1000))
        try:
            while True:
                await asyncio.wait_for(self.recv_message(), timeout)
        except Closed:
            pass
        await asyncio.wait_for(self.r.read(), timeout)
        self.w.close()


class Tally:
    def __init__(self):
        self.__dict__.update(connects=0, connect_failures=0, resets=0, messages=0, lost=0,
                             corrupted=0, retried=0, drain_closes=0, other_closes=0,
                             short_connections=0, short_failures=0, upgrades=0,
                             upgrade_failures=0, serial_checks=0, serial_failures=0)
        self.errors = []

    def fail(self, what):
        if len(self.errors) < 20:
            self.errors.append(what)


async def long_client(cid, args, stop, t):
    seq = 0
    pending = None
    while not stop.is_set():
        try:
            c = await Client.connect(args.client_port, args.timeout, args.ssl)
            t.connects += 1
        except (OSError, asyncio.TimeoutError, Broken) as e:
            t.connect_failures += 1
            t.fail(f"client {cid}: connect: {e!r}")
            await asyncio.sleep(0.05)
            continue
        try:
            while not stop.is_set():
                if pending is None:
                    seq += 1
                    pending = f"c{cid}-m{seq}-".encode() + bytes(random.randrange(97, 123) for _ in range(32))
                c.send(0x1, pending)
                opcode, data = await asyncio.wait_for(c.recv_message(), args.timeout)
                if opcode != 0x1 or data != pending:
                    t.corrupted += 1
                    t.fail(f"client {cid}: sent {pending!r}, got {data[:60]!r}")
                t.messages += 1
                pending = None
            await c.close(args.timeout)
        except Closed as e:
            if e.code in (1001, 1012):
                t.drain_closes += 1
            else:
                t.other_closes += 1
                t.fail(f"client {cid}: unexpected close {e.code}")
            if pending is not None:
                t.retried += 1      # sent again on the next connection
            await c.finish_close(e.code, args.timeout)
        except (Broken, asyncio.TimeoutError, ConnectionError) as e:
            t.resets += 1
            if pending is not None:
                t.lost += 1
            t.fail(f"client {cid}: connection broken: {e!r}")
            c.w.close()


async def short_client(args, t):
    try:
        c = await Client.connect(args.client_port, args.timeout, args.ssl)
        payload = os.urandom(16)
        c.send(0x2, payload)
        opcode, data = await asyncio.wait_for(c.recv_message(), args.timeout)
        if opcode != 0x2 or data != payload:
            t.corrupted += 1
            t.fail("short connection: echo mismatch")
        await c.close(args.timeout)
        t.short_connections += 1
    except Closed as e:
        if e.code not in (1001, 1012):
            t.fail(f"short connection: close {e.code}")
            t.short_failures += 1
        else:
            t.short_connections += 1
    except (OSError, asyncio.TimeoutError, Broken) as e:
        t.short_failures += 1
        t.fail(f"short connection: {e!r}")


async def short_stream(args, stop, t):
    tasks = set()
    while not stop.is_set():
        task = asyncio.ensure_future(short_client(args, t))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(args.connect_interval)
    if tasks:
        await asyncio.wait(tasks)


def write_config(args, workers):
    """Written whole, then renamed over the old one: a reload that comes
    while the file is half written would read a partial configuration (an
    empty file is a valid one: all defaults, another listen address)."""
    tmp = args.conf + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"workers = {workers}\nlisten = 127.0.0.1:{args.port}\n"
                f"drain-timeout = {args.drain_timeout}\nclose-spread = {args.close_spread}\n"
                f"pid-file = {args.pid_file}\nlog-level = warn\n")
        if args.tls:
            f.write(f"tls-listen = 127.0.0.1:{args.tls_port}\n"
                    f"tls-cert = {args.ca}/cert.pem\ntls-key = {args.ca}/key.pem\n")
    os.replace(tmp, args.conf)


def install_copy(args):
    """A fresh copy of the binary at the server's path: a new file renamed
    over the old one, as a package manager does."""
    tmp = args.server_binary + ".new"
    with open(args.binary, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read())
    os.chmod(tmp, 0o755)
    os.replace(tmp, args.server_binary)


async def upgrader(args, t):
    """RELOADS live upgrades spread over the run, one after the other (an
    upgrade under way ignores the next SIGUSR2; -s upgrade waits for it)."""
    gap = args.duration / max(args.reloads, 1)
    for i in range(args.reloads):
        install_copy(args)
        p = await asyncio.create_subprocess_exec(
            args.server_binary, "-s", "upgrade", "-c", args.conf,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await p.communicate()
        if p.returncode == 0:
            t.upgrades += 1
        else:
            t.upgrade_failures += 1
            t.fail(f"upgrade {i + 1}: {out.decode(errors='replace').strip()}")
        await asyncio.sleep(gap * random.uniform(0.5, 1.5))


def swap_certificate(args, i):
    """The next pair (RSA, ECDSA in turn) over the served files, each file
    written anew and renamed over the old; returns its serial."""
    name = ("rsa", "ec")[i % 2]
    for src, dst in ((name + ".pem", "cert.pem"), (name + ".key", "key.pem")):
        with open(os.path.join(args.ca, src), "rb") as f:
            data = f.read()
        tmp = os.path.join(args.ca, dst + ".new")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(args.ca, dst))
    return args.serials[name]


async def served_serial(args):
    _, w = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", args.client_port, ssl=args.ssl,
                                server_hostname="localhost"), args.timeout)
    serial = int(w.get_extra_info("peercert")["serialNumber"], 16)
    w.close()
    return serial


async def wait_for_serial(args, want, t):
    """New handshakes see the certificate want (once the new generation serves)."""
    t.serial_checks += 1
    deadline = time.monotonic() + args.timeout
    got = None
    while time.monotonic() < deadline:
        try:
            got = await served_serial(args)
        except (OSError, asyncio.TimeoutError) as e:
            t.fail(f"serial check: {e!r}")
            break
        if got == want:
            return
        await asyncio.sleep(0.05)
    t.serial_failures += 1
    t.fail(f"new handshakes still see serial {got:X}, not {want:X}" if got else "no serial")


async def reloader(args, pid, t):
    """RELOADS SIGHUPs spread over the run; every third right after the previous.
    With --worker-counts, each reload first rewrites the worker count; with
    --tls, it first swaps the certificate."""
    if args.upgrade:
        return await upgrader(args, t)
    gap = args.duration / max(args.reloads, 1)
    for i in range(args.reloads):
        if args.worker_counts:
            write_config(args, args.worker_counts[(i + 1) % len(args.worker_counts)])
        serial = swap_certificate(args, i + 1) if args.tls else None
        os.kill(pid, signal.SIGHUP)
        if i % 3 != 1:
            if args.tls:
                await wait_for_serial(args, serial, t)
            await asyncio.sleep(gap * random.uniform(0.5, 1.5))
    return


def listen_counters():
    """TcpExt ListenDrops and ListenOverflows from /proc/net/netstat."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], map(int, values.split()[1:])))
            return row.get("ListenDrops", 0), row.get("ListenOverflows", 0)
    return 0, 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(args, tmp):
    """A test CA and the first pair in place (RSA); the client's context."""
    import ssl
    args.ca = os.path.join(tmp, "ca")
    os.mkdir(args.ca)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test-ca.sh")
    subprocess.run(["sh", script, args.ca], check=True, capture_output=True)
    args.serials = {n: int(open(os.path.join(args.ca, n + ".serial")).read().strip(), 16)
                    for n in ("rsa", "ec")}
    swap_certificate(args, 0)
    args.ssl = ssl.create_default_context(cafile=os.path.join(args.ca, "ca.pem"))


def start_server(args, tmp):
    if args.tls:
        make_ca(args, tmp)
    args.conf = conf = os.path.join(tmp, "wsechod.conf")
    args.pid_file = pid_file = os.path.join(tmp, "wsechod.pid")
    write_config(args, args.worker_counts[0] if args.worker_counts else args.workers)
    log = open(os.path.join(tmp, "wsechod.log"), "w+")
    args.server_binary = args.binary
    if args.upgrade:
        # Named wsechod: -s proves the master by its executable's name.
        args.server_binary = os.path.join(tmp, "wsechod")
        install_copy(args)
    proc = subprocess.Popen([args.server_binary, "-c", conf], stderr=log, stdout=log)
    deadline = time.monotonic() + 10
    while not os.path.exists(pid_file) or not probe(args.port):
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            sys.exit("wsechod did not start:\n" + log.read())
        time.sleep(0.02)
    return proc, log


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def stop_current_master(args, proc):
    """SIGTERM to the master the pid file names (after upgrades, not our
    child): waits until it is gone.  True if it stopped in time."""
    pid = read_pid(args.pid_file)
    if pid is None or pid == proc.pid:
        proc.send_signal(signal.SIGTERM)
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        os.kill(pid, signal.SIGTERM)
        import select
        return bool(select.select([fd], [], [], 15)[0])
    finally:
        os.close(fd)


def probe(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


async def run(args, pid):
    t = Tally()
    stop = asyncio.Event()
    clients = [asyncio.ensure_future(long_client(i, args, stop, t)) for i in range(args.clients)]
    stream = asyncio.ensure_future(short_stream(args, stop, t))
    await reloader(args, pid, t)
    # Let the last generation's predecessors drain and the clients reconnect.
    await asyncio.sleep(args.drain_timeout + args.close_spread + 1.0)
    stop.set()
    await asyncio.wait(clients + [stream], timeout=args.timeout * 4)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.environ.get("WSECHOD", "build/wsechod"))
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--reloads", type=int, default=20)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds over which the reloads come")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-counts", default="",
                    help="comma list: the worker count cycles through it, one step per reload")
    ap.add_argument("--connect-interval", type=float, default=0.005)
    ap.add_argument("--drain-timeout", type=float, default=1.0)
    ap.add_argument("--close-spread", type=float, default=0.2)
    ap.add_argument("--timeout", type=float, default=10.0, help="per operation")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", action="store_true",
                    help="clients over wss://, the certificate swapped before every SIGHUP")
    ap.add_argument("--upgrade", action="store_true",
                    help="live upgrades (wsechod -s upgrade, a new copy of the binary each "
                         "time) instead of reloads")
    args = ap.parse_args()
    args.port = args.port or free_port()
    args.tls_port = free_port() if args.tls else 0
    args.client_port = args.tls_port or args.port
    args.ssl = None
    args.worker_counts = [int(n) for n in args.worker_counts.split(",") if n]

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory() as tmp:
        proc, log = start_server(args, tmp)
        drops0 = listen_counters()
        started = time.monotonic()
        try:
            t = asyncio.run(run(args, proc.pid))
        finally:
            if args.upgrade and not stop_current_master(args, proc):
                print("  the last master did not stop within 15 s")
                proc.returncode_override = 1
            elif not args.upgrade:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        drops1 = listen_counters()
        log.seek(0)
        server_log = log.read()

    elapsed = time.monotonic() - started
    drops = drops1[0] - drops0[0]
    overflows = drops1[1] - drops0[1]
    what = "upgrades" if args.upgrade else "reloads"
    print(f"reload torture: {args.clients} {'wss ' if args.tls else ''}clients, {args.reloads} "
          f"{what}, {elapsed:.1f} s, {args.workers} workers")
    if args.upgrade:
        print(f"  upgrades {t.upgrades}, failed {t.upgrade_failures}")
    print(f"  connects {t.connects}, connect failures {t.connect_failures}, resets {t.resets}")
    print(f"  messages {t.messages}, lost {t.lost}, corrupted {t.corrupted}, "
          f"retried after a drain close {t.retried}")
    print(f"  drain closes (1001/1012) {t.drain_closes}, other closes {t.other_closes}")
    print(f"  short connections {t.short_connections}, failed {t.short_failures}")
    if args.tls:
        print(f"  certificate swaps {args.reloads}, serial checks {t.serial_checks}, "
              f"failed {t.serial_failures}")
    print(f"  ListenDrops {drops:+d}, ListenOverflows {overflows:+d}")
    for e in t.errors:
        print("  error:", e)
    stop_failed = getattr(proc, "returncode_override", 0)
    bad = (t.connect_failures or t.resets or t.lost or t.corrupted or t.other_closes or
           t.short_failures or t.serial_failures or drops or overflows or proc.returncode != 0 or stop_failed or
           t.upgrade_failures or "upgrade failed" in server_log or
           "ERROR: AddressSanitizer" in server_log or "runtime error:" in server_log)
    if proc.returncode != 0:
        print(f"  server exit status {proc.returncode}")
    if bad:
        # The server's warnings and errors (it logs at warn level here).
        print("server log (last lines):")
        print(server_log[-4000:])
    print("FAILED" if bad else "OK")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
