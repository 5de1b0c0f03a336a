"""The server API (docs/OPERATIONS.md "Server API") against real WebSocket sessions (Centrifugo
protocol over wsraw.RawWS): connections listed with their subscriptions, a principal's sockets
closed with the code and reason asked for (and nobody else's), a server-side unsubscribe pushed
and deliveries stopped, presence as the sessions see it, channel statistics, the audit log read
back with its chain verified; every route refused to a non-administrator, every change audited,
hostile input answered 4xx."""
import json
import time

import pytest

from wsraw import RawWS

WAIT = 10


@pytest.fixture
def srv(make_server, tmp_path):
    log = tmp_path / "audit.jsonl"
    s = make_server("--audit-log", str(log))
    s.audit = log
    s.admin = s.client(s.token("ops", role="admin"))
    assert s.admin.post("/channels", json={"id": "news", "kind": "topic",
                                           "presence": True}).status_code == 201
    assert s.admin.post("/channels", json={"id": "jobs", "kind": "queue", "max_attempts": 1,
                                           "dead_letter": "jobs-dead"}).status_code == 201
    return s


def connected(s, sub, channels=("news",), role="read"):
    r = RawWS(s.host, s.port, timeout=WAIT)
    assert r.status == 101
    rep = r.call("connect", {"token": s.token(sub, role=role, channels=["*"])}, timeout=WAIT)
    assert "connect" in rep, rep
    r.client_id = rep["connect"]["client"]
    for ch in channels:
        rep = r.call("subscribe", {"channel": ch}, timeout=WAIT)
        assert "subscribe" in rep, rep
    return r


def conns(s, **params):
    admin = getattr(s, "admin", None) or s.client(s.token("ops", role="admin"))
    r = admin.get("/server/connections", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def audit_events(s):
    return [json.loads(line) for line in s.audit.read_text().splitlines()]


def test_list_shows_connections(srv):
    a1, a2, b = connected(srv, "alice"), connected(srv, "alice", ()), connected(srv, "bob")
    try:
        body = conns(srv)
        assert body["count"] == 3 and body["more"] is False
        by_user = sorted((c["principal"], tuple(c["subscriptions"])) for c in body["connections"])
        assert by_user == [("alice", ()), ("alice", ("news",)), ("bob", ("news",))]
        c = body["connections"][0]
        assert c["transport"] == "websocket" and c["workspace"] == ""
        assert c["remote"].startswith("127.0.0.1:") and c["since"] > 0
        assert len({c["id"] for c in body["connections"]}) == 3
        only = conns(srv, principal="alice")
        assert only["count"] == 2 and {c["principal"] for c in only["connections"]} == {"alice"}
        assert conns(srv, principal="carol")["count"] == 0
        assert conns(srv, limit=1) == {**conns(srv, limit=1), "count": 1, "more": True}
    finally:
        for r in (a1, a2, b):
            r.close()


def test_disconnect_principal_closes_exactly_its_sockets(srv):
    a1, a2, b = connected(srv, "alice"), connected(srv, "alice"), connected(srv, "bob")
    try:
        r = srv.admin.post("/server/disconnect",
                           json={"principal": "alice", "code": 4501, "reason": "maintenance"})
        assert r.status_code == 200 and r.json() == {"disconnected": 2}, r.text
        for s in (a1, a2):
            assert s.wait_close(timeout=WAIT) == 4501
            assert s.close_reason == "maintenance"
        # bob's socket still works: a write reaches it
        assert srv.admin.put("/channels/news", json={"n": 1}).status_code == 200
        pushes = []
        while not any("push" in p for p in pushes):
            pushes.extend(o for o in b.recv_objs(timeout=WAIT) if o)
        assert [c["principal"] for c in conns(srv)["connections"]] == ["bob"]
        rec = audit_events(srv)[-1]
        assert rec["event"] == "server.disconnect" and rec["actor"] == "ops"
        assert rec["principal"] == "alice" and rec["code"] == "4501"
        assert rec["reason"] == "maintenance" and rec["connections"] == "2"
    finally:
        for s in (a1, a2, b):
            s.close()


def test_disconnect_one_connection_default_code(srv):
    a1, a2 = connected(srv, "alice"), connected(srv, "alice")
    try:
        ids = {c["id"] for c in conns(srv)["connections"]}
        assert ids == {a1.client_id, a2.client_id}
        r = srv.admin.post("/server/disconnect", json={"connection": a1.client_id})
        assert r.status_code == 200 and r.json() == {"disconnected": 1}
        # Centrifugo's "force disconnect" (no reconnect) unless a code is given
        assert a1.wait_close(timeout=WAIT) == 3503
        assert [c["id"] for c in conns(srv)["connections"]] == [a2.client_id]
        assert "presence_stats" in a2.call("presence_stats", {"channel": "news"}, timeout=WAIT)
        rec = audit_events(srv)[-1]
        assert rec["event"] == "server.disconnect" and rec["connection"] == a1.client_id
        assert rec["principal"] == "alice" and rec["code"] == "3503"
        # the same id again: gone; with another principal named: not that one's
        r = srv.admin.post("/server/disconnect", json={"connection": a1.client_id})
        assert r.status_code == 404 and r.json()["message"] == "no such connection"
        r = srv.admin.post("/server/disconnect",
                           json={"connection": a2.client_id, "principal": "bob"})
        assert r.status_code == 404
    finally:
        a1.close()
        a2.close()


def test_unsubscribe_pushes_and_stops_deliveries(srv):
    a, b = connected(srv, "alice"), connected(srv, "bob")
    try:
        r = srv.admin.post("/server/unsubscribe", json={"principal": "alice", "channel": "news"})
        assert r.status_code == 200 and r.json() == {"unsubscribed": 1}, r.text
        objs = [o for o in a.recv_objs(timeout=WAIT) if o]
        unsub = [o["push"] for o in objs if "push" in o]
        assert unsub and unsub[0]["channel"] == "news" and unsub[0]["unsubscribe"]["code"] == 2000
        assert srv.admin.put("/channels/news", json={"n": 2}).status_code == 200
        got = [o for o in b.recv_objs(timeout=WAIT) if o]
        assert got[0]["push"]["pub"]["data"] == {"n": 2}
        # alice gets nothing more: her socket stays open, and what reaches it before the reply
        # to a command sent after the write holds no publication
        i, _ = a.cmd("presence_stats", {"channel": "news"})
        seen = []
        rep = a.reply(i, timeout=WAIT, pushes=seen)
        assert rep["presence_stats"] == {"num_clients": 1, "num_users": 1}
        assert not [p for p in seen if "pub" in p.get("push", {})], seen
        c = {x["principal"]: x for x in conns(srv)["connections"]}
        assert c["alice"]["subscriptions"] == [] and c["bob"]["subscriptions"] == ["news"]
        rec = audit_events(srv)[-1]
        assert rec["event"] == "server.unsubscribe" and rec["principal"] == "alice"
        assert rec["channel"] == "news" and rec["actor"] == "ops"
        # nobody subscribed: nothing to end
        r = srv.admin.post("/server/unsubscribe", json={"principal": "alice", "channel": "news"})
        assert r.json() == {"unsubscribed": 0}
    finally:
        a.close()
        b.close()


def test_presence_matches_sessions(srv):
    a1, a2, b = connected(srv, "alice"), connected(srv, "alice"), connected(srv, "bob")
    try:
        r = srv.admin.get("/server/presence/news")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["channel"] == "news"
        seen = a1.call("presence", {"channel": "news"}, timeout=WAIT)["presence"]["presence"]
        assert sorted((c["client"], c["user"]) for c in body["clients"]) == \
            sorted((v["client"], v["user"]) for v in seen.values())
        ids = {c["id"] for c in conns(srv)["connections"]}
        assert {c["client"] for c in body["clients"]} == ids
        st = srv.admin.get("/server/presence/news/stats").json()
        assert st == {"channel": "news", "num_clients": 3, "num_users": 2}
        assert a1.call("presence_stats", {"channel": "news"})["presence_stats"] == \
            {"num_clients": 3, "num_users": 2}
        # a channel without presence, and none at all
        r = srv.admin.get("/server/presence/jobs")
        assert r.status_code == 400 and "presence" in r.json()["message"]
        assert srv.admin.get("/server/presence/nope").status_code == 404
        assert srv.admin.get("/server/presence/nope/stats").status_code == 404
        # a channel named "stats" is a channel, not the stats route
        assert srv.admin.post("/channels", json={"id": "stats", "kind": "topic",
                                                 "presence": True}).status_code == 201
        assert srv.admin.get("/server/presence/stats").json() == {"channel": "stats",
                                                                 "clients": []}
        assert srv.admin.get("/server/presence/stats/stats").json() == \
            {"channel": "stats", "num_clients": 0, "num_users": 0}
    finally:
        for s in (a1, a2, b):
            s.close()


def test_channel_statistics(srv):
    a = connected(srv, "alice")
    try:
        for i in range(3):
            assert srv.admin.put("/channels/news", json={"i": i}).status_code == 200
        for i in range(4):
            assert srv.admin.put("/channels/jobs", json={"i": i}).status_code == 200
        w = srv.client(srv.token("w", role="write", channels=["jobs"]))
        got = w.get("/channels/jobs", params={"exclusive": "true", "limit": 2}).json()["messages"]
        assert len(got) == 2
        r = srv.admin.get("/server/channels")
        assert r.status_code == 200, r.text
        ch = {c["id"]: c for c in r.json()["channels"]}
        assert ch["news"]["kind"] == "topic" and ch["news"]["depth"] == 3
        assert ch["news"]["subscribers"] == 1 and ch["news"]["published"] == 3
        assert ch["news"]["in_flight"] is None and ch["news"]["dead_letters"] is None
        assert ch["jobs"]["kind"] == "queue" and ch["jobs"]["depth"] == 4
        assert ch["jobs"]["in_flight"] == 2 and ch["jobs"]["published"] == 4
        assert ch["jobs"]["subscribers"] == 0 and ch["jobs"]["dead_letter"] == "jobs-dead"
        assert ch["jobs"]["dead_letters"] is None  # no dead letter yet: no queue yet
        # nack with max_attempts 1: the two go to the dead-letter queue
        ids = [m["id"] for m in got]
        assert w.post("/channels/jobs/nack", json={"message_ids": ids}).status_code == 200
        w.get("/channels/jobs", params={"exclusive": "true", "limit": 10})
        ch = {c["id"]: c for c in srv.admin.get("/server/channels").json()["channels"]}
        assert ch["jobs"]["dead_letters"] == 2 and ch["jobs-dead"]["depth"] == 2
        assert ch["jobs"]["depth"] == 2 and ch["jobs"]["in_flight"] == 2
    finally:
        a.close()


def test_audit_tail_verified(srv):
    assert srv.admin.post("/channels", json={"id": "third"}).status_code == 201
    r = srv.admin.get("/audit", params={"limit": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verified"] is True and body["more"] is True
    recs = audit_events(srv)
    assert len(recs) == 3
    assert body["records"] == recs[-2:] and body["last_seq"] == recs[-1]["seq"]
    assert body["checked"] == len(recs) and body["first_seq"] == 1
    full = srv.admin.get("/audit").json()
    assert full["records"] == recs and full["more"] is False
    # an edited record: the chain no longer verifies, and the answer says where
    lines = srv.audit.read_text().splitlines()
    lines[0] = lines[0].replace('"channel.create"', '"channel.delete"')
    srv.audit.write_text("\n".join(lines) + "\n")
    body = srv.admin.get("/audit").json()
    assert body["verified"] is False and body["bad_line"] == 2 and "chain" in body["reason"]


def test_audit_tail_catches_removed_last_record(srv):
    lines = srv.audit.read_text().splitlines()
    srv.audit.write_text("\n".join(lines[:-1]) + "\n")
    body = srv.admin.get("/audit").json()
    assert body["verified"] is False and "last record" in body["reason"]


def test_no_audit_log_is_404(make_server):
    s = make_server()
    r = s.client(s.token("ops", role="admin")).get("/audit")
    assert r.status_code == 404 and "audit" in r.json()["message"]


ROUTES = [
    ("GET", "/server/connections", None),
    ("POST", "/server/disconnect", {"principal": "alice"}),
    ("POST", "/server/unsubscribe", {"principal": "alice", "channel": "news"}),
    ("GET", "/server/presence/news", None),
    ("GET", "/server/presence/news/stats", None),
    ("GET", "/server/channels", None),
    ("GET", "/audit", None),
]


def test_non_admin_gets_403_everywhere(srv):
    a = connected(srv, "alice")
    try:
        for role in ("read", "write"):
            c = srv.client(srv.token("mallory", role=role, channels=["*"]))
            for method, path, body in ROUTES:
                r = c.request(method, path, json=body)
                assert r.status_code == 403, (role, path, r.text)
        anon = srv.client()
        for method, path, body in ROUTES:
            assert anon.request(method, path, json=body).status_code == 401, path
        # nothing happened to alice
        assert conns(srv)["count"] == 1
        assert conns(srv)["connections"][0]["subscriptions"] == ["news"]
    finally:
        a.close()


def test_hostile_input(srv):
    a = connected(srv, "alice")
    try:
        bad = [
            ("/server/disconnect", {"connection": "ffffffffffffffff"}, 404),
            ("/server/disconnect", {"connection": "x" * 65}, 400),
            ("/server/disconnect", {"connection": "../etc"}, 400),
            ("/server/disconnect", {"principal": "a" * 5000}, 400),
            ("/server/disconnect", {"principal": "alice", "code": 1000}, 400),
            ("/server/disconnect", {"principal": "alice", "code": 5000}, 400),
            ("/server/disconnect", {"principal": "alice", "code": "3000"}, 400),
            ("/server/disconnect", {"principal": "alice", "reason": "r" * 124}, 400),
            ("/server/disconnect", {"principal": "alice", "reason": 7}, 400),
            ("/server/disconnect", {"principal": "alice", "extra": 1}, 400),
            ("/server/disconnect", {}, 400),
            ("/server/disconnect", [], 400),
            ("/server/unsubscribe", {"principal": "alice"}, 400),
            ("/server/unsubscribe", {"principal": "alice", "channel": "bad id!"}, 400),
            ("/server/unsubscribe", {"principal": "a" * 5000, "channel": "news"}, 400),
        ]
        for path, body, want in bad:
            r = srv.admin.post(path, json=body)
            assert r.status_code == want, (path, body, r.text)
            assert r.json()["message"], r.text
        for raw in (b"{", b"\x00", b"nul\x00l", b'{"principal":"a\\u0000b"}'):
            r = srv.admin.post("/server/disconnect", content=raw)
            assert r.status_code == 400, (raw, r.text)
        assert srv.admin.post("/server/disconnect").status_code == 400
        for q in ("-1", "0", "1001", "99999999999999999999", "abc", "1e3", ""):
            r = srv.admin.get("/audit", params={"limit": q})
            assert r.status_code == 400 and "limit" in r.json()["message"], (q, r.text)
        for q in ("-1", "0", "10001", "x"):
            assert srv.admin.get("/server/connections", params={"limit": q}).status_code == 400
        assert srv.admin.get("/server/connections",
                             params={"principal": "a" * 5000}).status_code == 400
        assert srv.admin.get("/server/presence/" + "n" * 300).status_code == 400
        # none of it touched alice or wrote a change to the audit log
        assert conns(srv)["count"] == 1
        assert not [e for e in audit_events(srv) if e["event"].startswith("server.")]
    finally:
        a.close()


def test_cli(srv, cli):
    a, b = connected(srv, "alice"), connected(srv, "bob")
    env = {"SLUICE_URL": srv.url, "SLUICE_TOKEN": srv.token("ops", role="admin")}
    try:
        r = cli("server", "connections", "--principal", "alice", env=env)
        assert r.returncode == 0, r.stderr
        body = json.loads(r.stdout)
        assert body["count"] == 1 and body["connections"][0]["id"] == a.client_id
        r = cli("server", "presence", "news", "--stats", env=env)
        assert json.loads(r.stdout) == {"channel": "news", "num_clients": 2, "num_users": 2}
        r = cli("server", "presence", "news", env=env)
        assert {c["user"] for c in json.loads(r.stdout)["clients"]} == {"alice", "bob"}
        r = cli("server", "channels", env=env)
        assert r.returncode == 0 and {c["id"] for c in json.loads(r.stdout)["channels"]} == \
            {"news", "jobs"}
        r = cli("server", "unsubscribe", "bob", "news", env=env)
        assert r.returncode == 0 and json.loads(r.stdout) == {"unsubscribed": 1}, r.stderr
        r = cli("server", "disconnect", "--connection", a.client_id, "--code", "4000",
                "--reason", "bye", env=env)
        assert r.returncode == 0 and json.loads(r.stdout) == {"disconnected": 1}, r.stderr
        assert a.wait_close(timeout=WAIT) == 4000 and a.close_reason == "bye"
        r = cli("server", "disconnect", "--connection", a.client_id, env=env)
        assert r.returncode == 5 and "no such connection" in r.stderr
        r = cli("audit", "tail", "--limit", "2", env=env)
        assert r.returncode == 0, r.stderr
        body = json.loads(r.stdout)
        assert body["verified"] is True
        assert [x["event"] for x in body["records"]] == ["server.unsubscribe",
                                                         "server.disconnect"]
        # usage errors before any request; a reader is refused by the server
        for args in (("server", "disconnect"), ("server", "disconnect", "--code", "1000",
                                                 "--principal", "x"),
                     ("server", "unsubscribe", "bob"), ("server", "presence", "bad id!"),
                     ("audit", "tail", "--limit", "0"), ("server", "frob")):
            assert cli(*args, env=env).returncode == 2, args
        reader = {**env, "SLUICE_TOKEN": srv.token("r", role="read", channels=["*"])}
        assert cli("server", "channels", env=reader).returncode == 4
        assert cli("audit", "tail", env=reader).returncode == 4
        # a tampered file: exit 1 and the reason
        lines = srv.audit.read_text().splitlines()
        lines[0] = lines[0].replace('"news"', '"olds"')
        srv.audit.write_text("\n".join(lines) + "\n")
        r = cli("audit", "tail", env=env)
        assert r.returncode == 1 and "does not verify" in r.stderr
    finally:
        a.close()
        b.close()


def test_workspace_scope(make_server, tmp_path):
    conf = tmp_path / "ws.conf"
    conf.write_text("workspace_operators = ops\n")
    s = make_server("--config", str(conf), "--audit-log", str(tmp_path / "audit.jsonl"))

    def admin_of(ws):
        return s.client(s.token("boss", role="admin", ws=ws))

    acme, beta = admin_of("acme"), admin_of("beta")
    for c in (acme, beta):
        assert c.post("/channels", json={"id": "news", "kind": "topic",
                                         "presence": True}).status_code == 201

    def member(sub, ws):
        r = RawWS(s.host, s.port, timeout=WAIT)
        rep = r.call("connect", {"token": s.token(sub, role="read", channels=["*"], ws=ws)})
        assert "connect" in rep, rep
        r.client_id = rep["connect"]["client"]
        assert "subscribe" in r.call("subscribe", {"channel": "news"}, timeout=WAIT)
        return r

    alice, bob = member("alice", "acme"), member("bob", "beta")
    try:
        body = acme.get("/server/connections").json()
        assert [(c["principal"], c["workspace"], c["subscriptions"])
                for c in body["connections"]] == [("alice", "acme", ["news"])]
        assert acme.get("/server/presence/news/stats").json()["num_clients"] == 1
        assert [c["user"] for c in acme.get("/server/presence/news").json()["clients"]] == \
            ["alice"]
        assert [c["id"] for c in acme.get("/server/channels").json()["channels"]] == ["news"]
        # beta's admin cannot reach alice, not even by her connection id
        assert beta.post("/server/disconnect", json={"principal": "alice"}).json() == \
            {"disconnected": 0}
        r = beta.post("/server/disconnect", json={"connection": alice.client_id})
        assert r.status_code == 404
        assert beta.post("/server/unsubscribe", json={"principal": "alice",
                                                      "channel": "news"}).json() == \
            {"unsubscribed": 0}
        # the default workspace's admin neither (it is no operator)
        root = s.client(s.token("root", role="admin"))
        assert root.get("/server/connections").json()["count"] == 0
        # the operator crosses into beta
        ops = s.client(s.token("ops", role="admin"))
        ops.headers["Sluice-Workspace"] = "beta"
        assert [c["principal"] for c in ops.get("/server/connections").json()["connections"]] \
            == ["bob"]
        r = ops.post("/server/disconnect", json={"principal": "bob", "reason": "tenant moved"})
        assert r.json() == {"disconnected": 1}
        assert bob.wait_close(timeout=WAIT) == 3503 and bob.close_reason == "tenant moved"
        rec = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()][-1]
        assert rec["event"] == "server.disconnect" and rec["workspace"] == "beta"
        assert rec["actor"] == "ops" and rec["principal"] == "bob"
        # alice is untouched
        assert "presence_stats" in alice.call("presence_stats", {"channel": "news"})
    finally:
        alice.close()
        bob.close()


def test_two_nodes_on_redis(make_server, make_redis):
    """With the Redis engine: presence and in-flight counts are every node's, connections and
    disconnects this node's."""
    r = make_redis()
    a, b = (make_server("--engine", r.url) for _ in range(2))
    adm_a, adm_b = (s.client(s.token("ops", role="admin")) for s in (a, b))
    assert adm_a.post("/channels", json={"id": "room", "kind": "topic",
                                         "presence": True}).status_code == 201
    assert adm_a.post("/channels", json={"id": "q"}).status_code == 201
    wa, wb = connected(a, "alice", ("room",)), connected(b, "bob", ("room",))
    try:
        deadline = time.time() + WAIT
        while True:  # presence entries reach the store asynchronously
            st = adm_b.get("/server/presence/room/stats").json()
            if st.get("num_clients") == 2 or time.time() > deadline:
                break
            time.sleep(0.05)
        assert st == {"channel": "room", "num_clients": 2, "num_users": 2}
        clients = adm_a.get("/server/presence/room").json()["clients"]
        assert sorted((c["client"], c["user"]) for c in clients) == \
            sorted([(wa.client_id, "alice"), (wb.client_id, "bob")])
        assert [c["principal"] for c in conns(a)["connections"]] == ["alice"]
        assert [c["principal"] for c in
                adm_b.get("/server/connections").json()["connections"]] == ["bob"]
        # disconnecting alice from node B finds nothing there
        assert adm_b.post("/server/disconnect", json={"principal": "alice"}).json() == \
            {"disconnected": 0}
        for i in range(3):
            assert adm_a.put("/channels/q", json={"i": i}).status_code == 200
        got = adm_a.get("/channels/q", params={"exclusive": "true", "limit": 2}).json()
        assert len(got["messages"]) == 2
        ch = {c["id"]: c for c in adm_b.get("/server/channels").json()["channels"]}
        assert ch["q"]["kind"] == "queue" and ch["q"]["depth"] == 3
        assert ch["q"]["in_flight"] == 2 and ch["room"]["in_flight"] is None
        assert ch["room"]["subscribers"] == 1
    finally:
        wa.close()
        wb.close()


def test_acl_mode_channel_admin(make_server, tmp_path):
    """Under the ACL, the channel-scoped operations follow the grant's patterns: an administrator
    of `news` only may look at its presence and unsubscribe people from it, and nothing else."""
    s = make_server("--authz", "acl", "--admin", "ops", "--audit-log",
                    str(tmp_path / "audit.jsonl"))
    ops = s.client(s.token("ops"))
    for ch in ("news", "other"):
        assert ops.post("/channels", json={"id": ch, "kind": "topic",
                                           "presence": True}).status_code == 201
    assert ops.put("/acl/editor", json={"role": "admin", "channels": ["news"]}).status_code == 200
    editor = s.client(s.token("editor"))
    assert editor.get("/server/presence/news/stats").status_code == 200
    assert editor.post("/server/unsubscribe",
                       json={"principal": "x", "channel": "news"}).status_code == 200
    for method, path, body in [("GET", "/server/presence/other", None),
                               ("POST", "/server/unsubscribe", {"principal": "x",
                                                                "channel": "other"}),
                               ("GET", "/server/connections", None),
                               ("POST", "/server/disconnect", {"principal": "x"}),
                               ("GET", "/server/channels", None), ("GET", "/audit", None)]:
        r = editor.request(method, path, json=body)
        assert r.status_code == 403, (path, r.text)
    assert ops.get("/server/connections").status_code == 200
    assert ops.get("/audit").json()["verified"] is True
