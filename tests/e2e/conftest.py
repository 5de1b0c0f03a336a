"""Fixtures for end-to-end tests: start the real sluiced on a free loopback port, talk to it with
real HTTP clients, stop it with SIGTERM and require a clean exit (under ASan a leak fails it)."""
import os
import re
import shutil
import queue
import signal
import subprocess
import tempfile
import threading
import time

import httpx
import jwt as pyjwt
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLUICED = os.environ.get("SLUICED", os.path.join(ROOT, "build", "sluiced"))
SLUICE_CLI = os.environ.get("SLUICE_CLI", os.path.join(ROOT, "build", "sluice"))
SECRET = "your-32-byte-production-secret-key"

# ---- no credential in any log --------------------------------------------------------------------
# Every sluiced log of the run (stderr, and --log-file files) is kept with the test it belongs to,
# and every credential the tests use is recorded: secrets given to servers, tokens minted here or
# by the CLI or received from /token, API keys, Authorization and Signature header values, and
# credential-like query parameters (httpx is wrapped below). At the end of the session every log is
# searched for every credential; a hit fails the run, naming the tests, never the credential.
# SLUICE_E2E_LOG=json|text makes every Server log at debug level with the access log on, so that
# the check sees the most verbose output (CI sets it: .ci/run).
E2E_LOG = os.environ.get("SLUICE_E2E_LOG", "")
CURRENT_TEST = [None]
CREDENTIALS = {}  # credential -> the test that first used it
LOGS = []  # (test, where, text)
CREDENTIAL_MIN = 12  # shorter strings would match ordinary words (tests' "bad" tokens)
CREDENTIAL_PARAMS = ("token", "access_token", "api_key", "apikey", "key", "secret", "password",
                     "signature", "sig", "jwt")


def record_credential(value):
    """Remembers a credential the current test used (bytes or str; short ones are ignored)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.strip()
        if len(value) >= CREDENTIAL_MIN:
            CREDENTIALS.setdefault(value, CURRENT_TEST[0])


def record_log(text, where):
    if text:
        LOGS.append((CURRENT_TEST[0], where, text))


def _record_request(request):
    for name in ("authorization", "signature", "x-api-key", "sluice-token"):
        for v in request.headers.get_list(name):
            record_credential(v)
            if " " in v:  # the credential without its scheme
                record_credential(v.split(" ", 1)[1])
            for m in re.finditer(r":([A-Za-z0-9+/=_-]{16,}):", v):  # an RFC 9421 signature
                record_credential(m.group(1))
    for k, v in request.url.params.multi_items():
        if k.lower() in CREDENTIAL_PARAMS:
            record_credential(v)


def _record_response(response):
    try:
        if not response.headers.get("content-type", "").startswith("application/json") or \
                len(response.content) > 65536:  # minted credentials come in small answers
            return
        body = response.json()
    except Exception:  # a stream not read, or not JSON: nothing minted in it
        return
    if isinstance(body, dict):
        for k in ("token", "key", "secret", "access_token"):
            record_credential(body.get(k))


def _wrap_httpx():
    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self, request, *args, **kw):
        _record_request(request)
        response = sync_send(self, request, *args, **kw)
        _record_response(response)
        return response

    async def asend(self, request, *args, **kw):
        _record_request(request)
        response = await async_send(self, request, *args, **kw)
        _record_response(response)
        return response

    httpx.Client.send, httpx.AsyncClient.send = send, asend


def _wrap_subprocess_run():
    """sluiced started with subprocess.run by a test (start-up errors): its output is kept too."""
    run = subprocess.run

    def wrapped(args, *a, **kw):
        r = run(args, *a, **kw)
        if isinstance(args, (list, tuple)) and SLUICED in args:
            out = r.stderr if isinstance(r.stderr, (str, bytes)) else ""
            record_log(out.decode("utf-8", "replace") if isinstance(out, bytes) else out,
                       "stderr")
        return r

    subprocess.run = wrapped


_wrap_httpx()
_wrap_subprocess_run()


@pytest.fixture(autouse=True)
def _current_test(request):
    CURRENT_TEST[0] = request.node.nodeid
    yield
    CURRENT_TEST[0] = None


def credential_leaks():
    """[(test that used it, test whose log holds it, where, the log line with it masked)]."""
    by_prefix = {}
    for cred, test in CREDENTIALS.items():
        by_prefix.setdefault(cred[:CREDENTIAL_MIN], []).append((cred, test))
    leaks = []
    token_runs = re.compile(r"[^\s\"'\\,;{}()<>\[\]]{%d,}" % CREDENTIAL_MIN)
    for owner, where, text in LOGS:
        for m in token_runs.finditer(text):
            run = m.group(0)
            for i in range(len(run) - CREDENTIAL_MIN + 1):
                for cred, test in by_prefix.get(run[i:i + CREDENTIAL_MIN], ()):
                    if run.startswith(cred, i):
                        start = text.rfind("\n", 0, m.start()) + 1
                        end = text.find("\n", m.end())
                        line = text[start:end if end >= 0 else len(text)].replace(cred, "<credential>")
                        leaks.append((test, owner, where, line[:300]))
    return leaks


def pytest_sessionfinish(session, exitstatus):
    leaks = credential_leaks()
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if not leaks:
        if tr and LOGS:
            tr.write_line("")
            size = sum(len(t) for _, _, t in LOGS)
            tr.write_line(f"credential check: {len(CREDENTIALS)} credentials, none in {len(LOGS)} "
                          f"sluiced logs ({size} characters; SLUICE_E2E_LOG={E2E_LOG or 'unset'})")
        return
    seen = set()
    lines = ["credentials found in sluiced's logs (issue 14: never a token, key, signature or "
             "secret in a log line):"]
    for used_by, log_of, where, line in leaks:
        if (used_by, log_of, line) in seen:
            continue
        seen.add((used_by, log_of, line))
        lines.append(f"  a credential used by {used_by} is in the {where} log of {log_of}: {line}")
    msg = "\n".join(lines[:50])
    if tr:
        tr.write_line("")
        tr.write_line(msg, red=True)
    else:
        print(msg)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


class Server:
    def __init__(self, args=(), env=None, secret=SECRET):
        self.env = dict(os.environ)
        self.env.pop("SLUICE_JWT_SECRET", None)
        if secret:
            self.env["SLUICE_JWT_SECRET"] = secret
        self.env.update(env or {})
        self.secret = secret
        record_credential(secret)
        record_credential(self.env.get("SLUICE_JWT_SECRET"))
        # the most verbose logs for the credential check, unless the test sets up its own
        if E2E_LOG and not any(str(a).startswith(("--log-", "--access-log")) for a in args):
            args = (*args, "--log-format", E2E_LOG, "--log-level", "debug", "--access-log")
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
        self._lines = queue.Queue()  # stderr lines after start-up, for wait_stderr
        self._drain = None
        self._logged = False

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
                # from here a thread reads stderr, so that a verbose log never fills the pipe
                # (sluiced would block writing); wait_stderr reads what it collected
                self._drain = threading.Thread(target=self._read_stderr, daemon=True)
                self._drain.start()
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

    def _read_stderr(self):
        try:
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                self._lines.put(line)
        except (ValueError, OSError):  # closed under it (a test killed the server)
            pass

    def wait_stderr(self, needle, timeout=15):
        """Waits for a stderr line (written after start-up, not yet waited for) holding needle."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} in:\n{self.stderr()}")

    def join_stderr(self):
        """Once the process has ended: every stderr line collected."""
        if self._drain:
            self._drain.join(timeout=30)
        if self.proc and self.proc.stderr and not self.proc.stderr.closed:
            self.proc.stderr.close()

    def log_files(self):
        files = []
        for i, a in enumerate(self.args):
            a = str(a)
            if a == "--log-file" and i + 1 < len(self.args):
                files.append(str(self.args[i + 1]))
            elif a.startswith("--log-file="):
                files.append(a.split("=", 1)[1])
        return files

    def keep_logs(self):
        """The server's logs for the end-of-session credential check (once)."""
        if self._logged:
            return
        self._logged = True
        record_log(self.stderr(), "stderr")
        for path in self.log_files():
            for p in (path, path + ".1"):  # and a file a test rotated
                try:
                    with open(p, encoding="utf-8", errors="replace") as f:
                        record_log(f.read(), "log file")
                except OSError:
                    pass

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        if self.proc:
            self.join_stderr()
            self.keep_logs()
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
        tok = pyjwt.encode(claims, self.secret, algorithm="HS256")
        record_credential(tok)
        return tok

    def client(self, token=None, timeout=10):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


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


def _resp_end(buf, i=0):
    """Where the RESP value starting at buf[i] ends, or None while it is incomplete."""
    eol = buf.find(b"\r\n", i)
    if eol < 0:
        return None
    kind, head = buf[i:i + 1], buf[i + 1:eol]
    if kind in (b"+", b"-", b":"):
        return eol + 2
    n = int(head)
    if kind == b"$":
        end = eol + 2 + n + 2 if n >= 0 else eol + 2
        return end if len(buf) >= end else None
    j = eol + 2  # "*": n values follow
    for _ in range(max(n, 0)):
        j = _resp_end(buf, j)
        if j is None:
            return None
    return j


class RedisServer:
    """A real redis-server on a free loopback port, in a directory of its own; start() again
    after stop() or kill() brings it back on the same port (with what it had saved, if
    anything: appendonly is on when persist=True). With a password it runs with --requirepass,
    url carries it (redis://:password@...) and command() authenticates first; the password is
    recorded as a credential, so the end-of-session check fails if any sluiced log shows it."""

    def __init__(self, tmp, persist=False, password=None):
        self.port, self.dir, self.persist, self.proc = free_port(), tempfile.mkdtemp(dir=tmp), persist, None
        self.password = password
        if password:
            record_credential(password)
        self._set_url()

    def _set_url(self):
        auth = f":{self.password}@" if self.password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}"

    def start(self):
        # A free port is free only until somebody else binds it (tests run in parallel): a first
        # start whose server could not bind it takes another; a restart keeps its port and tries
        # again a little later.
        first = self.proc is None
        for _ in range(5):
            if self._spawn():
                return self
            if first:
                self.port = free_port()
                self._set_url()
            else:
                time.sleep(0.5)
        raise RuntimeError("redis-server did not start")

    def _spawn(self):
        """Starts redis-server on self.port; True once that very process answers (another test's
        server on the port would answer too), False when it ended first or never answered."""
        args = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--dir", self.dir,
                "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline and self.proc.poll() is None:
            try:
                info = self.command("INFO", "server", timeout=1)
                m = re.search(rb"process_id:(\d+)", info)
                if m and int(m.group(1)) == self.proc.pid:
                    return True
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        return False

    def command(self, *args, timeout=30, db=0):
        """One command over RESP; returns the raw bytes of its whole reply (enough for tests that
        plant data). With a password AUTH goes first, with db SELECT, and their replies are
        dropped."""
        import socket

        def resp(*argv):
            out = b"*%d\r\n" % len(argv)
            for a in argv:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            return out

        out, skip = b"", 0
        if self.password:
            out, skip = out + resp("AUTH", self.password), skip + 1
        if db:
            out, skip = out + resp("SELECT", db), skip + 1
        out += resp(*args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as c:
            c.sendall(out)
            reply, start = b"", 0
            while True:
                end = _resp_end(reply, start) if len(reply) > start else None
                if end is not None and skip:
                    start, skip = end, skip - 1
                    continue
                if end is not None:
                    return reply[start:end]
                data = c.recv(1 << 20)
                if not data:
                    return reply[start:]
                reply += data

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

    def make(persist=False, password=None):
        r = RedisServer(tmp_path, persist, password).start()
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
        r = subprocess.run([SLUICE_CLI, *args], env=e, input=input, capture_output=True,
                           text=True, timeout=60)
        # what the CLI minted or was given
        record_credential(e.get("SLUICE_TOKEN"))
        record_credential(e.get("SLUICE_JWT_SECRET"))
        for i, a in enumerate(args[:-1]):
            if a in ("--token", "--secret", "--key"):
                record_credential(args[i + 1])
        if r.returncode == 0 and len(args) >= 2 and args[1] == "create" and \
                args[0] in ("token", "apikey"):
            record_credential(r.stdout)
        return r
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
