"""The WebSocket endpoint (/connection/websocket) with the real `centrifuge` JavaScript client (npm,
v5) over the `ws` package in Node, against a real sluiced: delivery of HTTP writes, client publish
and history, recovery after a dropped socket, connection token refresh (and expiry without it),
`$` channels with subscription tokens and their refresh, permission denied, and disconnection on
revocation. The Node side is tests/node/centrifuge_e2e.mjs (one scenario per run, one JSON result
line). scripts/deps installs Node and the locked packages (npm ci); without them these tests skip,
and fail under the project's test command (SLUICE_REQUIRE_DEPS=1, see conftest.py). SLUICE_NODE
picks another node binary (the default is the one on PATH). Nothing here is timed: events are
awaited with generous deadlines, and bench/revocation.sh measures how fast a revocation arrives."""
import json
import os
import shutil
import subprocess
import time

import jwt as pyjwt
import pytest

NODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node")
SCRIPT = os.path.join(NODE_DIR, "centrifuge_e2e.mjs")
NODE = os.environ.get("SLUICE_NODE") or shutil.which("node") or shutil.which("nodejs")
GRACE = 5  # ws_refresh_grace default (docs/WEBSOCKET.md, "Limits")

if NODE is None:
    pytestmark = pytest.mark.skip(reason="node is not installed (scripts/deps installs nodejs)")
elif not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "centrifuge")):
    pytestmark = pytest.mark.skip(
        reason="tests/node/node_modules is missing (scripts/deps runs npm ci --prefix tests/node)")

CONFIG = """
broker = true
[channel news]
kind = topic
[channel other]
kind = topic
[channel $secret]
kind = topic
"""


@pytest.fixture
def srv(make_server, tmp_path):
    conf = tmp_path / "ws.conf"
    conf.write_text(CONFIG)
    return make_server("--config", str(conf))


def writer(s):
    return s.token("http-writer", role="write", channels=["news", "other", "$secret"])


def run_node(s, scenario, **params):
    env = dict(os.environ, SLUICE_URL=s.url, SLUICE_JWT_SECRET=s.secret,
               SCENARIO_PARAMS=json.dumps(params))
    try:
        p = subprocess.run([NODE, SCRIPT, scenario], cwd=NODE_DIR, env=env, capture_output=True,
                           text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"node {scenario} did not finish in 120 s:\n{e.stdout}\n{e.stderr}")
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    assert lines, f"node {scenario} printed no result (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    res = json.loads(lines[-1])
    assert p.returncode == 0 and res.get("ok") is True, (
        f"node {scenario} failed (exit {p.returncode}): {res.get('error')}\n"
        f"client events: {json.dumps(res.get('events'), indent=1)}\nnode stderr: {p.stderr[-4000:]}")
    assert res["scenario"] == scenario
    return res


def strictly_increasing(xs):
    return all(isinstance(x, int) and x > 0 for x in xs) and all(a < b for a, b in zip(xs, xs[1:]))


def test_http_writes_arrive_in_order(srv):
    tok = srv.token("reader-1", role="read", channels=["news"])
    res = run_node(srv, "deliver", channel="news", token=tok, writer=writer(srv))
    assert [p["data"] for p in res["pubs"]] == [{"n": n} for n in (3, 4, 5, 6, 7)]
    offs = [p["offset"] for p in res["pubs"]]
    assert strictly_increasing(offs), offs
    assert all("info" not in p for p in res["pubs"])


def publish_history(srv):
    a = srv.token("alice", role="write", channels=["news"])
    b = srv.token("bob", role="read", channels=["news"])
    return run_node(srv, "publish_history", channel="news", tokenA=a, tokenB=b, userA="alice")


def test_client_publish_and_history(srv):
    res = publish_history(srv)
    got = res["received"]
    assert [p["data"]["n"] for p in got] == [1, 2, 3]
    assert all(p["info"]["user"] == "alice" for p in got)
    offs = [p["offset"] for p in got]
    assert strictly_increasing(offs)
    assert [p["offset"] for p in res["history"]["publications"]] == offs
    assert res["history"]["offset"] == offs[-1] and res["history"]["epoch"]
    assert res["since"] == offs[1:] and res["reverse"] == [offs[2], offs[1]]


def test_history_keeps_publisher_info(srv):
    # Pushes carry the publisher's info (client and user); Centrifugo keeps it in history too.
    res = publish_history(srv)
    want = res["publisher"]
    assert [p.get("info") for p in res["history"]["publications"]] == [
        {"client": want["client"], "user": want["user"]}] * 3


def test_recovery_after_dropped_socket(srv):
    tok = srv.token("carol", role="read", channels=["news"])
    res = run_node(srv, "recovery", channel="news", token=tok, writer=writer(srv))
    assert res["first"]["recoverable"] is True and res["first"]["wasRecovering"] is False
    assert res["resubscribed"]["wasRecovering"] is True
    assert res["resubscribed"]["recovered"] is True
    assert [p["data"]["n"] for p in res["pubs"]] == [1, 2, 3, 4, 5]
    assert strictly_increasing([p["offset"] for p in res["pubs"]])


def test_connection_token_refresh(srv):
    tok = srv.token("dave", role="read", channels=["news"], ttl=3, jti="dave-short")
    exp = pyjwt.decode(tok, options={"verify_signature": False})["exp"]
    res = run_node(srv, "refresh", channel="news", token=tok, writer=writer(srv), shortExp=exp,
                   grace=GRACE, claims={"sub": "dave", "role": "read", "channels": ["news"]})
    assert res["getTokenCalls"] >= 1
    assert res["survivedUntil"] > exp + GRACE
    assert time.time() > exp + GRACE


def test_connection_expires_without_refresh(srv):
    # The control for the test above: getToken never answers, so no refresh reaches the server.
    tok = srv.token("dave", role="read", channels=["news"], ttl=3, jti="dave-expiring")
    exp = pyjwt.decode(tok, options={"verify_signature": False})["exp"]
    res = run_node(srv, "expire", token=tok, shortExp=exp, grace=GRACE)
    assert res["code"] == 3005
    # Not before the token expired (the Node side checks it too); how long after is not timed.
    assert res["secondsAfterExp"] >= 0


def test_dollar_channel_subscription_token(srv):
    tok = srv.token("erin", role="read", channels=["$secret"])
    res = run_node(srv, "private", channel="$secret", token=tok, user="erin", writer=writer(srv))
    assert res["getTokenAsked"] == ["$secret"]
    assert res["noToken"]["code"] == 103
    assert res["wrongToken"] == {"other-channel": 3500, "other-user": 3500}


def test_subscription_token_refresh(srv):
    tok = srv.token("erin", role="read", channels=["$secret"])
    res = run_node(srv, "sub_refresh", channel="$secret", token=tok, user="erin",
                   writer=writer(srv), shortTtl=3, grace=GRACE)
    assert res["getTokenCalls"] >= 2


def test_permission_denied_outside_scope(srv):
    tok = srv.token("frank", role="write", channels=["news"])
    res = run_node(srv, "denied", token=tok, inside="news", outside="other")
    assert res["unsubscribed"]["code"] == 103
    assert res["publishError"]["code"] == 103


def test_revocation_disconnects(srv):
    admin = srv.token("ops", role="admin", jti="ops-ws-1")
    t1 = srv.token("gina", role="read", channels=["news"], jti="ws-rev-1")
    t2 = srv.token("gina", role="read", channels=["news"], jti="ws-rev-2")
    res = run_node(srv, "revocation", channel="news", token1=t1, token2=t2, jti1="ws-rev-1",
                   admin=admin, writer=writer(srv))
    assert res["disconnected"]["code"] == 3503
    # The same token is refused over HTTP too; the other one still works.
    assert srv.client(t1).get("/channels").status_code == 401
    assert srv.client(t2).get("/channels").status_code == 200
