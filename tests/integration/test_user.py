"""--user/--group: the master keeps root, the workers and the metrics
process run as the given user (issue 14, "--user").

CI runs these as root; without root they skip, with the reason."""
import json
import os
import re
import signal
import subprocess
import tempfile

import wse
from wse import HOST, RawWS, Server

NOBODY = 65534
USER = ("--user", "nobody", "--group", "nogroup")


def need_root():
    if os.geteuid() != 0:
        raise wse.Skip("needs root (switching users)")


def creds(pid):
    """{Uid, Gid, Groups, CapEff, CapPrm} of /proc/PID/status, as strings."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups", "CapEff", "CapPrm"):
                out[key] = value.split()
    return out


def assert_unprivileged(pid, what):
    c = creds(pid)
    assert c["Uid"] == [str(NOBODY)] * 4, f"{what} pid {pid}: Uid {c['Uid']}"
    assert c["Gid"] == [str(NOBODY)] * 4, f"{what} pid {pid}: Gid {c['Gid']}"
    # Root's supplementary groups must not follow; the one group is kept.
    assert c["Groups"] == [str(NOBODY)], f"{what} pid {pid}: Groups {c['Groups']}"
    assert int(c["CapEff"][0], 16) == 0 and int(c["CapPrm"][0], 16) == 0, \
        f"{what} pid {pid}: capabilities {c}"


def worker_pids(srv, generation=None):
    """pids of the live workers (from the stats segment, read as root)."""
    p = subprocess.run([wse.binary(), "stats", "--stats-name", srv.stats_name(), "--json"],
                       capture_output=True, text=True, timeout=wse.scaled(10))
    assert p.returncode == 0, p.stderr
    return sorted(w["pid"] for w in json.loads(p.stdout)["workers"]
                  if w.get("pid") and (generation is None or w.get("generation") == generation))


def echo_once(port, text="hello"):
    with RawWS(port) as ws:
        ws.send_text(text)
        op, data = ws.recv_message()
        assert data == text.encode(), data


def test_workers_and_metrics_run_as_the_user():
    need_root()
    mport = wse.free_port()
    with Server(*USER, "--metrics-listen", f"{HOST}:{mport}") as srv:
        m = srv.wait_for_line(r"\[metrics pid (\d+)\] serving /metrics")
        metrics_pid = int(m.group(1))
        assert creds(srv.pid)["Uid"] == ["0"] * 4, "the master must keep root"
        srv.wait_for_line(r"workers run as user 65534 group 65534 \(nobody:nogroup\)")
        assert not srv.find_lines(r"workers run as root")
        pids = wse.wait_until(lambda: (lambda p: p if len(p) == 2 else None)(worker_pids(srv)),
                              wse.scaled(10), "two workers in the stats")
        assert sorted(pids) == sorted(k for k in srv.children() if k != metrics_pid)
        for pid in pids:
            assert_unprivileged(pid, "worker")
        assert_unprivileged(metrics_pid, "metrics process")
        echo_once(srv.port)
        # The segment the master created stays root's, mode 0640, and the
        # dropped metrics process still reads it (it opened it first).
        st = os.stat(f"/dev/shm/{srv.stats_name()}")
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o640), (st.st_uid, oct(st.st_mode))
        r = wse.http_request(mport, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 200, (r.status, r.body[:200])
        assert re.search(rb"\nwsechod_connections_accepted_total\{worker=\"\d+\"[^}]*\} 1\n", r.body), r.body[:600]


def test_a_reload_keeps_workers_unprivileged():
    need_root()
    with Server(*USER) as srv:
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"generation 2 serving", 15)
        pids = wse.wait_until(lambda: (lambda p: p if len(p) == 2 else None)(
            worker_pids(srv, generation=2)), wse.scaled(10), "generation 2's workers")
        for pid in pids:
            assert_unprivileged(pid, "generation 2 worker")
        echo_once(srv.port)


def test_sigusr1_reopens_files_the_user_cannot_open():
    """The logs live in a root-only directory: a worker running as nobody
    could not reopen them by path; the master hands them over."""
    need_root()
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o700)
        log, access = os.path.join(d, "main.log"), os.path.join(d, "access.log")
        mport = wse.free_port()
        with Server(*USER, "--log-file", log, "--log-level", "debug", "--access-log", access,
                    "--metrics-listen", f"{HOST}:{mport}", ready=None) as srv:
            wse.wait_until(lambda: os.path.exists(log) and "serving /metrics" in open(log).read()
                           and re.search(r"\] serving ws://", open(log).read()),
                           wse.scaled(10), "the serving lines in the log file")
            for path in (log, access):
                os.rename(path, path + ".1")
            srv.signal(signal.SIGUSR1)
            wse.wait_until(lambda: os.path.exists(log) and "log file reopened" in open(log).read(),
                           wse.scaled(10), "the master writing to the new file")
            # The master sent the files before its line, but a worker may
            # read its channel after our next connect: connect until a
            # worker's line lands in the new file (then, below, no worker
            # holds the old files any more).
            def worker_line_in_new():
                echo_once(srv.port)
                return re.search(r"\[worker \d+ pid \d+\] .*open /websocket", open(log).read())
            wse.wait_until(worker_line_in_new, wse.scaled(10), "a worker's line in the new log",
                           interval=0.1)
            wse.wait_until(lambda: os.path.exists(access) and "worker=" in open(access).read(),
                           wse.scaled(10), "an access line in the new access log", interval=0.1)
            # The metrics process was replaced and writes there too.
            wse.wait_until(lambda: open(log).read().count("serving /metrics") >= 1,
                           wse.scaled(10), "the new metrics process's line in the new log")
            assert not re.search(r"error .*reopening", open(log).read() + open(log + ".1").read())
            for pid in worker_pids(srv):
                assert_unprivileged(pid, "worker")
                # Not one of its descriptors still points at the old files.
                targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
                assert not [t for t in targets if t.endswith(".log.1")], targets


def test_unknown_user_or_group_is_a_configuration_error():
    for args, what in ((("--user", "no-such-user-wse"), "user 'no-such-user-wse' not found"),
                       (("--user", "root", "--group", "no-such-group-wse"),
                        "group 'no-such-group-wse' not found"),
                       (("--group", "root"), "without user"),
                       (("--user", "bad name"), "expected a user or group name")):
        for mode in (("-t",), ("-l", f"{HOST}:{wse.free_port()}")):
            p = subprocess.run([wse.binary(), *mode, *args], capture_output=True, text=True,
                               timeout=wse.scaled(10))
            assert p.returncode == 2, (args, mode, p.returncode, p.stderr)
            assert what in p.stderr, (args, p.stderr)


def test_root_without_user_warns_and_user_root_is_quiet():
    need_root()
    with Server() as srv:
        srv.wait_for_line(r"warn  \[master pid \d+\] workers run as root: give --user USER")
    with Server("--user", "root") as srv:
        srv.wait_for_line(r"workers run as user 0 group 0 \(root\)")
        assert not srv.find_lines(r"workers run as root")
        for pid in worker_pids(srv):
            assert creds(pid)["Uid"] == ["0"] * 4
        echo_once(srv.port)


def run_as_nobody(*args):
    def drop():
        os.setgroups([NOBODY])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return subprocess.Popen([wse.binary(), "-l", f"{HOST}:{wse.free_port()}", "-w", "1",
                             "--stats-name", f"wse-user-{os.getpid()}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=drop)


def test_a_master_that_is_not_root():
    """It cannot switch users: another --user fails the start (exit 1, a
    message); its own user and group is no switch, and serves."""
    need_root()
    p = run_as_nobody("--user", "root")
    out, _ = p.communicate(timeout=wse.scaled(10))
    assert p.returncode == 1, (p.returncode, out)
    assert "switching to them needs a master started as root" in out, out
    p = run_as_nobody(*USER)
    try:
        line = wse.wait_until(lambda: (lambda l: l if not l or "serving" in l or "error" in l
                                       else None)(p.stdout.readline()),
                              wse.scaled(10), "the serving line")
        assert "serving ws://" in line, line
        assert not [k for k in wse.children_of(p.pid) if creds(k)["Uid"] != [str(NOBODY)] * 4]
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=wse.scaled(10))
    assert p.returncode == 0, (p.returncode, out)
