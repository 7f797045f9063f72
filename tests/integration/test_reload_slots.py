"""Worker slots across reloads: a failed reload, a worker count that shrinks
and a worker death during a reload leave every slot of the serving generation
covered, and none beyond; a reload applies log-level and log-file."""
import json
import os
import re
import resource
import signal
import subprocess
import tempfile
import time

import wse
from wse import OP_TEXT, RawWS, Server, ServerError, push_into_backoff, ready_worker

RESPAWN_MAX = 5.0          # the master's longest back-off (src/master.c)

# A worker that cannot allocate its read buffer exits with "out of memory";
# ASan must then return NULL like malloc does instead of reporting.
OOM_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66:allocator_may_return_null=1"}


def vm_size(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmSize:\s+(\d+) kB", f.read()).group(1)) * 1024


class AddressSpaceCap:
    """Caps the master's address space just above its size: the workers it
    forks meanwhile inherit the cap and fail to allocate their 256 KiB read
    buffer (a legitimate failure after spawning: memory exhaustion)."""

    def __init__(self, pid):
        self.pid = pid
        self.old = resource.prlimit(pid, resource.RLIMIT_AS)

    def __enter__(self):
        resource.prlimit(self.pid, resource.RLIMIT_AS, (vm_size(self.pid) + 128 * 1024, self.old[1]))
        return self

    def __exit__(self, *exc):
        resource.prlimit(self.pid, resource.RLIMIT_AS, self.old)


class FdCap:
    """Leaves the master one free descriptor number: it can still read its
    configuration file, but socketpair() needs two, so no new worker can be
    started and a new generation times out."""

    def __init__(self, pid):
        self.pid = pid
        self.old = resource.prlimit(pid, resource.RLIMIT_NOFILE)

    def __enter__(self):
        self.tighten()
        return self

    def tighten(self):
        """Again, after the master closed something (a dead worker's channel)."""
        used = {int(fd) for fd in os.listdir(f"/proc/{self.pid}/fd")}
        lowest_free = min(set(range(len(used) + 1)) - used)
        resource.prlimit(self.pid, resource.RLIMIT_NOFILE, (lowest_free + 1, self.old[1]))

    def __exit__(self, *exc):
        resource.prlimit(self.pid, resource.RLIMIT_NOFILE, self.old)


def echo_all(port, n=20, timeout=2):
    """n new connections, each must get its echo within timeout."""
    for i in range(n):
        with RawWS(port, timeout=timeout) as ws:
            ws.send_text(f"n{i}")
            assert ws.recv_message(timeout=timeout) == (OP_TEXT, f"n{i}".encode()), i


def stats_json(port):
    p = subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{port}", "--json"],
                       capture_output=True, text=True, timeout=10)
    return json.loads(p.stdout)


@wse.timeout(90)
def test_failed_reload_during_backoff_respawns_the_waiting_slot():
    # The reload fails for want of memory (its workers die at start); under
    # ASan, whose runtime itself maps memory in every process, an address
    # space cap breaks the runtime instead, so there it fails for want of
    # descriptors (no worker can be started; the reload times out).
    cap = FdCap if wse.SAN else AddressSpaceCap
    with Server("--log-level", "debug", worker_deaths_ok=True, env=OOM_ENV) as srv:
        delay, _ = push_into_backoff(srv, 1, 0.8)
        mark = srv.mark()
        with cap(srv.pid):
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload failed: .*generation 1 keeps serving", wse.scaled(20),
                              start=mark)
        # The slot that was waiting when the reload began is respawned.
        ready_worker(srv, 1, mark, timeout=RESPAWN_MAX + 5)
        wse.wait_until(lambda: len(srv.children()) == 2, wse.scaled(5),
                       "the failed generation gone, 2 workers left")
        echo_all(srv.port)


class ConfigFile:
    def __init__(self, port):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "wsechod.conf")
        self.port = port

    def write(self, text):
        # Whole, then renamed: a reload never reads it half-written.
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"listen = 127.0.0.1:{self.port}\n" + text)
        os.rename(tmp, self.path)


@wse.timeout(90)
def test_worker_dying_during_a_failed_reload_is_respawned():
    """An old worker killed while a reload is starting belongs to the
    generation that keeps serving when that reload fails: it comes back.
    (The reload shrinks to 1 worker, so no timer of the new generation
    happens to cover slot 1.)"""
    port = wse.free_port()
    conf = ConfigFile(port)
    conf.write("workers = 2\nlog-level = debug\n")
    with Server("-c", conf.path, port=port, workers=None, worker_deaths_ok=True) as srv:
        victim = ready_worker(srv, 1, 0)
        conf.write("workers = 1\nlog-level = debug\n")
        mark = srv.mark()
        with FdCap(srv.pid) as cap:
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"starting worker 0: socketpair failed", 10, start=mark)
            os.kill(victim, signal.SIGKILL)
            srv.wait_for_line(rf"worker 1 \(pid {victim}, generation 1\) killed by signal 9", 10, start=mark)
            cap.tighten()    # before the new worker's respawn, RESPAWN_MAX after the failure
            srv.wait_for_line(r"reload failed: new workers not ready in time", 15, start=mark)
        ready_worker(srv, 1, mark, timeout=RESPAWN_MAX + 5)
        wse.wait_until(lambda: len(srv.children()) == 2, wse.scaled(5), "2 workers")
        echo_all(port)


def test_shrinking_reload_during_backoff_leaves_no_stray_worker():
    port = wse.free_port()
    conf = ConfigFile(port)
    conf.write("workers = 3\nlog-level = debug\n")
    with Server("-c", conf.path, port=port, workers=None, worker_deaths_ok=True) as srv:
        delay, announced = push_into_backoff(srv, 2, 1.6)
        conf.write("workers = 1\nlog-level = debug\n")
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"reload: generation 2 serving with 1 worker;", 10, start=mark)
        wse.wait_until(lambda: len(srv.children()) == 1, wse.scaled(5), "the old workers gone")
        # Slot 2's respawn was due `delay` after it was announced: a worker of
        # slot 2 (it logs its start at debug level) must not appear by then.
        remaining = announced + delay + wse.scaled(1.0) - time.monotonic()
        try:
            m = srv.wait_for_line(r"\[worker 2 pid \d+\]", remaining, start=mark, scale=False)
            raise AssertionError(f"a worker of retired slot 2 started: {m.string}")
        except ServerError:
            pass
        assert len(srv.children()) == 1, srv.children()
        echo_all(port)


def file_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_lines_in(path, patterns, what):
    wse.wait_until(lambda: all(any(re.search(p, l) for l in file_lines(path)) for p in patterns),
                   wse.scaled(10), what)


def test_reload_applies_log_level_and_log_file():
    port = wse.free_port()
    conf = ConfigFile(port)
    conf.write("workers = 2\nlog-level = info\n")
    logdir = tempfile.TemporaryDirectory()
    log_a, log_b = os.path.join(logdir.name, "a.log"), os.path.join(logdir.name, "b.log")

    with Server("-c", conf.path, port=port, workers=None) as srv:
        assert not srv.find_lines(r"debug "), "debug lines at level info"
        # To a file, at debug level: the swap, the master's own debug lines
        # and the new workers' (they inherit the master's log) go there.
        conf.write(f"workers = 2\nlog-level = debug\nlog-file = {log_a}\n")
        srv.signal(signal.SIGHUP)
        wait_lines_in(log_a, [r"info  \[master pid \d+\] reload: generation 2 serving",
                              r"debug \[master pid \d+\] worker \d \(pid \d+, generation 2\) ready",
                              r"debug \[worker \d pid \d+\] serving \(generation 2"],
                      "generation 2's lines in the new file")
        assert not srv.find_lines(r"generation 2 serving"), "the swap went to the old log"

        # A log file that cannot be opened rejects the reload; nothing changes.
        conf.write(f"workers = 2\nlog-level = error\nlog-file = {logdir.name}/missing/w.log\n")
        srv.signal(signal.SIGHUP)
        wait_lines_in(log_a, [r"reload rejected, configuration unchanged: log file .*missing"],
                      "the rejection")
        assert stats_json(port)["header"]["generation"] == 2

        # From one file to another: the new workers do not hold the old one.
        conf.write(f"workers = 2\nlog-level = debug\nlog-file = {log_b}\n")
        srv.signal(signal.SIGHUP)
        wait_lines_in(log_b, [r"reload: generation 3 serving",
                              r"debug \[worker 0 pid \d+\] serving \(generation 3",
                              r"debug \[worker 1 pid \d+\] serving \(generation 3"],
                      "generation 3's lines in the second file")
        gen3 = [int(re.search(r"pid (\d+)", l).group(1)) for l in file_lines(log_b)
                if re.search(r"\] serving \(generation 3", l)]
        for pid in gen3:
            held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            assert log_a not in held and log_b in held, (pid, held)

        # Back to stderr, at warn level: info lines vanish.
        conf.write("workers = 2\nlog-level = warn\n")
        n_b = len(file_lines(log_b))
        srv.signal(signal.SIGHUP)
        wse.wait_until(lambda: stats_json(port)["header"]["generation"] == 4, wse.scaled(10),
                       "generation 4 serving")
        # An error line proves the log works: a bad file is rejected at level error.
        conf.write("workers = 2\nlog-level = warn\nidle-timeout = soon\n")
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"error \[master pid \d+\] reload: .*idle-timeout.*configuration unchanged",
                          10, start=mark)
        # The master wrote only what it logged before reading the new file
        # there; the draining workers of generation 3 keep their log.
        later = [l for l in file_lines(log_b)[n_b:] if "[master pid" in l]
        assert later and all("SIGHUP: reloading" in l for l in later), later
        assert not srv.find_lines(r"generation 4 serving"), "an info line at level warn"
        echo_all(port, n=4)
