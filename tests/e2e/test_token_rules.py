"""The rules every credential obeys (issue 8, items 1-8 and 14), end to end over HTTP and
WebSocket against a real sluiced:

- whatever is minted from a credential never exceeds it (a scoped API key at /token and at
  /token/delegate);
- tokens are typed: a subscription token is never a bearer or connection token, and the other way
  round; a refresh keeps the authenticator the session was opened with;
- revocation belongs to authentication: a revoked credential is 401 whatever it would have been
  allowed, for every authenticator and every kind of token, including a live `$` subscription;
- a principal revokes its own tokens by id; `$` history needs the subscription;
- an API key is audited before it exists;
- a connection token inside the clock-skew leeway gets 109, so the real client fetches a new one.
"""
import json
import os
import shutil
import subprocess
import time

import jwt as pyjwt
import pytest

from conftest import apikey_maker

from wsraw import RawWS

NODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node")


@pytest.fixture
def broker(make_server, cli, tmp_path):
    store = tmp_path / "keys.jsonl"
    audit = tmp_path / "audit.jsonl"
    conf = tmp_path / "rules.conf"
    conf.write_text(f"""
apikey_store = {store}
audit_log = {audit}
[role billing]
grants = write
channels = billing.*
[role news]
grants = write
channels = news.**
[principal svc-billing]
roles = billing
[principal carol]
roles = news
[delegate svc-gateway]
principals = carol
[channel billing.a]
[channel billing.b]
[channel news.eu]
kind = topic
[channel $private]
kind = topic
""")
    s = make_server("--config", str(conf))

    s.key = apikey_maker(cli, store)
    s.audit = audit
    return s


def claims(tok):
    return pyjwt.decode(tok, options={"verify_signature": False})


# ---- 1. minted never exceeds the credential --------------------------------------------------


def test_scoped_api_key_cannot_escape_its_scope(broker):
    k = broker.key("svc-billing", "--role", "read", "--channel", "billing.a")
    # Used directly the key reads billing.a and nothing more.
    assert broker.client(k).put("/channels/billing.b", json=1).status_code == 403
    r = broker.client(k).post("/token", json={"channels": ["billing.a", "billing.b"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channels_granted"] == ["billing.a"]
    assert body["channels_denied"] == [{"channel": "billing.b",
                                        "reason": "outside the credential's scope"}]
    c = claims(body["token"])
    assert c["role"] == "read" and c["channels"] == ["billing.a"]
    tok = body["token"]
    assert broker.client(tok).put("/channels/billing.b", json=1).status_code == 403
    assert broker.client(tok).put("/channels/billing.a", json=1).status_code == 403
    assert broker.client(tok).get("/channels/billing.a/info").status_code == 200
    # Nothing inside the scope: nothing at all.
    r = broker.client(k).post("/token", json={"channels": ["billing.b"]})
    assert r.status_code == 403 and "token" not in r.json()
    # The same key without a scope gets what the broker's roles allow.
    wide = broker.key("svc-billing")
    c = claims(broker.client(wide).post("/token", json={"channels": ["billing.b"]}).json()["token"])
    assert c["role"] == "write" and c["channels"] == ["billing.b"]


def test_upstream_scope_narrows_what_is_minted(make_server, tmp_path):
    secret = "upstream-idp-secret-upstream-idp-secret!!"
    (tmp_path / "idp.key").write_text(secret)
    conf = tmp_path / "up.conf"
    conf.write_text(f"""
upstream_jwt_key = hs256:{tmp_path / 'idp.key'}
[role billing]
grants = write
channels = billing.*
[principal svc-billing]
roles = billing
""")
    s = make_server("--config", str(conf))
    now = int(time.time())

    def up(**kw):
        return pyjwt.encode({"sub": "svc-billing", "iat": now, "exp": now + 60, **kw}, secret,
                            algorithm="HS256")
    r = s.client(up(scope="openid sluice:read sluice:channel:billing.a")).post(
        "/token", json={"channels": ["billing.a", "billing.b"]})
    assert r.status_code == 200, r.text
    assert r.json()["channels_granted"] == ["billing.a"]
    assert claims(r.json()["token"])["role"] == "read"
    # No sluice values in the scope: the broker's roles decide, as before.
    r = s.client(up(scope="openid profile")).post("/token", json={"channels": ["billing.b"]})
    assert claims(r.json()["token"])["role"] == "write"
    # A provider's jti the revocation store cannot key is left out, not a reason to refuse.
    r = s.client(up(jti="has space")).post("/token", json={"channels": ["billing.b"]})
    assert r.status_code == 200, r.text
    # A sluice value sluice does not know is refused, not guessed at.
    assert s.client(up(scope="sluice:root")).post(
        "/token", json={"channels": ["billing.a"]}).status_code == 401
    # The scope is a ceiling, never a grant: the upstream token cannot use channels directly.
    assert s.client(up(scope="sluice:write")).put("/channels/billing.a", json=1).status_code == 403


def test_delegated_token_never_exceeds_the_service_credential(broker):
    gw = broker.key("svc-gateway", "--role", "read", "--channel", "news.eu")
    r = broker.client(gw).post("/token/delegate", json={"on_behalf_of": "carol",
                                                        "channels": ["news.eu", "news.us"]})
    assert r.status_code == 200, r.text
    assert r.json()["channels_granted"] == ["news.eu"]
    c = claims(r.json()["token"])
    assert c["sub"] == "carol" and c["role"] == "read" and c["act"] == {"sub": "svc-gateway"}


# ---- 3. typed tokens ---------------------------------------------------------------------------


def test_subscription_token_is_not_a_bearer_token(broker):
    sub = broker.token("ops", channel="$private", role="admin")
    r = broker.client(sub).get("/channels")
    assert r.status_code == 401 and r.json()["message"] == "wrong kind of token"
    with RawWS(broker.host, broker.port) as ws:
        ws.send_json({"connect": {"token": sub}, "id": 1})
        assert ws.wait_close() == 3500


def test_connection_token_is_not_a_subscription_token(broker):
    conn = broker.token("carol", role="read")
    with RawWS(broker.host, broker.port) as ws:
        assert "connect" in ws.call("connect", {"token": conn})
        rep = ws.call("subscribe", {"channel": "$private", "token": conn})
        assert rep["error"]["code"] == 103, rep


def test_refresh_keeps_the_authenticator(broker):
    key = broker.key("carol")
    with RawWS(broker.host, broker.port) as ws:
        assert "connect" in ws.call("connect", {"token": broker.token("carol", role="read")})
        # Same principal, but an API key instead of the sluice token the session opened with.
        ws.cmd("refresh", {"token": key})
        assert ws.wait_close() == 3500


# ---- 4, 5. revocation is part of authentication --------------------------------------------------


def test_revoked_token_without_role_is_401_not_403(broker):
    tok = broker.token("nobody-special", jti="no-role-1")
    assert broker.client(tok).put("/channels/billing.a", json=1).status_code == 403
    admin = broker.client(broker.key("root", "--role", "admin"))
    assert admin.post("/revoke", json={"token_id": "no-role-1"}).status_code == 200
    r = broker.client(tok).put("/channels/billing.a", json=1)
    assert r.status_code == 401 and r.json()["message"] == "token revoked"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_revoking_a_principal_stops_its_api_keys(broker):
    k = broker.key("carol")
    assert broker.client(k).post("/token", json={"channels": ["news.eu"]}).status_code == 200
    assert broker.client(k).post("/revoke", json={"user_id": "carol"}).status_code == 200
    r = broker.client(k).post("/token", json={"channels": ["news.eu"]})
    assert r.status_code == 401 and r.json()["message"] == "token revoked"
    time.sleep(1.1)  # created_at has whole seconds: a key made after the cut-off works
    assert broker.client(broker.key("carol")).post(
        "/token", json={"channels": ["news.eu"]}).status_code == 200


# ---- 6. own tokens by id -------------------------------------------------------------------------


def test_owner_revokes_its_own_tokens_by_id(broker):
    k = broker.key("carol")
    t1 = broker.client(k).post("/token", json={"channels": ["news.eu"]}).json()
    t2 = broker.client(k).post("/token", json={"channels": ["news.eu"]}).json()
    # With t1, carol revokes t2 (not the token she presents).
    r = broker.client(t1["token"]).post("/revoke", json={"token_id": t2["token_id"]})
    assert r.status_code == 200, r.text
    assert broker.client(t2["token"]).get("/channels/news.eu").status_code == 401
    assert broker.client(t1["token"]).get("/channels/news.eu").status_code == 200
    # Someone else's token id still needs admin.
    other = broker.client(broker.key("svc-billing")).post(
        "/token", json={"channels": ["billing.a"]}).json()
    r = broker.client(other["token"]).post("/revoke", json={"token_id": t1["token_id"]})
    assert r.status_code == 403
    # An id altered in one digit is nobody's.
    forged = t1["token_id"][:-1] + ("0" if t1["token_id"][-1] != "0" else "1")
    assert broker.client(t1["token"]).post("/revoke", json={"token_id": forged}).status_code == 403


# ---- 2, 7. `$` channels --------------------------------------------------------------------------


def subscribe_private(s, user="carol", jti="sub-1", ttl=600):
    ws = RawWS(s.host, s.port)
    assert "connect" in ws.call("connect", {"token": s.token(user, role="read")})
    sub = s.token(user, channel="$private", jti=jti, ttl=ttl)
    rep = ws.call("subscribe", {"channel": "$private", "token": sub})
    assert "subscribe" in rep, rep
    return ws, sub


def wait_unsubscribe(ws, channel, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for obj in ws.recv_objs(max(0.0, deadline - time.time())):
            push = obj.get("push", obj)
            if "unsubscribe" in push and push.get("channel") == channel:
                return push["unsubscribe"]
    raise AssertionError("no unsubscribe push")


def test_revoked_subscription_token_ends_the_subscription(broker):
    admin = broker.client(broker.key("root", "--role", "admin"))
    ws, sub = subscribe_private(broker)
    with ws:
        assert admin.post("/revoke", json={"token_id": "sub-1"}).status_code == 200
        u = wait_unsubscribe(ws, "$private")
        assert u["code"] == 2000, u
        # The revoked token opens nothing any more, and refreshes nothing.
        rep = ws.call("subscribe", {"channel": "$private", "token": sub})
        assert rep["error"]["code"] == 103, rep
        # The connection itself (another token) is fine.
        assert "history" in ws.call("history", {"channel": "news.eu", "limit": 0})


def test_user_cutoff_ends_subscriptions_and_refreshes(broker):
    admin = broker.client(broker.key("root", "--role", "admin"))
    ws, sub = subscribe_private(broker, jti="sub-2")
    with ws:
        assert admin.post("/revoke", json={"user_id": "carol"}).status_code == 200
        assert ws.wait_close() == 3503  # the connection token is covered too
    # A sub_refresh with a revoked token (new connection after the cut-off).
    time.sleep(1.1)
    ws, _ = subscribe_private(broker, jti="sub-3")
    with ws:
        rep = ws.call("sub_refresh", {"channel": "$private", "token": sub})
        assert rep["error"]["code"] == 103, rep


def test_history_of_private_channel_needs_the_subscription(broker):
    with RawWS(broker.host, broker.port) as ws:
        assert "connect" in ws.call("connect", {"token": broker.token("carol", role="read")})
        for method, body in (("history", {"channel": "$private", "limit": 10}),
                             ("presence", {"channel": "$private"}),
                             ("presence_stats", {"channel": "$private"})):
            rep = ws.call(method, body)
            assert rep["error"]["code"] == 103, (method, rep)
    ws, _ = subscribe_private(broker, jti="sub-4")
    with ws:
        assert "history" in ws.call("history", {"channel": "$private", "limit": 10})


# ---- 8. API keys are audited before they exist -------------------------------------------------


def test_api_key_creation_is_written_ahead(broker, make_server, cli, tmp_path):
    admin = broker.client(broker.key("root", "--role", "admin"))
    r = admin.post("/apikeys", json={"principal": "dave"})
    assert r.status_code == 201
    rec = [json.loads(line) for line in broker.audit.read_text().splitlines()
           if '"apikey.create"' in line]
    assert rec and rec[-1]["id"] == r.json()["id"] and rec[-1]["principal"] == "dave"
    # An audit log that cannot be written: no key is made at all.
    store = tmp_path / "k2.jsonl"
    root = cli("apikey", "create", "--principal", "root", "--role", "admin", "--store", str(store))
    assert root.returncode == 0, root.stderr
    conf = tmp_path / "full.conf"
    conf.write_text(f"apikey_store = {store}\n")
    s = make_server("--config", str(conf), "--audit-log", "/dev/full")
    a2 = s.client(root.stdout.strip())
    r = a2.post("/apikeys", json={"principal": "erin"})
    assert r.status_code == 503 and "audit log unavailable" in r.json()["message"], r.text
    assert [k["principal"] for k in a2.get("/apikeys").json()["keys"]] == ["root"]
    assert "erin" not in store.read_text()


# ---- 14. leeway and the real client ------------------------------------------------------------


def test_token_inside_leeway_gets_109(broker):
    stale = broker.token("carol", role="read", iat=int(time.time()) - 600, ttl=-10)
    assert broker.client(stale).get("/channels").status_code == 200  # HTTP: inside the leeway
    with RawWS(broker.host, broker.port) as ws:
        rep = ws.call("connect", {"token": stale})
        assert rep["error"]["code"] == 109, rep
        assert "connect" in ws.call("connect", {"token": broker.token("carol", role="read")})
        rep = ws.call("refresh", {"token": stale})
        assert rep["error"]["code"] == 109, rep


def test_real_client_fetches_a_new_token_inside_leeway(broker):
    node = os.environ.get("SLUICE_NODE") or shutil.which("node")
    assert node, "node is not installed (scripts/deps installs nodejs)"
    assert os.path.isdir(os.path.join(NODE_DIR, "node_modules", "centrifuge")), \
        "tests/node/node_modules is missing (scripts/deps runs npm ci)"
    env = dict(os.environ, SLUICE_URL=broker.url, SLUICE_JWT_SECRET=broker.secret)
    p = subprocess.run([node, os.path.join(NODE_DIR, "leeway_e2e.mjs")], cwd=NODE_DIR, env=env,
                       capture_output=True, text=True, timeout=60)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    assert lines, p.stdout + p.stderr
    res = json.loads(lines[-1])
    assert res["ok"], res
    assert res["getTokenCalls"] >= 1 and res["connectedWithFresh"], res
    assert 3005 not in res["disconnects"], res
    assert res["sockets"] <= 3, res  # one refused attempt, one with the fresh token


def test_cli_subscription_tokens_and_owned_ids(broker, cli):
    env = {"SLUICE_JWT_SECRET": broker.secret}
    sub = cli("token", "create", "--sub", "carol", "--subscription", "$private", "--ttl", "5m",
              env=env)
    assert sub.returncode == 0, sub.stderr
    sub = sub.stdout.strip()
    assert claims(sub)["channel"] == "$private"
    assert broker.client(sub).get("/channels").status_code == 401
    ok = cli("token", "inspect", sub, "--verify", env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["verified"] is True
    with RawWS(broker.host, broker.port) as ws:
        assert "connect" in ws.call("connect", {"token": broker.token("carol", role="read")})
        assert "subscribe" in ws.call("subscribe", {"channel": "$private", "token": sub})
    assert cli("token", "create", "--sub", "carol", "--subscription", "a/b",
               env=env).returncode != 0
    # A CLI token's default id is bound to its subject: carol may revoke it with another token.
    t1 = cli("token", "create", "--sub", "carol", "--role", "read", env=env).stdout.strip()
    t2 = cli("token", "create", "--sub", "carol", "--role", "read", env=env).stdout.strip()
    assert len(claims(t2)["jti"]) == 64
    r = broker.client(t1).post("/revoke", json={"token_id": claims(t2)["jti"]})
    assert r.status_code == 200, r.text
    assert broker.client(t2).get("/channels").status_code == 401
