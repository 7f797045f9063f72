"""Backpressure (spec 7) and 2,000 concurrent connections (spec 8).
Every load here is bounded in size and time."""
import asyncio
import os
import resource
import socket
import threading
import time

import wse
from wse import OP_BINARY, RawWS, Server, ws_connect

MIB = 1024 * 1024


async def connect_on_worker(srv, worker, tries=40, **kw):
    """A websockets client that the given worker serves (SO_REUSEPORT picks
    the worker by hash; retry until it is the wanted one)."""
    loop = asyncio.get_running_loop()
    for _ in range(tries):
        ws = await ws_connect(srv.uri(), **kw)
        port = ws.transport.get_extra_info("sockname")[1]
        if await loop.run_in_executor(None, srv.worker_of, port) == worker:
            return ws
        await ws.close()
    raise AssertionError(f"no connection landed on worker {worker} in {tries} tries")


class Flood(threading.Thread):
    """Sends 1 MiB binary frames on a raw connection that never reads, until
    `total` bytes, `limit` seconds or stop().  Tracks progress so the test can
    tell when the server has stopped reading."""

    def __init__(self, ws, total, limit):
        super().__init__(daemon=True)
        self.ws, self.total, self.limit = ws, total, limit
        self.sent = 0
        self.payloads = [os.urandom(MIB) for _ in range(2)]
        self.frames = [wse.frame(OP_BINARY, p) for p in self.payloads]
        self.stopping = threading.Event()
        self.progress = threading.Condition()
        self.last_progress = time.monotonic()
        self.error = None
        self.finished = threading.Event()

    def stop(self):
        self.stopping.set()

    def run(self):
        sock = self.ws.sock
        sock.settimeout(0.2)
        end = time.monotonic() + self.limit
        try:
            i = 0
            while self.sent < self.total and not self.stopping.is_set() and time.monotonic() < end:
                view = memoryview(self.frames[i % 2])
                off = 0
                while off < len(view):
                    if self.stopping.is_set() or time.monotonic() >= end:
                        return
                    try:
                        n = sock.send(view[off:])
                    except socket.timeout:
                        continue
                    off += n
                    with self.progress:
                        self.sent += n
                        self.last_progress = time.monotonic()
                        self.progress.notify_all()
                i += 1
        except OSError as e:
            self.error = e
        finally:
            self.finished.set()
            with self.progress:
                self.progress.notify_all()

    def wait_sent(self, nbytes, timeout):
        with self.progress:
            return self.progress.wait_for(lambda: self.sent >= nbytes or self.finished.is_set(),
                                          timeout)

    def wait_stalled(self, quiet, timeout):
        """Until no byte went out for `quiet` seconds (the server stopped
        reading), or the flood ended; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.progress:
            while True:
                now = time.monotonic()
                if self.finished.is_set() or now - self.last_progress >= quiet:
                    return True
                if now >= deadline:
                    return False
                self.progress.wait(min(deadline, self.last_progress + quiet) - now)


class RssSampler(threading.Thread):
    def __init__(self, srv, every=0.05):
        super().__init__(daemon=True)
        self.srv, self.every = srv, every
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.every):
            self.peak = max(self.peak, self.srv.total_rss_kib())


@wse.timeout(90)
async def test_backpressure_bounds_memory_and_spares_others():
    total, limit = 100 * MIB, 20.0
    with Server() as srv:
        flood_ws = RawWS(srv.port, rcvbuf=64 * 1024)
        worker = srv.worker_of(flood_ws.local_port)
        probe = await connect_on_worker(srv, worker, ping_interval=None)
        baseline = srv.total_rss_kib()
        flood = Flood(flood_ws, total, limit)
        sampler = RssSampler(srv)
        latencies = []

        async def probe_echoes(n, tag):
            for i in range(n):
                msg = f"{tag} {i} " + "p" * 50
                t = time.monotonic()
                await probe.send(msg)
                got = await wse.wait_for(probe.recv(), 10, f"probe echo {tag} {i}")
                latencies.append(time.monotonic() - t)
                assert got == msg, got

        loop = asyncio.get_running_loop()
        try:
            sampler.start()
            flood.start()
            # Half the probes while the flood pours in, half once the server
            # has stopped reading it (backpressure engaged).
            await loop.run_in_executor(None, flood.wait_sent, 2 * MIB, wse.scaled(10))
            await probe_echoes(25, "active")
            stalled = await loop.run_in_executor(None, flood.wait_stalled, 1.0, limit)
            await probe_echoes(25, "stalled")
            # Some more time in the stalled state for the memory samples.
            await loop.run_in_executor(None, flood.wait_stalled, 2.0, limit)
        finally:
            flood.stop()
            await loop.run_in_executor(None, flood.join, 10)
            sampler.done.set()
            sampler.join(5)
        sent = flood.sent
        peak = max(sampler.peak, srv.total_rss_kib())
        growth = (peak - baseline) / 1024
        assert flood.error is None, f"flood connection failed after {sent / MIB:.1f} MiB: {flood.error!r}"
        assert stalled and sent < total, \
            f"the server read all {sent / MIB:.0f} MiB from a peer that never reads: no backpressure"
        assert growth < 64, f"server RSS grew {growth:.1f} MiB (baseline {baseline / 1024:.1f} MiB, " \
                            f"{sent / MIB:.1f} MiB flooded)"
        worst = max(latencies)
        assert worst < wse.scaled(1.0), f"probe echo took {worst:.3f}s during the flood " \
                                        f"(max allowed {wse.scaled(1.0):.1f}s)"
        # The flooding connection itself is intact: its first echo is right.
        flood_ws.sock.settimeout(None)
        opcode, data = flood_ws.recv_message(timeout=20)
        assert (opcode, data == flood.payloads[0]) == (OP_BINARY, True), \
            f"first echo on the flooded connection: opcode {opcode}, {len(data)} bytes"
        await probe.send("done")
        assert await wse.wait_for(probe.recv(), 5, "echo") == "done"
        await probe.close()
        flood_ws.close()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@wse.timeout(120)
async def test_2000_concurrent_connections():
    n = 2000
    nofile = raise_nofile()
    if nofile < n + 100:
        raise wse.Skip(f"RLIMIT_NOFILE hard limit {nofile} is below {n + 100}")
    with Server(access_log=True) as srv:
        clients = []
        sem = asyncio.Semaphore(100)

        async def open_one():
            async with sem:
                ws = await ws_connect(srv.uri(), ping_interval=None, max_queue=4)
                clients.append(ws)
                return ws

        async def echo(i, ws):
            msg = f"message {i}"
            await ws.send(msg)
            got = await ws.recv()
            assert got == msg, f"connection {i} echoed {got!r}"

        async def scenario():
            await asyncio.gather(*(open_one() for _ in range(n)))
            assert len(clients) == n
            # Every connection is open now: all echo, then all close.
            await asyncio.gather(*(echo(i, ws) for i, ws in enumerate(clients)))
            assert all(ws.open for ws in clients), "a connection closed before its turn"
            await asyncio.gather(*(ws.close() for ws in clients))
            return [ws.close_code for ws in clients]

        try:
            codes = await wse.wait_for(scenario(), 60, f"{n} concurrent connections")
        finally:
            for ws in clients:
                if not ws.closed:
                    ws.transport.abort()
        assert codes == [1000] * n, f"close codes: {sorted(set(codes))}"
        # The access log records every connection, none summarised: one
        # line each, written when it ends.
        def opened_per_worker():
            per_worker = {}
            for m in srv.access_lines(r"worker=(\d+) peer=\S+ request=\"GET /websocket\" status=101 "
                                      r".* close=1000 by=client$"):
                per_worker[m.group(1)] = per_worker.get(m.group(1), 0) + 1
            return per_worker
        wse.wait_until(lambda: sum(opened_per_worker().values()) >= n, wse.scaled(10),
                       f"{n} connections in the access log")
        per_worker = opened_per_worker()
        assert sum(per_worker.values()) == n, f"{sum(per_worker.values())} access lines for {n} connections"
        assert len(srv.access_lines()) == n, f"{len(srv.access_lines())} access lines in all"
        assert set(per_worker) == {"0", "1"}, f"connections per worker: {per_worker}"
