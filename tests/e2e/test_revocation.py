"""Token revocation in the request path: by token id and by user (every token issued at or before
the cut-off), who may revoke what, and two sluiced nodes sharing one real Redis - a token revoked
through one is refused by the other, both fail closed while Redis is down, and both recover by
themselves when it returns. A Redis that needs AUTH (requirepass) and a db (SELECT): as the
engine's first shard (the default store) and as an explicit `revocation = redis://:pw@host/db`;
a wrong password leaves the store unavailable (503), and no password shows in any log."""
import shutil
import socket
import subprocess
import time

import pytest

from conftest import SLUICED, record_credential
from wsraw import RawWS


def test_revoke_own_token_and_users(make_server):
    s = make_server()
    admin = s.client(s.token("ops", role="admin", jti="adm-1"))
    assert admin.post("/channels", json={"id": "jobs"}).status_code == 201
    w = s.token("worker-1", role="write", jti="w1-a")
    w2 = s.token("worker-1", role="write", jti="w1-b")
    assert s.client(w).put("/channels/jobs", json=1).status_code == 200
    # A principal may revoke the token it presents...
    r = s.client(w).post("/revoke", json={"token_id": "w1-a", "reason": "rotated"})
    assert r.status_code == 200 and r.json() == {"ok": True}
    r = s.client(w).put("/channels/jobs", json=1)
    assert r.status_code == 401 and r.json()["message"] == "token revoked"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert s.client(w2).put("/channels/jobs", json=1).status_code == 200
    # ...but not someone else's token, nor another user.
    other = s.client(s.token("mallory", role="write", jti="m-1"))
    r = other.post("/revoke", json={"token_id": "w1-b"})
    assert r.status_code == 403 and "not authorised to revoke tokens of '*'" in r.json()["message"]
    assert other.post("/revoke", json={"user_id": "worker-1"}).status_code == 403
    # An admin revokes every token worker-1 got up to now; later tokens work.
    assert admin.post("/revoke", json={"user_id": "worker-1"}).status_code == 200
    assert s.client(w2).put("/channels/jobs", json=1).status_code == 401
    later = s.token("worker-1", role="write", jti="w1-c", iat=int(time.time()) + 2)
    assert s.client(later).put("/channels/jobs", json=1).status_code == 200
    # Hostile bodies.
    for body in ({}, {"token_id": "a", "user_id": "b"}, {"token_id": 5}, {"token_id": "a b"},
                 {"user_id": "x/y"}, {"token_id": "a", "extra": 1}, {"token_id": "a", "reason": "r" * 300}):
        assert admin.post("/revoke", json=body).status_code == 400, body
    assert admin.post("/revoke", content=b"not json").status_code == 400
    assert s.client().post("/revoke", json={"token_id": "x"}).status_code == 401


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, port, tmp):
        self.port, self.tmp, self.proc = port, tmp, None

    def start(self):
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (scripts/deps installs it)")
    r = Redis(free_port(), tmp_path)
    r.start()
    yield r
    r.stop()


def wait_status(client, path, want, timeout=10):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = client.get(path).status_code
        if last == want:
            return last
        time.sleep(0.1)
    return last


def revoke_on_a_refused_on_b(a, b, admin_tok, tok, jti):
    """Revokes token id jti through node A; node B then refuses tok as revoked."""
    assert a.client(admin_tok).post("/revoke", json={"token_id": jti}).status_code == 200
    r = b.client(tok).get("/channels")
    assert r.status_code == 401 and r.json()["message"] == "token revoked"


def test_redis_store_answers_from_the_first_request(make_server, redis):
    """With a Redis revocation store the listeners open once the store has connected, so the first
    credentialed request after a start is answered rather than refused 503 while it connects
    (a WebSocket connect in test_policy.py once met that window)."""
    url = f"redis://127.0.0.1:{redis.port}"
    for _ in range(3):
        srv = make_server("--revocation", url)
        r = srv.client(srv.token("ops", role="admin")).get("/channels")
        assert r.status_code == 200, r.text


def test_two_nodes_share_redis(make_server, redis):
    url = f"redis://127.0.0.1:{redis.port}"
    a = make_server("--revocation", url, "--revocation-prefix", "e2e")
    b = make_server("--revocation", url, "--revocation-prefix", "e2e")
    assert "revocation redis" in a.stderr()
    tok = a.token("worker-1", role="write", jti="shared-1")
    admin_tok = a.token("ops", role="admin", jti="ops-1")
    for node in (a, b):
        assert node.client(admin_tok).post("/channels", json={"id": "jobs"}).status_code == 201
        assert wait_status(node.client(tok), "/channels", 200) == 200
    # Revoked through A, refused by B.
    revoke_on_a_refused_on_b(a, b, admin_tok, tok, "shared-1")
    assert a.client(tok).get("/channels").status_code == 401
    # The keys are where the issue says, with a TTL.
    with socket.create_connection(("127.0.0.1", redis.port)) as c:
        c.sendall(b"TTL e2e:tb:revoked:shared-1\r\n")
        ttl = int(c.recv(64).strip()[1:])
        assert 0 < ttl <= 86400
    # Redis down: both nodes fail closed with 503 and Retry-After.
    redis.stop()
    for node in (a, b):
        assert wait_status(node.client(admin_tok), "/channels", 503) == 503
        r = node.client(admin_tok).get("/channels")
        assert r.headers["retry-after"] == "1" and r.json()["error"] == "unavailable"
    # Health needs no token and keeps answering.
    assert a.client().get("/healthz").status_code == 200
    # Redis back on the same port (empty: it keeps no data here): both recover with no restart,
    # and a revocation through B reaches A.
    redis.start()
    for node in (a, b):
        assert wait_status(node.client(admin_tok), "/channels", 200) == 200
    assert b.client(admin_tok).post("/revoke", json={"user_id": "worker-1"}).status_code == 200
    assert a.client(tok).get("/channels").status_code == 401


# Long enough to be found by the credential check (conftest: CREDENTIAL_MIN), distinct per test.
ENGINE_PASSWORD = "e2e-engine-requirepass-7f3c9a1d"
STORE_PASSWORD = "e2e-store-requirepass-2b8e5c04"
WRONG_PASSWORD = "e2e-not-the-password-91d4e6aa"


def test_redis_engine_with_password_shares_revocations(make_server, make_redis):
    """The default revocation store of a Redis engine that needs AUTH is the engine's first shard,
    password included (sluiced used to refuse to start unless revocation = redis://HOST:PORT
    named a second, password-less Redis): revoked through one node, refused by the other, and a
    WebSocket session on the other closes (its watch subscription authenticated too)."""
    r = make_redis(password=ENGINE_PASSWORD)
    a = make_server("--engine", r.url)
    b = make_server("--engine", r.url)
    assert "revocation redis" in a.stderr() and "revocation redis" in b.stderr()
    admin_tok = a.token("ops", role="admin", jti="pw-ops-1")
    tok = a.token("worker-1", role="write", jti="pw-shared-1")
    assert a.client(admin_tok).post("/channels", json={"id": "jobs"}).status_code == 201
    for node in (a, b):
        assert wait_status(node.client(tok), "/channels", 200) == 200
    w = RawWS(b.host, b.port, timeout=30)
    try:
        assert "connect" in w.call("connect", {"token": tok}, timeout=30)
        revoke_on_a_refused_on_b(a, b, admin_tok, tok, "pw-shared-1")
        assert w.wait_close(timeout=30) == 3503
    finally:
        w.close()
    # On the engine's first shard, db 0, under the engine prefix.
    assert r.command("EXISTS", "sluice:tb:revoked:pw-shared-1") == b":1\r\n"
    for node in (a, b):
        assert ENGINE_PASSWORD not in node.stderr()


def test_revocation_url_with_password_and_db(make_server, make_redis, tmp_path):
    """revocation = redis://:password@host:port/db (in the configuration file: a command line is
    visible to every local user): the keys land in that db, two nodes share them."""
    r = make_redis(password=STORE_PASSWORD)
    conf = tmp_path / "rev.conf"
    conf.write_text(f"revocation = redis://:{STORE_PASSWORD}@127.0.0.1:{r.port}/3\n"
                    "revocation_prefix = e2edb\n")
    a = make_server("--config", str(conf))
    b = make_server("--config", str(conf))
    assert "revocation redis" in a.stderr()
    admin_tok = a.token("ops", role="admin", jti="db-ops-1")
    tok = a.token("worker-1", role="write", jti="db-shared-1")
    for node in (a, b):
        assert node.client(admin_tok).post("/channels", json={"id": "jobs"}).status_code == 201
        assert wait_status(node.client(tok), "/channels", 200) == 200
    revoke_on_a_refused_on_b(a, b, admin_tok, tok, "db-shared-1")
    assert r.command("EXISTS", "e2edb:tb:revoked:db-shared-1", db=3) == b":1\r\n"
    assert r.command("EXISTS", "e2edb:tb:revoked:db-shared-1") == b":0\r\n"
    for node in (a, b):
        assert STORE_PASSWORD not in node.stderr()


def test_wrong_redis_password_fails_closed_and_is_not_logged(make_server, make_redis, tmp_path):
    """A password Redis refuses: sluiced still starts (as with Redis down), says why without the
    password, and refuses credentials 503 until the store can answer."""
    r = make_redis(password=STORE_PASSWORD)
    record_credential(WRONG_PASSWORD)
    conf = tmp_path / "wrong.conf"
    conf.write_text(f"revocation = redis://:{WRONG_PASSWORD}@127.0.0.1:{r.port}\n")
    s = make_server("--config", str(conf))
    assert "the revocation store is not reachable yet" in s.stderr()
    assert "AUTH refused" in s.stderr()
    resp = s.client(s.token("ops", role="admin", jti="wrong-1")).get("/channels")
    assert resp.status_code == 503 and resp.json()["error"] == "unavailable"
    assert WRONG_PASSWORD not in s.stderr() and STORE_PASSWORD not in s.stderr()


@pytest.mark.parametrize("url, message", [
    ("redis://127.0.0.1:6379,redis://127.0.0.1:6380", "one Redis, not a list of shards"),
    (f"redis://:{WRONG_PASSWORD[:8]}%zz@127.0.0.1:6379", "malformed percent-escape in the password"),
    ("redis://127.0.0.1:6379/16", "db must be 0..15"),
])
def test_bad_revocation_urls_are_refused(url, message):
    r = subprocess.run([SLUICED, "--listen", "127.0.0.1:0", "--revocation", url],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert WRONG_PASSWORD[:8] not in r.stderr
