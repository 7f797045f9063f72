"""sd_notify: the master tells a service manager (here: a socket of the test's
own, as systemd would listen) when it is ready, reloading and stopping."""
import os
import signal
import socket
import tempfile
import time

import wse
from wse import Server


class Notifications:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def next(self, timeout=10):
        self.sock.settimeout(wse.scaled(timeout))
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no notification within {wse.scaled(timeout):.0f}s") from None
        return dict(line.split("=", 1) for line in data.split("\n") if "=" in line)

    def close(self):
        self.sock.close()


def test_ready_reloading_rejected_and_stopping():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "notify")
        conf = os.path.join(d, "wsechod.conf")
        open(conf, "w").write("log-level = info\n")
        n = Notifications(path)
        try:
            srv = Server("-c", conf, env={"NOTIFY_SOCKET": path})
            with srv:
                msg = n.next()
                assert msg.get("READY") == "1", msg
                assert msg.get("MAINPID") == str(srv.pid), msg
                assert msg.get("STATUS") == f"serving ws://127.0.0.1:{srv.port}/websocket with 2 workers", msg

                before = time.clock_gettime(time.CLOCK_MONOTONIC)
                srv.signal(signal.SIGHUP)
                msg = n.next()
                assert msg.get("RELOADING") == "1", msg
                usec = int(msg["MONOTONIC_USEC"])
                assert abs(usec / 1e6 - before) < wse.scaled(5), (usec, before)
                msg = n.next()
                assert msg.get("READY") == "1" and "generation 2 serving" in msg.get("STATUS", ""), msg

                open(conf, "w").write("workers = none\n")
                srv.signal(signal.SIGHUP)
                assert n.next().get("RELOADING") == "1"
                msg = n.next()
                assert msg.get("READY") == "1", msg
                assert msg.get("STATUS", "").startswith("reload rejected:") and "workers" in msg["STATUS"], msg

                srv.signal(signal.SIGTERM)
                assert n.next().get("STOPPING") == "1"
        finally:
            n.close()


def test_no_notify_socket_no_harm():
    with Server(env={"NOTIFY_SOCKET": "/nonexistent/socket"}) as srv:
        resp = wse.http_request(srv.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert resp.status == 200
