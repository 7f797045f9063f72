"""wsbench against the real server: host names, a closed port, and the
connect-rate figures (issue: what operators expect, the wsbench items)."""
import json
import os
import subprocess
import time

import wse
from wse import Server


def wsbench():
    path = os.path.join(os.path.dirname(wse.binary()), "wsbench")
    if not os.path.exists(path):
        raise wse.Skip("wsbench is not built next to the server")
    return path


def run(*args, timeout=60):
    return subprocess.run([wsbench()] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=wse.scaled(timeout))


def test_a_host_name_is_resolved():
    with Server("-w", "1", workers=None) as srv:
        p = run("-d", "300ms", "-c", "2", "--json", f"ws://localhost:{srv.port}/websocket")
        assert p.returncode == 0, p.stdout + p.stderr
        res = json.loads(p.stdout)
        assert res["messages"] > 0 and sum(res["errors"].values()) == 0, res


def test_a_closed_port_fails_at_once_with_a_hint():
    port = wse.free_port()
    t0 = time.monotonic()
    # A 30-second run: before, it ran all of it with connect errors.
    p = run("-d", "30s", f"ws://127.0.0.1:{port}/websocket")
    took = time.monotonic() - t0
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "Connection refused" in p.stderr and "is the server running" in p.stderr, p.stderr
    assert took < 20, f"wsbench took {took:.1f}s to give up on a closed port"
    assert p.stdout == "", p.stdout


def test_connect_rate_counts_each_cycle_once():
    with Server("-w", "1", workers=None) as srv:
        p = run("-d", "500ms", "-c", "8", "--connect-rate", "--json",
                f"ws://127.0.0.1:{srv.port}/websocket")
        assert p.returncode == 0, p.stdout + p.stderr
        res = json.loads(p.stdout)
        # Eight connections in flight when the run ends: their echoes must not
        # count without their cycles.
        assert res["connections_completed"] > 0, res
        assert res["messages"] == res["connections_completed"], res
        text = run("-d", "300ms", "-c", "2", "--connect-rate",
                   f"ws://127.0.0.1:{srv.port}/websocket")
        assert text.returncode == 0, text.stdout + text.stderr
        assert "Handshakes/sec" not in text.stdout and "Conns/sec:" in text.stdout, text.stdout


def test_counts_of_one_are_singular():
    """It used to print "1 threads and 1 connections"."""
    with Server("-w", "1", workers=None) as srv:
        p = run("-d", "200ms", "-t", "1", "-c", "1", f"ws://127.0.0.1:{srv.port}/websocket")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "  1 thread and 1 connection, " in p.stdout, p.stdout
        p = run("-d", "200ms", "-t", "1", "-c", "2", f"ws://127.0.0.1:{srv.port}/websocket")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "  1 thread and 2 connections, " in p.stdout, p.stdout


def test_deflate_compresses_and_checks_every_echo():
    with Server("-w", "1", "--permessage-deflate", workers=None) as srv:
        for args in (["-s", "64"], ["-s", "100000", "-p", "4", "--binary"], ["-s", "0"]):
            p = run("-d", "300ms", "-c", "2", "--deflate", "--json", *args,
                    f"ws://127.0.0.1:{srv.port}/websocket")
            assert p.returncode == 0, p.stdout + p.stderr
            res = json.loads(p.stdout)
            assert res["messages"] > 0 and sum(res["errors"].values()) == 0, (args, res)
    # A changed echo (the prefix) is a mismatch after inflating; a server
    # that declines the extension is a handshake error.
    with Server("-w", "1", "--permessage-deflate", "--echo-prefix", "X", workers=None) as srv:
        p = run("-d", "300ms", "-c", "1", "--deflate", "--json",
                f"ws://127.0.0.1:{srv.port}/websocket")
        assert p.returncode == 1 and json.loads(p.stdout)["errors"]["mismatch"] > 0, p.stdout
    with Server("-w", "1", workers=None) as srv:
        p = run("-d", "300ms", "-c", "1", "--deflate", "--json",
                f"ws://127.0.0.1:{srv.port}/websocket")
        assert p.returncode == 1 and json.loads(p.stdout)["errors"]["handshake"] > 0, p.stdout


def test_wss_handshakes_with_rsa_and_ecdsa_servers_at_tls12_and_tls13():
    """wsbench over wss:// against an RSA-only and an ECDSA-only server, with
    --tls12 and without: every connection completes its TLS and WebSocket
    handshakes and echoes, at the version asked for."""
    from test_tls import pair_args
    for name in ("rsa", "ec"):
        tls_port = wse.free_port()
        with Server("-w", "1", "--tls-listen", f"{wse.HOST}:{tls_port}", *pair_args(name),
                    workers=None) as srv:
            for flags, version in ((["--tls12"], "1.2"), ([], "1.3")):
                p = run("-d", "300ms", "-c", "2", "--json", *flags,
                        f"wss://127.0.0.1:{tls_port}/websocket")
                assert p.returncode == 0, (name, flags, p.stdout, p.stderr)
                res = json.loads(p.stdout)
                assert res["tls_max"] == version and res["tls_handshakes"] == 2, (name, flags, res)
                assert res["messages"] > 0 and sum(res["errors"].values()) == 0, (name, flags, res)
