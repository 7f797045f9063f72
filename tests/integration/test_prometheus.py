"""
A real Prometheus server scrapes --metrics-listen: its query result for the
messages received is exactly the workload sent, and the build info and
start time arrive as samples.

The Prometheus started here is this test's own (127.0.0.1 ports only, a
temporary configuration and storage directory), whatever the Debian
package's service does.  Skipped (never passed) when /usr/bin/prometheus is
not installed (`make deps` installs it when it can: the optional group
prometheus of scripts/deps.sh).
"""
import json
import os
import signal
import subprocess
import tempfile
import urllib.parse
import urllib.request

import wse
from wse import HOST, OP_TEXT, RawWS
from test_metrics import running

PROMETHEUS = "/usr/bin/prometheus"
MESSAGES = 37


def query(port, expr):
    """The instant vector of expr as [(labels, value)], or None if Prometheus
    is not answering yet."""
    url = f"http://{HOST}:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=wse.scaled(5)) as r:
            doc = json.load(r)
    except OSError:
        return None
    assert doc["status"] == "success", doc
    return [(s["metric"], s["value"][1]) for s in doc["data"]["result"]]


class PrometheusServer:
    """Our own prometheus, scraping one target every second."""

    def __init__(self, target):
        self.target = target
        self.port = wse.free_port()
        self.dir = tempfile.TemporaryDirectory()
        self.proc = None

    def __enter__(self):
        conf = os.path.join(self.dir.name, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: wsechod\n"
                    f"    static_configs:\n      - targets: ['{self.target}']\n")
        self.log = open(os.path.join(self.dir.name, "log"), "w+")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={conf}",
             f"--storage.tsdb.path={os.path.join(self.dir.name, 'data')}",
             f"--web.listen-address={HOST}:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            cwd=self.dir.name, preexec_fn=wse._die_with_parent)
        return self

    def __exit__(self, et, ev, tb):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(wse.scaled(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if et is not None:
            self.log.seek(0)
            import sys
            sys.stderr.write("    prometheus log:\n" + self.log.read()[-3000:] + "\n")
        self.log.close()
        self.dir.cleanup()
        return False

    def wait_for(self, expr, pred, what, timeout=60):
        box = {}

        def check():
            assert self.proc.poll() is None, f"prometheus exited with {self.proc.returncode}"
            box["r"] = query(self.port, expr)
            return box["r"] is not None and pred(box["r"])
        try:
            wse.wait_until(check, wse.scaled(timeout), what, interval=0.25)
        except AssertionError as e:
            raise AssertionError(f"{e}; last result of {expr}: {box.get('r')}") from None
        return box["r"]


@wse.timeout(120)
def test_prometheus_scrapes_the_exact_workload():
    if not os.access(PROMETHEUS, os.X_OK):
        raise wse.Skip(f"{PROMETHEUS} is not installed (Debian package prometheus: "
                       "sh scripts/deps.sh --optional prometheus)")
    with running() as srv, PrometheusServer(f"{HOST}:{srv.mport}") as prom:
        prom.wait_for("up", lambda r: r and r[0][1] == "1", "prometheus scraping wsechod")
        ws = RawWS(srv.port)
        for i in range(MESSAGES):
            ws.send_text(f"m{i}")
            assert ws.recv_message() == (OP_TEXT, f"m{i}".encode())
        ws.send_close(1000)
        ws.expect_close()
        ws.close()
        expr = "sum(wsechod_messages_received_total)"
        r = prom.wait_for(expr, lambda r: r and r[0][1] == str(MESSAGES),
                          f"{expr} == {MESSAGES}")
        assert r == [({}, str(MESSAGES))]
        r = prom.wait_for('sum(wsechod_messages_sent_total{type="text"})',
                          lambda r: bool(r), "messages sent")
        assert r == [({}, str(MESSAGES))], r
        info = prom.wait_for("wsechod_build_info", bool, "build info")
        version = subprocess.run([wse.binary(), "-V"], capture_output=True, text=True,
                                 timeout=10).stdout.split()[1]
        assert info[0][0]["version"] == version and info[0][1] == "1", info
        start = prom.wait_for("wsechod_start_time_seconds", bool, "start time")
        stats = json.loads(subprocess.run(
            [wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}", "--json"],
            capture_output=True, text=True, timeout=wse.scaled(10)).stdout)
        assert float(start[0][1]) == stats["header"]["start_time_ms"] / 1000, start
