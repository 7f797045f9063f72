"""Shutdown by SIGTERM / SIGQUIT (spec 12) and a worker killed with -9 (spec 13)."""
import asyncio
import os
import re
import signal
import time

import wse
from wse import OP_TEXT, RawWS, Server, proc_stat, wait_pid_gone, ws_connect


async def open_clients(srv, n):
    clients = []
    for i in range(n):
        clients.append(await ws_connect(srv.uri(), ping_interval=None))
    for i, ws in enumerate(clients):
        await ws.send(f"hello {i}")
        assert await wse.wait_for(ws.recv(), 10, "echo") == f"hello {i}"
    return clients


async def close_codes(clients, timeout):
    await wse.wait_for(asyncio.gather(*(ws.wait_closed() for ws in clients)), timeout,
                       "the server's close of every client")
    return [ws.close_code for ws in clients]


def test_startup_line_gives_the_urls_and_counts_in_words():
    """It used to say "serving 127.0.0.1:PORT with 1 workers": no URL to paste."""
    with Server("--path", "/echo", workers=1) as srv:
        base = f"127.0.0.1:{srv.port}"
        lines = srv.find_lines(r"\[master pid \d+\] (serving .*)")
        assert [m.group(1) for m in lines] == \
            [f"serving ws://{base}/echo (page http://{base}/) with 1 worker"], lines
        # Both URLs are the real ones.
        url = re.search(r"serving ws://[^/]+(/\S*) \(page http://[^/]+(/\S*)\)", lines[0].group(1))
        with RawWS(srv.port, path=url.group(1)) as ws:
            ws.send_text("here")
            assert ws.recv_message() == (OP_TEXT, b"here")
        page = wse.http_request(srv.port, f"GET {url.group(2)} HTTP/1.1\r\nHost: {base}\r\n\r\n")
        assert page.status == 200 and b"new WebSocket(url)" in page.body, page.raw[:200]

    first, second = wse.free_port(), wse.free_port()
    with Server("-l", f"127.0.0.1:{first}", "-l", f"127.0.0.1:{second}", port=first, workers=2) as srv:
        line = srv.wait_for_line(r"\[master pid \d+\] serving .*", 1).group(0)
        assert line.endswith(f"serving ws://127.0.0.1:{first}/websocket (page http://127.0.0.1:{first}/)"
                             " and 1 more address with 2 workers"), line


async def test_sigterm_closes_clients_with_1001_and_exits():
    loop = asyncio.get_running_loop()
    with Server() as srv:
        clients = await open_clients(srv, 20)
        workers = [(pid, proc_stat(pid)) for pid in srv.children()]
        assert len(workers) == 2, f"expected 2 workers, found {workers}"
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        codes = await close_codes(clients, 5)
        assert codes == [1001] * 20, f"close codes after SIGTERM: {codes}"
        status = await loop.run_in_executor(None, srv.wait_exit, wse.scaled(5) - (time.monotonic() - t0))
        elapsed = time.monotonic() - t0
        assert status is not None, f"master still running {elapsed:.1f}s after SIGTERM"
        assert status == 0, f"master exit status {status} after SIGTERM"
        assert elapsed <= wse.scaled(5), f"master took {elapsed:.1f}s to exit"
        for pid, st in workers:
            assert wait_pid_gone(pid, st[2], 0), f"worker {pid} outlived its master"


async def test_sigquit_drains_then_closes_with_1001():
    loop = asyncio.get_running_loop()
    # --close-spread 0: every close frame at the drain timeout, none spread
    # over the following seconds (the default spreads them over 5 s).
    with Server("--drain-timeout", "1", "--close-spread", "0") as srv:
        clients = await open_clients(srv, 6)
        workers = [(pid, proc_stat(pid)) for pid in srv.children()]
        mark = srv.mark()
        t0 = time.monotonic()
        srv.signal(signal.SIGQUIT)
        srv.wait_for_line(r"\[worker 0 pid \d+\] draining", 5, start=mark)
        srv.wait_for_line(r"\[worker 1 pid \d+\] draining", 5, start=mark)
        # While draining, open connections are still served.
        for i, ws in enumerate(clients):
            await ws.send(f"draining {i}")
            assert await wse.wait_for(ws.recv(), 5, "echo while draining") == f"draining {i}"
        codes = await close_codes(clients, 8)
        t_closed = time.monotonic() - t0
        assert codes == [1001] * len(clients), f"close codes after the drain: {codes}"
        assert 0.7 <= t_closed <= wse.scaled(4), f"closed {t_closed:.2f}s after SIGQUIT (drain timeout 1s)"
        status = await loop.run_in_executor(None, srv.wait_exit, wse.scaled(10))
        assert status == 0, f"master exit status {status} after SIGQUIT"
        for pid, st in workers:
            assert wait_pid_gone(pid, st[2], 0), f"worker {pid} outlived its master"


def test_sigterm_with_idle_raw_clients_and_pending_handshake():
    """Raw peers that never answer the close frame do not hold the stop up."""
    with Server() as srv:
        peers = [RawWS(srv.port) for _ in range(4)]
        half = RawWS(srv.port, handshake=False)
        half.send(b"GET /websocket HTTP/1.1\r\n")
        try:
            for p in peers:
                p.echo(OP_TEXT, b"x")
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            for p in peers:
                code, _, _ = p.expect_close(5)
                assert code == 1001, code
            assert half.wait_tcp_close(5), "half-open handshake not closed at stop"
            status = srv.wait_exit(wse.scaled(5))
            assert status == 0, f"exit status {status} ({time.monotonic() - t0:.1f}s after SIGTERM)"
        finally:
            for p in peers + [half]:
                p.close()


def test_kill_9_worker_is_respawned():
    with Server("--log-level", "debug", worker_deaths_ok=True) as srv:
        kids = srv.children()
        assert len(kids) == 2, kids
        victim = kids[0]
        m = srv.find_lines(rf"\[worker (\d+) pid {victim}\]")
        slot = m[0].group(1) if m else r"\d+"
        mark = srv.mark()
        os.kill(victim, signal.SIGKILL)
        srv.wait_for_line(rf"worker {slot} .*{victim}.*respawning", 5, start=mark)
        # Any line the new worker of that slot logs (debug: its start).
        new = srv.wait_for_line(rf"\[worker {slot} pid (?!{victim}\])(\d+)\]", 5, start=mark)
        new_pid = int(new.group(1))
        assert new_pid != victim
        assert new_pid in srv.children(), f"respawned worker {new_pid} is not the master's child"
        # New connections keep succeeding, and the new worker takes its share.
        deadline = time.monotonic() + wse.scaled(5)
        ok, errors, on_new = 0, [], 0
        while time.monotonic() < deadline and (ok < 10 or not on_new):
            try:
                with RawWS(srv.port, timeout=2) as ws:
                    ws.echo(OP_TEXT, b"after kill", timeout=2)
                    ok += 1
                    if srv.worker_of(ws.local_port, 2)[1] == new_pid:
                        on_new += 1
            except (OSError, AssertionError) as e:
                errors.append(repr(e))
        assert ok >= 10, f"only {ok} connections succeeded after the kill; errors: {errors[:5]}"
        assert on_new, "no connection was served by the respawned worker"
        assert len(srv.children()) == 2
