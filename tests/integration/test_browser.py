"""
The browser page in a real headless Chromium, driven over the DevTools
protocol (cdp.py): a browser's GET of the endpoint and GET / both serve the
page; it connects; a message typed into the box and sent with a click (and
one sent with Enter) comes back into the log as text, an empty one as
"(empty message)"; the page loads nothing but itself and its WebSocket, with
no console error; after a reload drains its connection, its Reconnect button
connects again; with --allow-origin naming another site, the page still
connects to its own server.

Skipped (never passed) when /usr/bin/chromium is not installed.
"""
import asyncio
import html
import json
import re
import signal
import subprocess

import cdp
import wse
from wse import Server

# Markup, an ampersand, quotes, non-ASCII and an astral character: the log
# must show every one of them as text.
TEXT = 'h\u00e9llo <b>wsechod</b> & "friends" \u2713 \U0001F642'
TEXT_ENTER = "a second one, sent with Enter"

# The page's state in one look.
STATE = """(() => {
  const q = (s) => document.querySelector(s);
  return {href: location.href, ready: document.readyState,
          status: q("#status") ? q("#status").textContent : null,
          value: q("#msg") ? q("#msg").value : null,
          focus: document.activeElement ? document.activeElement.id : null,
          reconnect_shown: q("#reconnect") ? !q("#reconnect").hidden : null,
          log: q("#log") ? [...q("#log").children].map(d => [d.tagName, d.className, d.textContent])
                         : null,
          html: q("#log") ? q("#log").innerHTML : null,
          resources: performance.getEntriesByType("resource").map(e => e.name)};
})()"""


def shown(cls, prefix, text):
    """A log line as the page shows it: an empty message as an italic
    "(empty message)", so that its echo is seen."""
    if text == "":
        return (cls + " empty", prefix + "(empty message)")
    return (cls, prefix + text)


def log_html(entries):
    """#log's innerHTML for these (class, text) lines, as the page builds them."""
    return "".join(f'<div class="{cls}">{html.escape(text, quote=False)}</div>'
                   for cls, text in entries)


async def open_page(page, url, ws_url):
    """Loads url, waits until its WebSocket is open; returns the document's
    response body as Chromium received it."""
    await page.navigate(url)
    st = await page.wait_until(
        STATE, lambda s: s and s["href"] == url and s["status"] == f"connected to {ws_url}",
        wse.scaled(20), f"{url} to say 'connected to {ws_url}'")
    assert st["log"] == [] and st["value"] == "", f"a fresh page is not empty: {st}"

    req = await page.wait_event("Network.requestWillBeSent",
                                lambda p: p["request"]["url"] == url and p.get("type") == "Document",
                                wse.scaled(10), f"the request of {url}")
    # The headers as sent (requestWillBeSent has only those Blink set).
    sent = await page.wait_event("Network.requestWillBeSentExtraInfo",
                                 lambda p: p["requestId"] == req["requestId"],
                                 wse.scaled(10), f"the headers sent for {url}")
    accept = {k.lower(): v for k, v in sent["headers"].items()}.get("accept", "")
    assert "text/html" in accept, f"Chromium sent Accept: {accept!r}"
    resp = await page.wait_event("Network.responseReceived",
                                 lambda p: p["requestId"] == req["requestId"],
                                 wse.scaled(10), f"the response to {url}")
    r = resp["response"]
    assert r["status"] == 200, f"{url} answered {r['status']}"
    assert r["mimeType"] == "text/html", f"{url} served {r['mimeType']}"
    await page.wait_event("Network.loadingFinished", lambda p: p["requestId"] == req["requestId"],
                          wse.scaled(10), f"the body of {url}")
    body = await page.send("Network.getResponseBody", {"requestId": req["requestId"]})
    assert not body.get("base64Encoded"), "the page came back as binary"
    return body["body"]


async def send_by_ui(page, text, lines, enter=False):
    """Clicks into the box, types text, sends it with a click on Send (or
    Enter) and waits for the echo; lines: the log so far, updated."""
    await page.click("#msg")
    await page.wait_until(STATE, lambda s: s["focus"] == "msg", wse.scaled(10),
                          "the text box to take the focus after a click")
    if text:
        await page.type(text)
    await page.wait_until(STATE, lambda s: s["value"] == text, wse.scaled(10),
                          f"the text box to hold {text!r}")
    if enter:
        await page.press_enter()
    else:
        await page.click("#send")
    lines += [shown("out", "> ", text), shown("in", "", text)]
    want = [["DIV", cls, t] for cls, t in lines]
    st = await page.wait_until(STATE, lambda s: len(s["log"]) >= len(want), wse.scaled(10),
                               f"the echo of {text!r} in the log")
    assert st["log"] == want, f"log {st['log']}, expected {want}"
    assert st["html"] == log_html(lines), f"log markup {st['html']!r}"
    assert st["value"] == "", f"the box still holds {st['value']!r} after sending"
    assert st["status"].startswith("connected to "), f"status {st['status']!r}"
    return st


async def watched_page(conn):
    """A new tab with the CDP domains the tests read events of enabled."""
    page = await conn.new_page()
    for domain in ("Network", "Page", "Runtime", "Log"):
        await page.send(f"{domain}.enable")
    return page


async def drive(srv, browser):
    base = f"http://{wse.HOST}:{srv.port}"
    ws_url = f"ws://{wse.HOST}:{srv.port}/websocket"
    async with cdp.connect(browser.ws_url, timeout=wse.scaled(20)) as conn:
        page = await watched_page(conn)

        # A browser's GET of the endpoint: the page, which connects there.
        first = await open_page(page, base + "/websocket", ws_url)
        lines = []
        await send_by_ui(page, TEXT, lines)
        st = await send_by_ui(page, TEXT_ENTER, lines, enter=True)
        assert st["resources"] == [], f"the page loaded {st['resources']}"
        first_peer = srv.wait_for_line(r"(\d+\.\d+\.\d+\.\d+:\d+) open /websocket\b", 10).group(1)

        # GET /: the same page, and it works the same.  Leaving the first
        # page closes its WebSocket properly (1001, going away).
        mark = srv.mark()
        second = await open_page(page, base + "/", ws_url)
        srv.wait_for_line(rf"{re.escape(first_peer)} close 1001 from client", 10)
        assert second == first, "GET / and a browser's GET /websocket serve different pages"
        st = await send_by_ui(page, TEXT, [])
        assert st["resources"] == [], f"the page loaded {st['resources']}"
        second_peer = srv.wait_for_line(r"(\d+\.\d+\.\d+\.\d+:\d+) open /websocket\b", 10,
                                        start=mark).group(1)

        # Nothing but the page and its WebSocket, all on our server.
        urls = []
        for e in page.events():
            p = e["params"]
            if e["method"] == "Network.requestWillBeSent":
                urls.append(p["request"]["url"])
            elif e["method"] in ("Network.webSocketCreated", "Network.webTransportCreated"):
                urls.append(p["url"])
        outside = [u for u in urls if not (u.startswith(base + "/") or u.startswith(ws_url))]
        assert not outside, f"the page made requests off the server: {outside}"
        assert sorted(urls) == sorted([base + "/websocket", ws_url, base + "/", ws_url]), \
            f"requests made: {urls}"
        failed = page.events("Network.loadingFailed")
        assert not failed, f"failed loads: {[e['params'] for e in failed]}"
        errors = [e["params"]["entry"] for e in page.events("Log.entryAdded")
                  if e["params"]["entry"]["level"] == "error"]
        errors += [e["params"]["exceptionDetails"] for e in page.events("Runtime.exceptionThrown")]
        errors += [e["params"] for e in page.events("Runtime.consoleAPICalled")
                   if e["params"]["type"] in ("error", "assert")]
        assert not errors, f"console errors: {errors}"
        refused = srv.find_lines(r" http \d{3} ")
        assert not refused, f"the server refused a request: {refused[0].string}"

        # An empty message: its echo shows.
        lines = [("out", "> " + TEXT), ("in", TEXT)]
        await send_by_ui(page, "", lines)

        # A reload drains this connection (1001); the page says so and its
        # Reconnect button opens a new WebSocket to the new generation.
        mark = srv.mark()
        srv.signal(signal.SIGHUP)
        srv.wait_for_line(r"reload: generation 2 serving", 20)
        st = await page.wait_until(STATE, lambda s: s["status"] == "closed (1001)"
                                   and s["reconnect_shown"], wse.scaled(20),
                                   "the page to show the drain's close and a Reconnect button")
        await page.click("#reconnect")
        st = await page.wait_until(STATE, lambda s: s["status"] == f"connected to {ws_url}"
                                   and not s["reconnect_shown"], wse.scaled(20),
                                   "the page to connect again after a click on Reconnect")
        await send_by_ui(page, TEXT_ENTER, lines, enter=True)
        third_peer = srv.wait_for_line(r"(\d+\.\d+\.\d+\.\d+:\d+) open /websocket\b", 10,
                                       start=mark).group(1)

        # Closing the tab closes its WebSocket properly too.
        await conn.send("Target.closeTarget", {"targetId": page.target})
        srv.wait_for_line(rf"{re.escape(third_peer)} close 1001 from client", 10)


@wse.timeout(60)
def test_browser_types_and_clicks_and_sees_the_echo():
    cdp.require_chromium()
    # Debug: the per-connection lines (open, close from client, http NNN).
    with Server("--drain-timeout", "0", "--log-level", "debug") as srv, cdp.Chromium(start_timeout=30) as browser:
        asyncio.run(drive(srv, browser))


async def drive_allow_listed(srv, browser):
    base = f"http://{wse.HOST}:{srv.port}"
    ws_url = f"ws://{wse.HOST}:{srv.port}/websocket"
    async with cdp.connect(browser.ws_url, timeout=wse.scaled(20)) as conn:
        page = await watched_page(conn)
        await open_page(page, base + "/", ws_url)
        await send_by_ui(page, TEXT, [])
        srv.wait_for_line(r"\d+\.\d+\.\d+\.\d+:\d+ open /websocket\b", 10)
        refused = srv.find_lines(r" http \d{3} | origin refused")
        assert not refused, f"the server refused its own page: {refused[0].string}"


@wse.timeout(60)
def test_browser_page_works_with_allow_origin():
    """--allow-origin for another site does not lock out the server's own
    page: its Origin names the address the browser connected to."""
    cdp.require_chromium()
    # Debug: the per-connection lines (open, http NNN) are looked for.
    with Server("--allow-origin", "https://example.com", "--log-level", "debug") as srv, \
            cdp.Chromium(start_timeout=30) as browser:
        asyncio.run(drive_allow_listed(srv, browser))


async def drive_deflate(srv, browser):
    base = f"http://{wse.HOST}:{srv.port}"
    ws_url = f"ws://{wse.HOST}:{srv.port}/websocket"
    async with cdp.connect(browser.ws_url, timeout=wse.scaled(20)) as conn:
        page = await watched_page(conn)
        await open_page(page, base + "/", ws_url)
        hs = await page.wait_event("Network.webSocketHandshakeResponseReceived",
                                   lambda p: True, wse.scaled(10), "the WebSocket's 101")
        headers = {k.lower(): v for k, v in hs["response"]["headers"].items()}
        ext = headers.get("sec-websocket-extensions", "")
        assert ext.startswith("permessage-deflate"), f"101 headers {headers}"
        lines = []
        await send_by_ui(page, TEXT, lines)
        await send_by_ui(page, "deflate " * 40, lines)      # long enough to be compressed
        srv.wait_for_line(r"permessage-deflate: accepted", 10)
        refused = srv.find_lines(r"failing connection")
        assert not refused, refused[0].string
        # The browser compressed them: fewer text bytes arrived than were typed.
        p = subprocess.run([wse.binary(), "stats", "--stats-name", f"wsechod.{srv.port}",
                            "--json"], capture_output=True, text=True, timeout=wse.scaled(10))
        got = sum(w["counters"]["bytes_in_text"] for w in json.loads(p.stdout)["workers"])
        typed = len(TEXT.encode()) + len(("deflate " * 40).encode())
        assert 0 < got < typed, f"{got} text bytes on the wire for {typed} typed"


@wse.timeout(60)
def test_browser_page_over_permessage_deflate():
    """Chromium offers permessage-deflate on every WebSocket: with the
    extension on, the page's connection negotiates it (the 101's header as
    the browser saw it) and the typed messages still come back."""
    cdp.require_chromium()
    with Server("--permessage-deflate", "--log-level", "debug") as srv, \
            cdp.Chromium(start_timeout=30) as browser:
        asyncio.run(drive_deflate(srv, browser))
