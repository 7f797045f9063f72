"""
runner.py - a plain test runner for the wsechod integration tests (no pytest).

    runner.py [-k SUBSTRING]... [-v] [FILE[::FUNC]]...

Discovers the test_*.py modules next to this file (or the FILEs given), and
runs every test_* function in them, sync or async, in source order.  Each
test runs in a forked child process of its own with a time limit: a test
that hangs is interrupted (its context managers still stop its servers) and,
if it does not unwind, killed; its servers die with it (PR_SET_PDEATHSIG).

Prints one line per test on stdout:
    PASS test_echo.test_sizes (0.12s)
    FAIL test_echo.test_sizes: AssertionError: ... [test_echo.py:42]
    SKIP test_node.test_node_echo: node is missing
then exactly one summary line, "N passed, M failed" (", K skipped" when any
were).  Failure details go to stderr.  Exits 1 if a test failed or none ran.

Environment: WSECHOD (the binary, default build/wsechod), SAN=1 (sanitizer
build: time limits x3, sanitizer reports fail the test).
"""
import argparse
import asyncio
import importlib.util
import inspect
import json
import os
import select
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import wse  # noqa: E402

DEFAULT_TIMEOUT = 30.0      # seconds per test before SAN scaling
KILL_GRACE = 15.0           # after the soft limit, before SIGKILL


class TestTimeout(Exception):
    pass


def load_module(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def tests_of(mod):
    found = []
    for name, obj in vars(mod).items():
        if name.startswith("test_") and inspect.isfunction(obj) and obj.__module__ == mod.__name__:
            found.append(obj)
    found.sort(key=lambda f: f.__code__.co_firstlineno)
    return found


def short_reason(exc):
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if len(first) > 300:
        first = first[:297] + "..."
    where = ""
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        base = os.path.basename(fs.filename)
        if os.path.dirname(os.path.abspath(fs.filename)) == HERE and base != "runner.py":
            where = f" [{base}:{fs.lineno}]"
            break
    return first + where


def run_in_child(fn, limit, wfd):
    """Runs fn; writes one JSON result to wfd; never returns."""
    status, reason, details = "pass", "", ""

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded its time limit of {limit:.0f}s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_alarm)
    try:
        if inspect.iscoroutinefunction(fn):
            async def main():
                try:
                    return await asyncio.wait_for(fn(), limit)
                except asyncio.TimeoutError:
                    raise TestTimeout(f"test exceeded its time limit of {limit:.0f}s") from None
            # The alarm backs up wait_for for code that blocks the loop.
            signal.setitimer(signal.ITIMER_REAL, limit + 5)
            asyncio.run(main())
        else:
            signal.setitimer(signal.ITIMER_REAL, limit)
            fn()
        signal.setitimer(signal.ITIMER_REAL, 0)
    except wse.Skip as e:
        status, reason = "skip", str(e) or "skipped"
    except BaseException as e:  # noqa: BLE001 - everything is a failure here
        signal.setitimer(signal.ITIMER_REAL, 0)
        status, reason = "fail", short_reason(e)
        details = traceback.format_exc()
    msg = json.dumps({"status": status, "reason": reason, "details": details}).encode()
    try:
        os.write(wfd, msg)
    finally:
        os.close(wfd)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def become_subreaper():
    """Orphans (the workers of a server whose master was killed) are
    re-parented to the runner, which reaps them after each test, instead
    of to an init that may never reap them."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)          # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_orphans():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run_one(fn):
    """(status, reason, details) of one test, run in a child process."""
    limit = wse.scaled(getattr(fn, "timeout", DEFAULT_TIMEOUT))
    sys.stdout.flush()
    sys.stderr.flush()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            run_in_child(fn, limit, wfd)
        finally:
            os._exit(3)
    os.close(wfd)
    try:
        return collect(pid, rfd, limit)
    except KeyboardInterrupt:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


def collect(pid, rfd, limit):
    data = bytearray()
    deadline = time.monotonic() + limit + 10
    killed = termed = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if not termed:
                os.kill(pid, signal.SIGTERM)
                termed = True
                deadline = time.monotonic() + KILL_GRACE
                continue
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        r, _, _ = select.select([rfd], [], [], left)
        if r:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            data += chunk
    os.close(rfd)
    _, st = os.waitpid(pid, 0)
    reap_orphans()
    if killed:
        return "fail", f"killed: no result {limit + 10 + KILL_GRACE:.0f}s after start", ""
    try:
        res = json.loads(data.decode())
        return res["status"], res["reason"], res["details"]
    except ValueError:
        return "fail", f"test process ended without a result (wait status {st:#x})", ""


def selected(paths, keywords):
    if paths:
        targets = []
        for p in paths:
            p, _, func = p.partition("::")
            cand = p if os.path.exists(p) else os.path.join(HERE, os.path.basename(p))
            if not cand.endswith(".py") and os.path.exists(cand + ".py"):
                cand += ".py"
            if not os.path.exists(cand):
                print(f"runner: no such test module: {p}", file=sys.stderr)
                sys.exit(2)
            targets.append((os.path.abspath(cand), func))
    else:
        targets = [(os.path.join(HERE, f), "") for f in sorted(os.listdir(HERE))
                   if f.startswith("test_") and f.endswith(".py")]
    return targets


def run_all(opts, module_times):
    passed = failed = skipped = 0
    for path, func in selected(opts.paths, opts.k):
        modname = os.path.splitext(os.path.basename(path))[0]
        t_mod = time.monotonic()
        try:
            mod = load_module(path)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {modname}: cannot import: {short_reason(e)}", flush=True)
            traceback.print_exc()
            failed += 1
            continue
        ran_here = False
        for fn in tests_of(mod):
            name = f"{modname}.{fn.__name__}"
            if func and fn.__name__ != func:
                continue
            if opts.k and not any(k in name for k in opts.k):
                continue
            ran_here = True
            t0 = time.monotonic()
            status, reason, details = run_one(fn)
            dt = time.monotonic() - t0
            if status == "pass":
                passed += 1
                print(f"PASS {name} ({dt:.2f}s)", flush=True)
            elif status == "skip":
                skipped += 1
                print(f"SKIP {name}: {reason}", flush=True)
            else:
                failed += 1
                print(f"FAIL {name}: {reason}", flush=True)
                if details:
                    sys.stderr.write("".join("    " + l + "\n" for l in details.rstrip().splitlines()))
                    sys.stderr.flush()
        if ran_here:
            module_times.append((os.path.basename(path), time.monotonic() - t_mod))

    return passed, failed, skipped


def main():
    ap = argparse.ArgumentParser(description="wsechod integration tests")
    ap.add_argument("-k", action="append", default=[], metavar="SUBSTRING",
                    help="run only tests whose module.function name contains SUBSTRING")
    ap.add_argument("-v", action="store_true", help="print per-module times to stderr")
    ap.add_argument("paths", nargs="*", metavar="FILE[::FUNC]")
    opts = ap.parse_args()

    exe = wse.binary()
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        print(f"runner: server binary {exe} not found or not executable (set WSECHOD)",
              file=sys.stderr)
        print("0 passed, 1 failed")
        return 1

    become_subreaper()
    module_times = []
    try:
        passed, failed, skipped = run_all(opts, module_times)
    except KeyboardInterrupt:
        print("runner: interrupted", file=sys.stderr)
        return 130
    if opts.v:
        for m, t in module_times:
            print(f"  {m:28s} {t:7.2f}s", file=sys.stderr)
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary, flush=True)
    if passed + failed == 0:
        print("runner: no test ran", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
