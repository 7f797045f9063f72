"""Node.js's built-in WebSocket client against the server (spec 2)."""
import os
import shutil
import subprocess

import wse
from wse import Server

SCRIPT = os.path.join(wse.HERE, "node_echo.mjs")


def node_binary():
    node = "/usr/bin/node" if os.access("/usr/bin/node", os.X_OK) else shutil.which("node")
    if not node:
        raise wse.Skip("node is missing")
    probe = subprocess.run([node, "--experimental-websocket", "-e",
                            "process.exit(typeof WebSocket === 'function' ? 0 : 3)"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=wse.scaled(30))
    if probe.returncode != 0:
        raise wse.Skip(f"{node} has no global WebSocket (--experimental-websocket): "
                       + (probe.stderr.decode(errors="replace").strip().splitlines() or [""])[-1])
    return node


@wse.timeout(60)
def test_node_echo():
    node = node_binary()
    with Server() as srv:
        r = subprocess.run([node, "--experimental-websocket", "--no-warnings", SCRIPT, srv.uri()],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=wse.scaled(40))
        out = (r.stdout + r.stderr).decode(errors="replace").strip()
        if r.returncode == 3:
            raise wse.Skip("node lacks a global WebSocket")
        assert r.returncode == 0, f"node client failed ({r.returncode}): {out}"
        assert out.startswith("ok 11 code 1000"), out
        srv.wait_for_line(r"close 1000 from client", 5)
