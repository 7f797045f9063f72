"""A Node.js client against the server: npm's ws, pinned by
tests/integration/node/package-lock.json and installed by `make test`
(scripts/npm-deps.sh), so the test runs on Debian 12's own Node 18 as on
newer ones."""
import os
import shutil
import subprocess

import wse
from wse import Server

NODE_DIR = os.path.join(wse.HERE, "node")
SCRIPT = os.path.join(NODE_DIR, "node_echo.mjs")


def node_binary():
    node = "/usr/bin/node" if os.access("/usr/bin/node", os.X_OK) else shutil.which("node")
    if not node:
        raise wse.Skip("node is missing")
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")):
        raise wse.Skip("npm's ws is not installed in tests/integration/node "
                       "(make deps runs scripts/npm-deps.sh; see its message)")
    return node


@wse.timeout(60)
def test_node_echo():
    node = node_binary()
    with Server(access_log=True) as srv:
        r = subprocess.run([node, SCRIPT, srv.uri()], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=wse.scaled(40))
        out = (r.stdout + r.stderr).decode(errors="replace").strip()
        assert r.returncode == 0, f"node client failed ({r.returncode}): {out}"
        assert out.startswith("ok 11 code 1000"), out
        srv.wait_for_access(r"status=101 .* close=1000 by=client", 1, 5)


@wse.timeout(60)
def test_node_echo_with_permessage_deflate():
    """ws compresses every message (threshold 0); the server must accept
    the extension and echo each message right."""
    node = node_binary()
    with Server("--permessage-deflate", access_log=True) as srv:
        r = subprocess.run([node, SCRIPT, srv.uri(), "deflate"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=wse.scaled(40))
        out = (r.stdout + r.stderr).decode(errors="replace").strip()
        assert r.returncode == 0, f"node client failed ({r.returncode}): {out}"
        assert out.startswith("ok 11 code 1000"), out
        assert 'extensions "permessage-deflate' in out, out
        srv.wait_for_access(r"status=101 .* close=1000 by=client", 1, 5)
