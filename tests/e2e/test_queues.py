"""Work-queue features over HTTP (docs/QUEUES.md): lease extension, terminate, backoff, delayed
delivery, idempotent writes, per-message TTL, batches, the message envelope, and the role each
needs. Nothing here asserts how long anything took: where time matters a wait only ever makes the
expected outcome certain (a lease of 0.2 s has surely run out after 0.6 s)."""
import json
import time

import pytest


@pytest.fixture
def srv(make_server):
    s = make_server()
    s.admin = s.client(s.token("ops", role="admin"))
    s.worker = s.client(s.token("w1", role="write", channels=["jobs", "jobs.*", "jobs2", "jobs3", "news"]))
    s.other = s.client(s.token("w2", role="write", channels=["jobs", "jobs.*", "jobs2", "jobs3"]))
    s.reader = s.client(s.token("r1", role="read"))
    return s


def make(s, cid, **opts):
    r = s.admin.post("/channels", json={"id": cid, **opts})
    assert r.status_code == 201, r.text
    return r.json()


def claim(c, cid, limit=10):
    r = c.get(f"/channels/{cid}?exclusive=true&limit={limit}")
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def test_extend(srv):
    make(srv, "jobs", claim_timeout=0.2)
    srv.worker.put("/channels/jobs", json={"n": 1})
    srv.worker.put("/channels/jobs", json={"n": 2})
    m1, m2 = claim(srv.worker, "jobs")
    r = srv.worker.post("/channels/jobs/extend", json={"message_ids": [m1["id"]], "seconds": 3600})
    assert r.json() == {"status": "ok", "extended": 1}
    # Not the holder: nothing extended.
    r = srv.other.post("/channels/jobs/extend", json={"message_ids": [m2["id"]]})
    assert r.json() == {"status": "ok", "extended": 0}
    time.sleep(0.6)  # m2's 0.2 s lease has surely run out; m1's hour has not
    got = claim(srv.other, "jobs")
    assert [m["id"] for m in got] == [m2["id"]]
    assert srv.worker.post("/channels/jobs/acknowledge",
                           json={"message_ids": [m1["id"]]}).json()["acknowledged"] == 1
    # Bounds and hostile input.
    for bad in ({"message_ids": [m1["id"]], "seconds": -1},
                {"message_ids": [m1["id"]], "seconds": 1e9},
                {"message_ids": "x"}, {"seconds": 5}):
        assert srv.worker.post("/channels/jobs/extend", json=bad).status_code == 400, bad
    # Needs what acknowledging needs: write.
    r = srv.reader.post("/channels/jobs/extend", json={"message_ids": [m1["id"]]})
    assert r.status_code == 403 and "extend leases on" in r.json()["message"]


def test_terminate(srv):
    make(srv, "jobs")
    srv.worker.put("/channels/jobs", json={"bad": True})
    srv.worker.put("/channels/jobs", json={"good": True})
    bad, good = claim(srv.worker, "jobs")
    r = srv.other.post("/channels/jobs/terminate", json={"message_ids": [bad["id"]]})
    assert r.json() == {"status": "ok", "terminated": 0}
    r = srv.worker.post("/channels/jobs/terminate",
                        json={"message_ids": [bad["id"]], "reason": "cannot parse \"bad\""})
    assert r.json() == {"status": "ok", "terminated": 1}
    # Gone for good: not acknowledgeable, never redelivered.
    assert srv.worker.post("/channels/jobs/acknowledge",
                           json={"message_ids": [bad["id"]]}).json()["acknowledged"] == 0
    srv.worker.post("/channels/jobs/nack", json={"message_ids": [good["id"]]})
    assert [m["content"]["data"] for m in claim(srv.other, "jobs")] == [{"good": True}]
    # In the dead-letter queue with its reason (a private queue: in-process and admin tools).
    info = srv.admin.get("/channels/jobs/info").json()
    assert info["options"]["dead_letter"] == "jobs.dead"
    assert srv.worker.post("/channels/jobs/terminate", json={"message_ids": [bad["id"]],
                                                             "reason": "x" * 1025}).status_code == 400
    assert srv.worker.post("/channels/jobs/terminate",
                           json={"message_ids": [good["id"]], "reason": 5}).status_code == 400
    r = srv.reader.post("/channels/jobs/terminate", json={"message_ids": [good["id"]]})
    assert r.status_code == 403


def test_terminate_into_public_dead_letter(srv):
    make(srv, "jobs.failed", kind="queue")
    make(srv, "jobs", dead_letter="jobs.failed")
    srv.worker.put("/channels/jobs", json={"x": 1})
    (m,) = claim(srv.worker, "jobs")
    srv.worker.post("/channels/jobs/terminate", json={"message_ids": [m["id"]], "reason": "poison"})
    (d,) = claim(srv.worker, "jobs.failed")
    assert d["content"]["data"] == {"x": 1} and d["dead_reason"] == "poison"


def test_backoff(srv):
    make(srv, "jobs", backoff=[3600])
    make(srv, "jobs2")
    info = srv.admin.get("/channels/jobs/info").json()
    assert info["options"]["backoff"] == [3600]
    for cid in ("jobs", "jobs2"):
        srv.worker.put(f"/channels/{cid}", json=1)
        (m,) = claim(srv.worker, cid)
        srv.worker.post(f"/channels/{cid}/nack", json={"message_ids": [m["id"]]})
    assert claim(srv.worker, "jobs") == []       # waits an hour
    assert len(claim(srv.worker, "jobs2")) == 1  # no backoff: at once
    # An explicit delay wins over the backoff.
    make(srv, "jobs3", backoff=[3600])
    srv.worker.put("/channels/jobs3", json=1)
    (m,) = claim(srv.worker, "jobs3")
    srv.worker.post("/channels/jobs3/nack", json={"message_ids": [m["id"]], "delay": 0.05})
    time.sleep(0.3)
    assert len(claim(srv.worker, "jobs3")) == 1
    for bad in ([-1], "5", [1] * 17, ["a"]):
        r = srv.admin.post("/channels", json={"id": "jobs9", "backoff": bad})
        assert r.status_code == 400, bad


def test_expired_lease_backoff(srv):
    make(srv, "jobs", claim_timeout=0.1, backoff=[3600])
    srv.worker.put("/channels/jobs", json=1)
    assert len(claim(srv.worker, "jobs")) == 1
    time.sleep(0.4)  # the lease ran out; the backoff step keeps it for an hour
    assert claim(srv.other, "jobs") == []


def test_delayed_delivery(srv):
    make(srv, "jobs")
    make(srv, "news", kind="topic")
    w = srv.worker
    r = w.post("/channels/jobs/messages", json={"data": {"later": 1}, "delay": 3600})
    assert r.status_code == 200
    r = w.post("/channels/jobs/messages",
               json={"data": {"later": 2}, "not_before": time.time() + 3600})
    assert r.status_code == 200
    r = w.post("/channels/jobs/messages", json={"data": {"now": 1}, "not_before": 1})
    assert claim(w, "jobs") and srv.admin.get("/channels/jobs/info").json()["depth"] == 3
    assert claim(srv.other, "jobs") == []
    w.post("/channels/jobs/messages", json={"data": "soon", "delay": 0.05})
    time.sleep(0.3)
    assert [m["content"]["data"] for m in claim(srv.other, "jobs")] == ["soon"]
    # Topics refuse delays (what was written is history at once).
    r = w.post("/channels/news/messages", json={"data": 1, "delay": 5})
    assert r.status_code == 400 and "topic" in r.json()["message"]
    for bad in ({"data": 1, "delay": -1}, {"data": 1, "delay": "5"},
                {"data": 1, "not_before": time.time() + 10 * 31536000}):
        assert w.post("/channels/jobs/messages", json=bad).status_code == 400, bad


def test_idempotent_writes(srv):
    make(srv, "jobs", dedup_window=600)
    w = srv.worker
    r1 = w.post("/channels/jobs/messages", json={"data": {"order": 7}, "idempotency_key": "o-7"})
    r2 = w.post("/channels/jobs/messages", json={"data": {"order": 7}, "idempotency_key": "o-7"})
    assert r1.json()["duplicate"] is False and r2.json()["duplicate"] is True
    assert r1.json()["item_id"] == r2.json()["item_id"]
    r3 = w.post("/channels/jobs/messages", json={"data": {"order": 8}, "idempotency_key": "o-8"})
    assert r3.json()["item_id"] != r1.json()["item_id"]
    assert srv.admin.get("/channels/jobs/info").json()["depth"] == 2
    assert srv.admin.get("/channels/jobs/info").json()["options"]["dedup_window"] == 600
    # A batch repeating a key (in itself or from before) stores it once.
    r = w.post("/channels/jobs/batch", json={"messages": [
        {"data": 1, "idempotency_key": "o-7"}, {"data": 2, "idempotency_key": "b"},
        {"data": 3, "idempotency_key": "b"}]})
    body = r.json()
    assert body["duplicates"] == 2
    assert body["item_ids"][0] == r1.json()["item_id"] and body["item_ids"][1] == body["item_ids"][2]
    assert srv.admin.get("/channels/jobs/info").json()["depth"] == 3
    for bad in ("", "x" * 256, "a\nb", 5):
        r = w.post("/channels/jobs/messages", json={"data": 1, "idempotency_key": bad})
        assert r.status_code == 400, bad


def test_ttl(srv):
    make(srv, "jobs")
    make(srv, "news", kind="topic")
    w = srv.worker
    w.post("/channels/jobs/messages", json={"data": "short", "ttl": 0.05})
    w.post("/channels/jobs/messages", json={"data": "long", "ttl": 3600})
    w.post("/channels/news/messages", json={"data": "short", "ttl": 0.05})
    w.post("/channels/news/messages", json={"data": "long"})
    time.sleep(0.3)  # the short ones have surely expired
    got = claim(w, "jobs")
    assert [m["content"]["data"] for m in got] == ["long"] and got[0]["expires_at"] > time.time()
    news = w.get("/channels/news").json()["messages"]
    assert [m["content"]["data"] for m in news] == ["long"]
    # The expired queue message went to the dead-letter queue with its reason.
    assert srv.admin.get("/channels/jobs/info").json()["depth"] == 1
    for bad in (-1, "1", 1e12):
        assert w.post("/channels/jobs/messages", json={"data": 1, "ttl": bad}).status_code == 400


def test_ttl_dead_letter_reason(srv):
    make(srv, "jobs.dl")
    make(srv, "jobs", dead_letter="jobs.dl")
    srv.worker.post("/channels/jobs/messages", json={"data": "short", "ttl": 0.05})
    time.sleep(0.3)
    assert claim(srv.worker, "jobs") == []
    (d,) = claim(srv.worker, "jobs.dl")
    assert d["content"]["data"] == "short" and d["dead_reason"] == "expired"
    assert "expires_at" not in d


def test_batch(srv):
    make(srv, "jobs")
    w = srv.worker
    r = w.post("/channels/jobs/batch", json={"messages": [{"data": i} for i in range(100)]})
    assert r.status_code == 200
    ids = r.json()["item_ids"]
    assert len(ids) == 100 and ids == sorted(ids) and r.json()["duplicates"] == 0
    got = claim(w, "jobs", limit=1000)
    assert [m["content"]["data"] for m in got] == list(range(100))
    assert [m["id"] for m in got] == ids


def test_batch_hostile(srv):
    make(srv, "jobs", max_messages=5)
    w = srv.worker
    bads = [
        b"", b"[]", b"{}", b'{"messages":[]}', b'{"messages":{}}', b'{"messages":[1]}',
        b'{"messages":[{"data":1}],"extra":1}', b'{"messages":[{"nodata":1}]}',
        b'{"messages":[{"data":1,"metadata":[1]}]}', b'{"messages":[{"data":1,"bogus":1}]}',
        b'{"messages":[' + b",".join([b'{"data":1}'] * 1001) + b"]}",
        b'{"messages":[{"data":1}', b'{"messages":[{"data":1,"correlation_id":"' + b"x" * 256 + b'"}]}',
        b'{"messages":[{"data":1,"reply_to":"a\\u0000b"}]}',
        b"[" * 100000,
    ]
    for body in bads:
        r = w.post("/channels/jobs/batch", content=body)
        assert r.status_code == 400, (body[:80], r.text)
    # One bad message refuses the whole batch; a batch that does not fit stores nothing.
    r = w.post("/channels/jobs/batch", json={"messages": [{"data": 1}, {"data": 2, "ttl": -1}]})
    assert r.status_code == 400 and "messages[1]" in r.json()["message"]
    r = w.post("/channels/jobs/batch", json={"messages": [{"data": i} for i in range(6)]})
    assert r.status_code == 429
    assert srv.admin.get("/channels/jobs/info").json()["depth"] == 0
    assert srv.reader.post("/channels/jobs/batch",
                           json={"messages": [{"data": 1}]}).status_code == 403


def test_envelope(srv):
    make(srv, "news", kind="topic")
    w = srv.worker
    # data and metadata go on as written: the same bytes back (0.10 stays 0.10, keys repeat).
    body = (b'{"data": {"a":1,"a":2,"n":0.10}, "metadata": {"trace":"t-1"}, '
            b'"correlation_id":"c-1", "reply_to":"replies", "recipient_id":"bob"}')
    r = w.post("/channels/news/messages", content=body)
    assert r.status_code == 200, r.text
    raw = w.get("/channels/news").text
    assert '"data":{"a":1,"a":2,"n":0.10}' in raw and '"metadata":{"trace":"t-1"}' in raw
    (m,) = w.get("/channels/news?after=0000000000000000").json()["messages"]
    assert m["correlation_id"] == "c-1" and m["reply_to"] == "replies"
    assert m["recipient_id"] == "bob" and m["sender_id"] == "w1"
    # The raw form keeps working as before.
    assert w.put("/channels/news", content=b'{"raw":true}').json()["status"] == "accepted"
    for bad in (b"{}", b'{"data":1,"metadata":"x"}', b'{"data":1,"extra":1}', b"[1]",
                b'{"data":1,"correlation_id":5}', b"nope"):
        r = w.post("/channels/news/messages", content=bad)
        assert r.status_code == 400, bad


def test_cli_and_client(srv, cli):
    """The CLI (on the C client library): channel options, the write envelope, extend,
    terminate."""
    env = {"SLUICE_URL": srv.url, "SLUICE_TOKEN": srv.token("ops", role="admin")}
    r = cli("channel", "create", "jobs", "--backoff", "1h,2h", "--dedup-window", "10m", env=env)
    assert r.returncode == 0, r.stderr
    info = srv.admin.get("/channels/jobs/info").json()["options"]
    assert info["backoff"] == [3600, 7200] and info["dedup_window"] == 600
    w = dict(env, SLUICE_TOKEN=srv.token("w1", role="write"))
    r1 = cli("write", "jobs", '{"n":0.10}', "--key", "k1", "--metadata", '{"m":1}',
             "--correlation-id", "c-9", "--ttl", "1h", env=w)
    assert r1.returncode == 0, r1.stderr
    r2 = cli("write", "jobs", '{"n":0.10}', "--key", "k1", env=w)
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    assert a["duplicate"] is False and b["duplicate"] is True and a["item_id"] == b["item_id"]
    assert cli("write", "jobs", "1", "--delay", "1h", env=w).returncode == 0
    r = cli("read", "jobs", "--exclusive", "--limit", "10", env=w)
    (m,) = json.loads(r.stdout)["messages"]
    assert '"data":{"n":0.10}' in r.stdout and m["metadata"] == {"m": 1}
    assert m["correlation_id"] == "c-9" and m["expires_at"] > time.time()
    r = cli("extend", "jobs", m["id"], "--seconds", "10m", env=w)
    assert json.loads(r.stdout) == {"status": "ok", "extended": 1}, r.stderr
    r = cli("terminate", "jobs", m["id"], "--reason", "bad input", env=w)
    assert json.loads(r.stdout) == {"status": "ok", "terminated": 1}, r.stderr
    assert cli("write", "jobs", "1", "--ttl", "soon", env=w).returncode == 2
    assert cli("terminate", "jobs", m["id"], "--reason", "", env=w).returncode == 2
    ro = dict(env, SLUICE_TOKEN=srv.token("r1", role="read"))
    assert cli("extend", "jobs", m["id"], env=ro).returncode == 4
    # A batch from stdin, one message per line, the envelope options on each.
    r = cli("write", "jobs", "-", "--lines", "--correlation-id", "b", env=w,
            input='{"l":1}\n\n[2]\n"three"\n')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "accepted" and out["duplicates"] == 0 and len(out["item_ids"]) == 3
    r = cli("read", "jobs", "--exclusive", "--limit", "10", env=w)
    got = [(x["id"], x["content"]["data"], x["correlation_id"])
           for x in json.loads(r.stdout)["messages"]]
    assert got == [(i, d, "b") for i, d in zip(out["item_ids"], [{"l": 1}, [2], "three"])], got
    # Bad lines refuse the whole batch before anything is sent.
    r = cli("write", "jobs", "-", "--lines", env=w, input='{"ok":1}\n{bad\n')
    assert r.returncode == 2 and "line 2 is not valid JSON" in r.stderr, r.stderr
    assert cli("write", "jobs", "-", "--lines", "--key", "k", env=w, input="1\n").returncode == 2
    assert cli("write", "jobs", "-", "--lines", env=w, input="\n").returncode == 2
