"""Signed requests (RFC 9421 with RFC 9530 Content-Digest, docs/SIGNING.md) against the real
sluiced: requests signed here in Python (hmac-sha256 with the standard library, ed25519 with
`cryptography`: an implementation independent of sluice's) are accepted; every tampering, a stale
`created`, a replayed nonce (on the same node and on another node sharing a Redis), an unknown
keyid, a wrong alg, duplicated or malformed signature headers are 401 with a reason that names no
secret, and a refused body is never stored; the CLI signs; a signed WebSocket upgrade connects
without a token; route prefixes' modes (auth_mode)."""
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import REQUIRE_DEPS
from wsraw import RawWS

HMAC_SECRET = "signing-secret-for-the-e2e-tests-0123456789"
ADMIN = "ops"


def b64(b):
    return base64.b64encode(b).decode()


def sign(method, url, body=b"", *, keyid, alg="hmac-sha256", key=HMAC_SECRET, created=None,
         nonce=None, extra_components=(), extra_headers=(), params_alg=None, host=None):
    """The headers that sign one request (Host included), built from RFC 9421 by hand."""
    u = urlsplit(url)
    authority = host or u.netloc
    headers = [("Host", authority), *extra_headers]
    comps = ["@method", "@target-uri"]
    if body:
        headers.append(("Content-Digest", f"sha-256=:{b64(hashlib.sha256(body).digest())}:"))
        comps.append("content-digest")
    comps += list(extra_components)
    created = int(time.time()) if created is None else created
    nonce = nonce or secrets.token_hex(16)
    params = "(" + " ".join(f'"{c}"' for c in comps) + ")"
    params += f';created={created};keyid="{keyid}";alg="{params_alg or alg}";nonce="{nonce}"'
    target = f"{u.scheme}://{authority}{u.path or '/'}" + (f"?{u.query}" if u.query else "")
    hv = {k.lower(): v for k, v in headers}
    lines = []
    for c in comps:
        v = {"@method": method, "@target-uri": target}.get(c, hv.get(c))
        lines.append(f'"{c}": {v}')
    lines.append(f'"@signature-params": {params}')
    base = "\n".join(lines).encode()
    if alg == "hmac-sha256":
        sig = hmac.new(key.encode(), base, hashlib.sha256).digest()
    else:
        sig = key.sign(base)
    headers += [("Signature-Input", f"sig1={params}"), ("Signature", f"sig1=:{b64(sig)}:")]
    return headers


@pytest.fixture
def keys(tmp_path):
    """A key file: an hmac key (write on jobs and jobs2, content-type covered too), an ed25519 key and a
    rotated hmac secret of the same principal; returns (path, ed25519 private key)."""
    ed = Ed25519PrivateKey.generate()
    pub = ed.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "ed.pem").write_bytes(pub)
    (tmp_path / "hmac.secret").write_text(HMAC_SECRET + "\n")
    doc = {"keys": [
        {"keyid": "svc-hmac", "alg": "hmac-sha256", "key": f"file:{tmp_path / 'hmac.secret'}",
         "principal": "svc", "role": "write", "channels": ["jobs", "jobs2"]},
        {"keyid": "svc-typed", "alg": "hmac-sha256", "key": "env:SIG_TYPED_SECRET",
         "principal": "svc", "role": "write", "components": ["content-type"]},
        {"keyid": "svc-ed", "alg": "ed25519", "key": f"file:{tmp_path / 'ed.pem'}",
         "principal": "svc-ed", "role": "write"},
    ]}
    path = tmp_path / "sigkeys.json"
    path.write_text(json.dumps(doc))
    return str(path), ed


ENV = {"SIG_TYPED_SECRET": HMAC_SECRET + "-typed"}


def setup_channels(srv):
    admin = srv.client(srv.token(ADMIN, role="admin"))
    for cid in ("jobs", "jobs2", "other"):
        r = admin.post("/channels", json={"id": cid, "kind": "topic"})
        assert r.status_code in (200, 201), r.text
    return admin


def count(admin, cid):
    r = admin.get(f"/channels/{cid}/info")
    assert r.status_code == 200, r.text
    return r.json()["depth"]


def send(srv, method, path, body=b"", headers=()):
    with httpx.Client(timeout=10) as c:
        return c.request(method, srv.url + path, content=body or None, headers=list(headers))


def refused(r, reason):
    assert r.status_code == 401, (r.status_code, r.text)
    msg = r.json()["message"]
    assert reason in msg, msg
    assert HMAC_SECRET not in r.text


def test_signed_requests_and_every_refusal(make_server, keys):
    path, ed = keys
    srv = make_server("--signature-keys", path, env=ENV)
    admin = setup_channels(srv)
    url = srv.url + "/channels/jobs"
    body = b'{"n":1}'

    # hmac-sha256 and ed25519, each accepted and stored
    r = send(srv, "PUT", "/channels/jobs", body, sign("PUT", url, body, keyid="svc-hmac"))
    assert r.status_code < 300, r.text
    r = send(srv, "PUT", "/channels/jobs", body,
             sign("PUT", url, body, keyid="svc-ed", alg="ed25519", key=ed))
    assert r.status_code < 300, r.text
    assert count(admin, "jobs") == 2

    # tampered method, path, query, body: each refused, nothing stored
    h = sign("PUT", url, body, keyid="svc-hmac")
    refused(send(srv, "POST", "/channels/jobs", body, h), "signature does not verify")
    refused(send(srv, "PUT", "/channels/jobs2", body, h), "signature does not verify")
    refused(send(srv, "PUT", "/channels/jobs?x=1", body, h), "signature does not verify")
    refused(send(srv, "PUT", "/channels/jobs", b'{"n":2}', h),
            "content-digest does not match the body")
    # a tampered covered header (the svc-typed key's policy covers content-type)
    ht = sign("PUT", url, body, keyid="svc-typed", key=HMAC_SECRET + "-typed",
              extra_components=["content-type"], extra_headers=[("Content-Type", "application/json")])
    swapped = [(k, "text/plain" if k == "Content-Type" else v) for k, v in ht]
    refused(send(srv, "PUT", "/channels/jobs", body, swapped), "signature does not verify")
    assert send(srv, "PUT", "/channels/jobs", body, ht).status_code < 300
    # the key's policy: content-type must be covered
    refused(send(srv, "PUT", "/channels/jobs", body,
                 sign("PUT", url, body, keyid="svc-typed", key=HMAC_SECRET + "-typed")),
            "the signature must cover content-type")
    assert count(admin, "jobs") == 3

    # stale created, unknown keyid, wrong alg
    refused(send(srv, "PUT", "/channels/jobs", body,
                 sign("PUT", url, body, keyid="svc-hmac", created=int(time.time()) - 1000)),
            "signature too old")
    refused(send(srv, "PUT", "/channels/jobs", body,
                 sign("PUT", url, body, keyid="nobody")), "unknown keyid")
    refused(send(srv, "PUT", "/channels/jobs", body,
                 sign("PUT", url, body, keyid="svc-hmac", params_alg="ed25519")),
            "alg does not match the key")

    # the same request twice: the nonce
    h = sign("PUT", url, body, keyid="svc-hmac")
    assert send(srv, "PUT", "/channels/jobs", body, h).status_code < 300
    refused(send(srv, "PUT", "/channels/jobs", body, h), "nonce already used")

    # duplicated and malformed signature headers
    h = sign("PUT", url, body, keyid="svc-hmac")
    dup = h + [("Signature", dict(h)["Signature"])]
    refused(send(srv, "PUT", "/channels/jobs", body, dup), "duplicated Signature header")
    import re
    bump = lambda m: f"created={int(m.group(1)) + 1}"  # noqa: E731
    bad = [(k, re.sub(r"created=(\d+)", bump, v) if k == "Signature-Input" else v) for k, v in h]
    refused(send(srv, "PUT", "/channels/jobs", body, bad), "signature does not verify")
    bad = [(k, "sig1=(\"@method\"" if k == "Signature-Input" else v) for k, v in h]
    refused(send(srv, "PUT", "/channels/jobs", body, bad), "malformed Signature-Input")
    bad = [(k, "sig1=:!!:" if k == "Signature" else v) for k, v in h]
    refused(send(srv, "PUT", "/channels/jobs", body, bad), "malformed Signature")
    nosig = [(k, v) for k, v in h if k != "Signature"]
    refused(send(srv, "PUT", "/channels/jobs", body, nosig), "go together")
    # a body without content-digest covered
    h = sign("PUT", url, keyid="svc-hmac")
    refused(send(srv, "PUT", "/channels/jobs", body, h), "must cover content-digest")

    # the key's scope: svc-hmac writes jobs and jobs2 only
    other = srv.url + "/channels/other"
    r = send(srv, "PUT", "/channels/other", body, sign("PUT", other, body, keyid="svc-hmac"))
    assert r.status_code == 403, r.text
    assert count(admin, "jobs") == 4 and count(admin, "other") == 0
    # a bearer token still works next to signatures
    assert admin.put("/channels/other", content=body).status_code < 300
    # the keyid is the credential's id: revoking it refuses the key (the other keys go on)
    assert admin.post("/revoke", json={"token_id": "svc-ed"}).status_code == 200
    refused(send(srv, "PUT", "/channels/jobs", body,
                 sign("PUT", url, body, keyid="svc-ed", alg="ed25519", key=ed)), "token revoked")
    assert send(srv, "PUT", "/channels/jobs", body,
                sign("PUT", url, body, keyid="svc-hmac")).status_code < 300


def test_replay_on_another_node(make_server, make_redis, keys):
    path, _ = keys
    r = make_redis()
    a = make_server("--engine", r.url, "--signature-keys", path, env=ENV)
    b = make_server("--engine", r.url, "--signature-keys", path, env=ENV)
    setup_channels(a)
    body = b'{"n":1}'
    h = sign("PUT", a.url + "/channels/jobs", body, keyid="svc-hmac", host="node.example")
    assert send(a, "PUT", "/channels/jobs", body, h).status_code < 300
    refused(send(b, "PUT", "/channels/jobs", body, h), "nonce already used")
    refused(send(a, "PUT", "/channels/jobs", body, h), "nonce already used")
    assert "nonces in redis" in a.stderr()


def test_cli_signs(make_server, keys, cli, tmp_path):
    path, ed = keys
    srv = make_server("--signature-keys", path, env=ENV)
    admin = setup_channels(srv)
    env = {"SIGN_SECRET": HMAC_SECRET}
    r = cli("write", "jobs", '{"from":"cli"}', "--url", srv.url, "--sign-key", "env:SIGN_SECRET",
            "--key-id", "svc-hmac", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "accepted"
    pem = ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())
    (tmp_path / "ed.key").write_bytes(pem)
    r = cli("write", "jobs", '{"from":"cli-ed"}', "--url", srv.url, "--sign-key",
            f"file:{tmp_path / 'ed.key'}", "--key-id", "svc-ed", "--sign-alg", "ed25519")
    assert r.returncode == 0, r.stderr
    r = cli("read", "jobs", "--url", srv.url, "--sign-key", "env:SIGN_SECRET", "--key-id",
            "svc-hmac", env=env)
    assert r.returncode == 0, r.stderr
    assert [m["content"]["data"]["from"] for m in json.loads(r.stdout)["messages"]] == ["cli", "cli-ed"]
    # a wrong secret: 401, exit code 3, the secret named nowhere
    r = cli("write", "jobs", "1", "--url", srv.url, "--sign-key", "env:SIGN_SECRET", "--key-id",
            "svc-hmac", env={"SIGN_SECRET": "wrong-secret-wrong-secret-wrong-secret"})
    assert r.returncode == 3, r.stderr
    assert "signature does not verify" in r.stderr and "wrong-secret" not in r.stderr
    assert count(admin, "jobs") == 2


def test_signed_websocket_upgrade(make_server, keys):
    path, ed = keys
    srv = make_server("--signature-keys", path, env=ENV)
    h = sign("GET", "http://127.0.0.1/connection/websocket", keyid="svc-ed", alg="ed25519",
             key=ed)
    ws = RawWS(srv.host, srv.port, headers=[(k, v) for k, v in h if k != "Host"])
    assert ws.status == 101
    rep = ws.call("connect", {}, timeout=10)
    assert "connect" in rep, rep
    ws.close()
    # the same upgrade again: a replay, refused before any WebSocket exists
    ws = RawWS(srv.host, srv.port, headers=[(k, v) for k, v in h if k != "Host"])
    assert ws.status == 401
    # not signed: a connect without a token is refused as before
    ws = RawWS(srv.host, srv.port)
    assert ws.status == 101
    rep = ws.call("connect", {}, timeout=10)
    assert "error" in rep and rep["error"]["code"] == 101, rep
    # a session holds its key id as its credential's id: revoking the key ends it at once
    h = sign("GET", "http://127.0.0.1/connection/websocket", keyid="svc-ed", alg="ed25519",
             key=ed)
    ws = RawWS(srv.host, srv.port, headers=[(k, v) for k, v in h if k != "Host"])
    assert "connect" in ws.call("connect", {}, timeout=10)
    admin = srv.client(srv.token("ops", role="admin"))
    assert admin.post("/revoke", json={"token_id": "svc-ed"}).status_code == 200
    assert ws.wait_close(timeout=10) == 3503


def test_route_modes(make_server, keys):
    path, _ = keys
    srv = make_server("--signature-keys", path, "--auth-mode", "/channels=signed",
                      "--auth-mode", "/channels/other=bearer", env=ENV)
    token = srv.token(ADMIN, role="admin")
    bearer = srv.client(token)
    # /channels takes signatures only (the bearer is not even looked at) ...
    r = bearer.put("/channels/jobs", content=b"1")
    assert r.status_code == 401, r.text
    body = b'{"n":1}'
    r = send(srv, "PUT", "/channels/jobs", body,
             sign("PUT", srv.url + "/channels/jobs", body, keyid="svc-hmac"))
    assert r.status_code == 404, r.text  # authenticated; the channel does not exist
    # ... /channels/other (longer prefix) bearer tokens only
    r = send(srv, "PUT", "/channels/other", body,
             sign("PUT", srv.url + "/channels/other", body, keyid="svc-hmac"))
    assert r.status_code == 401, r.text
    assert bearer.put("/channels/other", content=b"1").status_code == 404
    # elsewhere: anything
    assert bearer.get("/acl").status_code == 200


# ---- an independent implementation: the npm http-message-signatures package ------------------

NODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node")
NODE = os.environ.get("SLUICE_NODE") or shutil.which("node") or shutil.which("nodejs")


def test_node_http_message_signatures_accepted(make_server, keys):
    if NODE is None or not os.path.isdir(
            os.path.join(NODE_DIR, "node_modules", "http-message-signatures")):
        if REQUIRE_DEPS:
            pytest.fail("node or tests/node/node_modules (http-message-signatures) is missing")
        pytest.skip("node or tests/node/node_modules is missing (scripts/deps installs them)")
    path, ed = keys
    srv = make_server("--signature-keys", path, env=ENV)
    admin = setup_channels(srv)
    pem = ed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()
    params = {"hmac_secret": HMAC_SECRET, "ed25519_key": pem, "channel": "jobs"}
    env = dict(os.environ, SLUICE_URL=srv.url, SCENARIO_PARAMS=json.dumps(params))
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "sign_e2e.mjs")], cwd=NODE_DIR, env=env,
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"node printed no result (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    res = json.loads(lines[-1])
    assert p.returncode == 0 and res["ok"], res.get("error")
    for alg in ("hmac-sha256", "ed25519"):
        r = res["results"][alg]
        assert r["status"] < 300, (alg, r)
        assert r["replay"] == 401 and "nonce already used" in r["replayBody"], (alg, r)
    assert res["tampered"]["status"] == 401, res["tampered"]
    assert "content-digest does not match the body" in res["tampered"]["body"]
    assert count(admin, "jobs") == 2
