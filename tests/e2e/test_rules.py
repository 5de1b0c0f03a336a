"""End to end (docs/POLICY.md): deny rules beating allows across ACL grants, token
scopes and broker roles; the invoke policy from the config file, the admin routes and the CLI,
surviving a restart, with its audit records; user-limited channels ("inbox#alice") over HTTP,
over WebSocket (Centrifugo protocol, the raw client of wsraw.py) and through the broker's
"#{sub}" roles."""
import json
import tempfile
import shutil
import time

import pytest

from conftest import apikey_maker
from wsraw import RawWS

WAIT = 15

CONF = """
authz = acl
admin = ops
apikey_store = {store}
audit_log = {audit}
[acl alice]
role = write
deny = secret.**
[acl svc-1]
role = write
[acl cfg-1]
role = write
[role workers]
grants = write
channels = jobs, secret.**, admin.**, public.**
deny = admin.**
[role inbox]
grants = read
channels = inbox#{{sub}}
[principal alice]
roles = workers, inbox
[principal bob]
roles = inbox
[invoke_policy cfg-*]
deny = channel.write:jobs
[channel jobs]
[channel secret.plans]
kind = topic
[channel admin.users]
kind = topic
[channel public.news]
kind = topic
[channel public.locked]
kind = topic
[channel inbox#alice]
kind = topic
[channel inbox#bob]
kind = topic
"""


@pytest.fixture
def rules(make_server, cli, tmp_path):
    store = tmp_path / "keys.jsonl"
    audit = tmp_path / "audit.jsonl"
    conf = tmp_path / "rules.conf"
    conf.write_text(CONF.format(store=store, audit=audit))
    data = tempfile.mkdtemp(prefix="sluice-e2e-rules-")
    s = make_server("--config", str(conf), "--data-dir", data)
    s.key = apikey_maker(cli, store)
    s.audit = audit
    s.conf = conf
    s.data = data
    s.ops = s.client(s.token("ops"))
    yield s
    shutil.rmtree(data, ignore_errors=True)


def records(s):
    return [json.loads(l) for l in s.audit.read_text().splitlines() if l.strip()]


def enc(channel):
    return channel.replace("#", "%23")


# ---- deny rules ---------------------------------------------------------------------------------


def test_acl_deny_beats_grants_and_scopes(rules):
    s = rules
    alice = s.client(s.token("alice"))
    assert alice.put("/channels/jobs", json={"n": 1}).status_code == 200
    r = alice.put("/channels/secret.plans", json={"n": 1})
    assert r.status_code == 403, r.text
    # a token whose own scope names the denied channel does not help
    scoped = s.client(s.token("alice", role="write", channels=["secret.**"]))
    assert scoped.put("/channels/secret.plans", json={"n": 1}).status_code == 403
    # the listing and a grant made over HTTP carry "deny"
    r = s.ops.put("/acl/carol", json={"role": "read", "deny": ["public.locked"]})
    assert r.status_code == 200, r.text
    assert r.json()["deny"] == ["public.locked"]
    entries = {e["principal"]: e for e in s.ops.get("/acl").json()["entries"]}
    assert entries["alice"]["deny"] == ["secret.**"]
    assert entries["carol"]["deny"] == ["public.locked"]
    assert entries["ops"]["deny"] == []
    carol = s.client(s.token("carol"))
    assert carol.get("/channels/public.news").status_code == 200
    assert carol.get("/channels/public.locked").status_code == 403
    assert s.ops.put("/acl/carol", json={"role": "read", "deny": ["a..b"]}).status_code == 400


def test_broker_denies_across_roles_and_acl(rules):
    s = rules
    k = s.key("alice")
    want = ["jobs", "admin.users", "secret.plans", "inbox#alice", "inbox#bob"]
    r = s.client(k).post("/token", json={"channels": want})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channels_granted"] == ["jobs", "inbox#alice"]
    denied = {d["channel"]: d["reason"] for d in body["channels_denied"]}
    assert denied == {"admin.users": "denied by a role's deny rule",
                      "secret.plans": "denied by an ACL deny rule",
                      "inbox#bob": "no matching role"}
    # bob's "inbox#{sub}" role gives bob his own inbox only
    r = s.client(s.key("bob")).post("/token", json={"channels": ["inbox#bob", "inbox#alice"]})
    assert r.status_code == 200, r.text
    assert r.json()["channels_granted"] == ["inbox#bob"]
    # even a token with a scope over admin.** is denied there at request time (role deny)
    tok = s.client(s.token("alice", role="admin", channels=["admin.**"]))
    assert tok.get("/channels/admin.users").status_code == 403


# ---- the invoke policy --------------------------------------------------------------------------


def test_invoke_policy_admin_route_cli_restart_audit(rules, make_server, cli):
    s = rules
    svc = s.client(s.token("svc-1"))
    assert svc.put("/channels/jobs", json={"n": 1}).status_code == 200
    policy = {"allow": ["channel.*:public.**"], "deny": ["channel.write:public.locked"],
              "audit": True}
    assert s.client(s.token("svc-1")).put("/policy/invoke/svc-*", json=policy).status_code == 403
    r = s.ops.put("/policy/invoke/svc-*", json=policy)
    assert r.status_code == 200, r.text
    assert r.json() == {"principal": "svc-*", **policy}
    bad = s.ops.put("/policy/invoke/x", json={"deny": ["nope.*:x"]})
    assert bad.status_code == 400 and "names no operation" in bad.json()["message"]
    assert svc.put("/channels/public.news", json={"n": 1}).status_code == 200
    assert svc.get("/channels/public.news").status_code == 200
    assert svc.put("/channels/public.locked", json={"n": 1}).status_code == 403  # deny wins
    assert svc.put("/channels/jobs", json={"n": 2}).status_code == 403  # not in the allow list
    ids = [c["id"] for c in svc.get("/channels").json()["channels"]]
    assert ids == ["public.locked", "public.news"], ids  # listed as channel.info allows
    # the config file's policy: cfg-1 may not write jobs
    cfg = s.client(s.token("cfg-1"))
    assert cfg.put("/channels/jobs", json={"n": 1}).status_code == 403
    assert cfg.put("/channels/public.news", json={"n": 1}).status_code == 200
    # the CLI
    conn = ["--url", s.url, "--token", s.token("ops")]
    r = cli("policy", "invoke", "set", "svc-2", "--deny", "channel.read:**", "--audit", *conn)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["deny"] == ["channel.read:**"]
    r = cli("policy", "invoke", "list", *conn)
    assert r.returncode == 0, r.stderr
    names = [p["principal"] for p in json.loads(r.stdout)["policies"]]
    assert names == ["cfg-*", "svc-*", "svc-2"]
    r = cli("policy", "invoke", "delete", "svc-2", *conn)
    assert r.returncode == 0 and json.loads(r.stdout) == {"status": "ok"}
    r = cli("policy", "invoke", "delete", "svc-2", *conn)
    assert r.returncode == 5, r.stderr
    r = cli("policy", "invoke", "set", "svc-3", "--allow", "channel.read:a..b", *conn)
    assert r.returncode != 0 and "channel pattern" in r.stderr
    # the audit records: the change, and every decision of the audited policy, allow and deny
    assert s.stop() == 0
    recs = records(s)
    assert [r["deny"] for r in recs if r["event"] == "acl.grant" and r["principal"] == "alice"] \
        == ["secret.**"]
    sets = [r for r in recs if r["event"] == "policy.invoke.set"]
    assert sets and sets[0]["actor"] == "ops" and sets[0]["principal"] == "svc-*"
    assert any(r["event"] == "policy.invoke.delete" and r["principal"] == "svc-2" for r in recs)
    dec = [(r["operation"], r.get("resource"), r["decision"]) for r in recs
           if r["event"] == "policy.invoke" and r["principal"] == "svc-1"]
    assert ("channel.write", "public.news", "allow") in dec
    assert ("channel.write", "public.locked", "deny") in dec
    assert ("channel.write", "jobs", "deny") in dec
    assert not any(r["event"] == "policy.invoke" and r["principal"] == "cfg-1" for r in recs)
    # a restart on the same store keeps the runtime policy (the config's is applied again)
    s2 = make_server("--config", str(s.conf), "--data-dir", s.data)
    ops = s2.client(s2.token("ops"))
    names = [p["principal"] for p in ops.get("/policy/invoke").json()["policies"]]
    assert names == ["cfg-*", "svc-*"]
    svc = s2.client(s2.token("svc-1"))
    assert svc.put("/channels/public.locked", json={"n": 1}).status_code == 403
    assert svc.put("/channels/public.news", json={"n": 1}).status_code == 200
    assert ops.delete("/policy/invoke/svc-*").status_code == 200
    assert svc.put("/channels/jobs", json={"n": 1}).status_code == 200


# ---- user-limited channels ----------------------------------------------------------------------


def test_user_limited_http(rules):
    s = rules
    assert s.ops.put("/channels/inbox%23alice", json={"hi": 1}).status_code == 200  # admin writes
    alice = s.client(s.token("alice", role="read", channels=["jobs"]))  # no scope for the inbox
    r = alice.get("/channels/inbox%23alice")
    assert r.status_code == 200, r.text
    assert [m["content"]["data"] for m in r.json()["messages"]] == [{"hi": 1}]
    assert alice.get("/channels/inbox%23alice/info").status_code == 200
    for who in (s.client(s.token("bob")), s.ops,
                s.client(s.token("bob", role="admin", channels=["inbox#alice"]))):
        assert who.get("/channels/inbox%23alice").status_code == 403
    # listings hide other users' channels
    ids = [c["id"] for c in s.client(s.token("bob", role="read")).get("/channels").json()["channels"]]
    assert "inbox#bob" in ids and "inbox#alice" not in ids
    assert s.ops.post("/channels", json={"id": "bad#", "kind": "topic"}).status_code == 400


def ws_connect(s, token):
    r = RawWS(s.host, s.port)
    assert r.status == 101, r.status
    rep = r.call("connect", {"token": token}, timeout=WAIT)
    assert "connect" in rep, rep
    return r


def wait_pub(r, timeout=WAIT):
    """The next publication push on r (other objects are passed over)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for o in r.recv_objs(max(0.0, deadline - time.time())):
            if "pub" in o.get("push", {}):
                return o["push"]
    raise AssertionError("no publication")


def test_user_limited_websocket_and_broker(rules):
    s = rules
    # alice's token from the broker: her own inbox through "inbox#{sub}"
    r = s.client(s.key("alice")).post("/token", json={"channels": ["inbox#alice"]})
    assert r.status_code == 200, r.text
    alice = ws_connect(s, r.json()["token"])
    assert "subscribe" in alice.call("subscribe", {"channel": "inbox#alice"}, timeout=WAIT)
    bob = ws_connect(s, s.token("bob", role="admin"))
    rep = bob.call("subscribe", {"channel": "inbox#alice"}, timeout=WAIT)
    assert rep.get("error", {}).get("code") == 103, rep
    assert "subscribe" in bob.call("subscribe", {"channel": "inbox#bob"}, timeout=WAIT)
    # a write reaches the listed user's subscription
    assert s.ops.put("/channels/inbox%23alice", json={"n": 7}).status_code == 200
    pub = wait_pub(alice)
    assert pub["channel"] == "inbox#alice" and pub["pub"]["data"] == {"n": 7}, pub
    alice.close()
    bob.close()


def test_invoke_policy_change_unsubscribes_live_sockets(rules):
    """A policy set at runtime acts on subscriptions already made (the socket re-checks them)."""
    s = rules
    w = ws_connect(s, s.token("svc-1", role="read"))
    assert "subscribe" in w.call("subscribe", {"channel": "public.news"}, timeout=WAIT)
    assert s.ops.put("/policy/invoke/svc-1",
                     json={"deny": ["channel.read:public.*"]}).status_code == 200
    deadline = time.time() + WAIT
    push = None
    while push is None and time.time() < deadline:
        for o in w.recv_objs(max(0.0, deadline - time.time())):
            if "unsubscribe" in o.get("push", {}):
                push = o["push"]
    assert push and push["channel"] == "public.news" and push["unsubscribe"]["code"] == 2000
    rep = w.call("subscribe", {"channel": "public.news"}, timeout=WAIT)
    assert rep.get("error", {}).get("code") == 103, rep
    w.close()


def test_invoke_policy_shared_across_nodes(make_server, make_redis):
    """Two nodes on one Redis: a policy set on one decides on the other, and so does its removal
    (the shared state's change feed, docs/SCALING.md)."""
    r = make_redis()
    a, b = (make_server("--engine", r.url) for _ in range(2))
    ops_a = a.client(a.token("ops", role="admin"))
    assert ops_a.post("/channels", json={"id": "jobs"}).status_code == 201
    w = b.client(b.token("svc-1", role="write"))
    assert w.put("/channels/jobs", json={"n": 1}).status_code == 200
    assert ops_a.put("/policy/invoke/svc-*",
                     json={"deny": ["channel.write:jobs"]}).status_code == 200

    def status():
        return w.put("/channels/jobs", json={"n": 2}).status_code

    until(lambda: status() == 403, "the policy on the other node")
    ops_b = b.client(b.token("ops", role="admin"))
    assert [p["principal"] for p in ops_b.get("/policy/invoke").json()["policies"]] == ["svc-*"]
    assert ops_a.delete("/policy/invoke/svc-*").status_code == 200
    until(lambda: status() == 200, "the policy's removal on the other node")


def until(cond, what, timeout=WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
