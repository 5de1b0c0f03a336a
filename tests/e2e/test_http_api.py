"""Every status code of the HTTP API, the security pipeline over HTTP, and JWT attacks."""
import base64
import json
import time

import jwt as pyjwt
import pytest

from conftest import SECRET


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


@pytest.fixture
def srv(make_server):
    s = make_server()
    admin = s.client(s.token("ops", role="admin"))
    admin.post("/channels", json={"id": "jobs", "kind": "queue", "max_messages": 3,
                                   "max_attempts": 2, "claim_timeout": 60})
    admin.post("/channels", json={"id": "news", "kind": "topic", "retention_max_count": 100})
    admin.post("/channels", json={"id": "hidden", "visibility": "private"})
    s.admin = admin
    return s


def test_status_table(srv):
    a = srv.admin
    assert srv.client().get("/healthz").status_code == 200
    assert a.get("/channels").status_code == 200
    ids = {c["id"] for c in a.get("/channels").json()["channels"]}
    assert ids == {"jobs", "news"}  # private channels are not on the network
    assert a.get("/channels/hidden/info").status_code == 404
    assert a.put("/channels/hidden", json=1).status_code == 404
    info = a.get("/channels/jobs/info").json()
    assert info["kind"] == "queue" and info["depth"] == 0 and info["options"]["max_attempts"] == 2
    assert info["options"]["dead_letter"] == "jobs.dead"
    assert a.post("/channels", json={"id": "jobs"}).status_code == 409
    for i in range(3):
        assert a.put("/channels/jobs", json={"i": i}).status_code == 200
    r = a.put("/channels/jobs", json={"i": 3})
    assert r.status_code == 429 and r.json()["error"] == "channel_full"
    assert a.get("/channels/jobs/info").json()["depth"] == 3
    msgs = a.get("/channels/jobs?exclusive=true&limit=2").json()["messages"]
    assert len(msgs) == 2 and all("claim_expires_at" in m for m in msgs)
    r = a.post("/channels/jobs/nack", json={"message_ids": [msgs[0]["id"]], "delay": 0})
    assert r.json() == {"status": "ok", "nacked": 1}
    r = a.post("/channels/jobs/remove", json={"message_ids": [msgs[1]["id"], "nope"]})
    assert r.json() == {"status": "ok", "removed": 1}
    r = a.post("/channels/jobs/evict", json={"max_count": 1})
    assert r.json() == {"status": "ok", "evicted": 1}
    assert a.delete("/channels/jobs/messages").json() == {"status": "ok", "cleared": 1}
    assert a.delete("/channels/jobs").status_code == 200
    assert a.get("/channels/jobs/info").status_code == 404
    assert a.get("/nowhere").status_code == 404
    r = a.patch("/channels/news")
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    assert a.get("/channels/a%2Fb").status_code == 400
    assert a.get("/channels/news?limit=-1").status_code == 400
    assert a.get("/channels/news?exclusive=true").status_code == 400
    r = srv.client().get("/channels")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="sluice"'
    assert r.json()["error"] == "unauthorized"


def test_topic_reads_and_cursor(srv):
    a = srv.admin
    ids = [a.put("/channels/news", json={"n": i}).json()["item_id"] for i in range(5)]
    reader = srv.client(srv.token("reader", role="read", channels=["news"]))
    got = reader.get("/channels/news", params={"limit": 2}).json()["messages"]
    assert [m["id"] for m in got] == ids[:2]
    got = reader.get("/channels/news", params={"limit": 10}).json()["messages"]
    assert [m["id"] for m in got] == ids[2:]
    got = reader.get("/channels/news", params={"after": ids[3]}).json()["messages"]
    assert [m["id"] for m in got] == ids[4:]
    assert reader.put("/channels/news", json=1).status_code == 403
    # A reader's list shows only what it may read.
    assert [c["id"] for c in reader.get("/channels").json()["channels"]] == ["news"]


def test_only_claim_holder_acknowledges(srv):
    a = srv.admin
    a.put("/channels/jobs", json="x")
    w1 = srv.client(srv.token("w1", role="write"))
    w2 = srv.client(srv.token("w2", role="write"))
    m = w1.get("/channels/jobs?exclusive=true").json()["messages"][0]
    assert w2.post("/channels/jobs/acknowledge", json={"message_ids": [m["id"]]}).json()["acknowledged"] == 0
    assert w2.post("/channels/jobs/nack", json={"message_ids": [m["id"]]}).json()["nacked"] == 0
    assert w1.post("/channels/jobs/acknowledge", json={"message_ids": [m["id"]]}).json()["acknowledged"] == 1


def test_authorisation_before_existence(srv):
    scoped = srv.client(srv.token("w", role="write", channels=["jobs"]))
    assert scoped.get("/channels/ghost?exclusive=true").status_code == 403
    assert scoped.get("/channels/news?exclusive=true").status_code == 403
    wide = srv.client(srv.token("w", role="write"))
    assert wide.get("/channels/ghost?exclusive=true").status_code == 404


def now():
    return int(time.time())


@pytest.mark.parametrize("name,token", [
    ("alg none", b64({"alg": "none", "typ": "JWT"}) + "." + b64({"sub": "x", "role": "admin", "exp": now() + 60}) + "."),
    ("alg none with sig", b64({"alg": "none"}) + "." + b64({"sub": "x", "role": "admin", "exp": now() + 60}) + ".AAAA"),
    ("HS512", pyjwt.encode({"sub": "x", "role": "admin", "exp": now() + 60}, SECRET, algorithm="HS512")),
    ("wrong secret", pyjwt.encode({"sub": "x", "role": "admin", "exp": now() + 60}, "y" * 40, algorithm="HS256")),
    ("no exp", pyjwt.encode({"sub": "x", "role": "admin"}, SECRET, algorithm="HS256")),
    ("not yet valid", pyjwt.encode({"sub": "x", "role": "admin", "exp": now() + 600, "nbf": now() + 300}, SECRET, algorithm="HS256")),
    ("expired", pyjwt.encode({"sub": "x", "role": "admin", "exp": now() - 100}, SECRET, algorithm="HS256")),
    ("garbage", "not.a.token"),
    ("two segments", "abc.def"),
    ("padding", pyjwt.encode({"sub": "x", "role": "admin", "exp": now() + 60}, SECRET, algorithm="HS256") + "=="),
    ("bad role", pyjwt.encode({"sub": "x", "role": "root", "exp": now() + 60}, SECRET, algorithm="HS256")),
    ("oversized", "a" * 9000 + ".b.c"),
])
def test_jwt_attacks_get_401(srv, name, token):
    r = srv.client(token).get("/channels")
    assert r.status_code == 401, name
    body = r.json()
    assert body["error"] == "invalid_token"
    # The token never comes back in the error.
    assert token[-20:] not in json.dumps(body) and token[-20:] not in r.headers["www-authenticate"]


def test_expired_within_leeway_passes(srv):
    tok = pyjwt.encode({"sub": "x", "role": "read", "exp": now() - 10}, SECRET, algorithm="HS256")
    assert srv.client(tok).get("/channels").status_code == 200


def test_secrets_and_tokens_never_logged(make_server):
    s = make_server("--log-requests")
    tok = s.token("ops", role="admin")
    c = s.client(tok)
    c.post("/channels", json={"id": "jobs"})
    c.get("/channels/jobs?exclusive=true&access_token=" + tok)
    s.client(tok + "x").get("/channels")
    s.stop()
    log = s.stderr()
    assert "/channels/jobs" in log
    assert tok not in log and SECRET not in log and tok.split(".")[2] not in log


def test_startup_contract(make_server, tmp_path):
    import subprocess
    from conftest import SLUICED
    # Weak secret refused.
    r = subprocess.run([SLUICED, "--listen", "127.0.0.1:0"], env={"SLUICE_JWT_SECRET": "short"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "shorter than 32 bytes" in r.stderr and "short" not in r.stderr.replace("shorter", "")
    # Open server on a non-loopback address refused without --insecure.
    r = subprocess.run([SLUICED, "--listen", "0.0.0.0:0"], env={}, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--insecure" in r.stderr
    # acl without a secret refused.
    r = subprocess.run([SLUICED, "--listen", "127.0.0.1:0", "--authz", "acl"], env={},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    # Config errors name file and line.
    bad = tmp_path / "bad.conf"
    bad.write_text("listen = 127.0.0.1:0\n[channel jobs]\nkind = stream\n")
    r = subprocess.run([SLUICED, "--config", str(bad)], env={}, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and f"{bad}:3: kind must be queue or topic" in r.stderr
    # Secret from a file, and kid rotation.
    (tmp_path / "k1").write_text("k1" * 20 + "\n")
    (tmp_path / "k2").write_text("k2" * 20)
    s = make_server("--jwt-key", f"one:{tmp_path / 'k1'}", "--jwt-key", f"two:{tmp_path / 'k2'}", secret=None)
    for kid, key in (("one", "k1" * 20), ("two", "k2" * 20)):
        tok = pyjwt.encode({"sub": "a", "role": "read", "exp": now() + 60}, key, algorithm="HS256",
                           headers={"kid": kid})
        assert s.client(tok).get("/channels").status_code == 200
    tok = pyjwt.encode({"sub": "a", "role": "read", "exp": now() + 60}, "k1" * 20, algorithm="HS256",
                       headers={"kid": "three"})
    assert s.client(tok).get("/channels").status_code == 401


def test_open_mode_default(make_server):
    s = make_server(secret=None)
    c = s.client()
    assert c.post("/channels", json={"id": "jobs"}).status_code == 201
    assert c.put("/channels/jobs", json={"a": 1}).status_code == 200
    assert len(c.get("/channels/jobs?exclusive=1").json()["messages"]) == 1
