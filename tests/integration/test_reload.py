"""Reload (SIGHUP), worker count changes, respawn under load, stop paths
(issue: signal-driven lifecycle)."""
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

import wse
from wse import OP_BINARY, OP_TEXT, RawWS, Server, proc_stat, wait_pid_gone, ws_connect




def torture(*args, timeout=180):
    return wse.torture(*args, timeout=timeout, what="reload torture")


@wse.timeout(240)
def test_reload_under_load_loses_nothing():
    """200 clients echoing numbered messages + a new connection every 5 ms,
    20 SIGHUPs, some back to back: no failed connect, no reset, nothing lost
    or corrupted, ListenDrops/ListenOverflows unchanged."""
    clients = "100" if wse.SAN else "200"
    out = torture("--clients", clients, "--reloads", "20", "--duration", "8",
                  "--timeout", str(wse.scaled(10)))
    assert "lost 0, corrupted 0" in out and "ListenDrops +0, ListenOverflows +0" in out, out


@wse.timeout(240)
def test_worker_count_2_3_1_by_reload_under_load():
    out = torture("--clients", "100", "--reloads", "9", "--duration", "6",
                  "--worker-counts", "2,3,1", "--timeout", str(wse.scaled(10)))
    assert "connect failures 0, resets 0" in out, out


class ConfigFile:
    def __init__(self, port):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "wsechod.conf")
        self.port = port

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(f"listen = 127.0.0.1:{self.port}\nworkers = 2\ndrain-timeout = 30\n" + text)


def echo_once(port, text):
    with RawWS(port) as ws:
        ws.send_text(text)
        return ws.recv_message()[1].decode()


def test_config_change_applies_to_new_connections_only_and_bad_config_changes_nothing():
    port = wse.free_port()
    conf = ConfigFile(port)
    conf.write("")
    with Server("-c", conf.path, port=port) as srv:
        old = RawWS(port)
        old.send_text("a")
        assert old.recv_message() == (OP_TEXT, b"a")

        conf.write('echo_prefix = "You said: "\n')
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"reload: generation 2 serving with 2 workers", 10, start=mark)
        # Until an old worker has read its DRAIN it may still accept: wait
        # for both to say they drain (they stopped accepting by then).
        first = srv.wait_for_line(r"\] draining", 10, start=mark)
        srv.wait_for_line(r"\] draining", 10, start=srv.lines.index(first.string) + 1)
        assert echo_once(port, "b") == "You said: b"
        # The old connection is served by its old worker, with the old config.
        old.send_text("c")
        assert old.recv_message() == (OP_TEXT, b"c")

        conf.write("idle-timeout = soon\n")
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        m = srv.wait_for_line(r"reload: .*configuration unchanged", 10, start=mark)
        assert "idle-timeout" in m.string and "soon" in m.string, m.string
        assert echo_once(port, "d") == "You said: d"
        old.send_text("e")
        assert old.recv_message() == (OP_TEXT, b"e")
        st = json.loads(subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{port}",
                                        "--json"], capture_output=True, text=True, timeout=10).stdout)
        assert st["header"]["generation"] == 2
        states = sorted((w["generation"], w["state"]) for w in st["workers"])
        assert states == [(1, "draining"), (1, "draining"), (2, "running"), (2, "running")], states
        old.close()


def test_drained_connections_get_1001_after_the_drain_timeout():
    with Server("--drain-timeout", "1", "--close-spread", "0.3") as srv:
        clients = [RawWS(srv.port) for _ in range(10)]
        for ws in clients:
            ws.send_binary(b"x")
            assert ws.recv_message() == (OP_BINARY, b"x")
        t0 = time.monotonic()
        srv.signal(signal.SIGHUP)
        for ws in clients:
            code, reason, before = ws.expect_close(timeout=10)
            assert code == 1001, code
            ws.send_close(1001)
            assert ws.wait_tcp_close()
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.9, f"closed {elapsed:.2f}s after SIGHUP, before the drain timeout"
        # New connections are served by the new generation meanwhile.
        assert echo_once(srv.port, "new") == "new"


def test_drain_close_code_1012():
    with Server("--drain-timeout", "0", "--close-spread", "0", "--drain-close-code", "1012") as srv:
        ws = RawWS(srv.port)
        srv.signal(signal.SIGHUP)
        code, reason, _ = ws.expect_close(timeout=10)
        assert code == 1012
        ws.close()


def test_kill9_worker_under_load_others_unaffected_slot_back():
    with Server(worker_deaths_ok=True) as srv:
        # One long-lived connection on each worker.
        conns = {}
        for _ in range(40):
            ws = RawWS(srv.port)
            slot, pid = srv.worker_of(ws.local_port)
            if slot not in conns:
                conns[slot] = (ws, pid)
            else:
                ws.close()
            if len(conns) == 2:
                break
        assert len(conns) == 2, "could not get a connection on each worker"
        victim_ws, victim = conns[0]
        other_ws, _ = conns[1]
        stop = threading.Event()
        failures, successes = [], [0]

        killed_at = [float("inf")]

        def new_connections():
            while not stop.is_set():
                started = time.monotonic()
                try:
                    assert echo_once(srv.port, "n") == "n"
                    successes[0] += 1
                except Exception as e:
                    # A connection the victim had already accepted dies with
                    # it; one begun after the kill must succeed.
                    if started >= killed_at[0]:
                        failures.append(repr(e))

        t = threading.Thread(target=new_connections)
        t.start()
        try:
            mark = srv.mark()
            t0 = killed_at[0] = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            m = srv.wait_for_line(r"worker 0 .*killed by signal 9.*respawning in ([\d.]+) s", 5, start=mark)
            assert float(m.group(1)) <= 0.1
            wse.wait_until(lambda: len([k for k in srv.children() if k != victim]) == 2,
                           wse.scaled(2), "the slot respawned")
            back = time.monotonic() - t0
            assert back < wse.scaled(1.0), f"slot back after {back:.2f}s"
            for i in range(20):
                other_ws.send_text(f"still {i}")
                assert other_ws.recv_message() == (OP_TEXT, f"still {i}".encode())
        finally:
            stop.set()
            t.join(wse.scaled(10))
        assert not failures, failures[:5]
        assert successes[0] > 0
        assert victim_ws.wait_tcp_close(5)
        victim_ws.close()
        other_ws.close()


async def _open(srv, n):
    clients = []
    for i in range(n):
        clients.append(await ws_connect(srv.uri(), ping_interval=None))
    return clients


@wse.timeout(120)
async def test_sigterm_with_500_connections_leaves_nothing():
    loop = asyncio.get_running_loop()
    pid_dir = tempfile.TemporaryDirectory()
    pid_file = os.path.join(pid_dir.name, "wsechod.pid")
    with Server("--pid-file", pid_file) as srv:
        shm = f"/dev/shm/wsechod.{srv.port}"
        with open(pid_file) as f:
            assert int(f.read()) == srv.pid
        clients = await _open(srv, 500)
        workers = [(pid, proc_stat(pid)) for pid in srv.children()]
        srv.signal(signal.SIGTERM)
        await wse.wait_for(asyncio.gather(*(ws.wait_closed() for ws in clients)), 10,
                           "every client closed")
        codes = {ws.close_code for ws in clients}
        assert codes == {1001}, codes
        status = await loop.run_in_executor(None, srv.wait_exit, wse.scaled(5))
        assert status == 0
        for pid, st in workers:
            assert wait_pid_gone(pid, st[2], 0), f"worker {pid} left behind"
        assert not os.path.exists(shm), "stats segment left behind"
        assert not os.path.exists(pid_file), "pid file left behind"


def test_kill9_master_workers_exit_within_a_second():
    srv = Server(worker_deaths_ok=True)
    srv.start()
    try:
        ws = RawWS(srv.port)
        workers = [(pid, proc_stat(pid)) for pid in srv.children()]
        assert len(workers) == 2
        os.kill(srv.pid, signal.SIGKILL)
        srv.proc.wait(5)
        t0 = time.monotonic()
        for pid, st in workers:
            assert wait_pid_gone(pid, st[2], wse.scaled(1.0)), \
                f"worker {pid} still alive {time.monotonic() - t0:.2f}s after its master died"
        code, _, _ = ws.expect_close(timeout=2)
        assert code == 1001
        ws.close()
    finally:
        srv.stop()
        try:
            os.unlink(f"/dev/shm/wsechod.{srv.port}")   # a killed master leaves it
        except FileNotFoundError:
            pass


def test_signal_option_uses_the_pid_file():
    with tempfile.TemporaryDirectory() as d:
        pid_file = os.path.join(d, "w.pid")
        with Server("--pid-file", pid_file) as srv:
            mark = srv.mark()
            # The server's own --listen names its stats segment, whose
            # master -s proves the pid file's pid to be.
            listen = ["--pid-file", pid_file, "-l", f"127.0.0.1:{srv.port}"]
            p = subprocess.run([wse.binary(), "-s", "reload", *listen],
                               capture_output=True, text=True, timeout=10)
            assert p.returncode == 0, p.stderr
            srv.wait_for_line(r"reload: generation 2 serving", 10, start=mark)
            p = subprocess.run([wse.binary(), "-s", "stop", *listen],
                               capture_output=True, text=True, timeout=10)
            assert p.returncode == 0, p.stderr
            assert srv.wait_exit(wse.scaled(5)) == 0
        p = subprocess.run([wse.binary(), "-s", "reload"], capture_output=True, text=True, timeout=10)
        assert p.returncode == 1 and "pid file" in p.stderr


def test_old_generation_keeps_its_drain_timeout_and_sigterm_ends_its_drain():
    """What the man page says about a reload's drain: the old workers keep the
    --drain-timeout they were started with (not the new configuration's), and
    SIGTERM to a draining worker closes its connections with 1001 at once;
    the master does not replace it (its slot is the new generation's)."""
    port = wse.free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "wsechod.conf")

        def write(drain):
            with open(conf, "w") as f:
                f.write(f"listen = 127.0.0.1:{port}\nworkers = 1\ndrain-timeout = {drain}\n"
                        "close-spread = 0\n")
        write(600)
        with Server("-c", conf, port=port, workers=None) as srv:
            client = RawWS(port)
            client.send_text("before")
            assert client.recv_message() == (OP_TEXT, b"before")
            [old_pid] = srv.children()
            old_start = proc_stat(old_pid)[2]

            write(0.2)
            mark = srv.mark()
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload: generation 2 serving with 1 worker; 1 old worker draining$",
                              10, start=mark)
            # The old worker's own value, not the new 0.2 s.
            srv.wait_for_line(rf"\[worker 0 pid {old_pid}\] draining 1 connection \(up to 600\.0 s\)",
                              10, start=mark)
            client.send_text("draining")
            assert client.recv_message() == (OP_TEXT, b"draining")
            new_pids = set(srv.children()) - {old_pid}
            assert len(new_pids) == 1, srv.children()

            t0 = time.monotonic()
            os.kill(old_pid, signal.SIGTERM)
            code, _, _ = client.expect_close(timeout=5)
            took = time.monotonic() - t0
            assert code == 1001, code
            assert took < wse.scaled(2), f"close {took:.2f}s after SIGTERM"
            client.close()
            assert wait_pid_gone(old_pid, old_start, wse.scaled(5)), "the old worker outlived SIGTERM"
            srv.wait_for_line(rf"worker 0 \(pid {old_pid}, generation 1\) exited with status 0$",
                              10, start=mark)
            # A respawn is decided, and logged, as the master reaps: none came.
            assert not [l for l in srv.lines[mark:] if "respawn" in l], srv.lines[mark:]
            assert set(srv.children()) == new_pids
            assert echo_once(port, "after") == "after"
            st = json.loads(subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{port}",
                                            "--json"], capture_output=True, text=True,
                                           timeout=10).stdout)
            assert [(w["generation"], w["state"]) for w in st["workers"]] == [(2, "running")], st
