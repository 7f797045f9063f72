"""wss:// and https:// on --tls-listen: python websockets verifying the chain
against a test CA made at test time, openssl s_client for protocol versions
and ALPN, curl for the page and /healthz, PROXY v2 before TLS, the close
handshake (close_notify before the FIN), backpressure, and bad input on the
TLS port that is closed, counted and harms nobody."""
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import wse
from wse import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, RawWS, Server

_CA = None


def ca():
    """The test CA's directory (scripts/test-ca.sh), made once per run."""
    global _CA
    if _CA is None:
        _CA = tempfile.TemporaryDirectory(prefix="wse-tls-")
        subprocess.run(["sh", os.path.join(wse.ROOT, "scripts", "test-ca.sh"), _CA.name],
                       check=True, capture_output=True, timeout=120)
    return _CA.name


def path(name):
    return os.path.join(ca(), name)


def pair_args(*names):
    out = []
    for n in names:
        out += ["--tls-cert", path(n + ".pem"), "--tls-key", path(n + ".key")]
    return out


def tls_server(*args, names=("rsa", "ec"), **kw):
    """A server with a plain address (srv.port) and a TLS one (srv.tls_port)."""
    tls_port = wse.free_port()
    srv = Server("--tls-listen", f"{wse.HOST}:{tls_port}", *pair_args(*names), *args, **kw)
    srv.tls_port = tls_port
    return srv


def client_ctx():
    return ssl.create_default_context(cafile=path("ca.pem"))


def stats(srv):
    p = subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}", "--json"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def totals(srv):
    return stats(srv)["totals"]


def tls_ws(port, proxy=b"", handshake=True, ctx=None, timeout=10, rcvbuf=None):
    """RawWS over TLS (the chain verified for localhost); proxy: bytes sent
    in the clear before the ClientHello."""
    ws = RawWS(port, handshake=False, timeout=timeout, rcvbuf=rcvbuf)
    if proxy:
        ws.sock.sendall(proxy)
    ws.sock = (ctx or client_ctx()).wrap_socket(ws.sock, server_hostname="localhost",
                                                suppress_ragged_eofs=False)
    if handshake:
        ws.handshake()
    return ws


def s_client(port, *args, data=b""):
    p = subprocess.run(["openssl", "s_client", "-connect", f"{wse.HOST}:{port}",
                        "-CAfile", path("ca.pem"), "-servername", "localhost", *args],
                       input=data, capture_output=True, timeout=wse.scaled(20))
    return p.returncode, p.stdout.decode("latin-1") + p.stderr.decode("latin-1")


# ---- the echo ----------------------------------------------------------------


def test_python_websockets_over_wss_verifies_the_chain_and_echoes():
    with tls_server() as srv:
        async def run():
            async with wse.ws_connect(f"wss://localhost:{srv.tls_port}/websocket",
                                      ssl=client_ctx()) as ws:
                for m in ["hello", "é" * 1000, b"\x00\x01\x02", os.urandom(300000)]:
                    await ws.send(m)
                    got = await wse.wait_for(ws.recv(), 10, "echo")
                    assert got == m, (len(got), len(m))
                assert ws.transport.get_extra_info("ssl_object").version() == "TLSv1.3"
        asyncio.run(run())
        # A client that does not trust the CA fails its own verification.
        async def untrusted():
            async with wse.ws_connect(f"wss://localhost:{srv.tls_port}/websocket",
                                      ssl=ssl.create_default_context()):
                pass
        try:
            asyncio.run(untrusted())
            raise AssertionError("a client without the test CA verified the chain")
        except ssl.SSLCertVerificationError:
            pass
        # The plain address still serves plain.
        async def plain():
            async with wse.ws_connect(srv.uri()) as ws:
                await ws.send("plain")
                assert await wse.wait_for(ws.recv(), 10, "echo") == "plain"
        asyncio.run(plain())
        # One handshake finished (the untrusting client gave up in its own).
        wse.wait_until(lambda: totals(srv)["tls_hs_13"] == 1, 10, "the TLS 1.3 handshake counted")
        assert totals(srv)["tls_hs_12"] == 0


def test_rsa_and_ecdsa_certificates_are_chosen_by_the_client():
    with tls_server() as srv:
        for sigalgs, want in (("rsa_pss_rsae_sha256:rsa_pkcs1_sha256", "rsa"),
                              ("ecdsa_secp256r1_sha256", "ec")):
            rc, out = s_client(srv.tls_port, "-sigalgs", sigalgs, "-showcerts", data=b"")
            assert rc == 0 and "Verify return code: 0 (ok)" in out, out
            assert leaf_serial(out) == serial_of(want), (sigalgs, out)


def serial_of(name):
    return int(open(path(name + ".serial")).read().strip(), 16)


def leaf_serial(s_client_out):
    """The serial of the first certificate s_client -showcerts printed."""
    pem = "-----BEGIN CERTIFICATE-----" + \
        s_client_out.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0] \
        + "-----END CERTIFICATE-----\n"
    x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.encode(),
                       capture_output=True, timeout=10).stdout.decode()
    return int(x.strip().split("=")[1], 16)


def test_protocol_versions_and_alpn():
    with tls_server() as srv:
        for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            rc, out = s_client(srv.tls_port, flag, "-alpn", "http/1.1")
            assert rc == 0 and f"New, {version}, Cipher is" in out, out
            assert "ALPN protocol: http/1.1" in out, out
            assert "Verify return code: 0 (ok)" in out, out
        before = totals(srv)["tls_fail_version"]
        # The client is allowed the old versions (SECLEVEL=0): the refusal is the server's.
        for flag in ("-tls1", "-tls1_1"):
            rc, out = s_client(srv.tls_port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
            assert rc != 0 and "alert protocol version" in out, out
        wse.wait_until(lambda: totals(srv)["tls_fail_version"] == before + 2, 10,
                       "old versions counted as version failures")
        # Only another protocol offered: no_application_protocol.
        rc, out = s_client(srv.tls_port, "-alpn", "h2")
        assert rc != 0 and "no application protocol" in out, out
        t = totals(srv)
        assert t["tls_hs_12"] >= 1 and t["tls_hs_13"] >= 1, t


def test_page_healthz_and_head_over_https():
    with tls_server() as srv:
        base = ["curl", "-sS", "--cacert", path("ca.pem"), "--max-time", str(wse.scaled(10))]
        url = f"https://localhost:{srv.tls_port}"
        out = subprocess.run(base + [url + "/healthz"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout == "ok\n", out
        out = subprocess.run(base + [url + "/"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "<html" in out.stdout and "/websocket" in out.stdout, out
        out = subprocess.run(base + ["-I", url + "/"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout.startswith("HTTP/1.1 200"), out
        out = subprocess.run(base + [url + "/nothing"], capture_output=True, text=True, timeout=30)
        assert "404" in out.stdout or "not found" in out.stdout.lower(), out


# ---- the connection's life over TLS ------------------------------------------


def test_close_handshake_sends_close_notify_before_the_fin():
    with tls_server() as srv:
        ws = tls_ws(srv.tls_port)
        ws.send_text(b"before closing")
        assert ws.recv_message() == (OP_TEXT, b"before closing")
        ws.send_close(1000)
        f = ws.recv_frame()
        assert f.opcode == OP_CLOSE and f.payload[:2] == b"\x03\xe8", f
        # suppress_ragged_eofs=False: a FIN without close_notify would raise
        # SSLEOFError; the close_notify gives a clean b"".
        ws.sock.settimeout(wse.scaled(5))
        assert ws.sock.recv(100) == b""


def test_pings_and_idle_timeout_over_tls():
    with tls_server("--ping-interval", "0.3", "--idle-timeout", "0.9") as srv:
        ws = tls_ws(srv.tls_port)
        f = ws.recv_frame(timeout=5)
        assert f.opcode == OP_PING, f
        code, _, _ = ws.expect_close(timeout=5)
        assert code == 1001


def test_backpressure_counts_tls_output_and_loses_nothing():
    with tls_server("--high-water", "64K", "--low-water", "16K") as srv:
        ws = tls_ws(srv.tls_port, rcvbuf=4096)
        payload = os.urandom(16000)
        n = 200             # 3.2 MB of echoes the client does not read at first
        sent = [0]

        import threading

        def writer():
            for _ in range(n):
                ws.sock.sendall(wse.frame(OP_BINARY, payload))
                sent[0] += 1
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        wse.wait_until(lambda: totals(srv)["backpressure"] >= 1, 20, "reading paused")
        # Paused, the server holds about the high-water mark, not the megabytes
        # the client keeps sending (one message and one TLS record beyond it).
        held = totals(srv)["bytes_buffered"]
        assert 0 < held <= 64 * 1024 + 16000 + 17 * 1024, held
        for i in range(n):
            assert ws.recv_message(timeout=20) == (OP_BINARY, payload), i
        t.join(wse.scaled(20))
        assert not t.is_alive()
        wse.wait_until(lambda: totals(srv)["bytes_buffered"] == 0, 10, "output drained")


def test_a_pipelined_burst_of_records_is_all_echoed_in_order():
    """The server reads ahead (one read() takes all the socket holds): a
    burst whose records share segments and straddle them, corked by the
    client so the kernel sends full segments, comes back whole and in
    order: no record is left inside the server's TLS session unread."""
    sizes = [1, 125, 126, 1000, 4096, 16000, 16384, 40000, 3, 70000] * 4
    payloads = [os.urandom(n) for n in sizes]
    with tls_server() as srv:
        ws = tls_ws(srv.tls_port)

        import threading

        def writer():
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            for p in payloads:
                ws.sock.sendall(wse.frame(OP_BINARY, p))
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        for i, p in enumerate(payloads):
            assert ws.recv_message(timeout=20) == (OP_BINARY, p), i
        t.join(wse.scaled(20))
        assert not t.is_alive()
        assert totals(srv)["msgs_out_binary"] == len(payloads)


def test_proxy_v2_then_tls():
    import test_proxy
    with tls_server("--proxy-protocol", access_log=True) as srv:
        ws = tls_ws(srv.tls_port, proxy=test_proxy.v2("198.51.100.20", 7000))
        ws.send_text(b"behind haproxy")
        assert ws.recv_message() == (OP_TEXT, b"behind haproxy")
        ws.send_close(1000)
        ws.expect_close()
        ws.sock.close()
        srv.wait_for_access(r" peer=198\.51\.100\.20:7000 request=\"GET /websocket\" status=101 ",
                            1, 10)


def test_proxy_header_and_client_hello_in_one_segment():
    """The bytes behind the PROXY header are the ClientHello: TLS must start
    with them even though the socket then stays quiet."""
    import test_proxy
    with tls_server("--proxy-protocol", access_log=True) as srv:
        ctx = client_ctx()
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        sock = socket.create_connection((wse.HOST, srv.tls_port), timeout=wse.scaled(10))

        def pump(fn):
            while True:
                try:
                    r = fn()
                except ssl.SSLWantReadError:
                    if out.pending:
                        sock.sendall(out.read())
                    data = sock.recv(65536)
                    assert data, "server closed during the handshake"
                    inc.write(data)
                    continue
                if out.pending:
                    sock.sendall(out.read())
                return r
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(test_proxy.v2("203.0.113.50", 5050) + out.read())
        pump(obj.do_handshake)
        req, _ = wse.upgrade_request()
        pump(lambda: obj.write(req))
        head = b""
        while b"\r\n\r\n" not in head:
            head += pump(lambda: obj.read(65536))
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.close()
        srv.wait_for_access(r" peer=203\.0\.113\.50:5050 request=\"GET /websocket\" status=101 ",
                            1, 10)


# ---- bad input -----------------------------------------------------------------


def closed_by_server(sock, timeout):
    """True when the server closes sock (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def client_hello():
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def test_bad_input_on_the_tls_port_is_closed_counted_and_harms_nobody():
    with tls_server("--handshake-timeout", "1.5") as srv:
        plain = RawWS(srv.port)
        good = tls_ws(srv.tls_port)
        start = time.monotonic()
        socks = {}
        for what, data in (("random", b"\x00\x05\x17" + bytes(range(200))),
                           ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                           ("truncated", client_hello()[:40]),
                           ("stalled", b"")):
            s = socket.create_connection((wse.HOST, srv.tls_port), timeout=5)
            if data:
                s.sendall(data)
            socks[what] = s
        # Everyone else is served meanwhile.
        for i in range(20):
            plain.send_text(b"plain %d" % i)
            good.send_text(b"tls %d" % i)
            assert plain.recv_message() == (OP_TEXT, b"plain %d" % i)
            assert good.recv_message() == (OP_TEXT, b"tls %d" % i)
        for what, s in socks.items():
            assert closed_by_server(s, wse.scaled(6)), f"{what}: not closed"
            s.close()
        assert time.monotonic() - start < wse.scaled(6)
        t = totals(srv)
        assert t["tls_fail_http"] == 1, t
        assert t["tls_fail_timeout"] == 2, t        # truncated and stalled
        assert t["tls_fail_version"] + t["tls_fail_other"] == 1, t   # the random bytes
        # Still serving, and nothing but debug lines about them.
        plain.send_text(b"after")
        good.send_text(b"after")
        assert plain.recv_message() == (OP_TEXT, b"after")
        assert good.recv_message() == (OP_TEXT, b"after")
        assert not srv.find_lines(r"(warn|error) .*(TLS|handshake)"), srv.output()


def test_bad_certificate_files_are_named_by_t_and_at_start():
    cases = (
        (["--tls-cert", path("rsa.pem"), "--tls-key", path("mismatch.key")], "mismatch.key"),
        (["--tls-cert", path("expired.pem"), "--tls-key", path("expired.key")], "expired.pem"),
        (["--tls-cert", path("missing.pem"), "--tls-key", path("rsa.key")], "missing.pem"),
        (["--tls-cert", path("rsa.key"), "--tls-key", path("rsa.key")], "rsa.key"),
    )
    port = wse.free_port()
    for args, name in cases:
        p = subprocess.run([wse.binary(), "-t", "--tls-listen", f"127.0.0.1:{port}"] + args,
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and name in p.stderr, (args, p.stderr)
        p = subprocess.run([wse.binary(), "-w", "1", "-l", f"127.0.0.1:{wse.free_port()}",
                            "--tls-listen", f"127.0.0.1:{port}"] + args,
                           capture_output=True, text=True, timeout=wse.scaled(10))
        assert p.returncode != 0 and name in p.stderr, (args, p.stderr)
        assert "serving" not in p.stderr, p.stderr


# ---- sockets handed over -------------------------------------------------------


@wse.timeout(120)
def test_live_upgrade_hands_the_tls_listeners_over_as_tls():
    """SIGUSR2: the new master takes the same TLS sockets (named
    wsechod.tls.*, not bound again) and serves TLS on them, plain on the
    plain ones."""
    import test_upgrade as up
    with tempfile.TemporaryDirectory() as d:
        exe, pid_file = os.path.join(d, "wsechod"), os.path.join(d, "w.pid")
        up.install(wse.binary(), exe)
        tls_port = wse.free_port()
        with Server("--pid-file", pid_file, "--tls-listen", f"{wse.HOST}:{tls_port}",
                    *pair_args("ec"), exe=exe) as srv:
            inodes = up.listen_inodes(srv.pid)
            assert len(inodes) == 4, inodes         # 2 workers x (plain + TLS)
            p = up.upgrade(exe, pid_file, srv.port)
            assert p.returncode == 0, p.stdout + p.stderr
            new = up.read_pid(pid_file)
            assert new != srv.pid and up.listen_inodes(new) == inodes
            assert srv.proc.wait(wse.scaled(10)) == 0
            for _ in range(4):      # both workers' sockets, most likely
                ws = tls_ws(tls_port)
                ws.send_text(b"upgraded")
                assert ws.recv_message() == (OP_TEXT, b"upgraded")
                ws.sock.close()
            up.echo(srv.port, "plain after")
            up.stop_by_pid_file(pid_file)


@wse.timeout(120)
def test_a_reload_moving_an_address_between_plain_and_tls_keeps_its_sockets():
    """An address moved from listen to tls-listen (and back) by a reload
    keeps its listening sockets, as any kept address does: nothing queued in
    them is reset.  The old workers go on serving plain until they drain,
    the new ones serve TLS on the same sockets."""
    import test_upgrade as up
    port = wse.free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "wsechod.conf")

        def write_conf(tls):
            with open(conf + ".new", "w") as f:
                f.write("workers = 2\ndrain-timeout = 60\n")
                if tls:
                    f.write(f"listen = off\ntls-listen = {wse.HOST}:{port}\n"
                            f"tls-cert = {path('rsa.pem')}\ntls-key = {path('rsa.key')}\n")
                else:
                    f.write(f"listen = {wse.HOST}:{port}\n")
            os.replace(conf + ".new", conf)

        def reload(generation):
            """Until the old workers stop accepting (their "draining" line), a
            new connection may still meet the old protocol."""
            mark = srv.mark()
            srv.signal(signal.SIGHUP)
            srv.wait_for_line(rf"generation {generation} serving", 20, start=mark)
            first = srv.wait_for_line(r"\] draining \d+ connection", 20, start=mark)
            srv.wait_for_line(r"\] draining \d+ connection", 20,
                              start=srv.lines.index(first.string) + 1)

        write_conf(False)
        with Server("-c", conf, port=port, workers=None, cli_listen=False) as srv:
            inodes = up.listen_inodes(srv.pid)
            assert len(inodes) == 2, inodes
            held = RawWS(port)
            held.echo(OP_TEXT, b"plain before")
            write_conf(True)
            reload(2)
            assert up.listen_inodes(srv.pid) == inodes
            ws = tls_ws(port)
            ws.send_text(b"tls now")
            assert ws.recv_message() == (OP_TEXT, b"tls now")
            held.echo(OP_TEXT, b"plain, on its draining worker")
            write_conf(False)
            reload(3)
            assert up.listen_inodes(srv.pid) == inodes
            with RawWS(port) as again:
                again.echo(OP_TEXT, b"plain again")
            ws.send_text(b"tls, on its draining worker")
            assert ws.recv_message() == (OP_TEXT, b"tls, on its draining worker")
            assert not srv.find_lines(r"stopped listening"), srv.find_lines(r"stopped listening")
            ws.sock.close()
            held.sock.close()


# ---- rotation by SIGHUP, resumption ----------------------------------------------


def replace_file(src, dst):
    """dst gets src's bytes the way a renewal should: a new file renamed over."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst + ".new", "wb") as f:
        f.write(data)
    os.replace(dst + ".new", dst)


def served_serial(port):
    rc, out = s_client(port, "-showcerts")
    assert rc == 0, out
    return leaf_serial(out)


@wse.timeout(120)
def test_sighup_rotates_the_certificate_and_keeps_open_connections():
    import test_upgrade as up
    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        replace_file(path("rsa.pem"), cert)
        replace_file(path("rsa.key"), key)
        n = up.Notifications(os.path.join(d, "notify"))
        try:
            tls_port = wse.free_port()
            with Server("--tls-listen", f"{wse.HOST}:{tls_port}", "--tls-cert", cert,
                        "--tls-key", key, "--drain-timeout", "60",
                        env={"NOTIFY_SOCKET": n.sock.getsockname()}) as srv:
                n.until(lambda f: f.get("READY") == "1")
                assert served_serial(tls_port) == serial_of("rsa")
                held = tls_ws(tls_port)
                held.send_text(b"before")
                assert held.recv_message() == (OP_TEXT, b"before")

                replace_file(path("ec.pem"), cert)
                replace_file(path("ec.key"), key)
                mark = srv.mark()
                srv.signal(signal.SIGHUP)
                srv.wait_for_line(r"generation 2 serving", 20, start=mark)
                assert served_serial(tls_port) == serial_of("ec")
                # The open connection keeps its session, on its draining worker.
                for i in range(3):
                    held.send_text(b"still %d" % i)
                    assert held.recv_message() == (OP_TEXT, b"still %d" % i)
                assert int(held.sock.getpeercert()["serialNumber"], 16) == serial_of("rsa")

                # A key that does not match: the reload is rejected, nothing changes.
                replace_file(path("mismatch.key"), key)
                mark = srv.mark()
                srv.signal(signal.SIGHUP)
                line = srv.wait_for_line(r"reload: .*key\.pem does not match certificate .*"
                                         r"cert\.pem; configuration unchanged", 20, start=mark)
                assert line
                msgs = n.until(lambda f: "reload rejected" in f.get("STATUS", ""))
                assert "key.pem" in msgs[-1][0]["STATUS"], msgs
                assert served_serial(tls_port) == serial_of("ec")
                held.send_text(b"after the rejected reload")
                assert held.recv_message() == (OP_TEXT, b"after the rejected reload")
                assert not srv.find_lines(r"generation 3")
                held.send_close(1000)
                held.expect_close()
                held.sock.close()
        finally:
            n.close()


def worker_counters(srv):
    return {w["pid"]: w["counters"] for w in stats(srv)["workers"]
            if w["state"] == "running"}


def landed(before, after, counter):
    """The worker pid whose counter grew between two worker_counters()."""
    grown = [pid for pid, c in after.items() if c[counter] > before.get(pid, {}).get(counter, 0)]
    assert len(grown) == 1, (before, after)
    return grown[0]


@wse.timeout(120)
def test_session_resumption_across_workers_and_reloads():
    """A ticket issued by one worker resumes on the other (s_client -sess_out
    then -sess_in), for TLS 1.2 and 1.3, and after a reload too."""
    healthz = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with tls_server(names=("rsa",)) as srv, tempfile.TemporaryDirectory() as d:
        sess = os.path.join(d, "sess.pem")
        for version in ("-tls1_2", "-tls1_3"):
            before = worker_counters(srv)
            rc, out = s_client(srv.tls_port, version, "-sess_out", sess, "-ign_eof", data=healthz)
            assert rc == 0 and "\nNew, TLSv1." in out and "\r\n\r\nok\n" in out, out
            first = landed(before, worker_counters(srv),
                           "tls_hs_12" if version == "-tls1_2" else "tls_hs_13")
            for attempt in range(40):
                before = worker_counters(srv)
                rc, out = s_client(srv.tls_port, version, "-sess_in", sess, "-ign_eof",
                                   data=healthz)
                assert rc == 0 and "\nReused, TLSv1." in out, out
                if landed(before, worker_counters(srv), "tls_resumed") != first:
                    break
            else:
                raise AssertionError("40 resumptions, none on the other worker")
        # The ticket keys outlive a generation.
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"generation 2 serving", 20, start=mark)
        rc, out = s_client(srv.tls_port, "-tls1_3", "-sess_in", sess, "-ign_eof", data=healthz)
        assert rc == 0 and "\nReused, TLSv1.3" in out, out


@wse.timeout(300)
def test_reload_torture_tls_rotates_20_times_losing_nothing():
    """scripts/reload_torture.py --tls: clients echoing over wss, the
    certificate swapped and SIGHUP sent 20 times: no failed handshake, no
    message lost, new handshakes see each new serial."""
    import test_reload
    clients = "60" if wse.SAN else "150"
    out = test_reload.torture("--tls", "--clients", clients, "--reloads", "20", "--duration",
                              "8", "--timeout", str(wse.scaled(10)), timeout=240)
    assert "connect failures 0, resets 0" in out and "lost 0, corrupted 0" in out, out
    assert "certificate swaps 20," in out and ", failed 0\n" in out.split("serial checks")[1], out


# ---- other clients -----------------------------------------------------------------


@wse.timeout(60)
def test_node_ws_over_wss():
    """npm's ws over wss://, trusting the test CA (NODE_EXTRA_CA_CERTS)."""
    import test_node
    node = test_node.node_binary()
    with tls_server(access_log=True) as srv:
        r = subprocess.run([node, test_node.SCRIPT, f"wss://127.0.0.1:{srv.tls_port}/websocket"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=wse.scaled(40),
                           env=dict(os.environ, NODE_EXTRA_CA_CERTS=path("ca.pem")))
        out = (r.stdout + r.stderr).decode(errors="replace").strip()
        assert r.returncode == 0, f"node client failed ({r.returncode}): {out}"
        assert out.startswith("ok 11 code 1000"), out
        srv.wait_for_access(r"status=101 .* close=1000 by=client", 1, 5)
        assert totals(srv)["tls_hs_13"] == 1


def spki_pin(pem):
    """base64 SHA-256 of a certificate's public key, as Chromium's
    --ignore-certificate-errors-spki-list takes it (only that key is trusted)."""
    import base64
    import hashlib
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", pem],
                         capture_output=True, check=True, timeout=10).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True, timeout=10).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@wse.timeout(90)
def test_chromium_opens_the_page_over_https_and_echoes_through_wss():
    import cdp
    import test_browser as tb
    cdp.require_chromium()
    pins = ",".join(spki_pin(path(n + ".pem")) for n in ("rsa", "ec"))
    with tls_server("--log-level", "debug") as srv, \
            cdp.Chromium(start_timeout=30,
                         extra_args=[f"--ignore-certificate-errors-spki-list={pins}"]) as browser:
        async def drive():
            base = f"https://{wse.HOST}:{srv.tls_port}"
            ws_url = f"wss://{wse.HOST}:{srv.tls_port}/websocket"
            async with cdp.connect(browser.ws_url, timeout=wse.scaled(20)) as conn:
                page = await tb.watched_page(conn)
                await tb.open_page(page, base + "/", ws_url)
                lines = []
                await tb.send_by_ui(page, tb.TEXT, lines)
                await tb.send_by_ui(page, tb.TEXT_ENTER, lines, enter=True)
                await conn.send("Target.closeTarget", {"targetId": page.target})
        asyncio.run(drive())
        srv.wait_for_line(r"close 1001 from client", 10)
        t = totals(srv)
        assert t["tls_hs_12"] + t["tls_hs_13"] >= 2 and t["msgs_in_text"] == 2, t


HAPROXY_TLS_CFG = """
global
    maxconn 200
defaults
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
frontend plain_in
    mode http
    bind 127.0.0.1:{http_port}
    default_backend wsechod_tls
backend wsechod_tls
    mode http
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    server a 127.0.0.1:{tls} ssl verify required ca-file {ca} verifyhost localhost sni str(localhost) alpn http/1.1 send-proxy-v2 check inter 200ms
frontend passthrough
    mode tcp
    bind 127.0.0.1:{tcp_port}
    default_backend wsechod_tcp
backend wsechod_tcp
    mode tcp
    server a 127.0.0.1:{tls} send-proxy-v2
"""


@wse.timeout(120)
def test_haproxy_verifies_the_tls_backend_and_passes_tls_through_with_proxy_v2():
    """HAProxy 2.6 to a TLS address: HTTP mode re-encrypting with `ssl verify
    required ca-file` (health checks over TLS too), and TCP mode passing the
    client's own TLS through; PROXY v2 first in both, so the access log names
    the client."""
    import shutil
    if not shutil.which("haproxy"):
        raise wse.Skip("haproxy is not installed (scripts/deps.sh installs it)")
    with tls_server("--proxy-protocol", access_log=True) as srv, \
            tempfile.TemporaryDirectory() as d:
        http_port, tcp_port = wse.free_port(), wse.free_port()
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_TLS_CFG.format(http_port=http_port, tcp_port=tcp_port,
                                           tls=srv.tls_port, ca=path("ca.pem")))
        log = open(os.path.join(d, "haproxy.log"), "w+")
        lb = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT)
        try:
            async def echo(uri, text, **kw):
                async with wse.ws_connect(uri, ping_interval=None, **kw) as ws:
                    await ws.send(text)
                    assert await wse.wait_for(ws.recv(), 10, "echo through haproxy") == text
                    return ws.local_address[1]

            def up():
                try:
                    return asyncio.run(echo(f"ws://{wse.HOST}:{http_port}/websocket", "up"))
                except Exception:
                    return False
            wse.wait_until(up, wse.scaled(15), "an echo through haproxy (its output: see below)")
            for i in range(3):
                port = asyncio.run(echo(f"ws://{wse.HOST}:{http_port}/websocket", f"re {i}"))
                srv.wait_for_access(rf" peer={wse.HOST}:{port} request=\"GET /websocket\" "
                                    r"status=101 ", 1, 10)
                port = asyncio.run(echo(f"wss://localhost:{tcp_port}/websocket", f"tcp {i}",
                                        ssl=client_ctx()))
                srv.wait_for_access(rf" peer={wse.HOST}:{port} request=\"GET /websocket\" "
                                    r"status=101 ", 1, 10)
            t = totals(srv)
            assert t["handshakes"] >= 7 and t["tls_fail_other"] == 0, t
            assert t["http_other"] >= 1, t      # HAProxy's health checks, over TLS
        except AssertionError as e:
            log.seek(0)
            raise AssertionError(f"{e}\nhaproxy's output:\n" + log.read()) from None
        finally:
            lb.terminate()
            lb.wait(wse.scaled(10))
            log.close()


@wse.timeout(120)
def test_resumed_handshakes_cycling_leave_no_connection_spinning():
    """wsbench --connect-rate --tls-resume, 10 at a time, again and again:
    clients that leave with close_notify while the server still writes.  A
    write that met the close_notify used to report 0 bytes written and the
    worker retried it forever (100% CPU, nothing else served)."""
    wsbench = os.path.join(os.path.dirname(wse.binary()), "wsbench")
    if not os.path.exists(wsbench):
        raise wse.Skip("build/wsbench is not built")
    with tls_server(workers=1, names=("ec",)) as srv:
        for _ in range(8):
            p = subprocess.run([wsbench, "--connect-rate", "--tls-resume", "-c", "20", "-d", "1",
                                "--json", f"wss://127.0.0.1:{srv.tls_port}/websocket"],
                               capture_output=True, text=True, timeout=wse.scaled(30))
            assert json.loads(p.stdout)["connections_completed"] > 0, p.stdout + p.stderr
        wse.wait_until(lambda: totals(srv)["conn_open"] == 0, 10, "every connection closed")
        r = subprocess.run(["curl", "-sS", "--cacert", path("ca.pem"), "--max-time", "5",
                            f"https://localhost:{srv.tls_port}/healthz"],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout == "ok\n", r
