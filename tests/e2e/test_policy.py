"""The HTTP policy regime (issue 12, docs/POLICY.md) against a real sluiced: a policy service the
test runs (Python http.server on a free loopback port, in a thread) answers in the shape of Open
Policy Agent's data API and can be slow, failing, flapping, answer wrong JSON, or be gone.
Decisions are cached for the TTL (counted at the service), asked again after it, dropped by
POST /authz/invalidate and by an ACL change; errors and timeouts deny with 503 + Retry-After over
HTTP and an error reply on the WebSocket and are never cached; HTTP and WebSocket ask the same
question for the same operation (a walk over the channel routes and commands); a listing asks about
every channel and keeps the allowed; identical questions under way at once are asked once; the
per-pattern override leaves other channels to the ACL. Nothing here asserts a duration: waits are
for a TTL to pass or for the service to have been reached, with generous deadlines."""
import json
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wsraw import RawWS

ADMIN = "ops"


class Policy:
    """The policy service: allow unless the principal or the resource is denied; every question
    recorded. mode: ok | fail (500) | badjson | wrongshape | slow (waits `delay` first) | flap
    (500 and ok in turn) | hold (waits until release())."""

    def __init__(self):
        self.mode = "ok"
        self.ttl = 30
        self.delay = 0
        self.deny_principals = set()
        self.deny_resources = set()
        self.fail_principals = set()
        self.questions = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.reached = threading.Event()
        self.flips = 0
        policy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inp = json.loads(body)["input"]
                with policy.lock:
                    policy.questions.append(inp)
                    mode = policy.mode
                    policy.flips += 1
                    flip = policy.flips
                policy.reached.set()
                if mode == "slow":
                    time.sleep(policy.delay)
                if mode == "hold":
                    policy.gate.wait(30)
                if mode == "fail" or (mode == "flap" and flip % 2 == 1) or \
                        inp["identity"]["principal"] in policy.fail_principals:
                    return self.answer(500, b'{"error":"policy failure"}')
                if mode == "badjson":
                    return self.answer(200, b"{not json")
                if mode == "wrongshape":
                    return self.answer(200, b'{"result":{"allow":"yes"}}')
                who = inp["identity"]["principal"]
                allow = who == ADMIN or (who not in policy.deny_principals and
                                         inp["resource"] not in policy.deny_resources)
                out = {"result": {"allow": allow, "ttl": policy.ttl,
                                  "reason": "allowed" if allow else "denied by the test"}}
                self.answer(200, json.dumps(out).encode())

            def answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, principal=None, capability=None, resource=None):
        with self.lock:
            return sum(1 for q in self.questions
                       if (principal is None or q["identity"]["principal"] == principal) and
                       (capability is None or q["capability"] == capability) and
                       (resource is None or q["resource"] == resource))

    def capabilities(self, principal):
        with self.lock:
            return [(q["capability"], q["resource"]) for q in self.questions
                    if q["identity"]["principal"] == principal]

    def stop(self):
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def policy():
    p = Policy()
    yield p
    p.stop()


CHANNELS = """
[channel jobs]
kind = queue
visibility = public
[channel news]
kind = topic
visibility = public
[channel secret]
kind = topic
visibility = public
[channel $private]
kind = topic
visibility = public
"""


def start(make_server, tmp_path, policy, extra="", authz="policy", args=()):
    conf = tmp_path / "policy.conf"
    conf.write_text(textwrap.dedent(f"""
        authz = {authz}
        admin = {ADMIN}
        authz_policy_url = http://127.0.0.1:{policy.port}/v1/data/sluice/allow
        authz_policy_timeout = 1
        """) + textwrap.dedent(extra) + CHANNELS)
    return make_server("--config", str(conf), *args)


def client(srv, sub, role="write"):
    return srv.client(srv.token(sub, role=role))


def test_question_shape_and_cache_for_the_ttl(make_server, tmp_path, policy):
    policy.ttl = 2
    srv = start(make_server, tmp_path, policy)
    alice = client(srv, "alice")
    assert alice.put("/channels/jobs", json={"n": 1}).status_code == 200
    assert policy.count("alice", "channel.write", "jobs") == 1
    q = [q for q in policy.questions if q["identity"]["principal"] == "alice"][0]
    assert q["capability"] == "channel.write" and q["resource"] == "jobs"
    assert q["parameters"] is None
    ident = q["identity"]
    assert ident["source"] == "jwt" and ident["role"] == "write" and ident["workspace"] == ""
    assert ident["scoped"] is False and ident["channels"] == []
    # Within the TTL: from the cache, the service is not asked again.
    for n in range(2, 5):
        assert alice.put("/channels/jobs", json={"n": n}).status_code == 200
    assert policy.count("alice", "channel.write", "jobs") == 1
    # Another operation is another question.
    assert alice.get("/channels/jobs?exclusive=true").status_code == 200
    assert policy.count("alice", "channel.read", "jobs") == 1
    # After the TTL: asked again.
    time.sleep(2.5)
    assert alice.put("/channels/jobs", json={"n": 5}).status_code == 200
    assert policy.count("alice", "channel.write", "jobs") == 2


def test_ttl_zero_asks_once_per_request(make_server, tmp_path, policy):
    policy.ttl = 0
    srv = start(make_server, tmp_path, policy)
    alice = client(srv, "alice")
    for n in range(3):
        assert alice.put("/channels/jobs", json={"n": n}).status_code == 200
    # One question per request, although the pipeline decides more than once on the way.
    assert policy.count("alice", "channel.write", "jobs") == 3


def test_clamped_to_the_configured_maximum(make_server, tmp_path, policy):
    policy.ttl = 3600
    srv = start(make_server, tmp_path, policy, "authz_cache_ttl_max = 1\n")
    alice = client(srv, "alice")
    assert alice.put("/channels/jobs", json={"n": 1}).status_code == 200
    assert alice.put("/channels/jobs", json={"n": 2}).status_code == 200
    assert policy.count("alice", "channel.write", "jobs") == 1
    time.sleep(1.5)
    assert alice.put("/channels/jobs", json={"n": 3}).status_code == 200
    assert policy.count("alice", "channel.write", "jobs") == 2


def test_denied_and_invalidated_on_change(make_server, tmp_path, policy):
    srv = start(make_server, tmp_path, policy)
    bob = client(srv, "bob")
    ops = client(srv, ADMIN, role="admin")
    assert bob.put("/channels/jobs", json=1).status_code == 200
    # The policy changes: the cached allow stands until the cache is told.
    policy.deny_principals.add("bob")
    assert bob.put("/channels/jobs", json=2).status_code == 200
    assert policy.count("bob", "channel.write", "jobs") == 1
    # Not for everyone.
    assert bob.post("/authz/invalidate").status_code == 403
    r = ops.post("/authz/invalidate")
    assert r.status_code == 200 and r.json() == {"status": "invalidated"}
    r = bob.put("/channels/jobs", json=3)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert "denied by the test" not in r.text  # the policy's words stay in the audit log
    assert policy.count("bob", "channel.write", "jobs") == 2
    assert policy.count("bob", "authz.invalidate") == 1  # the admin route is the policy's too
    # A denial is cached like an allow ...
    assert bob.put("/channels/jobs", json=4).status_code == 403
    assert policy.count("bob", "channel.write", "jobs") == 2
    # ... and an ACL change drops it as well.
    policy.deny_principals.clear()
    assert ops.put("/acl/carol", json={"role": "read", "channels": ["news"]}).status_code == 200
    assert bob.put("/channels/jobs", json=5).status_code == 200
    assert policy.count("bob", "channel.write", "jobs") == 3


@pytest.mark.parametrize("mode", ["fail", "badjson", "wrongshape", "slow"])
def test_errors_fail_closed_and_are_not_cached(make_server, tmp_path, policy, mode):
    policy.mode, policy.delay = mode, 3  # slow: beyond authz_policy_timeout = 1
    srv = start(make_server, tmp_path, policy)
    alice = client(srv, "alice")
    for _ in range(2):
        r = alice.put("/channels/jobs", json=1)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"]
        assert r.json()["error"] == "unavailable"
    assert policy.count("alice", "channel.write", "jobs") == 2  # asked each time: not cached
    policy.mode = "ok"
    assert alice.put("/channels/jobs", json=1).status_code == 200


def test_flapping_policy(make_server, tmp_path, policy):
    policy.mode, policy.ttl = "flap", 0
    srv = start(make_server, tmp_path, policy)
    alice = client(srv, "alice")
    codes = [alice.put("/channels/jobs", json=n).status_code for n in range(6)]
    assert codes == [503, 200, 503, 200, 503, 200]
    assert policy.count("alice", "channel.write", "jobs") == 6


def test_policy_down(make_server, tmp_path, policy):
    srv = start(make_server, tmp_path, policy)
    policy.stop()
    r = client(srv, "alice").put("/channels/jobs", json=1)
    assert r.status_code == 503 and r.headers["retry-after"]
    ws = RawWS(srv.host, srv.port)
    try:
        assert "connect" in ws.call("connect", {"token": srv.token("alice", role="read")})
        rep = ws.call("subscribe", {"channel": "news"}, timeout=15)
        assert rep["error"]["code"] == 100, rep  # internal (temporary): the client retries
    finally:
        ws.close()


def test_identical_questions_under_way_are_asked_once(make_server, tmp_path, policy):
    policy.mode, policy.ttl = "hold", 0
    srv = start(make_server, tmp_path, policy, "authz_policy_timeout = 20\n")
    results = []

    def put(n):
        with client(srv, "alice") as c:
            results.append(c.put("/channels/jobs", json=n, timeout=30).status_code)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    assert policy.reached.wait(15)
    time.sleep(1)  # the other requests reach sluiced while the first question is held
    policy.gate.set()
    for t in threads:
        t.join(30)
    assert results == [200] * 4
    assert policy.count("alice", "channel.write", "jobs") == 1


def test_listing_asks_about_every_channel(make_server, tmp_path, policy):
    policy.deny_resources.add("secret")
    srv = start(make_server, tmp_path, policy)
    r = client(srv, "alice", role="read").get("/channels")
    assert r.status_code == 200, r.text
    ids = sorted(c["id"] for c in r.json()["channels"])
    assert "secret" not in ids and {"jobs", "news"} <= set(ids)
    assert policy.count("alice", "channel.read", "secret") == 1


# ---- every transport asks the same regime the same question -------------------------------------

HTTP_ROUTES = [  # (method, path, body, capability) of the channel routes on "jobs"
    ("PUT", "/channels/jobs", 1, "channel.write"),
    ("POST", "/channels/jobs/messages", {"data": 1}, "channel.write"),
    ("POST", "/channels/jobs/batch", {"messages": [{"data": 1}]}, "channel.write"),
    ("GET", "/channels/jobs", None, "channel.read"),
    ("GET", "/channels/jobs/info", None, "channel.info"),
    ("POST", "/channels/jobs/acknowledge", {"message_ids": ["0000000000000001"]},
     "channel.acknowledge"),
    ("POST", "/channels/jobs/nack", {"message_ids": ["0000000000000001"]}, "channel.nack"),
    ("POST", "/channels/jobs/extend", {"message_ids": ["0000000000000001"], "seconds": 5},
     "channel.extend"),
    ("POST", "/channels/jobs/terminate", {"message_ids": ["0000000000000001"]},
     "channel.terminate"),
    ("POST", "/channels/jobs/remove", {"message_ids": ["0000000000000001"]}, "channel.remove"),
    ("POST", "/channels/jobs/evict", {"before": 0}, "channel.evict"),
    ("DELETE", "/channels/jobs/messages", None, "channel.clear"),
    ("DELETE", "/channels/jobs", None, "channel.delete"),
]


def test_route_walk_same_question_on_every_transport(make_server, tmp_path, policy):
    policy.ttl = 0
    policy.deny_principals.add("mallory")
    srv = start(make_server, tmp_path, policy)
    mallory = client(srv, "mallory", role="admin")
    for method, path, body, cap in HTTP_ROUTES:
        before = policy.count("mallory", cap, "jobs")
        r = mallory.request(method, path, json=body) if body is not None else \
            mallory.request(method, path)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert policy.count("mallory", cap, "jobs") == before + 1, (method, path, cap)
    # Creating a channel: the route asks first (the id is in the body: no resource yet).
    r = mallory.post("/channels", json={"id": "fresh", "kind": "topic"})
    assert r.status_code == 403 and policy.count("mallory", "channel.create") == 1
    # The WebSocket: the same capabilities for subscribe, history, presence and publish.
    ws = RawWS(srv.host, srv.port)
    try:
        assert "connect" in ws.call("connect", {"token": srv.token("mallory", role="admin")})
        for method, body, cap in [("subscribe", {"channel": "news"}, "channel.read"),
                                  ("history", {"channel": "news", "limit": 1}, "channel.read"),
                                  ("publish", {"channel": "news", "data": {"x": 1}},
                                   "channel.write")]:
            before = policy.count("mallory", cap, "news")
            rep = ws.call(method, body, timeout=15)
            assert rep.get("error", {}).get("code") == 103, (method, rep)  # permission denied
            assert policy.count("mallory", cap, "news") == before + 1, method
    finally:
        ws.close()
    # And an allowed caller passes on both.
    alice = client(srv, "alice", role="read")
    assert alice.get("/channels/news").status_code == 200
    ws = RawWS(srv.host, srv.port)
    try:
        assert "connect" in ws.call("connect", {"token": srv.token("alice", role="read")})
        rep = ws.call("subscribe", {"channel": "news"}, timeout=15)
        assert "subscribe" in rep, rep
        rep = ws.call("publish", {"channel": "news", "data": {"x": 1}}, timeout=15)
        assert "publish" in rep, rep  # the policy, not the token's role, decides here
    finally:
        ws.close()
    assert policy.count("alice", "channel.read", "news") == 2
    assert policy.count("alice", "channel.write", "news") == 1


@pytest.mark.parametrize("revocation", ["embedded", "redis"])
def test_dollar_channel_with_ttl_zero(make_server, make_redis, tmp_path, policy, revocation):
    """A `$` channel's subscription token is checked after the first decision; the subscribe
    then goes on with the policy's answer (TTL 0: never cached) at hand. With a Redis revocation
    store the token's check answers later, so the policy is asked again then."""
    policy.ttl = 0
    args = ()
    if revocation == "redis":
        args = ("--revocation", make_redis().url)
    srv = start(make_server, tmp_path, policy, args=args)
    ws = RawWS(srv.host, srv.port)
    try:
        assert "connect" in ws.call("connect", {"token": srv.token("gina", role="read")})
        rep = ws.call("subscribe", {"channel": "$private",
                                    "token": srv.token("gina", channel="$private")}, timeout=15)
        assert "subscribe" in rep, rep
        want = 2 if revocation == "redis" else 1
        assert policy.count("gina", "channel.read", "$private") == want
        policy.deny_principals.add("gina")
        ws2 = RawWS(srv.host, srv.port)
        try:
            assert "connect" in ws2.call("connect", {"token": srv.token("gina", role="read")})
            rep = ws2.call("subscribe", {"channel": "$private",
                                         "token": srv.token("gina", channel="$private")},
                           timeout=15)
            assert rep["error"]["code"] == 103, rep
        finally:
            ws2.close()
    finally:
        ws.close()


def test_subscription_ends_when_the_policy_withdraws_it(make_server, tmp_path, policy):
    srv = start(make_server, tmp_path, policy)
    ws = RawWS(srv.host, srv.port)
    try:
        assert "connect" in ws.call("connect", {"token": srv.token("dave", role="read")})
        assert "subscribe" in ws.call("subscribe", {"channel": "news"}, timeout=15)
        policy.deny_principals.add("dave")
        # An ACL change (anyone's) drops the cache and makes sessions ask again.
        ops = client(srv, ADMIN, role="admin")
        assert ops.put("/acl/erin", json={"role": "read"}).status_code == 200
        pushed = []
        for _ in range(10):  # server pings may come first
            pushed += ws.recv_objs(timeout=15)
            if any("unsubscribe" in p.get("push", {}) for p in pushed):
                break
        assert any(p.get("push", {}).get("channel") == "news" and
                   "unsubscribe" in p["push"] for p in pushed), pushed
        assert policy.count("dave", "channel.read", "news") == 2
    finally:
        ws.close()


def test_outage_during_a_recheck_asks_the_client_back(make_server, tmp_path, policy):
    """A session re-checking its subscriptions while the policy fails for it: fail closed, with
    unsubscribe code 2500 (Centrifugo clients subscribe again), not 2000."""
    srv = start(make_server, tmp_path, policy)
    ws = RawWS(srv.host, srv.port)
    try:
        assert "connect" in ws.call("connect", {"token": srv.token("hana", role="read")})
        assert "subscribe" in ws.call("subscribe", {"channel": "news"}, timeout=15)
        policy.fail_principals.add("hana")
        ops = client(srv, ADMIN, role="admin")
        assert ops.put("/acl/ivan", json={"role": "read"}).status_code == 200
        pushed = []
        for _ in range(10):
            pushed += ws.recv_objs(timeout=15)
            if any("unsubscribe" in p.get("push", {}) for p in pushed):
                break
        unsub = [p["push"] for p in pushed if "unsubscribe" in p.get("push", {})]
        assert unsub and unsub[0]["channel"] == "news", pushed
        assert unsub[0]["unsubscribe"]["code"] == 2500, unsub
        # Subscribing again while it fails: an error reply (100), and once it answers: subscribed.
        assert ws.call("subscribe", {"channel": "news"}, timeout=15)["error"]["code"] == 100
        policy.fail_principals.clear()
        assert "subscribe" in ws.call("subscribe", {"channel": "news"}, timeout=15)
    finally:
        ws.close()


def test_override_per_pattern(make_server, tmp_path, policy):
    """Server-wide acl; only jobs.** under the policy: news is the ACL's, the service never hears."""
    srv = start(make_server, tmp_path, policy, "authz_override = jobs.**=policy\n", authz="acl")
    policy.deny_principals.add("frank")
    ops = client(srv, ADMIN, role="admin")
    assert ops.put("/acl/frank", json={"role": "write", "channels": ["**"]}).status_code == 200
    frank = client(srv, "frank")
    assert frank.put("/channels/news", json=1).status_code == 200
    assert frank.put("/channels/jobs", json=1).status_code == 403
    assert policy.count("frank") == 1 and policy.count("frank", "channel.write", "jobs") == 1


@pytest.mark.parametrize("conf, said", [
    ("authz = policy\n", "the policy regime needs authz_policy_url"),
    ("authz = acl\nauthz_override = jobs=policy\n", "the policy regime needs authz_policy_url"),
    ("authz = acl\n[channel jobs]\nsecurity = policy\n", "the policy regime needs authz_policy_url"),
    ("authz_override = jobs\n", "authz_override must be PATTERN=MODE"),
    ("authz_override = bad pattern=acl\n", "is not a channel pattern"),
    ("authz_policy_url = ftp://x/\n", "authz_policy_url must be an http(s) URL"),
    ("authz = policy\nauthz_policy_url = http://policy.example/v1\n", "plain http only to a loopback"),
])
def test_start_up_refusals(tmp_path, conf, said):
    from conftest import Server
    p = tmp_path / "bad.conf"
    p.write_text(conf)
    s = Server(("--config", str(p)))
    try:
        with pytest.raises(RuntimeError) as e:
            s.start()
        assert said in str(e.value), str(e.value)
    finally:
        s.stop()


def test_broker_asks_the_policy_for_each_channel(make_server, cli, tmp_path, policy):
    """POST /token under the policy mode: the regime is asked about each requested channel
    (capability token.issue, resource the channel), and a channel the broker's roles would grant
    but the policy refuses is listed among the denied ones; an outage refuses the request (503)."""
    from conftest import apikey_maker
    store = tmp_path / "keys.jsonl"
    srv = start(make_server, tmp_path, policy, extra=f"""
        apikey_store = {store}
        [role writers]
        grants = write
        channels = jobs, news, secret
        [principal alice]
        roles = writers
        """)
    key = apikey_maker(cli, store)("alice")
    policy.deny_resources.add("secret")
    r = srv.client(key).post("/token", json={"channels": ["jobs", "secret", "other"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channels_granted"] == ["jobs"]
    denied = {d["channel"]: d["reason"] for d in body["channels_denied"]}
    assert denied["secret"] == "denied by the authorisation policy"
    assert "other" in denied and denied["other"] != "denied by the authorisation policy"
    # asked once per requested channel (before the roles decide; the roles refused "other")
    assert policy.count("alice", "token.issue", "jobs") == 1
    assert policy.count("alice", "token.issue", "secret") == 1
    assert policy.count("alice", "token.issue", "other") == 1
    # the regime cannot answer: nothing is minted
    policy.mode = "fail"
    r = srv.client(key).post("/token", json={"channels": ["news"]})
    assert r.status_code == 503 and r.headers.get("Retry-After"), r.text
