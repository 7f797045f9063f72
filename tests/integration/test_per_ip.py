"""--max-connections-per-ip: counted across every worker, per PROXY client
when --proxy-protocol is on, corrected when a worker is killed, kept across
a reload."""
import json
import os
import signal
import socket
import subprocess

import wse
from wse import OP_TEXT, RawWS, Server

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def stats_json(srv):
    p = subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}", "--json"],
                       capture_output=True, text=True, timeout=wse.scaled(10))
    assert p.returncode == 0, f"wsechod stats: status {p.returncode}: {p.stderr}"
    return json.loads(p.stdout)


def open_by_worker(srv):
    """{pid: connections open} of the running workers."""
    return {w["pid"]: w["counters"]["conn_open"] for w in stats_json(srv)["workers"]
            if w["state"] == "running"}


def refused_503(resp):
    assert resp.status == 503, resp
    assert resp.headers.get("retry-after") == "5", resp.headers
    assert resp.body == b"too many connections from your address\n", resp.body
    assert resp.closed


def over_limit(port, prefix=b""):
    """A handshake that must be refused: the whole 503, then the close."""
    refused_503(wse.http_request(port, prefix + wse.upgrade_request()[0]))


def echoes(ws, text):
    ws.send_text(text)
    return ws.recv_message() == (OP_TEXT, text.encode())


def test_limit_counts_across_workers_and_a_close_frees_a_slot():
    n = 20
    with Server("-w", "2", "--max-connections-per-ip", str(n)) as srv:
        conns = [RawWS(srv.port) for _ in range(n)]
        # SO_REUSEPORT spread them (2 workers, 20 connections: all on one
        # has odds of 2 in a million): the limit is the server's, not a worker's.
        per_worker = open_by_worker(srv)
        assert len(per_worker) == 2 and all(per_worker.values()), per_worker
        assert sum(per_worker.values()) == n, per_worker
        over_limit(srv.port)
        srv.wait_for_line(r"127\.0\.0\.1:\d+ has 20 connections, the per-address limit: "
                          r"answering 503", 5)
        # /healthz and the page count as connections too: refused the same way.
        refused_503(wse.http_request(srv.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        # The connections inside the limit were not disturbed.
        assert all(echoes(ws, f"m{i}") for i, ws in enumerate(conns))
        totals = stats_json(srv)["totals"]
        assert totals["refused_per_ip"] == 2, totals
        assert totals["refused_503"] == 2, totals
        # Closing one frees its slot once the server has seen it go.
        conns.pop().close()

        def one_more():
            try:
                return RawWS(srv.port)
            except AssertionError:      # 503: the close is not processed yet
                return None
        conns.append(wse.wait_until(one_more, wse.scaled(10), "a slot freed by a close"))
        over_limit(srv.port)
        for ws in conns:
            ws.close()


def proxy_v1(src, family="TCP4", dst="127.0.0.1"):
    return f"PROXY {family} {src} {dst} 4000 80\r\n".encode()


def proxy_v2(src, sport=5000, dst="127.0.0.1", dport=80):
    block = socket.inet_aton(src) + socket.inet_aton(dst) + sport.to_bytes(2, "big") + \
        dport.to_bytes(2, "big")
    return SIG + bytes([0x21, 0x11]) + len(block).to_bytes(2, "big") + block


def proxied_ws(port, header):
    ws = RawWS(port, handshake=False)
    ws.send(header)
    ws.handshake()
    return ws


def test_behind_proxy_protocol_each_client_is_counted_apart():
    with Server("-w", "2", "--proxy-protocol", "--max-connections-per-ip", "2") as srv:
        held = []
        # All from 127.0.0.1, three clients by their PROXY headers (v1 and v2).
        for header in (proxy_v1("203.0.113.7"), proxy_v2("203.0.113.7"),
                       proxy_v2("198.51.100.9"), proxy_v1("198.51.100.9")):
            held.append(proxied_ws(srv.port, header))
        over_limit(srv.port, proxy_v1("203.0.113.7"))
        over_limit(srv.port, proxy_v2("198.51.100.9"))
        srv.wait_for_line(r"203\.0\.113\.7:4000 has 2 connections, the per-address limit", 5)
        # IPv6: one /64 is one client.
        held.append(proxied_ws(srv.port, proxy_v1("2001:db8:1:2::1", "TCP6", "::1")))
        held.append(proxied_ws(srv.port, proxy_v1("2001:db8:1:2:aaaa::9", "TCP6", "::1")))
        over_limit(srv.port, proxy_v1("2001:db8:1:2::77", "TCP6", "::1"))
        held.append(proxied_ws(srv.port, proxy_v1("2001:db8:1:3::1", "TCP6", "::1")))
        # A third client still gets in: the proxy's own address is not what counts.
        held.append(proxied_ws(srv.port, proxy_v1("192.0.2.1")))
        assert all(echoes(ws, "x") for ws in held)
        assert stats_json(srv)["totals"]["refused_per_ip"] == 3
        for ws in held:
            ws.close()


def test_without_a_limit_nothing_is_refused():
    with Server("-w", "1", workers=None) as srv:
        conns = [RawWS(srv.port) for _ in range(30)]
        assert all(echoes(ws, "y") for ws in conns)
        assert stats_json(srv)["totals"]["refused_per_ip"] == 0
        for ws in conns:
            ws.close()


def test_a_killed_worker_leaves_no_stale_count():
    n = 20
    with Server("-w", "2", "--max-connections-per-ip", str(n), worker_deaths_ok=True) as srv:
        conns = [RawWS(srv.port) for _ in range(n)]
        per_worker = open_by_worker(srv)
        assert len(per_worker) == 2 and all(per_worker.values()), per_worker
        victim, lost = max(per_worker.items(), key=lambda kv: kv[1])
        mark = srv.mark()
        os.kill(victim, signal.SIGKILL)
        # The master forgets the dead worker's counts before it logs the death.
        srv.wait_for_line(rf"\(pid {victim}\) killed by signal 9", 10, start=mark)
        alive = [ws for ws in conns if echoes_or_none(ws)]
        assert len(alive) == n - lost, (len(alive), n, lost)
        # The address may open exactly what the dead worker's connections held.
        more = [RawWS(srv.port) for _ in range(lost)]
        over_limit(srv.port)
        assert srv.find_lines(rf"pid {victim}\): {lost} connections no longer counted per address")
        for ws in alive + more:
            ws.close()


def echoes_or_none(ws):
    try:
        return echoes(ws, "alive?")
    except (OSError, wse.Closed):
        return False


def test_reload_keeps_counting_the_old_workers_connections():
    with Server("-w", "1", "--max-connections-per-ip", "3", workers=None) as srv:
        old = [RawWS(srv.port) for _ in range(3)]
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"reload: generation 2 serving with 1 worker;", 10, start=mark)
        srv.wait_for_line(r"\] draining", 10, start=mark)
        # Served by the new worker, counted with the draining one's.
        over_limit(srv.port)
        assert all(echoes(ws, "old") for ws in old)
        old.pop().close()

        def one_more():
            try:
                return RawWS(srv.port)
            except AssertionError:
                return None
        new = wse.wait_until(one_more, wse.scaled(10), "a slot freed by an old connection")
        assert echoes(new, "new")
        over_limit(srv.port)
        for ws in old + [new]:
            ws.close()
