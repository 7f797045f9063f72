"""Attacks by a local user on the paths wsechod shares with others: the pid
file read by `wsechod -s`, the shared-memory name in /dev/shm, the pid file's
temporary (issue: defects found by attacking the server, items 1, 5, 6).

The tests run as root in CI; "another user" is uid 65534 (nobody), files
chowned to it.  Tests that need root or unshare(1) skip, with the reason,
elsewhere."""
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile

import wse
from wse import Server

NOBODY = 65534
MASTER_PID_OFFSET = 32          # struct wse_stats_header.master_pid


def run(*args, timeout=10):
    return subprocess.run([wse.binary(), *args], capture_output=True, text=True,
                          timeout=wse.scaled(timeout))


def need_root():
    if os.geteuid() != 0:
        raise wse.Skip("needs root (files of another user)")


@contextlib.contextmanager
def victim(name=None):
    """A live process that is not wsechod's master: sleep, or a copy of
    sleep called `name` (a process "renamed wsechod")."""
    with tempfile.TemporaryDirectory() as d:
        exe = shutil.which("sleep")
        if name:
            shutil.copy(exe, os.path.join(d, name))
            exe = os.path.join(d, name)
        p = subprocess.Popen([exe, "1000"])
        try:
            yield p
        finally:
            p.kill()
            p.wait()


def assert_alive(p, what):
    assert p.poll() is None, f"{what}: the victim died ({p.returncode})"


def segment_image(port):
    """The header and first slots of a real server's segment."""
    with open(f"/dev/shm/wsechod.{port}", "rb") as f:
        return bytearray(f.read(4096))


def plant_segment(name, image, master_pid, uid=None, mode=0o640):
    path = f"/dev/shm/{name}"
    image = bytearray(image)
    image[MASTER_PID_OFFSET:MASTER_PID_OFFSET + 4] = master_pid.to_bytes(4, "little")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(image)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, -1)
    return path


@contextlib.contextmanager
def removing(*paths):
    try:
        yield
    finally:
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


# ---- 1. wsechod -s -----------------------------------------------------------

def test_signal_refuses_pids_that_narrow_to_every_process():
    """4294967295 narrowed to pid_t was kill(-1): every process.  Each value
    runs in a pid namespace of its own with a victim, so that a regression
    kills the namespace, not the machine."""
    need_root()
    if not shutil.which("unshare"):
        raise wse.Skip("unshare(1) is missing")
    script = ('sleep 1000 & v=$!; "$0" -s reopen --pid-file "$1" -l 127.0.0.1:1 2>&1; '
              'echo "rc=$?"; kill -0 "$v" && echo victim-alive; kill "$v"')
    with tempfile.TemporaryDirectory() as d:
        pid_file = os.path.join(d, "w.pid")
        for text in ["4294967295", "4294967296", "4294967294", "0", "1", "-1", "",
                     "12abc", " 7", "+7", "99999999999999999999999"]:
            with open(pid_file, "w") as f:
                f.write(text + "\n")
            p = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script,
                                wse.binary(), pid_file],
                               capture_output=True, text=True, timeout=wse.scaled(10))
            out = p.stdout
            assert "rc=1" in out and "victim-alive" in out, f"pid file {text!r}: {out}{p.stderr}"
            assert "holds no pid" in out, f"pid file {text!r}: {out}"


def test_signal_refuses_a_process_that_is_not_this_servers_master():
    """A stale or rewritten pid file naming a live process (sleep, a copy of
    sleep called wsechod, a worker, a fake segment's "master") gets no
    signal; the real master does."""
    with tempfile.TemporaryDirectory() as d, Server("--pid-file", os.path.join(d, "w.pid")) as srv:
        pid_file = os.path.join(d, "w.pid")
        listen = ["--pid-file", pid_file, "-l", f"127.0.0.1:{srv.port}"]
        fake = f"wsechod-sec-{os.getpid()}"
        with victim() as sleeper, victim("wsechod") as renamed, removing(f"/dev/shm/{fake}"):
            plant_segment(fake, segment_image(srv.port), renamed.pid)
            cases = [(sleeper.pid, listen), (renamed.pid, listen), (srv.children()[0], listen),
                     (renamed.pid, ["--pid-file", pid_file, "--stats-name", fake])]
            for pid, args in cases:
                with open(pid_file, "w") as f:
                    f.write(f"{pid}\n")
                for action in ("reopen", "stop"):
                    p = run("-s", action, *args)
                    assert p.returncode == 1, f"-s {action} pid {pid} {args}: {p.returncode} {p.stderr}"
                    assert "not signalling" in p.stderr, p.stderr
                assert_alive(sleeper, f"pid {pid}")
                assert_alive(renamed, f"pid {pid}")
            assert not srv.find_lines("log file reopened|fast stop")
            # The pid file's own master is signalled.
            with open(pid_file, "w") as f:
                f.write(f"{srv.pid}\n")
            mark = srv.mark()
            p = run("-s", "reopen", *listen)
            assert p.returncode == 0, p.stderr
            srv.wait_for_line("log file reopened", 10, start=mark)


def test_signal_reads_no_fifo_or_symlink_as_pid_file():
    with tempfile.TemporaryDirectory() as d, victim() as sleeper:
        fifo, link, target = (os.path.join(d, n) for n in ("fifo", "link", "target"))
        os.mkfifo(fifo)
        with open(target, "w") as f:
            f.write(f"{sleeper.pid}\n")
        os.symlink(target, link)
        p = run("-s", "reopen", "--pid-file", fifo, timeout=5)
        assert p.returncode == 1 and "not a regular file" in p.stderr, p.stderr
        p = run("-s", "reopen", "--pid-file", link)
        assert p.returncode == 1 and "symbolic link" in p.stderr, p.stderr
        assert_alive(sleeper, "symlinked pid file")


# ---- 5. the shared-memory name ------------------------------------------------

def test_fifo_at_the_segment_name_fails_start_and_stats_promptly():
    port = wse.free_port()
    path = f"/dev/shm/wsechod.{port}"
    os.mkfifo(path, 0o666)
    with removing(path):
        srv = Server(port=port, ready=None)
        srv.start()
        status = srv.wait_exit(wse.scaled(10))
        srv.stop()
        assert status == 1, f"server exit status {status} with a FIFO at {path}"
        assert srv.find_lines(rf"stats segment /wsechod\.{port} is not a regular file"), srv.output()
        p = run("stats", "--stats-name", f"wsechod.{port}")
        assert p.returncode == 1 and "not a regular file" in p.stderr, p.stderr


def test_symlink_at_the_segment_name_is_refused():
    port = wse.free_port()
    path = f"/dev/shm/wsechod.{port}"
    with tempfile.NamedTemporaryFile() as target, removing(path):
        os.symlink(target.name, path)
        srv = Server(port=port, ready=None)
        srv.start()
        status = srv.wait_exit(wse.scaled(10))
        srv.stop()
        assert status == 1 and srv.find_lines("symbolic link"), srv.output()
        assert os.path.islink(path)
        p = run("stats", "--stats-name", f"wsechod.{port}")
        assert p.returncode == 1 and "symbolic link" in p.stderr, p.stderr


def test_another_users_segment_is_refused_by_server_and_reader():
    need_root()
    with Server() as srv:
        image = segment_image(srv.port)
        port = srv.port
    path = f"/dev/shm/wsechod.{port}"
    with victim() as sleeper, removing(path):
        plant_segment(f"wsechod.{port}", image, sleeper.pid, uid=NOBODY)
        srv = Server(port=port, ready=None)
        srv.start()
        status = srv.wait_exit(wse.scaled(10))
        srv.stop()
        assert status == 1, srv.output()
        assert srv.find_lines(rf"belongs to uid {NOBODY}, not to this server's uid 0"), srv.output()
        assert os.stat(path).st_uid == NOBODY, "another user's file was replaced"
        p = run("stats", "--stats-name", f"wsechod.{port}")
        assert p.returncode == 1 and "not trusted" in p.stderr, p.stderr


def test_fake_segment_naming_a_process_renamed_wsechod_is_replaced():
    """A segment of our own user naming a live process called wsechod that
    is not its master (it does not even map it) is stale: replaced."""
    with Server() as srv:
        image = segment_image(srv.port)
        port = srv.port
    with victim("wsechod") as renamed, removing(f"/dev/shm/wsechod.{port}"):
        plant_segment(f"wsechod.{port}", image, renamed.pid)
        with Server(port=port) as srv2:
            p = run("stats", "--stats-name", f"wsechod.{port}", "--json")
            assert p.returncode == 0, p.stderr
            assert f'"master_pid": {srv2.pid},' in p.stdout
        assert_alive(renamed, "replacing its fake segment")


# ---- 6. the pid file ----------------------------------------------------------

def test_symlink_planted_at_the_pid_files_temporary_is_not_followed():
    with tempfile.TemporaryDirectory() as d:
        pid_file = os.path.join(d, "w.pid")
        target = os.path.join(d, "precious")
        with open(target, "w") as f:
            f.write("precious\n")
        os.symlink(target, pid_file + ".tmp")
        with Server("--pid-file", pid_file) as srv:
            with open(pid_file) as f:
                assert f.read() == f"{srv.pid}\n"
            assert oct(os.stat(pid_file).st_mode & 0o777) == "0o644"
        with open(target) as f:
            assert f.read() == "precious\n", "the symlink's target was overwritten"
        assert sorted(os.listdir(d)) == ["precious", "w.pid.tmp"], os.listdir(d)


def test_second_instance_failing_to_start_keeps_the_first_ones_pid_file():
    with tempfile.TemporaryDirectory() as d:
        pid_file = os.path.join(d, "w.pid")
        with Server("--pid-file", pid_file) as srv:
            other = Server("--pid-file", pid_file, "--stats-name", f"wsechod.{srv.port}",
                           ready=None)
            other.start()
            status = other.wait_exit(wse.scaled(10))
            other.stop()
            assert status == 1, other.output()
            with open(pid_file) as f:
                assert f.read() == f"{srv.pid}\n", "the running master's pid file was lost"
            # ... and the running master's own stop still removes it.
            srv.signal(signal.SIGTERM)
            assert srv.wait_exit(wse.scaled(10)) == 0
        assert not os.path.exists(pid_file)


# ---- the neighbourhood: the log file ----------------------------------------

def test_fifo_at_the_log_path_fails_start_promptly():
    """Opening a FIFO nobody reads for writing blocks: the master hung
    before it served, and on every reopen."""
    with tempfile.TemporaryDirectory() as d:
        fifo = os.path.join(d, "log")
        os.mkfifo(fifo)
        p = run("-l", f"127.0.0.1:{wse.free_port()}", "-w", "1", "--log-file", fifo, timeout=5)
        assert p.returncode == 1 and "cannot open log file" in p.stderr, p.stderr
