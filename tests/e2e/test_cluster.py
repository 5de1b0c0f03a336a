"""Several sluiced nodes on the Redis engine (docs/SCALING.md), each test with real redis-servers
of its own on free loopback ports: writes on one node reach WebSocket subscribers on the others
once and in order (raw frames and the real centrifuge client), one queue claimed from three
nodes by sixty workers hands every message to one worker at a time, a node killed with claims
gives them back after the lease, grants changed on one node act on sockets of another, two
shards fail independently, Redis going away fails requests closed and the nodes heal by
themselves, and hostile data planted in Redis gives errors, not crashes. Nothing is timed: waits
are deadlines that only turn a hang into a failure."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import Server
from wsraw import RawWS
from test_ws_centrifuge import run_node, NODE, SCRIPT  # noqa: F401  (the node harness)


def start_nodes(make_server, n, url, *extra):
    return [make_server("--engine", url, *extra) for _ in range(n)]


def admin(s):
    return s.client(s.token("ops", role="admin"))


def ws(s, token, **kw):
    w = RawWS(s.host, s.port, **kw)
    r = w.call("connect", {"token": token})
    assert "connect" in r, r
    return w


def until(cond, timeout=15, what="a condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pubs_on(w, channel, n, timeout=15):
    """The next n publications pushed to w on channel (other pushes are ignored)."""
    got = []
    deadline = time.time() + timeout
    while len(got) < n:
        for o in w.recv_objs(max(0.1, deadline - time.time())):
            push = o.get("push")
            if push and push.get("channel") == channel and "pub" in push:
                got.append(push["pub"])
        assert time.time() < deadline, f"only {len(got)} of {n} publications"
    return got


def test_write_on_one_node_reaches_subscribers_on_the_others(make_server, make_redis):
    r = make_redis()
    a, b, c = start_nodes(make_server, 3, r.url)
    assert "engine redis" in a.stderr()
    assert admin(a).post("/channels", json={"id": "news", "kind": "topic"}).status_code == 201
    # Created on A: known on B and C at once (their next request).
    for s in (b, c):
        assert admin(s).get("/channels/news/info").status_code == 200
    reader = a.token("reader", role="read")
    subs = []
    for s in (b, c):
        w = ws(s, reader)
        res = w.call("subscribe", {"channel": "news"})
        assert res.get("subscribe", {}).get("recoverable") is True, res
        subs.append(w)
    writer = a.client(a.token("writer", role="write"))
    for n in range(1, 41):
        assert writer.put("/channels/news", json={"n": n}).status_code == 200
    for w in subs:
        got = pubs_on(w, "news", 40)
        assert [p["data"]["n"] for p in got] == list(range(1, 41))
        assert [p["offset"] for p in got] == list(range(1, 41))
        # exactly once: nothing more arrives
        with pytest.raises(Exception):
            pubs_on(w, "news", 1, timeout=0.5)
        w.close()


def test_centrifuge_client_on_another_node(make_server, make_redis):
    r = make_redis()
    a, b = start_nodes(make_server, 2, r.url)
    assert admin(a).post("/channels", json={"id": "news", "kind": "topic"}).status_code == 201
    env_write = {"SLUICE_WRITE_URL": a.url}
    os.environ.update(env_write)
    try:
        res = run_node(b, "deliver", channel="news", token=b.token("reader", role="read"),
                       writer=a.token("writer", role="write"))
        assert [p["offset"] for p in res["pubs"]] == [3, 4, 5, 6, 7]
        # A dropped socket comes back on node A and recovers what B's stream had meanwhile.
        res = run_node(b, "recovery", channel="news", token=b.token("reader", role="read"),
                       writer=a.token("writer", role="write"), reconnect_url=a.url)
        assert res["resubscribed"]["recovered"] is True
    finally:
        os.environ.pop("SLUICE_WRITE_URL", None)


def test_sixty_workers_on_three_nodes_share_one_queue(make_server, make_redis):
    r = make_redis()
    nodes = start_nodes(make_server, 3, r.url)
    a = nodes[0]
    assert admin(a).post("/channels", json={"id": "jobs", "kind": "queue", "claim_timeout": 600,
                                            "max_messages": 20000}).status_code == 201
    w = a.client(a.token("producer", role="write"))
    total = 10000
    for start in range(0, total, 1000):
        batch = [{"data": {"n": n}} for n in range(start, start + 1000)]
        assert w.post("/channels/jobs/batch", json={"messages": batch}).status_code == 200
    seen = {}
    lock = threading.Lock()
    errors = []

    def worker(node, name):
        c = node.client(node.token(name, role="write"))
        try:
            while True:
                r = c.get("/channels/jobs?exclusive=true&limit=20")
                assert r.status_code == 200, r.text
                msgs = r.json()["messages"]
                if not msgs:
                    return
                with lock:
                    for m in msgs:
                        seen.setdefault(m["content"]["data"]["n"], []).append(name)
                r = c.post("/channels/jobs/acknowledge", json={"message_ids": [m["id"] for m in msgs]})
                assert r.status_code == 200 and r.json()["acknowledged"] == len(msgs), r.text
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(nodes[i % 3], f"w{i}")) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]
    assert sorted(seen) == list(range(total))
    twice = {n: who for n, who in seen.items() if len(who) != 1}
    assert not twice, list(twice.items())[:5]
    info = admin(nodes[1]).get("/channels/jobs/info").json()
    assert info["depth"] == 0


def test_killed_node_claims_come_back_after_the_lease(make_server, make_redis):
    r = make_redis()
    a = Server(("--engine", r.url)).start()
    b = make_server("--engine", r.url)
    try:
        assert admin(a).post("/channels", json={"id": "jobs", "kind": "queue",
                                                "claim_timeout": 1}).status_code == 201
        wa = a.client(a.token("w1", role="write"))
        for n in range(5):
            assert wa.put("/channels/jobs", json={"n": n}).status_code == 200
        held = wa.get("/channels/jobs?exclusive=true&limit=5").json()["messages"]
        assert len(held) == 5
    finally:
        a.proc.kill()  # kill -9: its worker never acknowledges
        a.proc.wait()
    wb = b.client(b.token("w2", role="write"))
    assert wb.get("/channels/jobs?exclusive=true&limit=5").json()["messages"] == []  # still leased
    time.sleep(1.5)  # the lease (1 s) has surely run out
    again = wb.get("/channels/jobs?exclusive=true&limit=5").json()["messages"]
    assert sorted(m["content"]["data"]["n"] for m in again) == [0, 1, 2, 3, 4]
    assert all(m["attempt"] == 2 for m in again), again


def test_grant_narrowed_on_one_node_acts_on_another(make_server, make_redis):
    r = make_redis()
    a, c = start_nodes(make_server, 2, r.url, "--authz", "acl", "--admin", "ops")
    ops = admin(a)
    assert ops.post("/channels", json={"id": "news", "kind": "topic"}).status_code == 201
    assert ops.put("/acl/carol", json={"role": "read", "channels": ["news"]}).status_code == 200
    # The grant made on A is in force on C at once.
    carol_c = c.client(c.token("carol"))
    assert carol_c.get("/channels/news").status_code == 200
    w = ws(c, c.token("carol"))
    assert "subscribe" in w.call("subscribe", {"channel": "news"})
    # Narrowed on A: C's socket loses the subscription (push 2000) without a new request.
    assert ops.put("/acl/carol", json={"role": "read", "channels": ["other"]}).status_code == 200
    t0 = time.time()
    seen = []
    deadline = time.time() + 10
    while time.time() < deadline:
        objs = w.recv_objs(timeout=max(0.1, deadline - time.time()))
        seen.extend(objs)
        if any(o.get("push", {}).get("unsubscribe") for o in objs):
            break
    assert any(o.get("push", {}).get("unsubscribe", {}).get("code") == 2000 for o in seen), seen
    assert time.time() - t0 < 10
    assert carol_c.get("/channels/news").status_code == 403
    w.close()


def test_two_shards_fail_independently(make_server, make_redis):
    r1, r2 = make_redis(), make_redis()
    a = make_server("--engine", f"{r1.url},{r2.url}")
    ops = admin(a)
    ids = [f"ch{i}" for i in range(40)]
    for cid in ids:
        assert ops.post("/channels", json={"id": cid, "kind": "queue"}).status_code == 201
        assert ops.put(f"/channels/{cid}", json={"id": cid}).status_code == 200
    # Spread over both: each Redis holds some of the channels.
    on1 = r1.command("SMEMBERS", "sluice:channels")
    on2 = r2.command("SMEMBERS", "sluice:channels")
    assert b"ch" in on1 and b"ch" in on2
    r2.kill()
    ok = failed = 0
    for cid in ids:
        res = ops.put(f"/channels/{cid}", json=1)
        if res.status_code == 200:
            ok += 1
        else:
            assert res.status_code == 503, res.text
            assert res.headers.get("retry-after")
            failed += 1
    assert ok > 0 and failed > 0, (ok, failed)


def test_redis_restart_fails_closed_then_heals(make_server, make_redis):
    r = make_redis(persist=True)
    a, b = start_nodes(make_server, 2, r.url)
    ops = admin(a)
    assert ops.post("/channels", json={"id": "jobs", "kind": "queue"}).status_code == 201
    w = a.client(a.token("w", role="write"))
    acked = []
    for n in range(20):
        res = w.put("/channels/jobs", json={"n": n})
        assert res.status_code == 200
        acked.append(n)
    r.stop()
    res = w.put("/channels/jobs", json={"n": 99})
    assert res.status_code == 503 and res.headers.get("retry-after"), res.text
    res = b.client(b.token("w", role="write")).get("/channels/jobs?exclusive=true")
    assert res.status_code == 503
    r.start()
    # Both nodes come back by themselves; nothing acknowledged was lost (appendfsync always).
    until(lambda: w.put("/channels/jobs", json={"n": 20}).status_code == 200, what="node A to heal")
    wb = b.client(b.token("w", role="write"))
    until(lambda: wb.get("/channels/jobs/info").status_code == 200, what="node B to heal")
    got = []
    while True:
        msgs = wb.get("/channels/jobs?exclusive=true&limit=100").json()["messages"]
        if not msgs:
            break
        got += [m["content"]["data"]["n"] for m in msgs]
    assert got == acked + [20]


def test_hostile_data_in_redis(make_server, make_redis):
    r = make_redis()
    a = make_server("--engine", r.url)
    ops = admin(a)
    for cid, kind in (("t", "topic"), ("q", "queue")):
        assert ops.post("/channels", json={"id": cid, "kind": kind}).status_code == 201
        assert ops.put(f"/channels/{cid}", json={"x": 1}).status_code == 200
    keys = r.command("KEYS", "sluice:*").split(b"\r\n")
    keys = [k for k in keys if k.startswith(b"sluice:")]
    assert keys
    # Every key of sluice's replaced by a value of the wrong type, then by garbage strings.
    for k in keys:
        r.command("DEL", k)
        r.command("SET", k, b"\xff\x00garbage")
    for cid in ("t", "q"):
        for method, path, body in (("PUT", f"/channels/{cid}", 1), ("GET", f"/channels/{cid}", None),
                                   ("GET", f"/channels/{cid}?exclusive=true", None),
                                   ("GET", f"/channels/{cid}/info", None)):
            res = ops.request(method, path, json=body) if body is not None else ops.request(method, path)
            assert res.status_code in (400, 404, 409, 500, 503), (path, res.status_code, res.text)
            assert "garbage" not in res.text
    assert ops.get("/channels").status_code in (200, 500, 503)
    assert a.proc.poll() is None  # still serving
