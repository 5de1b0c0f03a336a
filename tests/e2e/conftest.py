"""Fixtures for end-to-end tests: start the real sluiced on a free loopback port, talk to it with
real HTTP clients, stop it with SIGTERM and require a clean exit (under ASan a leak fails it)."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import httpx
import jwt as pyjwt
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLUICED = os.environ.get("SLUICED", os.path.join(ROOT, "build", "sluiced"))
SLUICE_CLI = os.environ.get("SLUICE_CLI", os.path.join(ROOT, "build", "sluice"))
SECRET = "your-32-byte-production-secret-key"


class Server:
    def __init__(self, args=(), env=None, secret=SECRET):
        self.env = dict(os.environ)
        self.env.pop("SLUICE_JWT_SECRET", None)
        if secret:
            self.env["SLUICE_JWT_SECRET"] = secret
        self.env.update(env or {})
        self.secret = secret
        # Every server on the embedded default gets a data directory of its own (removed at
        # stop), unless the test names one or another engine.
        self.data_dir = None
        if not any(a in ("--data-dir", "--engine") for a in args):
            self.data_dir = tempfile.mkdtemp(prefix="sluice-e2e-")
            args = (*args, "--data-dir", self.data_dir)
        self.args = [SLUICED, "--listen", "127.0.0.1:0", *args]
        self.proc = None
        self.url = None
        self.stderr_lines = []

    def start(self):
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr_lines.append(line)
            ready = self.started_by(line)
            if ready:
                return self
            if ready is None:
                break
        self.proc.kill()
        raise RuntimeError("sluiced did not start: " + "".join(self.stderr_lines))

    def started_by(self, line):
        """One line of start-up output: True once the server serves, None when it never will,
        else False (read on)."""
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        if m:
            self.host, self.port = m.group(1), int(m.group(2))
            self.url = f"http://{self.host}:{self.port}"
            return True
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                _, err = self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
            self.stderr_lines.append(err)
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.proc.returncode

    def stderr(self):
        return "".join(self.stderr_lines)

    def token(self, sub, role=None, channels=None, ttl=3600, **extra):
        now = int(time.time())
        claims = {"sub": sub, "iat": now, "exp": now + ttl, **extra}
        if role:
            claims["role"] = role
        if channels is not None:
            claims["channels"] = channels
        return pyjwt.encode(claims, self.secret, algorithm="HS256")

    def client(self, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture
def make_server():
    started = []

    def make(*args, cls=None, **kw):
        s = (cls or Server)(args, **kw).start()
        started.append(s)
        return s

    yield make
    for s in started:
        rc = s.stop()
        assert rc == 0, f"sluiced exited {rc}:\n{s.stderr()}"


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server on a free loopback port, in a directory of its own; start() again
    after stop() or kill() brings it back on the same port (with what it had saved, if
    anything: appendonly is on when persist=True)."""

    def __init__(self, tmp, persist=False):
        self.port, self.dir, self.persist, self.proc = free_port(), tempfile.mkdtemp(dir=tmp), persist, None
        self.url = f"redis://127.0.0.1:{self.port}"

    def start(self):
        import socket
        args = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--dir", self.dir,
                "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def command(self, *args):
        """One command over RESP; returns the raw reply bytes (enough for tests that plant data)."""
        import socket
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as c:
            c.sendall(out)
            time.sleep(0.05)
            return c.recv(1 << 20)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def kill(self):
        self.stop(signal.SIGKILL)


@pytest.fixture
def make_redis(tmp_path):
    """Starts redis-servers for a test (stopped after it); fails when redis-server is missing."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (scripts/deps installs it)")
    started = []

    def make(persist=False):
        r = RedisServer(tmp_path, persist).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.kill()


@pytest.fixture
def cli():
    def run(*args, env=None, input=None):
        e = dict(os.environ)
        e.pop("SLUICE_TOKEN", None)
        e.pop("SLUICE_URL", None)
        e.update(env or {})
        return subprocess.run([SLUICE_CLI, *args], env=e, input=input, capture_output=True,
                              text=True, timeout=60)
    return run


def apikey_maker(cli, store):
    """A function that creates an API key in store with `sluice apikey create` and returns it."""
    def key(principal, *extra):
        r = cli("apikey", "create", "--principal", principal, "--store", str(store), *extra)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()
    return key


# Under the project's test command (scripts/test exports SLUICE_REQUIRE_DEPS=1) a skip - which here
# only ever means a missing dependency, such as node or tests/node/node_modules - is a failure: a
# suite that skipped its tests must not report green. Run by hand without the variable, it stays a
# skip.
REQUIRE_DEPS = os.environ.get("SLUICE_REQUIRE_DEPS", "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_DEPS and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped, and SLUICE_REQUIRE_DEPS is set: failing instead ({reason})"
