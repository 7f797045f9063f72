"""Two wsechod instances behind a real HAProxy (Debian's) with PROXY v2:
clients' real addresses in the logs, and a reload then a graceful stop of one
instance under a stream of new connections without one failing."""
import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import wse
from wse import Server, ws_connect

HAPROXY_CFG = """
global
    maxconn 2000
defaults
    mode http
    option redispatch
    retries 3
    retry-on conn-failure empty-response response-timeout
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
frontend websocket
    bind 127.0.0.1:{port}
    default_backend wsechod
backend wsechod
    balance leastconn
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host wsechod
    http-check expect status 200
    default-server check inter 200ms fall 2 rise 1 send-proxy-v2
    server a 127.0.0.1:{a}
    server b 127.0.0.1:{b}
"""


class HAProxy:
    def __init__(self, a, b):
        if not shutil.which("haproxy"):
            raise wse.Skip("haproxy is not installed (scripts/deps.sh installs it)")
        self.dir = tempfile.TemporaryDirectory()
        self.port = wse.free_port()
        cfg = os.path.join(self.dir.name, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(port=self.port, a=a, b=b))
        self.log = open(os.path.join(self.dir.name, "haproxy.log"), "w+")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.log.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(wse.scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()


async def echo_through(port, text):
    async with ws_connect(f"ws://{wse.HOST}:{port}/websocket", ping_interval=None) as ws:
        await ws.send(text)
        got = await wse.wait_for(ws.recv(), 10, "echo through haproxy")
        assert got == text, (got, text)
        return ws.local_address[1]


def wait_until_serving(lb):
    """The first echo through HAProxy: it listens and has checked a server up."""
    def up():
        try:
            return asyncio.run(echo_through(lb.port, "up"))
        except Exception:
            return False
    try:
        wse.wait_until(up, wse.scaled(10), "an echo through haproxy")
    except AssertionError:
        raise AssertionError("no echo through haproxy; its output:\n" + lb.output()) from None


def proxied_instances():
    args = ("--proxy-protocol", "--drain-timeout", "1", "--close-spread", "0.2")
    return Server(*args, access_log=True), Server(*args, access_log=True)


@wse.timeout(120)
def test_real_client_addresses_through_haproxy():
    a, b = proxied_instances()
    with a, b:
        lb = HAProxy(a.port, b.port)
        try:
            wait_until_serving(lb)
            for i in range(6):
                client_port = asyncio.run(echo_through(lb.port, f"m{i}"))
                rx = rf" peer={wse.HOST}:{client_port} request=\"GET /websocket\" status=101 "
                wse.wait_until(lambda: a.access_lines(rx) or b.access_lines(rx), wse.scaled(5),
                               f"an access line with the client's own port {client_port}")
            # Health checks arrive as PROXY v2 LOCAL and are answered.
            assert not a.find_lines(r"PROXY") and not b.find_lines(r"PROXY"), \
                a.output() + b.output()
            wse.wait_until(lambda: a.access_lines(r"status=101") and b.access_lines(r"status=101"),
                           wse.scaled(5), "both instances logging a connection (leastconn)")
        finally:
            lb.stop()


@wse.timeout(180)
def test_reload_then_quit_one_instance_behind_haproxy_no_client_fails():
    a, b = proxied_instances()
    with a, b:
        lb = HAProxy(a.port, b.port)
        try:
            wait_until_serving(lb)
            stop = threading.Event()
            ok, failures = [0], []

            def clients():
                async def run():
                    while not stop.is_set():
                        try:
                            await echo_through(lb.port, "x" * 32)
                            ok[0] += 1
                        except Exception as e:
                            failures.append(repr(e))
                asyncio.run(run())

            threads = [threading.Thread(target=clients) for _ in range(3)]
            for t in threads:
                t.start()
            try:
                wse.wait_until(lambda: ok[0] >= 30, wse.scaled(20), "traffic flowing")
                mark = a.mark()
                a.signal(signal.SIGHUP)
                a.wait_for_line(r"reload: generation 2 serving", 10, start=mark)
                n = ok[0]
                wse.wait_until(lambda: ok[0] >= n + 30, wse.scaled(20), "traffic after the reload")
                a.signal(signal.SIGQUIT)
                status = a.wait_exit(wse.scaled(20))
                assert status == 0, f"instance a exit status {status}"
                n = ok[0]
                wse.wait_until(lambda: ok[0] >= n + 30, wse.scaled(20), "traffic after the stop")
                wse.wait_until(lambda: b.access_lines(r"status=101"), wse.scaled(5),
                               "instance b logging a connection")
            finally:
                stop.set()
                for t in threads:
                    t.join(wse.scaled(30))
            assert not failures, f"{len(failures)} client connections failed: {failures[:5]}"
            assert ok[0] > 90
        finally:
            lb.stop()
