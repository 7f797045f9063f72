"""The shared-memory stats segment and `wsechod stats` (issue: stats)."""
import json
import mmap
import os
import signal
import struct
import subprocess
import threading

import wse
from wse import OP_BINARY, OP_PING, OP_PONG, OP_TEXT, RawWS, Server


def stats(srv, *args, check=True):
    """`wsechod stats --stats-name wsechod.PORT ARGS` -> CompletedProcess."""
    p = subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}", *args],
                       capture_output=True, text=True, timeout=wse.scaled(10))
    if check:
        assert p.returncode == 0, f"wsechod stats {args}: status {p.returncode}: {p.stderr}"
    return p


def stats_json(srv):
    return json.loads(stats(srv, "--json").stdout)


def settled(srv, pred, what, timeout=10):
    """Counters are written before the reply leaves, but closes land after
    the client saw them: wait until the snapshot satisfies pred."""
    box = {}

    def check():
        box["s"] = stats_json(srv)
        return pred(box["s"])
    wse.wait_until(check, wse.scaled(timeout), what, interval=0.05)
    return box["s"]


def worker_sum(snapshot, key):
    return sum(w["counters"][key] for w in snapshot["workers"])


def test_exact_counters_for_a_known_workload():
    """3 clients x 1000 text messages of 100 bytes, 10 pings, 1 protocol error."""
    with Server() as srv:
        clients = [RawWS(srv.port) for _ in range(3)]
        payload = "x" * 100
        for i in range(1000):
            for ws in clients:
                ws.send_text(payload)
            for ws in clients:
                assert ws.recv_message() == (OP_TEXT, payload.encode())
        for i in range(10):
            ws = clients[i % 3]
            ws.send_frame(OP_PING, b"p%d" % i)
            f = ws.recv_frame()
            assert (f.opcode, f.payload) == (OP_PONG, b"p%d" % i)
        bad = RawWS(srv.port)
        bad.send_frame(OP_BINARY, b"unmasked", mask=False)
        wse.expect_protocol_close(bad, 1002)
        bad.close()
        for ws in clients:
            ws.send_close(1000)
            ws.expect_close()
            ws.wait_tcp_close()
            ws.close()

        s = settled(srv, lambda s: s["totals"]["conn_open"] == 0 and
                    s["totals"]["close_client"] == 3 and s["totals"]["close_error"] == 1,
                    "every connection counted as closed")
        t = s["totals"]
        want = {
            "conn_accepted": 4, "handshakes": 4, "conn_open": 0,
            "close_client": 3, "close_error": 1, "close_server": 0, "close_timeout": 0,
            "close_reset": 0,
            "msgs_in_text": 3000, "msgs_out_text": 3000, "msgs_in_binary": 0,
            "msgs_out_binary": 0, "bytes_in_text": 300000, "bytes_out_text": 300000,
            "pings_in": 10, "pongs_in": 0, "err_1002": 1, "err_1007": 0, "err_1009": 0,
            # data 3000 + pings 10 + client closes 3 (the unmasked frame is refused, not counted)
            "frames_in": 3013,
            # echoes 3000 + pongs 10 + close replies 3 + the 1002 close 1
            "frames_out": 3014,
            "bytes_buffered": 0,
        }
        got = {k: t[k] for k in want}
        assert got == want, f"totals differ: {[(k, got[k], want[k]) for k in want if got[k] != want[k]]}"
        # Per worker, summed, is the total (nothing retired yet).
        for key in want:
            assert worker_sum(s, key) == t[key], f"{key}: workers sum {worker_sum(s, key)} != total {t[key]}"
        assert all(v == 0 for v in s["retired"].values())
        assert s["header"]["workers"] == 2 and len(s["workers"]) == 2
        assert {w["state"] for w in s["workers"]} == {"running"}
        assert {w["pid"] for w in s["workers"]} == set(srv.children())


def test_totals_survive_a_killed_worker():
    with Server(worker_deaths_ok=True) as srv:
        ws_list = [RawWS(srv.port) for _ in range(6)]
        for ws in ws_list:
            for _ in range(5):
                ws.send_binary(b"abc")
                assert ws.recv_message() == (OP_BINARY, b"abc")
            ws.send_close(1000)
            ws.expect_close()
            ws.wait_tcp_close()
            ws.close()
        before = settled(srv, lambda s: s["totals"]["close_client"] == 6, "closes counted")
        victim = max(before["workers"], key=lambda w: w["counters"]["msgs_in_binary"])
        assert victim["counters"]["msgs_in_binary"] > 0
        mark = srv.mark()
        os.kill(victim["pid"], signal.SIGKILL)
        srv.wait_for_line(rf"worker {victim['worker']} \(pid {victim['pid']}\) killed by signal 9", 5,
                          start=mark)
        after = settled(srv, lambda s: len(s["workers"]) == 2 and
                        all(w["state"] == "running" for w in s["workers"]) and
                        victim["pid"] not in [w["pid"] for w in s["workers"]],
                        "the slot respawned")
        for key, value in before["totals"].items():
            if key in ("conn_open", "bytes_buffered"):
                continue
            assert after["totals"][key] == value, f"{key}: {value} before the kill, {after['totals'][key]} after"
        assert after["retired"]["msgs_in_binary"] == victim["counters"]["msgs_in_binary"]


def test_reader_in_a_loop_sees_monotonic_totals_under_load():
    with Server() as srv:
        stop = threading.Event()
        errors = []

        def load(k):
            try:
                with RawWS(srv.port) as ws:
                    n = 0
                    while not stop.is_set():
                        ws.send_binary(b"%d" % n)
                        assert ws.recv_message() == (OP_BINARY, b"%d" % n)
                        n += 1
            except Exception as e:      # reported below, the test fails
                errors.append(repr(e))

        threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            prev = None
            for _ in range(40):
                now = stats_json(srv)["totals"]
                if prev:
                    for key, value in now.items():
                        if key in ("conn_open", "bytes_buffered"):
                            continue
                        assert value >= prev[key], f"{key} went back: {prev[key]} -> {value}"
                prev = now
            assert prev["msgs_in_binary"] > 0
        finally:
            stop.set()
            for t in threads:
                t.join(wse.scaled(10))
        assert not errors, errors


def test_formats_table_and_prometheus():
    with Server() as srv:
        with RawWS(srv.port) as ws:
            ws.send_text("hi")
            assert ws.recv_message() == (OP_TEXT, b"hi")
        table = stats(srv).stdout.splitlines()
        assert table[0].startswith(f"wsechod stats /wsechod.{srv.port}: master pid {srv.pid}")
        assert table[1].split()[:4] == ["worker", "pid", "gen", "state"]
        assert len(table) == 2 + 2 + 1 and table[-1].startswith("total")
        prom = stats(srv, "--prometheus").stdout.splitlines()
        assert "# TYPE wsechod_messages_received_total counter" in prom
        assert "# TYPE wsechod_connections_open gauge" in prom
        samples = [l for l in prom if l.startswith('wsechod_messages_received_total{')]
        total = sum(int(l.rsplit(" ", 1)[1]) for l in samples if 'type="text"' in l)
        assert total == 1, samples
        assert any('worker="retired"' in l for l in samples)
        for l in prom:
            assert l.startswith("# HELP ") or l.startswith("# TYPE ") or \
                (l.startswith("wsechod_") and l.rsplit(" ", 1)[1].isdigit()), l


def test_one_worker_is_singular_in_the_table_header():
    with Server(workers=1) as srv:
        head = stats(srv).stdout.splitlines()[0]
        assert head.endswith("generation 1, 1 worker"), head


def test_json_and_prometheus_together_are_refused_with_status_2():
    """It used to print whichever came last; with --watch it named --watch only."""
    for args in (["--json", "--prometheus"], ["--prometheus", "--json"]):
        p = subprocess.run([wse.binary(), "stats", "--stats-name", "wsechod-none-such", *args],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert f"{args[0]} and {args[1]} cannot be combined" in p.stderr, p.stderr
        assert p.stdout == ""
    p = subprocess.run([wse.binary(), "stats", "--stats-name", "wsechod-none-such", "--json",
                        "--watch"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "--watch and --json cannot be combined" in p.stderr, p.stderr


def test_no_segment_is_an_error_with_status_1():
    p = subprocess.run([wse.binary(), "stats", "--stats-name", "wsechod-none-such"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "no stats segment /wsechod-none-such" in p.stderr


def test_other_layout_is_an_error_with_status_1():
    path = f"/dev/shm/wsechod-test-layout-{os.getpid()}"
    with open(path, "wb") as f:
        f.write(b"\0" * 4096)
    try:
        p = subprocess.run([wse.binary(), "stats", "--stats-name", os.path.basename(path)],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 1 and "another layout" in p.stderr, p.stderr
    finally:
        os.unlink(path)


def test_segment_removed_on_clean_stop_and_stale_one_replaced():
    srv = Server()
    srv.start()
    path = f"/dev/shm/wsechod.{srv.port}"
    assert os.path.exists(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"
    srv.stop()
    assert srv.exit_status == 0
    assert not os.path.exists(path), "segment left after a clean stop"
    srv.check_sanitizer()

    # A segment whose master is dead (here: a copy of one, master pid gone).
    srv = Server(port=srv.port)
    srv.start()
    with open(path, "rb") as f:
        image = f.read(4096)
    srv.stop()
    dead = subprocess.Popen(["true"])
    dead.wait()
    image = bytearray(image)
    image[32:36] = dead.pid.to_bytes(4, "little")      # master_pid
    with open(path, "wb") as f:
        f.write(image)
    with Server(port=srv.port) as srv2:
        assert srv2.find_lines(rf"stats segment /wsechod\.{srv2.port}")
        assert stats_json(srv2)["header"]["master_pid"] == srv2.pid


def test_live_segment_of_another_master_refuses_start():
    with Server() as srv:
        other = Server("--stats-name", f"wsechod.{srv.port}", ready=None)
        other.start()
        status = other.wait_exit(wse.scaled(10))
        other.stop()
        assert status == 1, f"second master exit status {status}"
        assert any(f"belongs to wsechod pid {srv.pid}" in l for l in other.lines), other.output()
        # The first server's segment is untouched.
        assert stats_json(srv)["header"]["master_pid"] == srv.pid


# ---- a reader against a segment rewritten under it ---------------------------
#
# The segment is writable by the server's user (and root, which the tests run
# as): it can be rewritten or truncated under a reader, and a worker killed
# in the middle of a seqlocked update leaves it half-written.  A reader must
# neither crash nor hang, and must say what it could not read.

class Segment:
    """A live server's /dev/shm segment, mapped read-write like a writer would."""

    def __init__(self, srv):
        self.path = f"/dev/shm/wsechod.{srv.port}"
        self.file = open(self.path, "r+b")
        self.map = mmap.mmap(self.file.fileno(), 0)
        # header: magic u64, version, header_size, slot_size, counter_count, nslots (u32)
        self.header_size, self.slot_size, _, self.nslots = struct.unpack_from("<4I", self.map, 12)

    NSLOTS, RETIRED_SEQ = 24, 48        # offsets in the header

    def u32(self, off):
        return struct.unpack_from("<I", self.map, off)[0]

    def set_u32(self, off, value):
        struct.pack_into("<I", self.map, off, value)

    def slot_seq(self, k):
        return self.header_size + k * self.slot_size      # seq is a slot's first field

    def close(self):
        self.map.close()
        self.file.close()


def sanitizer_free(p):
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr


def test_odd_slot_seq_shows_unreadable_and_the_master_repairs_it_on_reap():
    """A worker killed between seq_begin and seq_end leaves its seq odd: the
    reader used to spin on it forever, and the master's later writes kept it
    odd (begin and end each add one)."""
    with Server(worker_deaths_ok=True) as srv:
        victim = stats_json(srv)["workers"][0]
        seg = Segment(srv)
        try:
            off = seg.slot_seq(victim["slot"])
            seg.set_u32(off, seg.u32(off) | 1)
            p = stats(srv, "--json")        # its timeout fails the test if it spins
            sanitizer_free(p)
            s = json.loads(p.stdout)
            row = [w for w in s["workers"] if w["slot"] == victim["slot"]]
            assert len(row) == 1 and row[0]["state"] == "unreadable" and row[0]["pid"] is None, row
            assert s["totals_consistent"] is True
            assert f"slot {victim['slot']} of /wsechod.{srv.port} stays mid-update" in p.stderr
            others = [w for w in s["workers"] if w["slot"] != victim["slot"]]
            assert [w["state"] for w in others] == ["running"]
            table = stats(srv).stdout.splitlines()
            assert sum("unreadable" in l for l in table) == 1, table
            prom = stats(srv, "--prometheus").stdout
            assert f'worker="unreadable",slot="{victim["slot"]}"' in prom
            # --watch goes on refreshing, and says it once.
            w = Watch(srv)
            w.wait_for_tables(3)
            status, err = w.stop()
            assert status == -signal.SIGTERM, (status, err)
            assert sum("unreadable" in l for l in w.lines) >= 3, w.lines     # a row per table
            assert err.count("stays mid-update") == 1, err

            mark = srv.mark()
            os.kill(victim["pid"], signal.SIGKILL)
            srv.wait_for_line(rf"worker {victim['worker']} \(pid {victim['pid']}\) killed by signal 9",
                              5, start=mark)
            after = settled(srv, lambda s: len(s["workers"]) == 2 and
                            all(w["state"] == "running" for w in s["workers"]) and
                            victim["pid"] not in [w["pid"] for w in s["workers"]],
                            "the slot repaired and respawned")
            assert seg.u32(off) % 2 == 0
            assert after["totals_consistent"] is True
        finally:
            seg.close()


def test_odd_retired_seq_shows_inconsistent_totals_and_the_master_repairs_it():
    with Server(worker_deaths_ok=True) as srv:
        victim = stats_json(srv)["workers"][0]
        seg = Segment(srv)
        try:
            seg.set_u32(Segment.RETIRED_SEQ, seg.u32(Segment.RETIRED_SEQ) | 1)
            p = stats(srv, "--json")
            sanitizer_free(p)
            s = json.loads(p.stdout)
            assert s["totals_consistent"] is False
            assert {w["state"] for w in s["workers"]} == {"running"}
            assert "retired totals of" in p.stderr and "stay mid-update" in p.stderr
            # The master's next fold (a reaped worker) starts from an even count again.
            mark = srv.mark()
            os.kill(victim["pid"], signal.SIGKILL)
            srv.wait_for_line(rf"worker {victim['worker']} \(pid {victim['pid']}\) killed by signal 9",
                              5, start=mark)
            settled(srv, lambda s: s["totals_consistent"], "the retired totals readable again")
            assert seg.u32(Segment.RETIRED_SEQ) % 2 == 0
        finally:
            seg.close()


class Watch:
    """`wsechod stats --watch 0.1` with its output collected line by line."""

    def __init__(self, srv):
        self.proc = subprocess.Popen([wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}",
                                      "--watch", "0.1"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for_tables(self, n):
        wse.wait_until(lambda: sum(l.startswith("total") for l in self.lines) >= n or
                       self.proc.poll() is not None, wse.scaled(10), f"{n} tables")
        assert self.proc.poll() is None, f"--watch ended: {self.proc.returncode}"

    def stop(self):
        """(status, stderr) after SIGTERM."""
        self.proc.terminate()
        return self.wait_end()

    def wait_end(self):
        """(status, stderr) once it has ended by itself."""
        try:
            status = self.proc.wait(wse.scaled(10))     # it writes little to stderr
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(wse.scaled(5))
        return status, self.proc.stderr.read()


def test_watch_ends_with_a_message_when_the_segment_shrinks():
    """It used to die of SIGBUS touching its mapping past the new end."""
    with Server() as srv:
        w = Watch(srv)
        w.wait_for_tables(2)
        # The server's own slots are in the first pages: it goes on serving.
        os.truncate(f"/dev/shm/wsechod.{srv.port}", 65536)
        status, err = w.wait_end()
        assert status == 1, f"--watch exit status {status} (-{int(signal.SIGBUS)} is SIGBUS): {err}"
        assert f"stats segment /wsechod.{srv.port} shrank under the reader" in err, err
        assert "Sanitizer" not in err, err
        with RawWS(srv.port) as ws:
            ws.send_text("still here")
            assert ws.recv_message() == (OP_TEXT, b"still here")
        p = stats(srv, check=False)
        assert p.returncode == 1 and "has another layout" in p.stderr and "too small for" in p.stderr, \
            p.stderr


def test_raised_nslots_is_refused_not_an_overflow():
    """It used to read the new count into arrays sized by the old one."""
    with Server() as srv:
        seg = Segment(srv)
        try:
            w = Watch(srv)
            w.wait_for_tables(2)
            seg.set_u32(Segment.NSLOTS, seg.nslots + 100)
            status, err = w.wait_end()
            assert status == 1, f"--watch exit status {status}: {err}"
            assert "changed its layout under the reader" in err, err
            assert "Sanitizer" not in err, err
            p = stats(srv, "--json", check=False)
            assert p.returncode == 1 and f"too small for {seg.nslots + 100} slots" in p.stderr, p.stderr
            sanitizer_free(p)
            # Put back, it reads again.
            seg.set_u32(Segment.NSLOTS, seg.nslots)
            assert stats_json(srv)["header"]["slots"] == seg.nslots
        finally:
            seg.close()


def test_watch_into_a_pipe_has_no_escapes_and_keeps_its_width():
    """Into a pipe it used to write clear-screen escapes, and its first frame
    had no rate columns: the table widened from the second frame on."""
    with Server() as srv:
        with RawWS(srv.port) as ws:
            ws.send_text("hi")
            assert ws.recv_message() == (OP_TEXT, b"hi")
        w = Watch(srv)
        w.wait_for_tables(3)
        status, err = w.stop()
        assert "Sanitizer" not in err, err
        text = "".join(w.lines)
        assert "\x1b" not in text, repr(text[:200])
        frames = [f.splitlines() for f in text.split("\n\n") if f.strip()]
        assert len(frames) >= 3, text
        header = frames[0][1]
        assert header.split()[-2:] == ["msgs/s", "bytes/s"], header
        for f in frames[:-1]:       # the last one may be cut short by SIGTERM
            assert f[0].startswith(f"wsechod stats /wsechod.{srv.port}: "), f
            assert f[1] == header, (f[1], header)
            rows = f[2:]
            assert len(rows) == 3 and rows[-1].startswith("total"), f
            # Fixed columns: every row as wide as the header, in every frame.
            assert all(len(r) == len(header) for r in rows), f
        # Rates need two samples: "-" in the first frame, numbers after.
        assert frames[0][-1].split()[-2:] == ["-", "-"], frames[0]
        assert all(x.isdigit() for x in frames[1][-1].split()[-2:]), frames[1]
