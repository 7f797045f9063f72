"""Live upgrade (SIGUSR2, -s upgrade), sockets that outlive the master
(socket activation, systemd's file descriptor store) and the refusal of a
second server on a served address (issue: a new binary with nothing dropped)."""
import array
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import wse
from wse import RawWS, Server, proc_stat, wait_pid_gone

HERE = os.path.dirname(os.path.abspath(__file__))



def torture(*args, timeout=240):
    return wse.torture(*args, timeout=timeout, what="upgrade torture")


def install(src, dst):
    """src at dst as a new file renamed over the old one (a package manager's way)."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)


def install_script(dst, body):
    tmp = dst + ".new"
    with open(tmp, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(tmp, 0o755)
    os.replace(tmp, dst)


def read_pid(path):
    with open(path) as f:
        return int(f.read())


def stop_by_pid_file(path, timeout=10):
    """SIGTERM to the master the pid file names (after an upgrade, not the
    test's child); waits until it is gone."""
    pid = read_pid(path)
    st = proc_stat(pid)
    os.kill(pid, signal.SIGTERM)
    assert st is None or wait_pid_gone(pid, st[2], wse.scaled(timeout)), \
        f"master {pid} still running after SIGTERM"


def upgrade(exe, pid_file, port, timeout=30):
    return subprocess.run([exe, "-s", "upgrade", "--pid-file", pid_file, "-l", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=wse.scaled(timeout))


def stats(exe, port):
    p = subprocess.run([exe, "stats", "--stats-name", f"wsechod.{port}", "--json"],
                       capture_output=True, text=True, timeout=wse.scaled(10))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def echo(port, text="hello"):
    with RawWS(port) as ws:
        ws.send_text(text)
        op, payload = ws.recv_message()
        assert payload == text.encode(), payload


class Connector(threading.Thread):
    """A new connection every 10 ms (handshake, one echo, close) until
    stopped; counts successes and failures."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                echo(self.port, f"c{i}")
                self.ok += 1
            except Exception as e:          # noqa: BLE001 - every failure counts
                self.failures.append(repr(e))
            self.stop.wait(0.01)

    def finish(self):
        self.stop.set()
        self.join(wse.scaled(20))
        return self.ok, self.failures


class Notifications:
    """systemd's side of sd_notify: datagrams, with descriptors attached."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout=10):
        """(fields, fds) of the next datagram."""
        self.sock.settimeout(wse.scaled(timeout))
        fds = array.array("i")
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
        except socket.timeout:
            raise AssertionError(f"no notification within {wse.scaled(timeout):.0f}s") from None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        fields = dict(l.split("=", 1) for l in data.decode().split("\n") if "=" in l)
        return fields, list(fds)

    def until(self, pred, timeout=10):
        """Datagrams up to and including the first that pred accepts."""
        seen = []
        deadline = time.monotonic() + wse.scaled(timeout)
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no matching notification; got {seen}"
            fields, fds = self.next(left / wse.FACTOR)
            seen.append((fields, fds))
            if pred(fields):
                return seen

    def close(self):
        self.sock.close()


# ---- live upgrade ---------------------------------------------------------

@wse.timeout(300)
def test_upgrade_under_load_loses_nothing():
    """200 clients echoing + a new connection every 5 ms, 10 live upgrades,
    each from a fresh copy of the binary: no failed connect, nothing lost,
    ListenDrops/ListenOverflows +0, every -s upgrade reports success."""
    clients = "100" if wse.SAN else "200"
    out = torture("--upgrade", "--clients", clients, "--reloads", "10", "--duration", "8",
                  "--timeout", str(wse.scaled(10)))
    assert "upgrades 10, failed 0" in out, out
    assert "connect failures 0, resets 0" in out and "lost 0, corrupted 0" in out, out
    assert "ListenDrops +0, ListenOverflows +0" in out, out


def test_upgrade_hands_over_pid_file_stats_and_systemd():
    """The new master: another pid in the pid file and in systemd's MAINPID,
    the same stats segment (both generations while the old drains, totals
    that never go back), the same listening sockets (never re-bound)."""
    with tempfile.TemporaryDirectory() as d:
        exe, pid_file = os.path.join(d, "wsechod"), os.path.join(d, "w.pid")
        install(wse.binary(), exe)
        n = Notifications(os.path.join(d, "notify"))
        try:
            with Server("--pid-file", pid_file, "--drain-timeout", "30", exe=exe,
                        env={"NOTIFY_SOCKET": n.sock.getsockname()}) as srv:
                n.until(lambda f: f.get("READY") == "1")
                inodes_before = listen_inodes(srv.pid)
                for i in range(5):
                    echo(srv.port, f"before {i}")
                held = RawWS(srv.port)          # stays on an old worker while it drains
                held.send_text("held")
                assert held.recv_message()[1] == b"held"
                accepted = stats(exe, srv.port)["totals"]["conn_accepted"]
                assert accepted >= 6, accepted

                install(wse.binary(), exe)
                p = upgrade(exe, pid_file, srv.port)
                assert p.returncode == 0, p.stdout + p.stderr
                new = read_pid(pid_file)
                assert new != srv.pid and f"pid {new} serves" in p.stdout, (new, p.stdout)
                msgs = n.until(lambda f: "MAINPID" in f)
                assert msgs[0][0].get("RELOADING") == "1", msgs
                assert msgs[-1][0].get("MAINPID") == str(new) and msgs[-1][0].get("READY") == "1"
                # The same sockets: handed over, not bound again.
                assert listen_inodes(new) == inodes_before

                during = stats(exe, srv.port)
                assert during["header"]["master_pid"] == new
                gens = {(w["generation"], w["state"]) for w in during["workers"]}
                assert (1, "draining") in gens and (2, "running") in gens, during["workers"]
                assert during["totals"]["conn_accepted"] >= accepted
                echo(srv.port, "after")

                held.send_close(1000)
                held.close()
                # The old master, drained.  (Not wait_exit: it would wait for the
                # output pipe, which the new master holds.)
                assert srv.proc.wait(wse.scaled(10)) == 0
                after = stats(exe, srv.port)
                assert all(w["generation"] == 2 for w in after["workers"]), after["workers"]
                assert after["totals"]["conn_accepted"] >= accepted + 1, (accepted, after["totals"])
                stop_by_pid_file(pid_file)
                srv.wait_for_line(rf"\[master pid {new}\] exiting", 10)
            assert not os.path.exists(pid_file)
            assert not os.path.exists(f"/dev/shm/wsechod.{srv.port}")
        finally:
            n.close()


def listen_inodes(pid):
    """Inodes of the LISTEN sockets pid holds."""
    listening = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            cols = row.split()
            if cols[3] == "0A":
                listening.add(cols[9])
    mine = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:[") and t[8:-1] in listening:
            mine.add(t[8:-1])
    return mine


@wse.timeout(120)
def test_broken_new_binary_changes_nothing():
    """A new binary that exits 1, then one that never becomes ready: -s
    upgrade fails, systemd hears why, the old master serves on with the
    same pid and pid file, and not one connection fails meanwhile."""
    with tempfile.TemporaryDirectory() as d:
        exe, pid_file = os.path.join(d, "wsechod"), os.path.join(d, "w.pid")
        install(wse.binary(), exe)
        n = Notifications(os.path.join(d, "notify"))
        try:
            with Server("--pid-file", pid_file, exe=exe,
                        env={"NOTIFY_SOCKET": n.sock.getsockname()}) as srv:
                n.until(lambda f: f.get("READY") == "1")
                load = Connector(srv.port)
                load.start()
                real = os.path.join(d, "wsechod.real")
                shutil.copyfile(exe, real)
                os.chmod(real, 0o755)

                install_script(exe, "exit 1")
                p = upgrade(real, pid_file, srv.port)
                assert p.returncode == 1 and "upgrade failed" in p.stderr, p.stdout + p.stderr
                srv.wait_for_line(r"upgrade failed: the new binary \(pid \d+\) exited with "
                                  r"status 1; pid \d+ keeps serving", 5)
                msgs = n.until(lambda f: "upgrade failed" in f.get("STATUS", ""))
                assert msgs[0][0].get("RELOADING") == "1", msgs

                install_script(exe, "exec sleep 600")
                t0 = time.monotonic()
                p = upgrade(real, pid_file, srv.port)
                assert p.returncode == 1 and "upgrade failed" in p.stderr, p.stdout + p.stderr
                assert time.monotonic() - t0 >= 9.5, "gave up before the 10 s deadline"
                m = srv.wait_for_line(r"upgrade failed: the new binary \(pid (\d+)\) was not "
                                      r"ready within 10 s", 5)
                srv.wait_for_line(rf"rejected upgrade \(pid {m.group(1)}\) killed by signal", 10)

                ok, failures = load.finish()
                assert failures == [] and ok > 50, (ok, failures[:3])
                assert read_pid(pid_file) == srv.pid
                assert srv.proc.poll() is None
                assert not srv.find_lines(r"took over")
                echo(srv.port, "still here")
        finally:
            n.close()


# ---- sockets passed in ----------------------------------------------------

def reuseport_listener(port, reuseport=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((wse.HOST, port))
    s.listen(128)
    return s


def socket_inode(s):
    return str(os.fstat(s.fileno()).st_ino)


def test_socket_activation_adopts_the_passed_socket():
    """A socket passed as systemd does (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES
    with the socket unit's name): adopted as slot 0, not bound again; a
    connection that waited in it before the server started is served."""
    port = wse.free_port()
    lsock = reuseport_listener(port)
    early = socket.create_connection((wse.HOST, port), timeout=5)   # queued in the kernel
    prefix, fds = wse.listen_fds_launcher([lsock.fileno()], ["wsechod.socket"])
    try:
        with Server(port=port, prefix=prefix, pass_fds=fds) as srv:
            assert socket_inode(lsock) in listen_inodes(srv.pid)
            ws_handshake_on(early, port)
            echo(port, "activated")
            assert not srv.find_lines(r"in use")
    finally:
        early.close()
        lsock.close()


def ws_handshake_on(sock, port):
    """A handshake and one echo on an already connected socket."""
    import base64
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    sock.settimeout(wse.scaled(10))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head


def test_socket_activation_refuses_what_is_not_a_listening_socket():
    r, w = os.pipe()
    prefix, fds = wse.listen_fds_launcher([r], ["wsechod.socket"])
    try:
        srv = Server(prefix=prefix, pass_fds=fds)
        try:
            srv.start()
            raise AssertionError("started with a pipe for a socket")
        except wse.ServerError:
            pass
        assert srv.wait_exit(wse.scaled(5)) == 1
        assert srv.find_lines(r"passed descriptor 3 is not a listening TCP socket")
    finally:
        os.close(r)
        os.close(w)


def test_socket_activation_without_reuseport_needs_one_worker():
    port = wse.free_port()
    lsock = reuseport_listener(port, reuseport=False)
    prefix, fds = wse.listen_fds_launcher([lsock.fileno()], ["wsechod.socket"])
    try:
        srv = Server(port=port, prefix=prefix, pass_fds=fds, workers=2)
        try:
            srv.start()
            raise AssertionError("started two workers on a socket without SO_REUSEPORT")
        except wse.ServerError:
            pass
        assert srv.find_lines(r"ReusePort=yes")
        with Server(port=port, prefix=prefix, pass_fds=fds, workers=1):
            echo(port, "one worker")
    finally:
        lsock.close()


@wse.timeout(120)
def test_fd_store_survives_sigkill_of_the_master():
    """FDSTORE=1 datagrams carry every listening socket to the (fake)
    systemd; the master is killed with SIGKILL under load; a new one started
    with the stored sockets serves every connection made during the gap."""
    with tempfile.TemporaryDirectory() as d:
        n = Notifications(os.path.join(d, "notify"))
        env = {"NOTIFY_SOCKET": n.sock.getsockname(), "FDSTORE": "16"}
        stored = {}
        srv = Server(env=env, worker_deaths_ok=True)
        srv.start()
        try:
            for fields, fds in n.until(lambda f: f.get("READY") == "1"):
                if fields.get("FDSTORE") == "1":
                    assert len(fds) == 1, (fields, fds)
                    stored[fields["FDNAME"]] = fds[0]
            # READY comes first, the store right after it.
            while len(stored) < 2:
                fields, fds = n.next()
                if fields.get("FDSTORE") == "1":
                    stored[fields["FDNAME"]] = fds[0]
            port = srv.port
            assert set(stored) == {f"wsechod.listen.{i}.{port}.127.0.0.1" for i in (0, 1)}, stored

            load = Connector(port)
            load.start()
            wse.wait_until(lambda: load.ok >= 20, wse.scaled(10), "traffic before the kill")
            os.kill(srv.pid, signal.SIGKILL)
            srv.proc.wait(wse.scaled(5))
            # The gap: connections wait in the stored sockets' queues.
            gap = []
            for i in range(20):
                s = socket.create_connection((wse.HOST, port), timeout=5)
                gap.append(s)
            os.unlink(f"/dev/shm/wsechod.{port}") if os.path.exists(f"/dev/shm/wsechod.{port}") else None
            names = sorted(stored)
            prefix, fds = wse.listen_fds_launcher([stored[k] for k in names], names)
            with Server(port=port, prefix=prefix, pass_fds=fds, env=env) as again:
                for s in gap:
                    ws_handshake_on(s, port)
                time.sleep(0)       # the load thread kept going through the gap
                ok_before = load.ok
                wse.wait_until(lambda: load.ok >= ok_before + 10, wse.scaled(10),
                               "traffic after the restart")
                ok, failures = load.finish()
                assert failures == [], failures[:3]
                assert not again.find_lines(r"in use")
        finally:
            for s in locals().get("gap", []):
                s.close()
            for fd in stored.values():
                os.close(fd)
            srv.stop()
            n.close()


# ---- a second server ------------------------------------------------------

def test_second_server_on_a_served_address_is_refused():
    """Both would bind with SO_REUSEPORT and split the traffic: the second
    one stops with exit 1 and says why, whether the first is a wsechod or
    anything else listening there."""
    with Server() as first:
        p = subprocess.run([wse.binary(), "-l", f"127.0.0.1:{first.port}", "-w", "1",
                            "--stats-name", f"second.{first.port}"],
                           capture_output=True, text=True, timeout=wse.scaled(10))
        assert p.returncode == 1, p.stderr
        assert f"address 127.0.0.1:{first.port} in use by another process" in p.stderr, p.stderr
        echo(first.port, "first still serves")
    port = wse.free_port()
    other = reuseport_listener(port)
    try:
        p = subprocess.run([wse.binary(), "-l", f"127.0.0.1:{port}", "-w", "1"],
                           capture_output=True, text=True, timeout=wse.scaled(10))
        assert p.returncode == 1 and "in use by another process" in p.stderr, p.stderr
    finally:
        other.close()
