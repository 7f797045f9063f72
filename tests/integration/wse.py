"""
wse.py - harness for the wsechod integration tests.

  Server        the real binary as a context manager: a free loopback port,
                stderr captured line by line, waits for "serving", stops by pid
                (SIGTERM, wait, SIGKILL), sanitizer reports fail the test.
  RawWS         a WebSocket client over a plain socket that can send any frame,
                valid or not, and read the server's frames one by one.
  http_request  one raw HTTP exchange, read to the server's close.

Every wait in here waits for an event (a log line, a byte, a process exit)
with a timeout; nothing sleeps a fixed time.  All traffic goes to 127.0.0.1.
"""
import base64
import collections
import ctypes
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HOST = "127.0.0.1"

SAN = os.environ.get("SAN", "0") == "1"
FACTOR = 3.0 if SAN else 1.0          # sanitizer builds are ~3x slower

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

# Sanitizer reports, and valgrind's (run with -q, it prints only errors and
# leaks, each line prefixed with ==PID==: see scripts/valgrind-check.sh).
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|^==\d+== ")


class Skip(Exception):
    """Raised by a test that cannot run here; the runner counts it as skipped."""


def scaled(seconds):
    """A timeout, stretched for sanitizer builds."""
    return seconds * FACTOR


def timeout(seconds):
    """Decorator: this test's own time limit in the runner (before scaling)."""
    def deco(fn):
        fn.timeout = seconds
        return fn
    return deco


def binary():
    path = os.environ.get("WSECHOD") or "build/wsechod"
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(ROOT, path)
    return os.path.abspath(path)


def free_port():
    """A loopback TCP port nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---- processes ------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:          # pragma: no cover
    _libc = None


def _die_with_parent():
    """preexec_fn: the server gets SIGKILL if the test process dies, so a
    test killed on timeout leaves no server behind (workers follow their
    master through their own PR_SET_PDEATHSIG)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def children_of(pid):
    """pids whose parent is pid (via /proc/PID/task/*/children, or a scan)."""
    kids = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.update(int(x) for x in f.read().split())
        return sorted(kids)
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == pid:
                kids.add(int(name))
    return sorted(kids)


def server_socket_inode(server_port, client_port):
    """The inode of the server's side of the 127.0.0.1 TCP connection
    client_port -> server_port (/proc/net/tcp), or None."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(local.split(":")[1], 16) == server_port and \
                    int(remote.split(":")[1], 16) == client_port and inode:
                return inode
    return None


def pid_holding_socket(pids, inode):
    """The first of pids with a descriptor on socket inode, or None."""
    want = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == want:
                    return pid
            except OSError:
                pass
    return None


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_pid_gone(pid, starttime, timeout):
    """Waits (pidfd, no polling) for a process that is not our child to end.
    True if it is gone (or the pid now names another process)."""
    st = proc_stat(pid)
    if st is None or st[2] != starttime or st[0] in ("Z", "X"):
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        r, _, _ = select.select([fd], [], [], timeout)
        if r:
            return True
    finally:
        os.close(fd)
    st = proc_stat(pid)
    return st is None or st[2] != starttime or st[0] in ("Z", "X")


_LISTEN_FDS_LAUNCHER = r"""
import fcntl, os, sys
fds = [int(x) for x in sys.argv[1].split(",") if x]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200) for fd in fds]
for i, h in enumerate(high):
    os.dup2(h, 3 + i, inheritable=True)
    os.close(h)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=sys.argv[2])
os.execv(sys.argv[3], sys.argv[3:])
"""


def listen_fds_launcher(fds, names):
    """(prefix, pass_fds) for Server: starts the server the way systemd
    passes sockets (sd_listen_fds): fds at 3, 4, ..., LISTEN_PID (the
    server's own pid: the launcher execs it), LISTEN_FDS, LISTEN_FDNAMES."""
    import sys
    return ([sys.executable, "-c", _LISTEN_FDS_LAUNCHER, ",".join(str(f) for f in fds),
             ":".join(names)], tuple(fds))


def wait_until(pred, timeout, what, interval=0.02):
    """For conditions no event announces (/proc state): checks pred until it
    holds or timeout passes; returns its value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    ev = threading.Event()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        ev.wait(interval)


def ready_worker(srv, slot, start, timeout=10):
    """pid of the next worker of slot the master reports ready (the server must
    log at debug level)."""
    m = srv.wait_for_line(rf"\] worker {slot} \(pid (\d+), generation \d+\) ready", timeout, start=start)
    return int(m.group(1))


def push_into_backoff(srv, slot, min_delay):
    """Kills the worker of slot with SIGKILL right after each start until the
    master waits at least min_delay seconds before respawning it.  Returns the
    delay and the monotonic time the master announced it."""
    pid = None
    start = 0
    for _ in range(12):
        if pid is None:
            pid = ready_worker(srv, slot, start)
        mark = srv.mark()
        os.kill(pid, signal.SIGKILL)
        m = srv.wait_for_line(rf"worker {slot} \(pid {pid}\) killed by signal 9 .*; respawning in ([\d.]+) s",
                              10, start=mark)
        announced = time.monotonic()
        delay = float(m.group(1))
        if delay >= min_delay:
            return delay, announced
        pid, start = None, mark
    raise AssertionError(f"worker {slot} never reached a back-off of {min_delay} s")


class ServerError(AssertionError):
    pass


class Server:
    """
    with Server("--max-message", "1000") as srv:
        ... srv.port, srv.pid, srv.lines, srv.wait_for_line(r"...") ...

    Runs $WSECHOD -l 127.0.0.1:PORT -w 2 ARGS (workers and listen are added
    unless given).  On exit the server is stopped (SIGTERM, then SIGKILL) and,
    with SAN=1, any sanitizer report in its output fails the test.
    """

    def __init__(self, *args, workers=2, port=None, ready=r"\[master pid \d+\] serving\b", start_timeout=10,
                 env=None, worker_deaths_ok=False, access_log=False, exe=None, prefix=(),
                 pass_fds=(), cli_listen=True):
        self.args = [str(a) for a in args]
        # cli_listen=False: no -l of its own, the configuration file says
        # where to listen (a reload may change it).
        self.cli_listen = cli_listen
        # exe: another binary than $WSECHOD (a copy a live upgrade replaces);
        # prefix and pass_fds: a launcher that execs it (listen_fds_launcher).
        self.exe = exe
        self.prefix = list(prefix)
        self.pass_fds = tuple(pass_fds)
        # access_log=True: --access-log to a file of a temporary directory,
        # read by access_lines() and wait_for_access().
        self.access_dir = tempfile.TemporaryDirectory() if access_log else None
        self.access_path = os.path.join(self.access_dir.name, "access.log") if access_log else None
        if access_log:
            self.args += ["--access-log", self.access_path]
        self.workers = workers
        self.want_port = port
        self.ready = ready
        self.start_timeout = start_timeout
        self.extra_env = env or {}
        self.port = None
        self.proc = None
        self.lines = []
        self.cond = threading.Condition()
        self.reader = None
        self.exit_status = None
        self.worker_deaths_ok = worker_deaths_ok
        self.stopped_by = None          # "SIGTERM", "SIGKILL" or None (it exited by itself)

    # -- starting ----------------------------------------------------------

    def _argv(self):
        argv = self.prefix + [self.exe or binary()] + self.args
        if self.cli_listen and not any(a in ("-l", "--listen") or a.startswith("--listen=")
                                       for a in self.args):
            argv += ["-l", f"{HOST}:{self.port}"]
        if self.workers is not None and not any(
                a in ("-w", "--workers") or a.startswith("--workers=") for a in self.args):
            argv += ["-w", str(self.workers)]
        return argv

    def _env(self):
        env = dict(os.environ)
        if SAN:
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=66"
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(self.extra_env)
        return env

    def _read_output(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.reader_done = True
            self.cond.notify_all()

    def start(self):
        for attempt in range(5):
            self.port = self.want_port or free_port()
            self.lines = []
            self.reader_done = False
            self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env=self._env(), preexec_fn=_die_with_parent,
                                         pass_fds=self.pass_fds)
            self.reader = threading.Thread(target=self._read_output, daemon=True)
            self.reader.start()
            if self.ready is None:
                return self
            try:
                self.wait_for_line(self.ready, self.start_timeout)
            except ServerError:
                # Port (or the stats segment named after it) taken by
                # another server: retry on another port.
                in_use = any("in use" in l or "which is running" in l for l in self.lines)
                self._stop_process()
                if in_use and self.want_port is None and attempt < 4:
                    continue
                raise
            if self.want_port is None and not self._owns_port():
                # Another process listens on the same port (SO_REUSEPORT):
                # our connections could land there.  Take another port.
                self._stop_process()
                continue
            return self
        raise ServerError("could not find a port to start the server on")

    def _owns_port(self):
        """Every LISTEN socket on our port belongs to the master."""
        mine = set()
        try:
            for fd in os.listdir(f"/proc/{self.pid}/fd"):
                try:
                    t = os.readlink(f"/proc/{self.pid}/fd/{fd}")
                except OSError:
                    continue
                if t.startswith("socket:["):
                    mine.add(t[8:-1])
        except OSError:
            return True
        found = []
        with open("/proc/net/tcp") as f:
            next(f)
            for row in f:
                cols = row.split()
                port = int(cols[1].split(":")[1], 16)
                if port == self.port and cols[3] == "0A":
                    found.append(cols[9])
        return all(inode in mine for inode in found)

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        self.stop()
        if et is not None:
            import sys
            sys.stderr.write(f"    server log ({binary()} port {self.port}), last lines:\n"
                             + self._tail(30) + "\n")
        # A sanitizer report explains any other failure: it wins.
        self.check_sanitizer()
        if et is None:
            self.check_stop()
        return False

    # -- facts -------------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        return f"ws://{HOST}:{self.port}"

    def uri(self, path="/websocket"):
        return f"ws://{HOST}:{self.port}{path}"

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def children(self):
        return children_of(self.pid)

    def total_rss_kib(self):
        return rss_kib(self.pid) + sum(rss_kib(k) for k in self.children())

    # -- waiting -----------------------------------------------------------

    def wait_for_line(self, regex, timeout=10, start=0, scale=True):
        """The first captured line at index >= start matching regex (a
        re.Match); waits for it up to timeout (scaled for SAN builds)."""
        rx = re.compile(regex) if isinstance(regex, str) else regex
        limit = scaled(timeout) if scale else timeout
        deadline = time.monotonic() + limit
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if self.reader_done:
                    raise ServerError(f"server output ended without a line matching {rx.pattern!r}"
                                      f" (exit status {self.proc.poll()}):\n" + self._tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerError(f"no line matching {rx.pattern!r} within {limit:.1f}s:\n"
                                      + self._tail())
                self.cond.wait(left)

    def find_lines(self, regex):
        rx = re.compile(regex)
        with self.cond:
            return [m for m in (rx.search(l) for l in self.lines) if m]

    def mark(self):
        """Index of the next line: pass as start= to wait for lines after now."""
        with self.cond:
            return len(self.lines)

    def _tail(self, n=40):
        return "\n".join("    | " + l for l in self.lines[-n:])

    def access_lines(self, regex=None):
        """The access log's lines (matches of regex, if given)."""
        try:
            with open(self.access_path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        if regex is None:
            return lines
        rx = re.compile(regex)
        return [m for m in (rx.search(l) for l in lines) if m]

    def wait_for_access(self, regex, count=1, timeout=10):
        """Waits until at least count access lines match regex; returns the
        matches.  (A worker writes the line when the connection ends.)"""
        return wait_until(lambda: (lambda ms: ms if len(ms) >= count else None)(
                              self.access_lines(regex)),
                          scaled(timeout), f"{count} access lines matching {regex!r}")

    def stats_name(self):
        for i, a in enumerate(self.args):
            if a == "--stats-name" and i + 1 < len(self.args):
                return self.args[i + 1]
            if a.startswith("--stats-name="):
                return a.split("=", 1)[1]
        return f"wsechod.{self.port}"

    def worker_of(self, client_port, timeout=10):
        """(slot, pid) of the worker serving the connection from client_port
        (on 127.0.0.1).  The pid is found in /proc, its slot in the stats
        segment: no log line is one per connection at the default level."""
        def pid_of():
            inode = server_socket_inode(self.port, client_port)
            return inode and pid_holding_socket(self.children(), inode)
        pid = wait_until(pid_of, scaled(timeout), f"the worker serving port {client_port}")

        def slot_of():
            p = subprocess.run([binary(), "stats", "--stats-name", self.stats_name(), "--json"],
                               capture_output=True, text=True, timeout=scaled(10))
            if p.returncode != 0:
                return None
            for w in json.loads(p.stdout)["workers"]:
                if w.get("pid") == pid:
                    return (w["worker"],)
            return None
        slot, = wait_until(slot_of, scaled(timeout), f"worker pid {pid} in the stats")
        return slot, pid

    def wait_exit(self, timeout):
        """Waits for the master to exit; returns its status (None on timeout)."""
        try:
            self.exit_status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self.reader:
            self.reader.join(scaled(5))
        return self.exit_status

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    # -- stopping ----------------------------------------------------------

    def _stop_process(self):
        if self.proc is None:
            return None
        kids = []
        if self.proc.poll() is None:
            kids = [(k, proc_stat(k)) for k in self.children()]
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.stopped_by = "SIGTERM"
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.stopped_by = "SIGKILL"
                self.proc.wait(10)
        self.exit_status = self.proc.returncode
        # Workers follow their master; make sure, by pid, that none is left.
        for pid, st in kids:
            if st and not wait_pid_gone(pid, st[2], scaled(5)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.reader:
            self.reader.join(scaled(5))
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.exit_status

    def stop(self):
        return self._stop_process()

    def check_stop(self):
        """The server stopped cleanly on our SIGTERM, and no worker died on
        the way (a crash is respawned and could otherwise go unnoticed)."""
        if self.stopped_by == "SIGKILL":
            raise AssertionError(f"server still running {scaled(10):.0f}s after SIGTERM:\n"
                                 + self._tail())
        if self.stopped_by == "SIGTERM" and self.exit_status != 0:
            raise AssertionError(f"server exited with status {self.exit_status} on SIGTERM:\n"
                                 + self._tail())
        if not self.worker_deaths_ok:
            deaths = self.find_lines(r"worker \d+ .*(respawning|failed to start)")
            if deaths:
                raise AssertionError(f"a worker died during the test: {deaths[0].string}\n"
                                     + self._tail())

    def check_sanitizer(self):
        bad = [l for l in self.lines if SANITIZER_RE.search(l)]
        if bad:
            raise AssertionError("sanitizer report in server output:\n" + self._tail(200))
        if SAN and self.exit_status == 66:
            raise AssertionError("server exited with the sanitizer exit code 66:\n" + self._tail())
        # A worker's leak check exits with the same code (src/worker.c).
        if SAN and self.find_lines(r"worker \d+ .*exited with status 66\b"):
            raise AssertionError("a worker exited with the sanitizer exit code 66:\n" + self._tail())


# ---- frames ---------------------------------------------------------------

Frame = collections.namedtuple("Frame", "fin rsv opcode payload")


def mask_bytes(data, key):
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length_form=None,
          declared_len=None):
    """Bytes of one client frame; anything may be wrong on purpose.
    rsv: the 3-bit RSV field (4 = RSV1, 2 = RSV2, 1 = RSV3); length_form: 7,
    16 or 64 to force an encoding; declared_len: the length the header
    announces (the payload sent may differ)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if declared_len is None else declared_len
    if length_form is None:
        length_form = 7 if n < 126 else 16 if n < 65536 else 64
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length_form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif length_form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def parse_close(payload):
    """(code, reason bytes); code None for an empty close payload."""
    if len(payload) == 0:
        return None, b""
    if len(payload) == 1:
        raise AssertionError(f"server sent a 1-byte close payload {payload!r}")
    return struct.unpack("!H", payload[:2])[0], payload[2:]


class Closed(Exception):
    """The server closed the TCP connection while a read wanted more."""


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(path="/websocket", host=None, key=None, headers=(), version="13"):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1",
             f"Host: {host or HOST}",
             "Upgrade: websocket",
             "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}",
             f"Sec-WebSocket-Version: {version}"]
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


class RawWS:
    """A WebSocket client over a plain socket.

        ws = RawWS(port)                 # connects and does the handshake
        ws.send_frame(OP_TEXT, b"hi")    # masked, or anything else on purpose
        f = ws.recv_frame()              # Frame(fin, rsv, opcode, payload)
        code, reason, before = ws.expect_close()
        assert ws.wait_tcp_close()
    """

    def __init__(self, port, path="/websocket", headers=(), timeout=10, rcvbuf=None,
                 handshake=True):
        self.port = port
        self.timeout = scaled(timeout)
        self.buf = bytearray()
        self.eof = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(self.timeout)
        self.sock.connect((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_port = self.sock.getsockname()[1]
        if handshake:
            self.handshake(path, headers)

    # -- plumbing ----------------------------------------------------------

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out waiting for the server")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed("server closed the connection")
        self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _deadline(self, timeout):
        return time.monotonic() + (scaled(timeout) if timeout is not None else self.timeout)

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def handshake(self, path="/websocket", headers=()):
        req, key = upgrade_request(path, headers=headers)
        self.send(req)
        deadline = self._deadline(None)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), f"handshake answered {head!r}"
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        assert hdrs.get("sec-websocket-accept") == accept_key(key), \
            f"bad Sec-WebSocket-Accept in {head!r}"
        assert hdrs.get("upgrade", "").lower() == "websocket", head
        assert "upgrade" in hdrs.get("connection", "").lower(), head
        self.response_headers = hdrs

    # -- frames ------------------------------------------------------------

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_close(self, code=None, reason=b""):
        self.send_frame(OP_CLOSE, b"" if code is None else close_payload(code, reason))

    def recv_frame(self, timeout=None, deadline=None):
        """The next server frame; a server frame must be unmasked."""
        if deadline is None:
            deadline = self._deadline(timeout)
        b0, b1 = self._take(2, deadline)
        assert not b1 & 0x80, "server frame is masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, deadline))[0]
            assert n >= 126, "server used a non-minimal 16-bit length"
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, deadline))[0]
            assert 0xFFFF < n < 1 << 63, "server used a bad 64-bit length"
        payload = self._take(n, deadline)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload)

    def recv_message(self, timeout=None, controls=None):
        """(opcode, payload) of the next data message, fragments joined (the
        server may split a message into frames of its own choosing).  Control
        frames met on the way are appended to controls (a list) if given, and
        fail the call if not."""
        deadline = self._deadline(timeout)
        opcode, parts = None, []
        while True:
            f = self.recv_frame(deadline=deadline)
            assert f.rsv == 0, f"server frame with RSV bits {f.rsv}"
            if f.opcode >= 8:
                if controls is None:
                    raise AssertionError(f"unexpected control frame {f}")
                controls.append(f)
                if f.opcode == OP_CLOSE:
                    raise AssertionError(f"server closed mid-message: {parse_close(f.payload)}")
                continue
            if opcode is None:
                assert f.opcode in (OP_TEXT, OP_BINARY), f"message starts with opcode {f.opcode}"
                opcode = f.opcode
            else:
                assert f.opcode == OP_CONT, f"opcode {f.opcode} inside a fragmented message"
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def expect_close(self, timeout=None):
        """Reads until the server's close frame: (code, reason, frames before)."""
        deadline = self._deadline(timeout)
        before = []
        while True:
            try:
                f = self.recv_frame(deadline=deadline)
            except Closed:
                raise AssertionError(f"TCP closed without a close frame; frames before: {before}")
            except socket.timeout:
                raise AssertionError(f"no close frame in time; frames before: {before}")
            if f.opcode == OP_CLOSE:
                code, reason = parse_close(f.payload)
                return code, reason, before
            before.append(f)

    def wait_tcp_close(self, timeout=None):
        """True once recv() reports the server's FIN (b'') or a reset, False
        on timeout.  Bytes that arrive meanwhile are discarded."""
        deadline = self._deadline(timeout)
        if self.eof:
            return True
        self.buf.clear()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                return True

    def echo(self, opcode, payload, timeout=None):
        self.send_frame(opcode, payload)
        got = self.recv_message(timeout)
        assert got == (opcode, payload), f"echo mismatch: sent {len(payload)} bytes, got {got[0]}/{len(got[1])}"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def expect_protocol_close(ws, code, timeout=5):
    """The server fails the connection with code, then closes TCP."""
    got, reason, before = ws.expect_close(timeout)
    assert got == code, f"close code {got} (reason {reason!r}), expected {code}"
    assert ws.wait_tcp_close(timeout), "server did not close TCP after its close frame"
    return before


# ---- the reload torture ----------------------------------------------------

TORTURE = os.path.join(ROOT, "scripts", "reload_torture.py")


def torture(*args, timeout=180, what="reload torture"):
    """Runs scripts/reload_torture.py with ARGS against this binary; asserts
    it ends with OK and returns its report."""
    env = dict(os.environ, WSECHOD=binary())
    if SAN:
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=66"
    p = subprocess.run(["/usr/bin/python3", TORTURE, *args], capture_output=True, text=True,
                       timeout=scaled(timeout), env=env)
    assert p.returncode == 0 and p.stdout.rstrip().endswith("OK"), \
        f"{what} failed (status {p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


# ---- raw HTTP -------------------------------------------------------------

HttpResponse = collections.namedtuple("HttpResponse", "status headers body raw closed")


def raw_exchange(port, data, timeout=10, stop_at_101=True):
    """Sends data (bytes or str) and returns (raw, closed): every byte the
    server sent until it closed (or, with stop_at_101, until the end of a
    101's head) or the time ran out."""
    if isinstance(data, str):
        data = data.encode()
    deadline = time.monotonic() + scaled(timeout)
    raw = bytearray()
    closed = False
    with socket.create_connection((HOST, port), timeout=scaled(timeout)) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass    # answered and closed before the whole request was sent
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            raw += chunk
            if stop_at_101 and raw.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in raw:
                break
    return bytes(raw), closed


def http_request(port, data, timeout=10, expect_close=True):
    """Sends data (bytes or str) and reads the response up to the server's
    close (or, for a 101, up to the end of the head)."""
    return parse_http(*raw_exchange(port, data, timeout))


def parse_http(raw, closed):
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"incomplete HTTP response {raw[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert parts[0] in ("HTTP/1.1", "HTTP/1.0") and len(parts) >= 2, f"status line {lines[0]!r}"
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    if "content-length" in headers:
        n = int(headers["content-length"][0])
        assert len(body) == n, f"body of {len(body)} bytes, Content-Length {n}: {raw!r}"
    return HttpResponse(int(parts[1]), {k: ", ".join(v) for k, v in headers.items()},
                        body, raw, closed)


# ---- python websockets ----------------------------------------------------

def ws_connect(uri, **kw):
    """websockets.connect with settings suited to tests."""
    import websockets
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", scaled(20))
    kw.setdefault("close_timeout", scaled(10))
    return websockets.connect(uri, **kw)


async def wait_for(aw, timeout, what="operation"):
    import asyncio
    try:
        return await asyncio.wait_for(aw, scaled(timeout))
    except asyncio.TimeoutError:
        raise AssertionError(f"{what} did not finish within {scaled(timeout):.1f}s") from None
