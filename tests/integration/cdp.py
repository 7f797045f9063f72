"""
cdp.py - a headless Chromium driven over the Chrome DevTools Protocol, for
the browser test (no chromedriver, no playwright: Python's websockets only).

  require_chromium()  the browser's path, or wse.Skip when it is not installed.
  Chromium            the browser as a context manager: a fresh profile in a
                      temp dir, DevTools on a free loopback port (its URL read
                      from the "DevTools listening on" line of its stderr),
                      stopped by pid (SIGTERM, wait, SIGKILL) with every
                      process it started, the temp dir removed.
  connect(url)        an async DevTools connection (async with): send()
                      commands, read events; new_page() opens a tab and
                      attaches to it (a flat session).
  Page                one tab: navigate, evaluate, wait_until, click, type.

Every wait waits for an event (a stderr line, a DevTools answer) or polls a
page condition up to a deadline; nothing sleeps a fixed time.
"""
import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import wse

CHROMIUM = "/usr/bin/chromium"

# A headless browser that talks to nobody but us: no background services,
# no DNS but for 127.0.0.1, no proxy from the environment.
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps",
    "--disable-breakpad", "--metrics-recording-only", "--disable-domain-reliability",
    "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1024,768",
    # Leaving a page unloads it (and closes its WebSocket) instead of caching it.
    "--disable-features=BackForwardCache",
]

LISTENING_RE = re.compile(r"DevTools listening on (ws://\S+)")


def require_chromium():
    """Path of the browser; raises wse.Skip when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        raise wse.Skip(f"chromium not installed: no executable {CHROMIUM} "
                       "(apt-get install --no-install-recommends chromium)")
    return CHROMIUM


def _descendants(pid):
    """[(pid, starttime)] of every process below pid, now."""
    out, todo = [], [pid]
    while todo:
        for kid in wse.children_of(todo.pop()):
            st = wse.proc_stat(kid)
            if st:
                out.append((kid, st[2]))
                todo.append(kid)
    return out


class Chromium:
    """
    with Chromium() as browser:
        ... browser.ws_url (the browser's DevTools endpoint), browser.pid ...
    """

    def __init__(self, binary=None, start_timeout=45, extra_args=()):
        self.binary = binary or require_chromium()
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args)
        self.proc = None
        self.tmp = None
        self.ws_url = None
        self.lines = []
        self.cond = threading.Condition()
        self.reader = None
        self.reader_done = False

    @property
    def pid(self):
        return self.proc.pid

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.reader_done = True
            self.cond.notify_all()

    def tail(self, n=30):
        """Its last stderr lines, without the noise of a machine with no D-Bus."""
        with self.cond:
            lines = [l for l in self.lines if l.strip() and "dbus" not in l.lower()]
        return "\n".join("    | " + l for l in lines[-n:])

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="wse-chromium-")
        argv = [self.binary] + FLAGS + self.extra_args + [
            f"--user-data-dir={self.tmp}", "--remote-debugging-port=0", "about:blank"]
        env = dict(os.environ, HOME=self.tmp, XDG_CONFIG_HOME=self.tmp, XDG_CACHE_HOME=self.tmp)
        for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env.pop(k, None)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, cwd=self.tmp,
                                     preexec_fn=wse._die_with_parent)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + self.start_timeout
        i = 0
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = LISTENING_RE.search(self.lines[i])
                    if m:
                        self.ws_url = m.group(1)
                        assert self.ws_url.startswith(f"ws://{wse.HOST}:"), \
                            f"DevTools listens on {self.ws_url}, not on loopback"
                        return self
                    i += 1
                if self.reader_done:
                    raise AssertionError(f"chromium exited (status {self.proc.poll()}) before "
                                         "DevTools listened:\n" + self.tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"chromium printed no 'DevTools listening on' within "
                                         f"{self.start_timeout:.0f}s:\n" + self.tail())
                self.cond.wait(left)

    def stop(self):
        if self.proc is not None:
            kids = _descendants(self.pid) if self.proc.poll() is None else []
            if self.proc.poll() is None:
                try:
                    os.kill(self.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self.proc.wait(15)
            # Its zygotes, renderers and helpers follow it; make sure, by pid.
            for pid, start in kids:
                if not wse.wait_pid_gone(pid, start, 10):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    wse.wait_pid_gone(pid, start, 5)
            if self.reader:
                self.reader.join(10)
            if self.proc.stderr:
                self.proc.stderr.close()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et, ev, tb):
        if et is not None and et is not wse.Skip:
            import sys
            sys.stderr.write(f"    chromium stderr (pid {self.pid if self.proc else '-'}), "
                             "last lines:\n" + self.tail() + "\n")
        self.stop()
        return False


class CDPError(AssertionError):
    pass


class Connection:
    """One DevTools websocket; commands by id, events into a list."""

    def __init__(self, url, timeout):
        self.url = url
        self.timeout = timeout
        self.ws = None
        self.ids = itertools.count(1)
        self.pending = {}
        self.events = []
        self.new_event = asyncio.Event()
        self.reader = None
        self.closed = None

    async def __aenter__(self):
        import websockets
        self.ws = await asyncio.wait_for(
            websockets.connect(self.url, max_size=None, ping_interval=None,
                               open_timeout=self.timeout, close_timeout=5),
            self.timeout)
        self.reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc):
        self.reader.cancel()
        try:
            await asyncio.wait_for(self.ws.close(), 10)
        except Exception:       # noqa: BLE001 - the browser may be gone already
            pass
        return False

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                fut = self.pending.pop(msg["id"], None) if "id" in msg else None
                if fut is not None:
                    if not fut.done():
                        fut.set_result(msg)
                elif "method" in msg:
                    self.events.append(msg)
                    self.new_event.set()
        except Exception as e:  # noqa: BLE001 - reported to every waiter
            self.closed = e
        finally:
            self.closed = self.closed or ConnectionError("DevTools connection closed")
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(self.closed)
            self.pending.clear()
            self.new_event.set()

    async def send(self, method, params=None, session=None, timeout=None):
        if self.closed:
            raise self.closed
        mid = next(self.ids)
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self.ws.send(json.dumps(msg))
        limit = timeout or self.timeout
        try:
            reply = await asyncio.wait_for(fut, limit)
        except asyncio.TimeoutError:
            self.pending.pop(mid, None)
            raise CDPError(f"DevTools gave no answer to {method} within {limit:.0f}s") from None
        if "error" in reply:
            raise CDPError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    async def new_page(self):
        """A new tab (about:blank) and a flat session attached to it."""
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget",
                                   {"targetId": target, "flatten": True}))["sessionId"]
        return Page(self, session, target)


def connect(url, timeout=30):
    """async with cdp.connect(browser.ws_url) as conn: ..."""
    return Connection(url, timeout)


class Page:
    def __init__(self, conn, session, target):
        self.conn = conn
        self.session = session
        self.target = target

    async def send(self, method, params=None, timeout=None):
        return await self.conn.send(method, params, session=self.session, timeout=timeout)

    def events(self, method=None):
        """This tab's events so far (of one method if given)."""
        return [e for e in self.conn.events if e.get("sessionId") == self.session
                and (method is None or e["method"] == method)]

    async def wait_event(self, method, pred, timeout, what):
        """The first event of this tab (of method) for which pred(params)
        holds, waiting for it up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events(method):
                if pred(e["params"]):
                    return e["params"]
            if self.conn.closed:
                raise self.conn.closed
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {method} event for {what} within {timeout:.1f}s")
            self.conn.new_event.clear()
            try:
                await asyncio.wait_for(self.conn.new_event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def evaluate(self, expression):
        """The JSON value of a JavaScript expression (promises awaited)."""
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                  "awaitPromise": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"page threw evaluating {expression!r}: "
                           f"{d.get('exception', {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    async def wait_until(self, expression, pred, timeout, what, interval=0.05):
        """Evaluates expression until pred(value) holds; returns the value,
        or raises AssertionError (with the last value) at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if pred(value):
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; "
                                     f"last value {value!r}")
            await asyncio.sleep(interval)

    async def navigate(self, url):
        r = await self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise AssertionError(f"navigating to {url} failed: {r['errorText']}")
        return r

    async def box(self, selector):
        """Centre (x, y) of an element in the viewport, after checking a
        click there would land on it (visible, not covered)."""
        sel = json.dumps(selector)
        b = await self.evaluate(f"""(() => {{
            const e = document.querySelector({sel});
            if (!e) return null;
            e.scrollIntoView({{block: "center", inline: "center"}});
            const r = e.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2;
            const hit = document.elementFromPoint(x, y);
            return {{x, y, w: r.width, h: r.height, hit: !!hit && e.contains(hit),
                     vw: innerWidth, vh: innerHeight}};
        }})()""")
        assert b is not None, f"no element {selector} in the page"
        assert b["w"] > 0 and b["h"] > 0, f"{selector} has no size: {b}"
        assert 0 <= b["x"] < b["vw"] and 0 <= b["y"] < b["vh"], f"{selector} is off screen: {b}"
        assert b["hit"], f"a click at the centre of {selector} would not reach it: {b}"
        return b["x"], b["y"]

    async def click(self, selector):
        """A real left click at the element's centre: move, press, release."""
        x, y = await self.box(selector)
        await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                         "button": "left", "buttons": 1,
                                                         "clickCount": 1})

    async def type(self, text):
        """Text into the focused element, as an input method would commit it."""
        await self.send("Input.insertText", {"text": text})

    async def press_enter(self):
        common = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13,
                  "nativeVirtualKeyCode": 13}
        await self.send("Input.dispatchKeyEvent", dict(common, type="keyDown", text="\r"))
        await self.send("Input.dispatchKeyEvent", dict(common, type="keyUp"))

    async def screenshot(self, path):
        import base64
        data = (await self.send("Page.captureScreenshot", {"format": "png"}))["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
