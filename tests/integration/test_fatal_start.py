"""A worker whose start fails for a reason a respawn cannot cure exits with
its own status (2), is logged once with the reason and is not respawned: at
the first start the master stops with exit 1, on a reload the new generation
is rejected and the old one serves on (issue: connection seams, error
contracts).

The failure used is a real one: in a user namespace that denies
setgroups(2), a worker cannot switch to --user."""
import os
import signal
import subprocess
import tempfile

import wse
from wse import OP_TEXT, RawWS, Server


def userns_usable():
    p = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True,
                       timeout=10)
    if p.returncode != 0:
        raise wse.Skip("unshare --user is not permitted here: "
                       + p.stderr.decode(errors="replace").strip())


class UserNsServer(Server):
    """The server as "root" of a new user namespace (unshare execs it, so the
    pid is the master's); only uid 0 is mapped and setgroups is denied."""

    def _argv(self):
        return ["unshare", "--user", "--map-root-user", "--"] + super()._argv()


def test_fatal_start_failure_stops_the_master_without_a_respawn_loop():
    userns_usable()
    srv = UserNsServer("--user", "65534", "-w", "2", workers=None, ready=None)
    srv.start()
    status = srv.wait_exit(wse.scaled(10))
    srv.stop()
    assert status == 1, f"exit status {status}:\n{srv.output()}"
    reasons = srv.find_lines(r"cannot run as user '65534'")
    assert reasons, srv.output()
    assert srv.find_lines(r"failed to start: exited with status 2"), srv.output()
    assert not srv.find_lines(r"respawning"), srv.output()
    # Logged once per worker, not once per respawn.
    assert len(reasons) <= 2, srv.output()


def test_fatal_start_failure_on_reload_keeps_the_old_generation():
    userns_usable()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "wsechod.conf")

        def write(text):
            with open(conf + ".tmp", "w") as f:
                f.write(text)
            os.rename(conf + ".tmp", conf)

        write("# no user: the workers stay this namespace's root\n")
        with UserNsServer("-c", conf) as srv:
            mark = srv.mark()
            write("user = 65534\n")
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(r"reload failed: .*generation 1 keeps serving", wse.scaled(15),
                              start=mark)
            assert srv.find_lines(r"cannot run as user '65534'"), srv.output()
            for i in range(10):
                with RawWS(srv.port) as ws:
                    ws.send_text(f"still {i}")
                    assert ws.recv_message() == (OP_TEXT, f"still {i}".encode())
            assert len(srv.children()) == 2, srv.children()
            # Not respawned in a loop: the failed workers' deaths are all there is.
            assert not srv.find_lines(r"respawning"), srv.output()
