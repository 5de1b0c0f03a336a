"""The "Securing Channels" tutorial, all four parts, over HTTP and through the CLI."""
import time

import jwt as pyjwt

from conftest import SECRET


def write_config(tmp_path, text):
    p = tmp_path / "sluice.conf"
    p.write_text(text)
    return str(p)


def test_part1_acl_roles(make_server, tmp_path):
    conf = write_config(tmp_path, """
[channel jobs]
kind = queue
name = Job Queue
[acl scheduler]
role = write
[acl worker-1]
role = write
[acl worker-2]
role = write
[acl ops-dashboard]
role = admin
""")
    s = make_server("--authz", "acl", "--config", conf)
    sched = s.client(s.token("scheduler"))
    r = sched.put("/channels/jobs", json={"task": "compress", "file": "video.mp4"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    item = r.json()["item_id"]

    worker = s.client(s.token("worker-1"))
    msgs = worker.get("/channels/jobs", params={"exclusive": "true", "limit": 5}).json()["messages"]
    assert [m["id"] for m in msgs] == [item]
    assert msgs[0]["content"] == {"data": {"task": "compress", "file": "video.mp4"}}
    assert msgs[0]["sender_id"] == "scheduler" and msgs[0]["attempt"] == 1
    r = worker.post("/channels/jobs/acknowledge", json={"message_ids": [msgs[0]["id"]]})
    assert r.json() == {"status": "ok", "acknowledged": 1}

    rogue = s.client(s.token("rogue-process"))
    r = rogue.get("/channels/jobs", params={"exclusive": "true"})
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden",
                        "message": "'rogue-process' is not authorised to read from channel 'jobs'."}

    # Writers cannot administer; the admin can.
    assert worker.delete("/channels/jobs/messages").status_code == 403
    ops = s.client(s.token("ops-dashboard"))
    assert ops.delete("/channels/jobs/messages").json() == {"status": "ok", "cleared": 0}

    # Dynamic grant / revoke take effect on the next call, no restart.
    w3 = s.client(s.token("worker-3"))
    assert w3.get("/channels/jobs", params={"exclusive": "true"}).status_code == 403
    assert ops.put("/acl/worker-3", json={"role": "write"}).status_code == 200
    assert w3.get("/channels/jobs", params={"exclusive": "true"}).status_code == 200
    assert ops.delete("/acl/worker-1").status_code == 200
    assert worker.get("/channels/jobs", params={"exclusive": "true"}).status_code == 403
    entries = ops.get("/acl").json()["entries"]
    assert {e["principal"] for e in entries} == {"scheduler", "worker-2", "ops-dashboard", "worker-3"}


def test_part3_jwt_over_http(make_server):
    s = make_server()
    admin = s.client(s.token("ops-tool", role="admin"))
    r = admin.post("/channels", json={"id": "jobs", "kind": "queue", "name": "Job Queue"})
    assert r.status_code == 201 and r.json()["visibility"] == "public"
    worker_token = s.token("worker-1", role="write", channels=["jobs"], ttl=8 * 3600)
    with s.client(worker_token) as c:
        for i in range(3):
            assert c.put("/channels/jobs", json={"n": i}).status_code == 200
        msgs = c.get("/channels/jobs", params={"exclusive": True, "limit": 5}).json()["messages"]
        assert [m["content"]["data"]["n"] for m in msgs] == [0, 1, 2]
        r = c.post("/channels/jobs/acknowledge", json={"message_ids": [m["id"] for m in msgs]})
        assert r.json()["acknowledged"] == 3
        # Insufficient role: 403; out of scope: 403.
        assert c.delete("/channels/jobs/messages").status_code == 403
        assert c.put("/channels/other", json=1).status_code == 403
    # Expired or tampered: 401 with invalid_token.
    expired = s.token("worker-1", role="write", ttl=-120)
    r = s.client(expired).get("/channels/jobs", params={"exclusive": True})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    tampered = worker_token[:-2] + ("AA" if not worker_token.endswith("AA") else "BB")
    assert s.client(tampered).get("/channels/jobs", params={"exclusive": True}).status_code == 401


def test_part4_client_with_token(make_server, cli):
    s = make_server()
    admin = s.client(s.token("ops-tool", role="admin"))
    admin.post("/channels", json={"id": "jobs", "kind": "queue"})
    token = s.token("worker-3", role="write", channels=["jobs"])
    env = {"SLUICE_URL": s.url, "SLUICE_TOKEN": token}
    r = cli("write", "jobs", '{"task":"resize"}', env=env)
    assert r.returncode == 0, r.stderr
    r = cli("read", "jobs", "--exclusive", "--limit", "5", env=env)
    assert r.returncode == 0, r.stderr
    import json
    msgs = json.loads(r.stdout)["messages"]
    assert msgs[0]["content"]["data"] == {"task": "resize"}
    r = cli("ack", "jobs", msgs[0]["id"], env=env)
    assert r.returncode == 0, r.stderr
    # Denied: exit code 4 and the server's message, never the token.
    r = cli("channel", "clear", "jobs", env=env)
    assert r.returncode == 4
    assert token not in r.stderr and token not in r.stdout


def test_cli_token_verifies_in_pyjwt_and_back(make_server, cli):
    r = cli("token", "create", "--sub", "worker-1", "--role", "write", "--channel", "jobs",
            "--ttl", "8h", env={"SLUICE_JWT_SECRET": SECRET})
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "worker-1" and claims["role"] == "write"
    assert claims["channels"] == ["jobs"] and 8 * 3600 - 5 <= claims["exp"] - claims["iat"] <= 8 * 3600
    assert claims["jti"]
    # And the server accepts it; a PyJWT-minted token works too (test_part3).
    s = make_server()
    s.client(s.token("ops", role="admin")).post("/channels", json={"id": "jobs"})
    assert s.client(token).put("/channels/jobs", json={}).status_code == 200
