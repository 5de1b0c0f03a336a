"""The Debian package, end to end: scripts/package builds it (Release, only the
installed targets) into a temporary directory; it is unpacked into a scratch root (dpkg -x, as
dpkg would place the files); then, from the installed files only: the control data (Depends,
conffiles), sluiced validates the sample config and serves /healthz from a fresh data directory,
`sluice --help` runs, both man pages render, the systemd unit verifies and scores as hardened,
and a C program is built against the installed headers with `pkg-config --cflags --libs sluice`
and run, linked against the shared library and against the static one.

Fails (never skips) when a tool it needs is missing under SLUICE_REQUIRE_DEPS=1, like the rest
of the suite."""
import glob
import gzip
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ("cmake", "cpack", "dpkg-deb", "dpkg-shlibdeps", "fakeroot", "pkg-config", "cc", "man",
         "groff", "systemd-analyze")


def need_tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        msg = "missing: " + ", ".join(missing) + " (scripts/deps installs them)"
        if os.environ.get("SLUICE_REQUIRE_DEPS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def run(*args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    return subprocess.run(args, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(deb, scratch root): the package built by scripts/package and unpacked."""
    need_tools()
    tmp = tmp_path_factory.mktemp("package")
    env = dict(os.environ, SLUICE_PACKAGE_BUILD=str(tmp / "build"), SLUICE_JOBS="2")
    r = run(os.path.join(ROOT, "scripts", "package"), str(tmp / "out"), env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    deb = r.stdout.strip().splitlines()[-1]
    assert re.search(r"/sluice_\d+\.\d+\.\d+_[a-z0-9]+\.deb$", deb), deb
    root = tmp / "root"
    r = run("dpkg-deb", "-x", deb, str(root))
    assert r.returncode == 0, r.stderr
    return deb, root


def test_control_data(installed):
    deb, _ = installed
    control = run("dpkg-deb", "-f", deb).stdout
    assert re.search(r"^Package: sluice$", control, re.M)
    depends = re.search(r"^Depends: (.*)$", control, re.M).group(1)
    for lib in ("libuv1", "libjansson4", "libssl3", "libcurl4", "libhiredis", "liblmdb0", "libc6"):
        assert lib in depends, depends
    # the benchmark's clients are not dependencies of the package
    assert "libnats" not in depends and "librabbitmq" not in depends, depends
    assert run("dpkg-deb", "-I", deb, "conffiles").stdout.split() == ["/etc/sluice/sluice.conf"]


def test_files_in_the_usual_places(installed):
    _, root = installed
    for path in ("usr/sbin/sluiced", "usr/bin/sluice", "usr/include/sluice/sluice.h",
                 "usr/include/sluice/client.h", "usr/share/man/man8/sluiced.8.gz",
                 "usr/share/man/man1/sluice.1.gz", "etc/sluice/sluice.conf",
                 "usr/lib/systemd/system/sluiced.service"):
        assert (root / path).exists(), path
    libdir = os.path.dirname(glob.glob(str(root / "usr/lib/*/pkgconfig/sluice.pc"))[0])
    libdir = os.path.dirname(libdir)
    assert os.path.exists(os.path.join(libdir, "libsluice.a"))
    so = glob.glob(os.path.join(libdir, "libsluice.so.*.*.*"))
    assert so, os.listdir(libdir)
    soname = re.search(r"SONAME\s+(\S+)", run("objdump", "-p", so[0]).stdout).group(1)
    assert soname.startswith("libsluice.so.") and os.path.islink(os.path.join(libdir, soname))
    # only the public API is exported (no sl__ internals, no llhttp)
    names = run("nm", "-D", "--defined-only", so[0]).stdout.split("\n")
    exported = [ln.split()[-1] for ln in names if ln.strip()]
    assert "sl_ctx_new" in exported and "sl_channel_write" in exported
    assert not [n for n in exported if n.startswith("sl__") or n.startswith("llhttp")]


def test_installed_server_serves(installed, tmp_path):
    _, root = installed
    sluiced = str(root / "usr/sbin/sluiced")
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_JWT_SECRET"}
    # the sample config validates as shipped
    r = run(sluiced, "--data-dir", str(tmp_path / "nodata"), "--check-config",
            str(root / "etc/sluice/sluice.conf"), env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(": ok\n")
    assert not (tmp_path / "nodata").exists()
    # the daemon links libsluice statically: it needs nothing from the scratch root to run
    assert "libsluice" not in run("ldd", sluiced).stdout
    data = tmp_path / "data"
    env["SLUICE_JWT_SECRET"] = "package-test-secret-of-32-bytes-or-more"
    p = subprocess.Popen([sluiced, "--listen", "127.0.0.1:0", "--engine", "lmdb", "--data-dir",
                          str(data)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        port, lines = None, []
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            line = p.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port, "".join(lines)
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            assert resp.status == 200
            assert b"ok" in resp.read()
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
    assert p.returncode == 0
    assert (data / "data.mdb").exists()


def test_installed_cli(installed):
    _, root = installed
    r = run(str(root / "usr/bin/sluice"), "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage: sluice" in r.stdout


def test_man_pages_render(installed):
    _, root = installed
    # compressed, as Debian's policy has man pages, and without a name or time stamp in the
    # gzip header (the same source gives the same package)
    for page, title, must in (("man8/sluiced.8.gz", "SLUICED(8)", "--check-config"),
                              ("man1/sluice.1.gz", "SLUICE(1)", "token create")):
        path = str(root / "usr/share/man" / page)
        with open(path, "rb") as f:
            head = f.read(10)
        assert head[:2] == b"\x1f\x8b" and head[3] & 0x08 == 0 and head[4:8] == b"\0\0\0\0", head
        r = run("man", "-P", "cat", "-l", path, env=dict(os.environ, MANWIDTH="100"))
        assert r.returncode == 0, r.stderr
        text = re.sub(r".\x08", "", r.stdout)
        assert title in text and must in text, text[:2000]
        # and groff finds nothing to warn about
        src = gzip.decompress(open(path, "rb").read())
        r = subprocess.run(["groff", "-ww", "-z", "-man"], input=src, capture_output=True)
        assert r.returncode == 0 and r.stderr == b"", r.stderr


def test_systemd_unit(installed, tmp_path):
    _, root = installed
    unit = (root / "usr/lib/systemd/system/sluiced.service").read_text()
    for directive in ("DynamicUser=yes", "StateDirectory=sluice", "ProtectSystem=strict",
                      "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                      "CapabilityBoundingSet=\n", "RestrictAddressFamilies=",
                      "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
                      "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert directive in unit, directive
    assert re.search(r"^ExecStart=/usr/sbin/sluiced .*--config /etc/sluice/sluice\.conf$", unit,
                     re.M), unit
    # verify needs the commands it names to exist: point it at the scratch root's daemon
    local = tmp_path / "sluiced.service"
    local.write_text(unit.replace("/usr/sbin/sluiced", str(root / "usr/sbin/sluiced")))
    r = run("systemd-analyze", "verify", "--man=no", str(local))
    assert r.returncode == 0 and "sluiced.service" not in r.stderr, r.stderr
    # the exposure score (0 best, 10 worst) stays that of a hardened service
    r = run("systemd-analyze", "security", "--offline=yes", "--threshold=20", str(local))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr


def pkg_config(root, *args):
    pcdir = os.path.dirname(glob.glob(str(root / "usr/lib/*/pkgconfig/sluice.pc"))[0])
    env = dict(os.environ, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_SYSROOT_DIR=str(root))
    env.pop("PKG_CONFIG_LIBDIR", None)
    r = run("pkg-config", *args, "sluice", env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.split(), os.path.dirname(pcdir)


@pytest.mark.parametrize("linkage", ["shared", "static"])
def test_c_program_against_the_installed_library(installed, tmp_path, linkage):
    _, root = installed
    src = os.path.join(ROOT, "tests/package/tutorial.c")
    prog = str(tmp_path / "tutorial")
    cflags, libdir = pkg_config(root, "--cflags")
    assert f"-I{root}/usr/include" in cflags, cflags
    if linkage == "shared":
        libs, _ = pkg_config(root, "--libs")
    else:  # the archive itself, and what pkg-config --static says it needs
        libs, _ = pkg_config(root, "--static", "--libs")
        libs = ["-l:libsluice.a" if a == "-lsluice" else a for a in libs]
    r = run("cc", "-std=c11", "-Wall", "-Werror", "-o", prog, src, *cflags, *libs)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    deps = run("ldd", prog, env=env).stdout
    if linkage == "shared":
        assert re.search(r"libsluice\.so\.\S+ => " + re.escape(libdir), deps), deps
    else:
        assert "libsluice" not in deps, deps
    for args in ((), (str(tmp_path / "store"),)):  # in memory, then durable
        r = run(prog, *args, env=env)
        assert r.returncode == 0 and r.stdout == "ok\n", r.stdout + r.stderr
    assert (tmp_path / "store" / "data.mdb").exists()
