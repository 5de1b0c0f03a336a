"""Workspaces (docs/POLICY.md "Workspaces") end to end: two workspaces using the same channel
names over HTTP and the WebSocket (Centrifugo protocol, python3-websockets), fully isolated —
listings, reads, history, deliveries, presence, error messages, ACL grants, API keys, the broker;
the operator crossing with Sluice-Workspace (and the connect option) and everybody else refused;
each workspace limit with hostile input, where nothing that was acknowledged is lost."""
import asyncio
import json

import jwt as pyjwt
import pytest
import websockets

WAIT = 15

CONFIG = """
workspace_operators = ops
workspace_limits = small:channels=2,connections=1 fast:rate=2 full:messages=5
apikey_store = {store}
[role pub]
grants = write
channels = news
"""


@pytest.fixture
def srv(make_server, tmp_path):
    conf = tmp_path / "ws.conf"
    conf.write_text(CONFIG.format(store=tmp_path / "keys.jsonl"))
    return make_server("--config", str(conf))


def as_ws(s, ws, sub="alice", role="admin", **kw):
    """A client of workspace ws (None: the default workspace)."""
    extra = {"ws": ws} if ws else {}
    return s.client(s.token(sub, role=role, **extra, **kw))


def operator(s, ws):
    c = s.client(s.token("ops", role="admin"))
    c.headers["Sluice-Workspace"] = ws
    return c


def create(c, name, **opts):
    r = c.post("/channels", json={"id": name, "kind": "topic", "visibility": "public", **opts})
    assert r.status_code == 201, r.text
    return r.json()


def read_all(c, name):
    r = c.get(f"/channels/{name}", params={"after": "0000000000000000", "limit": 100})
    assert r.status_code == 200, r.text
    return [m["content"]["data"] for m in r.json()["messages"]]


def test_same_names_isolated_over_http(srv):
    acme, beta, home = as_ws(srv, "acme"), as_ws(srv, "beta"), as_ws(srv, None)
    info = create(acme, "news")
    assert info["id"] == "news" and info["name"] == "news"
    assert info["options"]["dead_letter"] == "news.dead"
    create(beta, "news")
    create(acme, "acme-only")
    assert acme.put("/channels/news", json={"from": "acme"}).status_code == 200
    assert beta.put("/channels/news", json={"from": "beta"}).status_code == 200
    assert read_all(acme, "news") == [{"from": "acme"}]
    assert read_all(beta, "news") == [{"from": "beta"}]
    ids = lambda c: sorted(ch["id"] for ch in c.get("/channels").json()["channels"])
    assert ids(acme) == ["acme-only", "news"]
    assert ids(beta) == ["news"]
    assert ids(home) == []
    assert acme.get("/channels/news/info").json()["id"] == "news"
    # Deleting one workspace's channel leaves the other's alone.
    assert beta.delete("/channels/news").status_code == 200
    assert read_all(acme, "news") == [{"from": "acme"}]


def test_errors_reveal_nothing_of_another_workspace(srv):
    acme, beta = as_ws(srv, "acme"), as_ws(srv, "beta")
    create(acme, "hidden")
    there = beta.get("/channels/hidden/info")
    nowhere = beta.get("/channels/never-made/info")
    assert there.status_code == nowhere.status_code == 404
    assert there.json()["message"] == nowhere.json()["message"].replace("never-made", "hidden")
    assert "acme" not in there.text
    # Writing, reading and deleting answer alike.
    assert beta.put("/channels/hidden", json=1).status_code == 404
    assert beta.delete("/channels/hidden").status_code == 404
    # Creating the same name in beta is no conflict.
    create(beta, "hidden")
    # The internal form cannot be typed, whoever tries (a forged name is not a channel id).
    for c in (beta, as_ws(srv, None), operator(srv, "beta")):
        r = c.get("/channels/acme%2Fhidden/info")
        assert r.status_code == 400 and "acme" not in r.json()["message"], r.text
        assert c.put("/channels/acme%2Fhidden", json=1).status_code == 400
    assert read_all(acme, "hidden") == []


def test_operator_crosses_and_nobody_else(srv):
    acme = as_ws(srv, "acme")
    create(acme, "news")
    acme.put("/channels/news", json="hello")
    ops = operator(srv, "acme")
    assert [c["id"] for c in ops.get("/channels").json()["channels"]] == ["news"]
    assert read_all(ops, "news") == ["hello"]
    assert ops.put("/channels/news", json="from ops").status_code == 200
    assert read_all(acme, "news") == ["hello", "from ops"]
    # An admin of the default workspace that is not an operator, a workspace's own admin, and
    # a bad name are refused.
    root = as_ws(srv, None, sub="root")
    root.headers["Sluice-Workspace"] = "acme"
    r = root.get("/channels")
    assert r.status_code == 403, r.text
    beta = as_ws(srv, "beta", sub="ops")  # the operator's name, but inside a workspace
    beta.headers["Sluice-Workspace"] = "acme"
    assert beta.get("/channels").status_code == 403
    bad = operator(srv, "no/such")
    assert bad.get("/channels").status_code == 400
    assert srv.client().get("/channels", headers={"Sluice-Workspace": "acme"}).status_code in (401, 403)


def test_acl_grants_belong_to_a_workspace(make_server, tmp_path):
    conf = tmp_path / "acl.conf"
    conf.write_text("authz = acl\nadmin = ops\nworkspace_operators = ops\n")
    s = make_server("--config", str(conf))
    acme_ops, beta_ops = operator(s, "acme"), operator(s, "beta")
    for ops in (acme_ops, beta_ops):
        create(ops, "news")
    r = acme_ops.put("/acl/alice", json={"role": "write", "channels": ["news"]})
    assert r.status_code == 200, r.text
    alice_acme = s.client(s.token("alice", ws="acme"))
    alice_beta = s.client(s.token("alice", ws="beta"))
    alice_home = s.client(s.token("alice"))
    assert alice_acme.put("/channels/news", json="a").status_code == 200
    assert alice_beta.put("/channels/news", json="b").status_code == 403
    assert alice_home.put("/channels/news", json="c").status_code == 403
    assert [e["principal"] for e in acme_ops.get("/acl").json()["entries"]] == ["alice"]
    assert beta_ops.get("/acl").json()["entries"] == []
    assert "alice" not in json.dumps(s.client(s.token("ops")).get("/acl").json()["entries"])
    assert beta_ops.delete("/acl/alice").status_code == 404
    assert read_all(acme_ops, "news") == ["a"]
    assert read_all(beta_ops, "news") == []


def test_api_keys_and_the_broker_per_workspace(srv, cli, tmp_path):
    acme_ops, beta_ops = operator(srv, "acme"), operator(srv, "beta")
    create(acme_ops, "news")
    create(beta_ops, "news")
    r = acme_ops.post("/apikeys", json={"principal": "svc", "role": "write"})
    assert r.status_code == 201, r.text
    key, kid = r.json()["key"], r.json()["id"]
    assert r.json()["principal"] == "svc"
    # A key cannot be made for another workspace than the caller's.
    assert acme_ops.post("/apikeys", json={"principal": "x", "workspace": "beta"}).status_code == 403
    # The key works in its workspace only.
    svc = srv.client(key)
    assert svc.put("/channels/news", json="by key").status_code == 200
    assert read_all(acme_ops, "news") == ["by key"]
    assert read_all(beta_ops, "news") == []
    assert [k["id"] for k in acme_ops.get("/apikeys").json()["keys"]] == [kid]
    assert beta_ops.get("/apikeys").json()["keys"] == []
    assert beta_ops.delete(f"/apikeys/{kid}").status_code == 404
    # The CLI makes a workspace's key too.
    out = cli("apikey", "create", "--principal", "alice", "--workspace", "beta", "--store",
              str(tmp_path / "keys.jsonl"))
    assert out.returncode == 0, out.stderr
    alice_beta_key = out.stdout.strip()
    # The broker: roles are assigned per workspace, tokens carry the credential's workspace.
    r = acme_ops.post("/apikeys", json={"principal": "alice"})
    alice_acme_key = r.json()["key"]
    assert acme_ops.put("/broker/principals/alice", json={"roles": ["pub"]}).status_code == 200
    assert beta_ops.get("/broker/principals/alice").json()["roles"] == []
    r = srv.client(alice_acme_key).post("/token", json={"channels": ["news"]})
    assert r.status_code == 200, r.text
    tok = r.json()["token"]
    assert pyjwt.decode(tok, options={"verify_signature": False})["ws"] == "acme"
    assert srv.client(tok).put("/channels/news", json="minted").status_code == 200
    assert read_all(acme_ops, "news") == ["by key", "minted"]
    r = srv.client(alice_beta_key).post("/token", json={"channels": ["news"]})
    assert r.status_code == 403, r.text  # alice of beta has no roles
    assert read_all(beta_ops, "news") == []


class WS:
    def __init__(self, ws):
        self.ws, self.next_id, self.replies, self.pushes = ws, 1, {}, []

    @classmethod
    async def open(cls, srv):
        return cls(await websockets.connect(
            f"ws://{srv.host}:{srv.port}/connection/websocket", ping_interval=None,
            compression=None, open_timeout=10, close_timeout=3))

    async def pump(self, timeout):
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        for line in msg.split("\n"):
            if line.strip():
                obj = json.loads(line)
                if obj == {}:
                    await self.ws.send("{}")
                elif "id" in obj:
                    self.replies[obj["id"]] = obj
                else:
                    self.pushes.append(obj["push"])

    async def call(self, method, body):
        i = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({method: body, "id": i}))
        while i not in self.replies:
            await self.pump(WAIT)
        return self.replies.pop(i)

    async def ok(self, method, body):
        r = await self.call(method, body)
        assert "error" not in r, f"{method} {body} -> {r}"
        return r.get(method, {})

    async def push(self):
        while not self.pushes:
            await self.pump(WAIT)
        return self.pushes.pop(0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_websocket_isolation(srv):
    acme, beta = as_ws(srv, "acme"), as_ws(srv, "beta")
    for c in (acme, beta):
        create(c, "news", presence=True)
    acme.put("/channels/news", json={"old": "acme"})
    beta.put("/channels/news", json={"old": "beta"})

    async def scenario():
        a = await WS.open(srv)
        b = await WS.open(srv)
        await a.ok("connect", {"token": srv.token("reader-a", role="read", ws="acme")})
        await b.ok("connect", {"token": srv.token("reader-b", role="read", ws="beta")})
        await a.ok("subscribe", {"channel": "news"})
        await b.ok("subscribe", {"channel": "news"})
        # History: each its own.
        ha = await a.ok("history", {"channel": "news", "limit": 10})
        hb = await b.ok("history", {"channel": "news", "limit": 10})
        assert [p["data"] for p in ha["publications"]] == [{"old": "acme"}]
        assert [p["data"] for p in hb["publications"]] == [{"old": "beta"}]
        # Presence: each sees its own subscriber only.
        pa = await a.ok("presence", {"channel": "news"})
        assert [c["user"] for c in pa["presence"].values()] == ["reader-a"]
        # Deliveries: a write in beta reaches b only, under the name b used.
        assert beta.put("/channels/news", json={"new": "beta"}).status_code == 200
        assert acme.put("/channels/news", json={"new": "acme"}).status_code == 200
        pb, pa = await b.push(), await a.push()
        assert pb == {"channel": "news", "pub": pb["pub"]} and pb["pub"]["data"] == {"new": "beta"}
        assert pa["channel"] == "news" and pa["pub"]["data"] == {"new": "acme"}
        assert a.pushes == [] and b.pushes == []
        # A forged internal name, and a channel only the other workspace has.
        e = await a.call("subscribe", {"channel": "beta/news"})
        assert e["error"]["code"] == 107 and "beta" not in json.dumps(e)
        beta.post("/channels", json={"id": "beta-only", "kind": "topic", "visibility": "public"})
        e = await a.call("subscribe", {"channel": "beta-only"})
        assert e["error"]["code"] == 102, e
        await a.ws.close()
        await b.ws.close()

    run(scenario())


def test_websocket_operator_connect_option(srv):
    acme = as_ws(srv, "acme")
    create(acme, "news")

    async def scenario():
        o = await WS.open(srv)
        await o.ok("connect", {"token": srv.token("ops", role="admin"),
                               "data": {"workspace": "acme"}})
        await o.ok("subscribe", {"channel": "news"})
        acme.put("/channels/news", json="seen by ops")
        p = await o.push()
        assert p["channel"] == "news" and p["pub"]["data"] == "seen by ops"
        await o.ws.close()
        x = await WS.open(srv)
        r = await x.call("connect", {"token": srv.token("root", role="admin"),
                                     "data": {"workspace": "acme"}})
        assert r["error"]["code"] == 103, r
        await x.ws.close()

    run(scenario())


def test_limit_channels(srv):
    small = as_ws(srv, "small")
    create(small, "a")
    create(small, "b")
    r = small.post("/channels", json={"id": "c", "kind": "topic"})
    assert r.status_code == 429, r.text
    assert "small" not in r.json()["message"] and "2 channels" in r.json()["message"]
    ids = sorted(c["id"] for c in small.get("/channels").json()["channels"])
    assert ids == ["a", "b"]
    # Another workspace is not held by it.
    create(as_ws(srv, "other"), "c")
    # Room again after a delete.
    assert small.delete("/channels/a").status_code == 200
    create(small, "c")


def test_limit_connections(srv):
    async def scenario():
        first = await WS.open(srv)
        await first.ok("connect", {"token": srv.token("u1", role="read", ws="small")})
        second = await WS.open(srv)
        await second.ws.send(json.dumps({"connect": {"token": srv.token("u2", role="read",
                                                                         ws="small")}, "id": 1}))
        with pytest.raises(websockets.ConnectionClosed) as e:
            while True:
                await second.pump(WAIT)
        assert e.value.rcvd.code == 3504
        # Another workspace still connects, and the first one's slot comes back when it leaves.
        other = await WS.open(srv)
        await other.ok("connect", {"token": srv.token("u3", role="read", ws="big")})
        await first.ws.close()
        await asyncio.sleep(0.2)
        for _ in range(50):
            third = await WS.open(srv)
            await third.ws.send(json.dumps({"connect": {"token": srv.token("u4", role="read",
                                                                            ws="small")}, "id": 1}))
            try:
                while 1 not in third.replies:
                    await third.pump(WAIT)
                break
            except websockets.ConnectionClosed:
                await asyncio.sleep(0.1)  # the first close not handled yet
        assert "connect" in third.replies[1]
        await third.ws.close()
        await other.ws.close()

    run(scenario())


def test_limit_rate_loses_nothing_acknowledged(srv):
    fast = as_ws(srv, "fast")
    while True:  # the bucket may refill meanwhile: create until it succeeds
        r = fast.post("/channels", json={"id": "log", "kind": "topic"})
        if r.status_code == 201:
            break
        assert r.status_code == 429
    accepted, refused = [], 0
    for n in range(40):
        r = fast.put("/channels/log", json={"n": n})
        if r.status_code == 200:
            accepted.append(n)
        else:
            assert r.status_code == 429, r.text
            assert "fast" not in r.json()["message"]
            refused += 1
    assert refused > 0 and accepted
    # Reading is a command too: retry through the limit.
    while True:
        r = fast.get("/channels/log", params={"after": "0000000000000000", "limit": 100})
        if r.status_code == 200:
            break
        assert r.status_code == 429
    assert [m["content"]["data"]["n"] for m in r.json()["messages"]] == accepted
    # Other workspaces are not slowed down.
    other = as_ws(srv, "other")
    create(other, "log")
    for n in range(20):
        assert other.put("/channels/log", json=n).status_code == 200


def test_revocation_stays_inside_a_workspace(srv):
    # The revocation store is shared by every workspace: inside one, only the caller's own
    # credentials may be revoked, so an admin of acme cannot end beta's alice.
    alice_beta = as_ws(srv, "beta", sub="alice", role="read")
    assert alice_beta.get("/channels").status_code == 200
    acme = as_ws(srv, "acme", sub="boss")
    r = acme.post("/revoke", json={"user_id": "alice"})
    assert r.status_code == 403, r.text
    assert alice_beta.get("/channels").status_code == 200
    assert acme.post("/revoke", json={"user_id": "boss"}).status_code == 200


UPSTREAM = "upstream-idp-secret-upstream-idp-secret!!"
SIG_SECRET = "signing-secret-for-the-workspace-tests-0123"


def test_identity_sources_carry_their_workspace(make_server, tmp_path):
    """The identity provider's claim (JWT and introspection), a signature key's workspace, and
    what the broker mints from each: the credential's workspace, never another."""
    import os
    import socket
    import subprocess
    import time
    from test_signatures import sign

    server = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit",
                          "introspect_server.py")
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    proc = subprocess.Popen(["/usr/bin/python3", server, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        (tmp_path / "idp.key").write_text(UPSTREAM)
        (tmp_path / "sig.secret").write_text(SIG_SECRET)
        (tmp_path / "sig.json").write_text(json.dumps({"keys": [
            {"keyid": "acme-svc", "alg": "hmac-sha256", "key": f"file:{tmp_path / 'sig.secret'}",
             "principal": "svc", "role": "write", "workspace": "acme"}]}))
        conf = tmp_path / "id.conf"
        conf.write_text(f"""
upstream_jwt_key = hs256:{tmp_path / 'idp.key'}
upstream_workspace_claim = tenant
introspection_url = http://127.0.0.1:{port}/introspect
signature_keys = {tmp_path / 'sig.json'}
workspace_operators = ops
[role pub]
grants = write
channels = news
""")
        s = make_server("--config", str(conf))
        for ws in ("acme", "beta"):
            ops = operator(s, ws)
            create(ops, "news")
            assert ops.put("/broker/principals/alice", json={"roles": ["pub"]}).status_code == 200

        def minted_ws(cred):
            r = s.client(cred).post("/token", json={"channels": ["news"]})
            assert r.status_code == 200, r.text
            tok = r.json()["token"]
            return tok, pyjwt.decode(tok, options={"verify_signature": False}).get("ws")

        now = int(time.time())
        idp = lambda **kw: pyjwt.encode({"sub": "alice", "iat": now, "exp": now + 600, **kw},
                                        UPSTREAM, algorithm="HS256")
        tok, ws = minted_ws(idp(tenant="acme"))
        assert ws == "acme"
        assert s.client(tok).put("/channels/news", json="via idp").status_code == 200
        assert minted_ws(idp(tenant="beta"))[1] == "beta"
        # No claim: the default workspace, where alice has no broker roles.
        r = s.client(idp()).post("/token", json={"channels": ["news"]})
        assert r.status_code == 403 and "no matching role" in r.text, r.text
        assert s.client(idp(tenant="a/b")).post("/token", json={"channels": ["news"]}).status_code == 401
        tok, ws = minted_ws("tenant-beta")
        assert ws == "beta"
        assert s.client(tok).put("/channels/news", json="via introspection").status_code == 200
        assert s.client("tenant-bad").post("/token", json={"channels": ["news"]}).status_code == 401
        # A signed request of acme's key writes to acme's channel.
        url = s.url + "/channels/news"
        body = b'"signed"'
        hdrs = sign("PUT", url, body, keyid="acme-svc", key=SIG_SECRET)
        with s.client() as c:
            r = c.put("/channels/news", content=body, headers=hdrs)
        assert r.status_code == 200, r.text
        assert read_all(operator(s, "acme"), "news") == ["via idp", "signed"]
        assert read_all(operator(s, "beta"), "news") == ["via introspection"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_limit_messages_loses_nothing_acknowledged(srv):
    full = as_ws(srv, "full")
    r = full.post("/channels", json={"id": "jobs", "kind": "queue"})
    assert r.status_code == 201, r.text
    accepted = []
    for n in range(8):
        r = full.put("/channels/jobs", json={"n": n})
        if r.status_code == 200:
            accepted.append(n)
        else:
            assert r.status_code == 429, r.text
            assert "full" not in r.json()["message"] and "5 stored messages" in r.json()["message"]
    assert accepted == [0, 1, 2, 3, 4]
    # A batch over the limit stores nothing.
    r = full.post("/channels/jobs/batch", json={"messages": [{"data": 1}, {"data": 2}]})
    assert r.status_code == 429, r.text
    claimed = full.get("/channels/jobs", params={"exclusive": "true", "limit": 10}).json()["messages"]
    assert [m["content"]["data"]["n"] for m in claimed] == accepted
    # Consumed messages make room again at the next count (within about a second).
    r = full.post("/channels/jobs/acknowledge", json={"message_ids": [m["id"] for m in claimed]})
    assert r.status_code == 200, r.text
    import time
    deadline = time.time() + 30
    while True:
        r = full.put("/channels/jobs", json={"n": "again"})
        if r.status_code == 200 or time.time() > deadline:
            break
        assert r.status_code == 429
        time.sleep(0.2)
    assert r.status_code == 200, r.text


def test_two_nodes_on_redis(make_server, make_redis, tmp_path):
    """Several nodes on the Redis engine: the same isolation whichever node a caller uses,
    deliveries through the engine's feed under the caller's own name, grants shared."""
    r = make_redis()
    conf = tmp_path / "n.conf"
    conf.write_text("workspace_operators = ops\n")
    a = make_server("--engine", r.url, "--config", str(conf))
    b = make_server("--engine", r.url, "--config", str(conf))
    create(as_ws(a, "acme"), "news")
    create(as_ws(b, "beta"), "news")
    assert as_ws(b, "acme").put("/channels/news", json="acme via b").status_code == 200
    assert as_ws(a, "beta").put("/channels/news", json="beta via a").status_code == 200
    assert read_all(as_ws(a, "acme"), "news") == ["acme via b"]
    assert read_all(as_ws(b, "beta"), "news") == ["beta via a"]
    assert sorted(c["id"] for c in as_ws(b, "acme").get("/channels").json()["channels"]) == ["news"]
    assert as_ws(a, None).get("/channels").json()["channels"] == []

    async def scenario():
        s = await WS.open(b)
        await s.ok("connect", {"token": b.token("reader", role="read", ws="acme")})
        await s.ok("subscribe", {"channel": "news"})
        assert as_ws(a, "beta").put("/channels/news", json="not for acme").status_code == 200
        assert as_ws(a, "acme").put("/channels/news", json="live").status_code == 200
        p = await s.push()
        assert p["channel"] == "news" and p["pub"]["data"] == "live", p
        await s.ws.close()

    run(scenario())
