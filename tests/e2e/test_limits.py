"""Connection limits against the real sluiced: the open-file limit at start (raised, or
max_connections lowered, or a refusal to start), 503 with Retry-After rather than a silent close,
and slowloris from one client address while another address is still served. Every wait is for an
event with a generous timeout; nothing asserts on elapsed time."""
import re
import resource
import shutil
import socket
import subprocess
import threading
import time

import httpx
import pytest

from conftest import SLUICED, Server

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit")


def under_limit(nofile, *args):
    """A Server whose sluiced runs with RLIMIT_NOFILE soft:hard = nofile."""
    s = Server(args, secret=None)
    s.args = ["prlimit", f"--nofile={nofile}", "--", *s.args]
    return s


@pytest.fixture
def limited():
    started = []

    def make(nofile, *args):
        s = under_limit(nofile, *args).start()
        started.append(s)
        return s

    yield make
    for s in started:
        rc = s.stop()
        assert rc == 0, f"sluiced exited {rc}:\n{s.stderr()}"


def get(s, sock, path="/healthz"):
    """One request on an open keep-alive socket; returns (status, head)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        b = sock.recv(65536)
        if not b:
            break
        data += b
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return (int(m.group(1)) if m else None), data


def test_soft_limit_raised(limited):
    # Soft limit 100 would allow ~90 connections; sluiced raises it for 300 (+ its reserve).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 364:
        pytest.skip("the hard open-file limit is below 364")
    srv = limited(f"100:{'unlimited' if hard == resource.RLIM_INFINITY else hard}",
                  "--max-connections", "300")
    assert "raised the open-file limit from 100 to 364" in srv.stderr()
    socks = []
    try:
        for _ in range(150):
            s = socket.create_connection((srv.host, srv.port), timeout=30)
            socks.append(s)
            assert get(srv, s)[0] == 200
    finally:
        for s in socks:
            s.close()


def test_max_connections_lowered_then_503(limited):
    # Hard limit 100: max_connections 1000 cannot fit, it comes down to 100 - 64 = 36. Past that,
    # every connection is answered 503 with Retry-After, never closed silently.
    srv = limited("100:100", "--max-connections", "1000")
    assert "max_connections lowered from 1000 to 36" in srv.stderr()
    socks = []
    try:
        for _ in range(36):
            s = socket.create_connection((srv.host, srv.port), timeout=30)
            socks.append(s)
            assert get(srv, s)[0] == 200
        for _ in range(5):
            s = socket.create_connection((srv.host, srv.port), timeout=30)
            socks.append(s)
            status, head = get(srv, s)
            assert status == 503 and b"\r\nRetry-After: 1\r\n" in head
    finally:
        for s in socks:
            s.close()
    # Once per interval with a count, not once per connection; what was not reported yet is
    # reported when it stops (its stderr is complete once it has).
    assert srv.stop() == 0
    counts = [int(n) for n in re.findall(r"max_connections reached: (\d+) connection", srv.stderr())]
    assert counts[0] == 1 and sum(counts) == 5 and len(counts) == 2


def test_refuses_to_start_without_room():
    s = under_limit("50:50")
    p = subprocess.run(s.args, env=s.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "open-file limit (50, hard limit 50) leaves no room for connections" in p.stderr


def trickler(host, port, stop, counts):
    """Slowloris from 127.0.0.1: up to 80 sockets trickling a never-ending head, reconnecting
    whenever one is cut, until stop is set."""
    socks = []
    try:
        while not stop.is_set():
            while len(socks) < 80 and not stop.is_set():
                s = socket.socket()
                s.settimeout(5)
                try:
                    s.bind(("127.0.0.1", 0))
                    s.connect((host, port))
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ")
                    s.setblocking(False)
                    socks.append(s)
                    counts["opened"] += 1
                except OSError:
                    s.close()
            for s in list(socks):
                try:
                    data = s.recv(4096)
                    if data:
                        counts["503" if b" 503 " in data[:20] else "other"] += 1
                    socks.remove(s)
                    s.close()
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    socks.remove(s)
                    s.close()
                    continue
                try:
                    s.send(b"a")
                except OSError:
                    socks.remove(s)
                    s.close()
            stop.wait(0.2)
    finally:
        for s in socks:
            s.close()


def test_slowloris_from_one_address(make_server):
    # More trickling connections from 127.0.0.1 than the server has slots; a client on 127.0.0.2
    # is still served, because one address may only hold 20 connections still in their headers.
    srv = make_server("--max-connections", "60", "--max-pending-per-address", "20",
                      "--request-timeout", "30", secret=None)
    stop = threading.Event()
    counts = {"opened": 0, "503": 0, "other": 0}
    t = threading.Thread(target=trickler, args=(srv.host, srv.port, stop, counts), daemon=True)
    t.start()
    try:
        deadline = time.time() + 60
        while counts["503"] == 0 and time.time() < deadline:
            time.sleep(0.1)
        assert counts["503"] > 0  # the attacker is being refused...
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=srv.url, transport=transport, timeout=30) as c:
            for _ in range(10):  # ...while another address is served
                assert c.get("/healthz").status_code == 200
    finally:
        stop.set()
        t.join(timeout=60)
    assert srv.stop() == 0
    assert "max_pending_per_address reached" in srv.stderr()
