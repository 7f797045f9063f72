"""HEAD and the other methods over raw HTTP: a HEAD of every resource gets
the GET's status line and headers (Content-Length of the GET's body
included) and no body byte before the close; a HEAD never upgrades; every
405 names the allowed methods in Allow (RFC 9110 9.3.2, 15.5.6)."""
import wse
from wse import HOST, Server


def exchange(port, data, timeout=10):
    """Sends data, returns (head, after_head, closed): every byte the server
    sent before it closed, split after the blank line that ends the head."""
    raw, closed = wse.raw_exchange(port, data, timeout, stop_at_101=False)
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP head in {raw[:300]!r}"
    return head + sep, rest, closed


def plain(method, path, *headers):
    return f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"


def upgrade(method, path="/websocket"):
    req, _ = wse.upgrade_request(path=path)
    return req.decode().replace("GET ", method + " ", 1)


def status_of(head):
    return int(head.split(b" ", 2)[1])


def header(head, name):
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


ACCEPT_HTML = "Accept: text/html,application/xhtml+xml,*/*;q=0.8"

# (label, path, extra headers, status GET gets)
RESOURCES = [
    ("the page at /", "/", (), 200),
    ("the page at the endpoint, for a browser", "/websocket", (ACCEPT_HTML,), 200),
    ("/healthz", "/healthz", (), 200),
    ("the endpoint without Upgrade", "/websocket", (), 426),
]


def test_head_is_get_without_body():
    with Server() as srv:
        for label, path, extra, status in RESOURCES:
            get_head, get_body, closed = exchange(srv.port, plain("GET", path, *extra))
            assert closed and status_of(get_head) == status, f"GET {label}: {get_head!r}"
            assert get_body, f"GET {label} has no body to leave out"
            head, after, closed = exchange(srv.port, plain("HEAD", path, *extra))
            assert closed, f"HEAD {label}: the server kept the connection open"
            assert head == get_head, f"HEAD {label}: head differs from GET's:\n{head!r}\n{get_head!r}"
            assert header(head, "Content-Length") == str(len(get_body)), head
            assert after == b"", f"HEAD {label}: {len(after)} body bytes sent: {after[:80]!r}"


def test_head_with_upgrade_does_not_upgrade():
    """RFC 6455 asks for GET: a HEAD with the upgrade headers gets what a
    GET without them gets (426), without a body, and no 101."""
    with Server() as srv:
        want, body, _ = exchange(srv.port, plain("GET", "/websocket"))
        assert status_of(want) == 426 and body
        head, after, closed = exchange(srv.port, upgrade("HEAD"))
        assert closed, "the connection stayed open after a HEAD with Upgrade"
        assert head == want, f"HEAD with Upgrade: {head!r}, expected {want!r}"
        assert after == b"", f"body bytes after the head: {after[:80]!r}"
        # The same request as GET still upgrades: only the method changed.
        assert wse.http_request(srv.port, upgrade("GET")).status == 101


def test_405_carries_allow():
    with Server() as srv:
        cases = []
        for path in ("/", "/healthz", "/websocket"):
            for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "head", "BREW"):
                cases.append((f"{method} {path}", plain(method, path)))
            cases.append((f"POST {path} with Upgrade", upgrade("POST", path)))
        for label, req in cases:
            r = wse.http_request(srv.port, req)
            assert r.status == 405, f"{label}: {r.status}, expected 405:\n{r.raw[:300]!r}"
            assert r.closed, f"{label}: the server kept the connection open"
            assert r.headers.get("allow") == "GET, HEAD", f"{label}: Allow {r.headers.get('allow')!r}"
        # What is not here is 404, whatever the method.
        for method in ("GET", "HEAD", "POST"):
            head, _, _ = exchange(srv.port, plain(method, "/nope"))
            assert status_of(head) == 404, f"{method} /nope: {head!r}"


def test_head_refused_has_no_body():
    """A HEAD refused for its syntax or size gets the refusal's head alone."""
    with Server() as srv:
        for label, extra, status in (("9000-byte header", f"X-Filler: {'a' * 9000}", 431),
                                     ("space before colon", "X-Bad : 1", 400)):
            get_head, get_body, _ = exchange(srv.port, plain("GET", "/", extra))
            assert status_of(get_head) == status and get_body, (label, get_head)
            head, after, closed = exchange(srv.port, plain("HEAD", "/", extra))
            assert closed and head == get_head, f"HEAD with {label}: {head!r}"
            assert after == b"", f"HEAD with {label}: body {after[:80]!r}"
