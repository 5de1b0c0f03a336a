"""Several sluiced nodes on the Redis engine (docs/SCALING.md), each test with real redis-servers
of its own on free loopback ports: writes on one node reach WebSocket subscribers on the others
once and in order (raw frames and the real centrifuge client), one queue claimed from three
nodes by sixty workers hands every message to one worker at a time, a node killed with claims
gives them back after the lease, grants changed on one node act on sockets of another, two
shards fail independently, Redis going away fails requests closed and the nodes heal by
themselves, hostile data planted in Redis gives errors, not crashes, and two deployments on two
dbs of one Redis hear neither each other's publications nor each other's revocations. Nothing is timed: waits
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

# How long a test waits for what must happen (a reply, a push, a node healing): generous, because
# three sluiced under the sanitizers and their Redis share a loaded machine; it only turns a hang
# into a failure.
WAIT = 60


def start_nodes(make_server, n, url, *extra):
    return [make_server("--engine", url, *extra) for _ in range(n)]


def admin(s):
    return s.client(s.token("ops", role="admin"), timeout=WAIT)


def ws(s, token, **kw):
    w = RawWS(s.host, s.port, timeout=WAIT, **kw)
    r = w.call("connect", {"token": token}, timeout=WAIT)
    assert "connect" in r, r
    return w


def until(cond, timeout=WAIT, what="a condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pubs_on(w, channel, n, timeout=WAIT):
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
        res = w.call("subscribe", {"channel": "news"}, timeout=WAIT)
        assert res.get("subscribe", {}).get("recoverable") is True, res
        subs.append(w)
    writer = a.client(a.token("writer", role="write"), timeout=WAIT)
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
    # A channel created on A a moment ago is found on C at once, even while C's feed of other
    # nodes' changes is down (its subscription connections killed: C reconnects after 100 ms):
    # C asks Redis about a channel it does not know before answering "unknown channel".
    w = ws(c, reader)
    ops_a, ops_c = admin(a), admin(c)
    r.command("CLIENT", "KILL", "TYPE", "pubsub")
    assert ops_a.post("/channels", json={"id": "fresh", "kind": "topic"}).status_code == 201
    assert ops_c.get("/channels/fresh/info").status_code == 200
    # A subscription needs the feed, so until it is back the answer is a temporary error
    # (fail closed); the client retries and is subscribed.
    def subscribed():
        res = w.call("subscribe", {"channel": "fresh"}, timeout=WAIT)
        assert "subscribe" in res or res["error"] == {"code": 100, "message": "internal server error",
                                                      "temporary": True}, res
        return "subscribe" in res
    until(subscribed, what="the subscription once the feed is back")
    w.close()
    w = ws(c, reader)
    assert w.call("subscribe", {"channel": "never-made"},
                  timeout=WAIT)["error"]["code"] == 102  # unknown channel
    w.close()


def two_deployments(make_server, make_redis):
    """Two deployments with the same engine_prefix on one Redis: nodes a1, a2 on db 1, node b on
    db 2 (each with the default revocation store: the engine's Redis and db)."""
    r = make_redis()
    a1, a2 = start_nodes(make_server, 2, r.url + "/1")
    (b,) = start_nodes(make_server, 1, r.url + "/2")
    assert "revocation redis" in b.stderr()
    return a1, a2, b


# Redis delivers a PUBLISH to every subscriber of the server whatever db it SELECTed, so sluice
# names its pub/sub channels per db. Redis hands one subscriber its messages in the order it ran
# the PUBLISHes: once b hears its own event, the other deployment's earlier one would have come
# first, so neither test below waits for an absence.

def test_publications_stay_in_their_db(make_server, make_redis):
    """A publication on one deployment never reaches a WebSocket subscriber of the same channel id
    on the other; the two nodes of one deployment still hear each other."""
    a1, a2, b = two_deployments(make_server, make_redis)
    for s in (a1, b):
        assert admin(s).post("/channels", json={"id": "news", "kind": "topic"}).status_code == 201
    reader = a1.token("reader", role="read")
    wa, wb = ws(a2, reader), ws(b, reader)
    for w in (wa, wb):
        assert "subscribe" in w.call("subscribe", {"channel": "news"}, timeout=WAIT)
    put_a = a1.client(a1.token("writer", role="write"), timeout=WAIT)
    put_b = b.client(b.token("writer", role="write"), timeout=WAIT)
    assert put_a.put("/channels/news", json={"from": "a", "n": 1}).status_code == 200
    assert put_b.put("/channels/news", json={"from": "b", "n": 1}).status_code == 200
    assert put_b.put("/channels/news", json={"from": "b", "n": 2}).status_code == 200
    assert put_a.put("/channels/news", json={"from": "a", "n": 2}).status_code == 200
    for w, me in ((wa, "a"), (wb, "b")):
        got = pubs_on(w, "news", 2)
        assert [(p["data"]["from"], p["data"]["n"], p["offset"]) for p in got] == \
            [(me, 1, 1), (me, 2, 2)], got
        w.close()


def test_revocations_stay_in_their_db(make_server, make_redis):
    """A user revoked on one deployment has its socket on the other node of that deployment closed
    (3503), and keeps its socket on the other deployment."""
    a1, a2, b = two_deployments(make_server, make_redis)
    assert admin(b).post("/channels", json={"id": "news", "kind": "topic"}).status_code == 201
    reader = a1.token("reader", role="read")
    wa, wb = ws(a2, reader), ws(b, reader)
    assert "subscribe" in wb.call("subscribe", {"channel": "news"}, timeout=WAIT)
    marker = ws(b, b.token("marker", role="read"))
    assert admin(a1).post("/revoke", json={"user_id": "reader"}).status_code == 200
    assert wa.wait_close(timeout=WAIT) == 3503
    # A revocation on b of a user with a socket there: once it closed, b has heard what came
    # before it.
    assert admin(b).post("/revoke", json={"user_id": "marker"}).status_code == 200
    assert marker.wait_close(timeout=WAIT) == 3503
    put_b = b.client(b.token("writer", role="write"), timeout=WAIT)
    assert put_b.put("/channels/news", json={"n": 1}).status_code == 200
    assert [p["data"] for p in pubs_on(wb, "news", 1)] == [{"n": 1}]  # still open
    assert b.client(reader, timeout=WAIT).get("/channels").status_code == 200
    assert a2.client(reader, timeout=WAIT).get("/channels").status_code == 401
    for w in (wa, wb, marker):
        w.close()


def test_publisher_faster_than_redis_gets_every_reply_in_order(make_server, make_redis):
    """A WebSocket publisher that sends 900 publications without waiting, 100 to a frame, on a
    Redis-engine node: every one is stored and acknowledged, the replies come in command order,
    none is refused as too many requests (the session keeps several in flight and stops reading
    the socket while commands wait, instead of refusing them)."""
    r = make_redis()
    (a,) = start_nodes(make_server, 1, r.url)
    assert admin(a).post("/channels", json={"id": "fast", "kind": "topic",
                                            "max_messages": 5000}).status_code == 201
    w = ws(a, a.token("pub", role="write"))
    ids = []
    for f in range(9):  # within ws_commands_per_second (1,000) with the connect
        frame = []
        for k in range(100):
            i, obj = w.cmd("publish", {"channel": "fast", "data": {"n": f * 100 + k}}, send=False)
            ids.append(i)
            frame.append(obj)
        w.send_json(*frame)
    got = []
    deadline = time.time() + 60
    while len(got) < len(ids):
        assert time.time() < deadline, f"{len(got)} of {len(ids)} replies"
        got += [o for o in w.recv_objs(max(0.1, deadline - time.time())) if "id" in o]
    assert [o["id"] for o in got] == ids
    assert [o for o in got if "error" in o] == []
    w.close()
    hist = admin(a).get("/channels/fast?limit=1000").json()["messages"]
    assert [m["content"]["data"]["n"] for m in hist] == list(range(900))


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
    w = a.client(a.token("producer", role="write"), timeout=WAIT)
    total = 10000
    for start in range(0, total, 1000):
        batch = [{"data": {"n": n}} for n in range(start, start + 1000)]
        assert w.post("/channels/jobs/batch", json={"messages": batch}).status_code == 200
    seen = {}
    lock = threading.Lock()
    errors = []

    def worker(node, name):
        c = node.client(node.token(name, role="write"), timeout=WAIT)
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
    lease = 3  # seconds
    try:
        assert admin(a).post("/channels", json={"id": "jobs", "kind": "queue",
                                                "claim_timeout": lease}).status_code == 201
        assert admin(a).post("/channels", json={"id": "news", "kind": "topic"}).status_code == 201
        wa = a.client(a.token("w1", role="write"), timeout=WAIT)
        for n in range(5):
            assert wa.put("/channels/jobs", json={"n": n}).status_code == 200
        claimed_at = time.time()  # the lease runs from later than this (the server's wall clock)
        held = wa.get("/channels/jobs?exclusive=true&limit=5").json()["messages"]
        assert len(held) == 5
        # A topic subscriber on A, at offset 3 when A dies.
        sock = ws(a, a.token("reader", role="read"))
        sub = sock.call("subscribe", {"channel": "news"}, timeout=WAIT)["subscribe"]
        for n in range(1, 4):
            assert wa.put("/channels/news", json={"n": n}).status_code == 200
        assert [p["offset"] for p in pubs_on(sock, "news", 3)] == [1, 2, 3]
    finally:
        a.proc.kill()  # kill -9: its worker never acknowledges, its sockets drop
        a.proc.wait()
    # Written while the client is away, then it comes back on B and recovers from the stream.
    wb0 = b.client(b.token("w2", role="write"), timeout=WAIT)
    for n in (4, 5):
        assert wb0.put("/channels/news", json={"n": n}).status_code == 200
    sock = ws(b, b.token("reader", role="read"))
    res = sock.call("subscribe", {"channel": "news", "recover": True, "offset": 3,
                                  "epoch": sub["epoch"]}, timeout=WAIT)["subscribe"]
    assert res.get("recovered") is True, res
    assert [p["data"]["n"] for p in res["publications"]] == [4, 5]
    sock.close()
    wb = b.client(b.token("w2", role="write"), timeout=WAIT)
    again = wb.get("/channels/jobs?exclusive=true&limit=5").json()["messages"]
    # Still leased, which this can only tell while the lease surely runs: on a loaded machine the
    # steps since the claim may have taken longer than the lease (then they were handed out again,
    # and are counted below).
    if time.time() < claimed_at + lease:
        assert again == []

    def all_back():
        again.extend(wb.get("/channels/jobs?exclusive=true&limit=5").json()["messages"])
        return len(again) >= 5

    until(all_back, what="the killed node's claims once the lease ran out")
    assert sorted(m["content"]["data"]["n"] for m in again) == [0, 1, 2, 3, 4]
    assert all(m["attempt"] == 2 for m in again), again


def test_grant_narrowed_on_one_node_acts_on_another(make_server, make_redis):
    r = make_redis()
    a, c = start_nodes(make_server, 2, r.url, "--authz", "acl", "--admin", "ops")
    ops = admin(a)
    assert ops.post("/channels", json={"id": "news", "kind": "topic"}).status_code == 201
    assert ops.put("/acl/carol", json={"role": "read", "channels": ["news"]}).status_code == 200
    # The grant made on A is in force on C at once.
    carol_c = c.client(c.token("carol"), timeout=WAIT)
    assert carol_c.get("/channels/news").status_code == 200
    w = ws(c, c.token("carol"))
    assert "subscribe" in w.call("subscribe", {"channel": "news"}, timeout=WAIT)
    # Narrowed on A: C's socket loses the subscription (push 2000) without a new request.
    assert ops.put("/acl/carol", json={"role": "read", "channels": ["other"]}).status_code == 200
    seen = []
    deadline = time.time() + WAIT
    while time.time() < deadline:
        objs = w.recv_objs(timeout=max(0.1, deadline - time.time()))
        seen.extend(objs)
        if any(o.get("push", {}).get("unsubscribe") for o in objs):
            break
    assert any(o.get("push", {}).get("unsubscribe", {}).get("code") == 2000 for o in seen), seen
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
    w = a.client(a.token("w", role="write"), timeout=WAIT)
    acked = []
    for n in range(20):
        res = w.put("/channels/jobs", json={"n": n})
        assert res.status_code == 200
        acked.append(n)
    # Under load: a writer on each node keeps writing through the outage. Each phase lasts until
    # the writers have seen it (fixed sleeps of 0.5 s could pass without a single answer from a
    # node on a loaded machine).
    stop = threading.Event()
    lock = threading.Lock()
    codes = {}
    after = {}  # per writer: writes acknowledged after Redis came back

    def load(node, base):
        c = node.client(node.token("w", role="write"), timeout=WAIT)
        n = base
        while not stop.is_set():
            try:
                res = c.put("/channels/jobs", json={"n": n})
            except Exception:  # a connection refused while a node is busy: not acknowledged
                continue
            with lock:
                codes[res.status_code] = codes.get(res.status_code, 0) + 1
                if res.status_code == 200:
                    acked.append(n)
                    if restarted.is_set():
                        after[base] = after.get(base, 0) + 1
            n += 1

    def count(code):
        with lock:
            return codes.get(code, 0)

    restarted = threading.Event()
    threads = [threading.Thread(target=load, args=(x, base)) for x, base in ((a, 1000), (b, 100000))]
    for t in threads:
        t.start()
    until(lambda: count(200) > 20, what="the writers' first acknowledged writes")
    r.stop()
    res = w.put("/channels/jobs", json={"n": 99})
    assert res.status_code == 503 and res.headers.get("retry-after"), res.text
    res = b.client(b.token("w", role="write"), timeout=WAIT).get("/channels/jobs?exclusive=true")
    assert res.status_code == 503
    until(lambda: count(503) > 0, what="a writer to be refused during the outage")
    r.start()
    restarted.set()
    # Both nodes come back by themselves; nothing acknowledged was lost (appendfsync always).
    until(lambda: w.put("/channels/jobs", json={"n": 20}).status_code == 200, what="node A to heal")
    until(lambda: len(after) == 2, what="both writers' writes to be acknowledged again")
    stop.set()
    for t in threads:
        t.join()
    assert codes.get(503, 0) > 0 and codes.get(200, 0) > 20, codes
    assert set(codes) <= {200, 503}, codes
    wb = b.client(b.token("w", role="write"), timeout=WAIT)
    until(lambda: wb.get("/channels/jobs/info").status_code == 200, what="node B to heal")
    got = []
    while True:
        msgs = wb.get("/channels/jobs?exclusive=true&limit=100").json()["messages"]
        if not msgs:
            break
        got += [m["content"]["data"]["n"] for m in msgs]
        wb.post("/channels/jobs/acknowledge", json={"message_ids": [m["id"] for m in msgs]})
    # Every acknowledged write is there exactly once (a write whose reply was lost may be there too).
    assert sorted(set(got)) == sorted(got)
    assert set(acked) <= set(got), sorted(set(acked) - set(got))[:5]
    assert 20 in got


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


def test_presence_seen_from_any_node(make_server, make_redis):
    """Presence and join/leave come from Redis: every node lists every node's subscribers, a join
    or leave on one node is pushed on the others, and a node killed with -9 loses its entries
    once their lifetime (SLUICE_PRESENCE_TTL, shortened here) has passed."""
    r = make_redis()
    env = {"SLUICE_PRESENCE_TTL": "3"}
    a, b = (make_server("--engine", r.url, env=env) for _ in range(2))
    c = Server(("--engine", r.url), env=env).start()
    try:
        assert admin(a).post("/channels", json={"id": "room", "kind": "topic", "presence": True,
                                                "join_leave": True}).status_code == 201
        pushes = {}

        def connect(s, user):
            w = RawWS(s.host, s.port, timeout=WAIT)
            res = w.call("connect", {"token": s.token(user, role="read")}, timeout=WAIT)
            pushes[w] = []
            return w, res["connect"]["client"]

        def call(w, method, body):
            i, _ = w.cmd(method, body)
            return w.reply(i, timeout=WAIT, pushes=pushes[w])

        def presence(w):
            res = call(w, "presence", {"channel": "room"})
            p = res["presence"]["presence"]
            assert all(v["client"] == k for k, v in p.items()), p
            return {k: v["user"] for k, v in p.items()}

        def push_for(w, kind, client):
            """Waits for a join or leave push of client on w (pushes read meanwhile are kept)."""
            def seen():
                return [p for p in pushes[w] if p.get("push", {}).get("channel") == "room"
                        and p["push"].get(kind, {}).get("info", {}).get("client") == client]
            deadline = time.time() + WAIT
            while not seen() and time.time() < deadline:
                try:
                    pushes[w].extend(o for o in w.recv_objs(0.2) if o != {})
                except Exception:
                    pass
            got = seen()
            assert got, f"no {kind} of {client} in {pushes[w]}"
            return got

        wb, cb = connect(b, "bob")
        assert "subscribe" in call(wb, "subscribe", {"channel": "room"})
        wa, ca = connect(a, "alice")
        assert "subscribe" in call(wa, "subscribe", {"channel": "room"})
        # B's client hears A's subscriber join; A's does not hear its own.
        j = push_for(wb, "join", ca)
        assert len(j) == 1 and j[0]["push"]["join"]["info"]["user"] == "alice", j
        want = {ca: "alice", cb: "bob"}
        assert presence(wa) == want
        assert presence(wb) == want
        st = call(wa, "presence_stats", {"channel": "room"})
        assert st["presence_stats"] == {"num_clients": 2, "num_users": 2}, st
        assert not [p for p in pushes[wa] if "join" in p.get("push", {})
                    and p["push"]["join"]["info"]["client"] == ca], pushes[wa]

        # A third node's subscriber; its node killed: gone from every list after the lifetime.
        wc, cc = connect(c, "carol")
        assert "subscribe" in call(wc, "subscribe", {"channel": "room"})
        push_for(wb, "join", cc)
        assert presence(wb) == {ca: "alice", cb: "bob", cc: "carol"}
        # Refreshed by their nodes while they run: every entry's expiry (its score in the
        # channel's presx set) moves on. Waited for, not slept for: sleeping past the lifetime
        # and asserting the entries are still there failed whenever a loaded machine made a
        # refresh late, which is not what this checks.
        presx = [k for k in r.command("KEYS", "sluice:*presx").split(b"\r\n")
                 if k.startswith(b"sluice:")]
        assert len(presx) == 1, presx

        def expiry(client):
            head, _, rest = r.command("ZSCORE", presx[0], client).partition(b"\r\n")
            return float(rest.split(b"\r\n")[0]) if head.startswith(b"$") and head != b"$-1" else 0

        first = {k: expiry(k) for k in (ca, cb, cc)}
        assert all(first.values()), first
        until(lambda: all(expiry(k) > first[k] for k in first), what="every entry refreshed")
        assert presence(wa) == {ca: "alice", cb: "bob", cc: "carol"}
    finally:
        c.proc.kill()  # kill -9: it removes nothing
        c.proc.wait()
    until(lambda: presence(wb) == {ca: "alice", cb: "bob"}, what="the dead node's entry to go")
    assert presence(wa) == {ca: "alice", cb: "bob"}
    push_for(wb, "leave", cc)

    # A's socket closes: B's client gets the leave, and A's entry is gone at once.
    wa.close()
    lv = push_for(wb, "leave", ca)
    assert lv[0]["push"]["leave"]["info"]["user"] == "alice"
    assert presence(wb) == {cb: "bob"}
    # Each join and leave once.
    for kind, client in (("join", ca), ("join", cc), ("leave", cc), ("leave", ca)):
        assert len(push_for(wb, kind, client)) == 1, (kind, client, pushes[wb])
    wb.close()


def test_graceful_stop_with_redis_up(make_server, make_redis):
    """SIGTERM stops a node whose Redis is up and whose sockets are open (its connections to Redis
    must not keep it running), after what its sessions submitted was answered: its socket gets
    the shutdown close frame, and its presence entries are gone at once, not after their
    lifetime."""
    r = make_redis()
    a = Server(("--engine", r.url)).start()
    b = make_server("--engine", r.url)
    try:
        assert admin(a).post("/channels", json={"id": "room", "kind": "topic", "presence": True,
                                                "join_leave": False}).status_code == 201
        wa = ws(a, a.token("alice", role="read"))
        assert "subscribe" in wa.call("subscribe", {"channel": "room"}, timeout=WAIT)
        wb = ws(b, b.token("bob", role="read"))
        assert "subscribe" in wb.call("subscribe", {"channel": "room"}, timeout=WAIT)
        users = lambda: sorted(v["user"] for v in wb.call("presence", {"channel": "room"}, timeout=WAIT)
                               ["presence"]["presence"].values())
        assert users() == ["alice", "bob"]
        a.proc.send_signal(signal.SIGTERM)
        assert wa.wait_close(timeout=30) == 3001
        assert a.proc.wait(timeout=30) == 0, a.stderr()
        assert users() == ["bob"]
        wa.close()
        wb.close()
    finally:
        if a.proc.poll() is None:
            a.proc.kill()
