"""The man pages, the example configuration and install agree with the binary."""
import glob
import os
import re
import subprocess
import tempfile

import wse

MAN = os.path.join(wse.ROOT, "man")


def help_options():
    out = subprocess.run([wse.binary(), "--help"], capture_output=True, text=True, timeout=10).stdout
    opts = set(re.findall(r"(?:^|\s)--([a-z][a-z-]+)", out))
    only_cli = set()
    lines = out.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s+(?:-\w, )?--([a-z-]+)", line)
        if m and i + 1 < len(lines) and "command line only" in lines[i + 1]:
            only_cli.add(m.group(1))
    return opts, only_cli


def test_mandoc_lint_is_silent():
    pages = glob.glob(os.path.join(MAN, "*.[0-9]"))
    assert pages, "no man pages"
    for page in pages:
        p = subprocess.run(["mandoc", "-Tlint", page], capture_output=True, text=True, timeout=30)
        # The one style note allowed: the footer names wsechod and its version
        # (.Os wsechod X.Y.Z) instead of the system the page is read on.
        rest = [line for line in (p.stdout + p.stderr).splitlines()
                if not re.search(r"STYLE: operating system explicitly specified: Os wsechod", line)]
        assert not rest, f"{page}:\n" + "\n".join(rest)


def test_versions_agree_with_the_man_pages():
    tools = [(wse.binary(), "wsechod.8")]
    wsbench = os.path.join(os.path.dirname(wse.binary()), "wsbench")
    if os.path.exists(os.path.join(wse.ROOT, "bench", "wsbench.c")):
        tools.append((wsbench, "wsbench.1"))
    for prog, page in tools:
        for flag in ("-V", "--version"):
            out = subprocess.run([prog, flag], capture_output=True, text=True, timeout=10)
            assert out.returncode == 0, out.stderr
            m = re.fullmatch(r"(wsechod|wsbench) (\d+\.\d+\.\d+) \((\S+)\)\n", out.stdout)
            assert m and m.group(1) == os.path.basename(prog), out.stdout
            os_line = re.search(r"^\.Os (.*)$", open(os.path.join(MAN, page)).read(), re.M)
            assert os_line and os_line.group(1) == f"wsechod {m.group(2)}", \
                f"{page} says '.Os {os_line and os_line.group(1)}', the binary {m.group(2)}"
            assert m.group(3) != "", out.stdout


def test_every_option_is_in_the_man_page_and_back():
    opts, _ = help_options()
    page = open(os.path.join(MAN, "wsechod.8")).read()
    documented = set(re.findall(r"^\.It Fl (?:\w , Fl )?-([a-z][a-z-]+)", page, re.M))
    assert len(opts) > 20, opts
    assert opts - documented == set(), f"options missing from wsechod.8: {sorted(opts - documented)}"
    assert documented - opts == set(), f"wsechod.8 documents options the binary lacks: {sorted(documented - opts)}"


def test_example_config_has_every_key_and_is_valid():
    opts, only_cli = help_options()
    example = os.path.join(wse.ROOT, "scripts", "wsechod.conf.example")
    text = open(example).read()
    keys = set(re.findall(r"^#?([a-z][a-z-]+) = ", text, re.M))
    missing = opts - only_cli - keys
    assert not missing, f"keys missing from wsechod.conf.example: {sorted(missing)}"
    p = subprocess.run([wse.binary(), "-t", "-c", example], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    # Every commented line, uncommented, is valid too (paths made harmless;
    # the TLS files are a test CA's, since -t reads them).
    with tempfile.TemporaryDirectory() as d:
        tls = os.path.join(d, "tls")
        os.mkdir(tls)
        subprocess.run(["sh", os.path.join(wse.ROOT, "scripts", "test-ca.sh"), tls], check=True,
                       capture_output=True, timeout=60)
        os.rename(os.path.join(tls, "rsa.pem"), os.path.join(tls, "fullchain.pem"))
        os.rename(os.path.join(tls, "rsa.key"), os.path.join(tls, "privkey.pem"))
        lines = []
        for line in text.splitlines():
            m = re.match(r"^#([a-z][a-z-]+ = .*)", line)
            if m and not m.group(1).startswith("listen = [::]"):
                lines.append(m.group(1).replace("/run/", d + "/").replace("/var/log/", d + "/")
                             .replace("/etc/wsechod/tls/", tls + "/"))
        conf = os.path.join(d, "all.conf")
        open(conf, "w").write("\n".join(lines) + "\n")
        p = subprocess.run([wse.binary(), "-t", "-c", conf], capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr + "\n".join(lines)


def help_defaults():
    """{option: default} as `wsechod --help` prints them."""
    out = subprocess.run([wse.binary(), "--help"], capture_output=True, text=True, timeout=10).stdout
    defaults, current = {}, None
    for line in out.splitlines():
        m = re.match(r"\s+(?:-\w, )?--([a-z-]+)", line)
        if m:
            current = m.group(1)
        m = re.search(r"default: ([^)]*)\)\s*$", line)
        if m and current:
            defaults[current] = m.group(1).strip('"')
    return defaults


def test_example_config_marks_its_examples_and_shows_true_defaults():
    defaults = help_defaults()
    lines = open(os.path.join(wse.ROOT, "scripts", "wsechod.conf.example")).read().splitlines()
    checked = examples = 0
    for i, line in enumerate(lines):
        m = re.match(r"^#([a-z][a-z-]+) = (.*)$", line)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip('"')
        assert key in defaults, f"{key}: no default in --help"
        if i and lines[i - 1].startswith("# Example (default: "):
            examples += 1
            assert value != defaults[key], f"line {i + 1}: '{line}' is marked as an example " \
                f"but is the default"
        else:
            checked += 1
            assert value == defaults[key], f"line {i + 1}: '{line}' is not marked as an " \
                f"example, but the default is {defaults[key]!r}"
    assert checked > 15 and examples >= 6, (checked, examples)


def test_install_and_uninstall_honour_destdir_and_prefix():
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, MAKEFLAGS="")
        args = ["make", "-s", "-C", wse.ROOT, f"DESTDIR={d}", "PREFIX=/opt/wse"]
        if wse.SAN:
            args.append("SAN=1")
        p = subprocess.run(args + ["install"], capture_output=True, text=True, timeout=300, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        installed = sorted(os.path.relpath(os.path.join(r, f), d)
                           for r, _, fs in os.walk(d) for f in fs)
        assert "opt/wse/bin/wsechod" in installed, installed
        assert "opt/wse/share/man/man8/wsechod.8" in installed, installed
        if os.path.exists(os.path.join(wse.ROOT, "bench", "wsbench.c")):
            assert "opt/wse/bin/wsbench" in installed, installed
            assert "opt/wse/share/man/man1/wsbench.1" in installed, installed
        p = subprocess.run(args + ["uninstall"], capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        left = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
        assert left == [], left


def test_service_unit_gives_the_example_pid_file_a_writable_directory():
    unit = open(os.path.join(wse.ROOT, "scripts", "wsechod.service")).read()
    conf = open(os.path.join(wse.ROOT, "scripts", "wsechod.conf.example")).read()
    runtime = re.search(r"^RuntimeDirectory=(\S+)$", unit, re.M)
    assert runtime, "wsechod.service has no RuntimeDirectory="
    pid = re.search(r"^#pid-file = (\S+)$", conf, re.M).group(1)
    # DynamicUser + ProtectSystem=strict: only the RuntimeDirectory is writable in /run.
    assert "DynamicUser=yes" in unit and "ProtectSystem=strict" in unit
    assert os.path.dirname(pid) == "/run/" + runtime.group(1), (pid, runtime.group(1))
    assert pid in unit, "the unit's comment does not name the pid file to configure"


def test_kubernetes_example_drains_within_its_grace_period():
    import yaml     # python3-yaml, installed by scripts/deps.sh (test group)
    docs = list(yaml.safe_load_all(open(os.path.join(wse.ROOT, "scripts", "kubernetes.yaml"))))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) >= {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}, kinds.keys()
    conf = kinds["ConfigMap"]["data"]["wsechod.conf"]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "wsechod.conf")
        open(path, "w").write(conf.replace("/run/wsechod/", d + "/"))
        p = subprocess.run([wse.binary(), "-t", "-c", path], capture_output=True, text=True,
                           timeout=10)
        assert p.returncode == 0, p.stderr
    keys = dict(re.findall(r"^([a-z-]+) = (\S+)$", conf, re.M))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz", c["readinessProbe"]
    pre = " ".join(c["lifecycle"]["preStop"]["exec"]["command"])
    assert "-s quit" in pre, f"preStop does not drain with SIGQUIT: {pre}"
    assert keys["pid-file"] in pre and "/run/wsechod" in [m["mountPath"] for m in c["volumeMounts"]]
    pre_sleep = float(re.search(r"sleep (\d+);", pre).group(1))
    need = pre_sleep + sum(float(keys[k]) for k in ("drain-timeout", "close-spread", "close-timeout"))
    assert pod["terminationGracePeriodSeconds"] > need, (pod["terminationGracePeriodSeconds"], need)
    pdb = kinds["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"] == labels and pdb.get("maxUnavailable") == 1, pdb
    assert kinds["Service"]["spec"]["selector"] == labels
    # Not root (a root master without --user runs its workers as root).
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] != 0 and not sc["allowPrivilegeEscalation"], sc
