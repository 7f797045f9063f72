"""Configuration check mode and config files (spec 10)."""
import os
import subprocess
import tempfile

import wse
from wse import OP_TEXT, RawWS, Server


def run(*args):
    r = subprocess.run([wse.binary()] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=wse.scaled(20), env=Server()._env())
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def write(dirname, name, text):
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        f.write(text)
    return path


GOOD = """\
# wsechod test configuration
workers = 2
listen = 127.0.0.1:{port}

path = /cfg
echo_prefix = cfg:
max-message = 64K
idle_timeout = 30
ping-interval = 500ms
handshake-timeout = 2s
"""


def test_check_good_config():
    with tempfile.TemporaryDirectory() as d:
        path = write(d, "good.conf", GOOD.format(port=wse.free_port()))
        code, out = run("-t", "-c", path)
        assert code == 0, f"-t on a good file exited {code}: {out}"
        code, out = run("--test-config", "--config", path)
        assert code == 0, f"--test-config exited {code}: {out}"


def test_check_bad_value_names_file_and_line():
    with tempfile.TemporaryDirectory() as d:
        path = write(d, "bad.conf", "# line 1\nworkers = 2\n\nidle-timeout = soon\n")
        code, out = run("-t", "-c", path)
        assert code == 2, f"bad value: exit {code}: {out}"
        assert f"{path}:4" in out, f"message does not name {path}:4: {out!r}"
        assert "idle-timeout" in out or "idle_timeout" in out, out


def test_check_unknown_key():
    with tempfile.TemporaryDirectory() as d:
        path = write(d, "unknown.conf", "workers = 2\nno-such-key = 1\n")
        code, out = run("-t", "-c", path)
        assert code == 2, f"unknown key: exit {code}: {out}"
        assert f"{path}:2" in out, f"message does not name {path}:2: {out!r}"


def test_check_bad_command_line():
    code, out = run("-t", "--workers", "0")
    assert code == 2, f"-t --workers 0: exit {code}: {out}"
    code, out = run("-t", "--no-such-option")
    assert code == 2, f"unknown option: exit {code}: {out}"
    code, out = run("-t", "-c", "/nonexistent/wsechod.conf")
    assert code == 2, f"missing config file: exit {code}: {out}"


def test_check_refuses_endless_and_oversized_files_promptly():
    """-c /dev/zero once grew a getline buffer until memory ran out."""
    # Bounded memory too, where the sanitizers' shadow memory allows it.
    cap = [] if wse.SAN else ["prlimit", "--as=536870912", "--"]
    with tempfile.TemporaryDirectory() as d:
        fifo = os.path.join(d, "fifo.conf")
        os.mkfifo(fifo)
        long_line = write(d, "long.conf", "# " + "x" * 10000 + "\nworkers = 2\n")
        for path, message in (("/dev/zero", "'/dev/zero' is not a regular file"),
                              (fifo, f"'{fifo}' is not a regular file"),
                              (long_line, f"{long_line}:1: line longer than 4096 bytes")):
            r = subprocess.run(cap + [wse.binary(), "-t", "-c", path], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=wse.scaled(5), env=Server()._env())
            out = (r.stdout + r.stderr).decode(errors="replace")
            assert r.returncode == 2 and message in out, f"-c {path}: exit {r.returncode}: {out!r}"


def test_server_uses_config_file():
    """Keys with dashes and underscores both apply; the command line wins."""
    with tempfile.TemporaryDirectory() as d:
        path = write(d, "run.conf", GOOD.format(port=1))       # -l below replaces it
        with Server("-c", path) as srv:
            with RawWS(srv.port, path="/cfg") as ws:
                ws.send_frame(OP_TEXT, b"hi")
                # ping-interval is 500ms in this file: a ping may come first.
                assert ws.recv_message(timeout=5, controls=[]) == (OP_TEXT, b"cfg:hi")
            r = wse.http_request(srv.port, wse.upgrade_request("/websocket")[0])
            assert r.status == 404, f"/websocket with path = /cfg: {r.status}"
