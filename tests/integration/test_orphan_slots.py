"""A worker slot in crash-loop back-off: its SO_REUSEPORT sockets, to which
the kernel keeps hashing new connections, are served by a live worker until
the slot's own worker is back, and left to it then."""
import os
import re
import select
import signal
import socket
import time

import wse
from wse import OP_TEXT, RawWS, Server, push_into_backoff, ready_worker, upgrade_request

ECHO_WITHIN = 0.1          # seconds: connect, handshake and echo of one new connection


def timed_echo(port, i):
    """Seconds from connect to echo of one new connection (fails past ECHO_WITHIN)."""
    t0 = time.monotonic()
    with RawWS(port, timeout=ECHO_WITHIN) as ws:
        ws.send_text(f"n{i}")
        assert ws.recv_message(timeout=ECHO_WITHIN) == (OP_TEXT, f"n{i}".encode()), i
    return time.monotonic() - t0


@wse.timeout(60)
def test_new_connections_succeed_while_a_slot_is_in_backoff():
    with Server("--log-level", "debug", workers=2, worker_deaths_ok=True) as srv:
        delay, announced = push_into_backoff(srv, 1, 3.0)
        mark = srv.mark()
        # The kernel hashes about half of these to slot 1's socket, whose
        # worker is not back for `delay` seconds.
        slowest = 0.0
        for i in range(50):
            try:
                slowest = max(slowest, timed_echo(srv.port, i))
            except (socket.timeout, TimeoutError) as e:
                raise AssertionError(f"connection {i} got no echo within {ECHO_WITHIN} s "
                                     f"({wse.scaled(ECHO_WITHIN):.2f} s scaled)") from e
        assert time.monotonic() < announced + delay, \
            "the back-off ended before the connections were made: they proved nothing"
        with srv.cond:
            since = srv.lines[mark:]
        assert not [l for l in since if re.search(r"\] worker 1 \(pid \d+, generation \d+\) ready", l)], \
            "slot 1's worker came back during the test"
        assert slowest < wse.scaled(ECHO_WITHIN), slowest
        srv.wait_for_line(r"worker 0 \(pid \d+\) serves slot 1's sockets until its worker is back", 1)


def answered(socks, within):
    """Which of socks get a byte back from the server within `within` seconds."""
    got = set()
    deadline = time.monotonic() + within
    while len(got) < len(socks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([s for s in socks if s not in got], [], [], left)
        got.update(ready)
    return got


@wse.timeout(60)
def test_the_adopter_leaves_the_sockets_when_the_worker_is_back():
    with Server("--log-level", "debug", workers=2, worker_deaths_ok=True) as srv:
        push_into_backoff(srv, 1, 0.4)
        mark = srv.mark()
        srv.wait_for_line(r"worker 0 \(pid \d+\) serves slot 1's sockets", 5)
        back = ready_worker(srv, 1, mark, timeout=10)
        srv.wait_for_line(r"worker 0 \(pid \d+\) leaves slot 1's sockets to its worker again", 5,
                          start=mark)
        srv.wait_for_line(r"\[worker 0 pid \d+\] leaving 1 socket of slot 1", 5, start=mark)
        # With slot 1's worker stopped, what the kernel queues on its socket
        # waits for it: worker 0 watches its own socket only.
        socks = []
        os.kill(back, signal.SIGSTOP)
        try:
            for _ in range(16):
                s = socket.create_connection((wse.HOST, srv.port), timeout=wse.scaled(5))
                s.sendall(upgrade_request()[0])
                socks.append(s)
            early = answered(socks, wse.scaled(1.0))
            assert 0 < len(early) < len(socks), \
                f"{len(early)} of {len(socks)} answered with slot 1's worker stopped"
        finally:
            os.kill(back, signal.SIGCONT)
        try:
            # Nothing queued on slot 1's socket was lost: its worker answers now.
            late = answered(socks, wse.scaled(5.0))
            assert len(late) == len(socks), f"{len(socks) - len(late)} never answered"
        finally:
            for s in socks:
                s.close()
