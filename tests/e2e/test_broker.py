"""The token broker end to end: API keys and upstream JWTs as credentials, issuance with partial
and total denial, TTL clamping, delegation allowed and refused, tokens used on the channel API,
revocation by id and by user with tokens before and after the cut-off, the administration routes,
and the audit log checked field by field."""
import json
import time

import jwt as pyjwt
import pytest

from conftest import apikey_maker

UPSTREAM = "upstream-idp-secret-upstream-idp-secret!!"


@pytest.fixture
def broker(make_server, cli, tmp_path):
    store = tmp_path / "keys.jsonl"
    (tmp_path / "idp.key").write_text(UPSTREAM)
    audit = tmp_path / "audit.jsonl"
    conf = tmp_path / "broker.conf"
    conf.write_text(f"""
apikey_store = {store}
upstream_jwt_key = hs256:{tmp_path / 'idp.key'}
upstream_jwt_issuer = https://idp.example
upstream_jwt_audience = sluice
audit_log = {audit}
broker_default_ttl = 600
broker_max_ttl = 3600
[role workers]
grants = write
channels = jobs, orders.*
[role readers]
grants = read
channels = news.**
[principal alice]
roles = workers
[principal carol]
roles = readers
[delegate svc-gateway]
principals = user-*, carol
[channel jobs]
[channel news.eu]
kind = topic
""")
    s = make_server("--config", str(conf))

    s.key = apikey_maker(cli, store)
    s.audit = audit
    s.store = store
    return s


def post(s, path, cred, body):
    return s.client(cred).post(path, json=body)


def test_issue_with_api_key_and_use_it(broker):
    k = broker.key("alice")
    r = post(broker, "/token", k, {"channels": ["jobs", "orders.eu", "secret"], "ttl": 120})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channels_granted"] == ["jobs", "orders.eu"]
    assert body["channels_denied"] == [{"channel": "secret", "reason": "no matching role"}]
    assert body["expires_at"].endswith("Z") and len(body["token_id"]) == 64
    claims = pyjwt.decode(body["token"], options={"verify_signature": False})
    assert claims["jti"] == body["token_id"] and claims["sub"] == "alice"
    assert claims["role"] == "write" and claims["channels"] == ["jobs", "orders.eu"]
    assert claims["exp"] - claims["iat"] == 120
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"])) == body["expires_at"]
    tok = body["token"]
    assert broker.client(tok).put("/channels/jobs", json={"n": 1}).status_code == 200
    assert broker.client(tok).put("/channels/news.eu", json=1).status_code == 403
    # Total denial: 403, same body shape, no token.
    r = post(broker, "/token", k, {"channels": ["secret"]})
    assert r.status_code == 403 and "token" not in r.json()
    assert r.json()["channels_denied"][0]["reason"] == "no matching role"
    # TTL: default, and clamped to the maximum.
    for ttl, want in ((None, 600), (10 ** 6, 3600)):
        body = {"channels": ["jobs"]} if ttl is None else {"channels": ["jobs"], "ttl": ttl}
        c = pyjwt.decode(post(broker, "/token", k, body).json()["token"],
                         options={"verify_signature": False})
        assert c["exp"] - c["iat"] == want


@pytest.mark.parametrize("body", [
    {}, {"channels": []}, {"channels": "jobs"}, {"channels": [1]}, {"channels": ["jobs"], "ttl": "1h"},
    {"channels": ["jobs"], "ttl": -5}, {"channels": ["jobs"], "bogus": 1},
])
def test_bad_bodies_400(broker, body):
    assert post(broker, "/token", broker.key("alice"), body).status_code == 400


def test_credentials(broker):
    r = broker.client().post("/token", json={"channels": ["jobs"]})
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="sluice"'
    k = broker.key("alice")
    bad = k[:-4] + ("aaaa" if not k.endswith("aaaa") else "bbbb")
    r = post(broker, "/token", bad, {"channels": ["jobs"]})
    assert r.status_code == 401 and r.json()["message"] == "unknown api key"
    assert bad not in r.text
    assert broker.client(k).post("/token", content=b"{nope").status_code == 400
    # A sluice token cannot renew itself through the broker.
    tok = post(broker, "/token", k, {"channels": ["jobs"]}).json()["token"]
    r = post(broker, "/token", tok, {"channels": ["jobs"]})
    assert r.status_code == 401 and "cannot be used to obtain tokens" in r.json()["message"]
    # Upstream identity provider tokens: sub becomes the principal, iss/aud checked.
    now = int(time.time())
    up = pyjwt.encode({"sub": "carol", "iss": "https://idp.example", "aud": "sluice",
                       "iat": now, "exp": now + 60, "role": "admin"}, UPSTREAM, algorithm="HS256")
    r = post(broker, "/token", up, {"channels": ["news.eu"]})
    assert r.status_code == 200 and r.json()["channels_granted"] == ["news.eu"]
    # The upstream token's own role claim grants nothing: the broker's roles decide.
    assert pyjwt.decode(r.json()["token"], options={"verify_signature": False})["role"] == "read"
    wrong_aud = pyjwt.encode({"sub": "carol", "iss": "https://idp.example", "aud": "other",
                              "exp": now + 60}, UPSTREAM, algorithm="HS256")
    assert post(broker, "/token", wrong_aud, {"channels": ["news.eu"]}).status_code == 401


def test_delegation(broker):
    gw = broker.key("svc-gateway")
    r = post(broker, "/token/delegate", gw,
             {"on_behalf_of": "carol", "channels": ["news.eu"], "lifetime_seconds": 60})
    assert r.status_code == 200, r.text
    c = pyjwt.decode(r.json()["token"], options={"verify_signature": False})
    assert c["sub"] == "carol" and c["act"] == {"sub": "svc-gateway"} and c["exp"] - c["iat"] == 60
    r = post(broker, "/token/delegate", gw, {"on_behalf_of": "alice", "channels": ["jobs"]})
    assert r.status_code == 403
    assert r.json()["message"] == "'svc-gateway' is not authorised to mint tokens on behalf of 'alice'."
    r = post(broker, "/token/delegate", broker.key("alice"), {"on_behalf_of": "carol", "channels": ["news.eu"]})
    assert r.status_code == 403
    assert post(broker, "/token/delegate", gw, {"on_behalf_of": "a/b", "channels": ["x"]}).status_code == 400


def test_revocation_of_broker_tokens(broker):
    k = broker.key("alice")
    t1 = post(broker, "/token", k, {"channels": ["jobs"]}).json()
    t2 = post(broker, "/token", k, {"channels": ["jobs"]}).json()
    # Revoke one by id (the holder revokes its own token).
    assert broker.client(t1["token"]).post("/revoke", json={"token_id": t1["token_id"]}).status_code == 200
    r = broker.client(t1["token"]).put("/channels/jobs", json=1)
    assert r.status_code == 401 and r.json()["message"] == "token revoked"
    assert broker.client(t2["token"]).put("/channels/jobs", json=1).status_code == 200
    # Another principal's token id needs admin; alice's own user cut-off does not.
    carol = post(broker, "/token", broker.key("carol"), {"channels": ["news.eu"]}).json()
    assert broker.client(carol["token"]).post("/revoke", json={"token_id": t2["token_id"]}).status_code == 403
    assert broker.client(carol["token"]).post("/revoke", json={"user_id": "alice"}).status_code == 403
    assert broker.client(t2["token"]).post("/revoke", json={"user_id": "alice"}).status_code == 200
    assert broker.client(t2["token"]).put("/channels/jobs", json=1).status_code == 401
    # The cut-off covers every credential of alice's issued before it, her API key included.
    assert post(broker, "/token", k, {"channels": ["jobs"]}).status_code == 401
    time.sleep(1.1)  # iat has whole seconds: a credential issued after the cut-off works
    t3 = post(broker, "/token", broker.key("alice"), {"channels": ["jobs"]}).json()
    assert broker.client(t3["token"]).put("/channels/jobs", json=1).status_code == 200


def test_admin_routes(broker):
    admin = broker.key("root-admin", "--role", "admin")
    a = broker.client(admin)
    r = a.post("/apikeys", json={"principal": "bob", "role": "read", "channels": ["news.**"]})
    assert r.status_code == 201, r.text
    bob_key, bob_id = r.json()["key"], r.json()["id"]
    assert bob_key.startswith("slk_") and bob_key not in broker.store.read_text()
    listed = a.get("/apikeys").json()["keys"]
    assert any(k["id"] == bob_id and k["principal"] == "bob" for k in listed)
    assert bob_key not in json.dumps(listed)
    # Bob's key works on the channel API with its own role and scope...
    assert broker.client(bob_key).get("/channels/news.eu").status_code == 200
    assert broker.client(bob_key).put("/channels/news.eu", json=1).status_code == 403
    # ...and on the broker once he has roles, never beyond the key's own role and scope.
    assert post(broker, "/token", bob_key, {"channels": ["news.eu"]}).status_code == 403
    assert a.put("/broker/principals/bob", json={"roles": ["workers", "readers"]}).json()["roles"] == ["workers", "readers"]
    r = post(broker, "/token", bob_key, {"channels": ["news.eu", "jobs"]})
    assert r.status_code == 200 and r.json()["channels_granted"] == ["news.eu"]
    assert r.json()["channels_denied"] == [{"channel": "jobs", "reason": "outside the credential's scope"}]
    assert a.get("/broker/principals/bob").json() == {"principal": "bob", "roles": ["workers", "readers"]}
    assert a.delete("/broker/principals/bob").status_code == 200
    assert a.delete("/broker/principals/bob").status_code == 404
    # Expire, then delete.
    assert a.post(f"/apikeys/{bob_id}/expire").status_code == 200
    r = broker.client(bob_key).get("/channels/news.eu")
    assert r.status_code == 401 and r.json()["message"] == "api key expired"
    assert a.delete(f"/apikeys/{bob_id}").status_code == 200
    assert a.delete(f"/apikeys/{bob_id}").status_code == 404
    # Not for non-admins.
    assert post(broker, "/apikeys", broker.key("alice"), {"principal": "x"}).status_code == 403
    assert broker.client(broker.key("alice")).put("/broker/principals/alice", json={"roles": ["readers"]}).status_code == 403


def test_audit_records(broker, cli):
    k = broker.key("alice")
    gw = broker.key("svc-gateway")
    ok = post(broker, "/token", k, {"channels": ["jobs", "secret"]}).json()
    post(broker, "/token", k, {"channels": ["secret"]})
    post(broker, "/token/delegate", gw, {"on_behalf_of": "user-7", "channels": ["jobs"]})
    broker.client(ok["token"]).post("/revoke", json={"token_id": ok["token_id"], "reason": "done"})
    broker.stop()
    text = broker.audit.read_text()
    recs = [json.loads(l) for l in text.splitlines()]
    issue = next(r for r in recs if r["event"] == "token.issue" and r["issued_to"] == "alice")
    assert issue["token_id"] == ok["token_id"] and issue["channels"] == ["jobs"]
    assert issue["denied"] == [{"channel": "secret", "reason": "no matching role"}]
    assert issue["expires_at"] == ok["expires_at"] and issue["issued_at"].endswith("Z")
    assert issue["remote_addr"].startswith("127.0.0.1:") and issue["delegator"] is None
    denied = next(r for r in recs if r["event"] == "token.denied")
    assert denied["issued_to"] == "alice" and denied["denied"][0]["channel"] == "secret"
    # user-7 has no roles: the delegated request is refused, and the record names both.
    deleg = [r for r in recs if r.get("delegator") == "svc-gateway"]
    assert deleg and deleg[0]["issued_to"] == "user-7"
    rev = next(r for r in recs if r["event"] == "token.revoke")
    assert rev["token_id"] == ok["token_id"] and rev["actor"] == "alice" and rev["reason"] == "done"
    assert ok["token"] not in text and k not in text and gw not in text
    assert cli("audit", "verify", str(broker.audit)).returncode == 0


@pytest.mark.parametrize("alg", ["es256", "eddsa"])
def test_asymmetric_upstream_keys(make_server, tmp_path, alg):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    priv = ec.generate_private_key(ec.SECP256R1()) if alg == "es256" else ed25519.Ed25519PrivateKey.generate()
    pem = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "idp.pem").write_bytes(pem)
    conf = tmp_path / "b.conf"
    conf.write_text(f"""
upstream_jwt_key = {alg}:{tmp_path / 'idp.pem'}
upstream_jwt_issuer = https://idp.example
upstream_jwt_audience = sluice
[role readers]
grants = read
channels = news.**
[principal carol]
roles = readers
""")
    s = make_server("--config", str(conf))
    now = int(time.time())
    claims = {"sub": "carol", "iss": "https://idp.example", "aud": "sluice", "iat": now, "exp": now + 60}
    tok = pyjwt.encode(claims, priv, algorithm="ES256" if alg == "es256" else "EdDSA")
    r = s.client(tok).post("/token", json={"channels": ["news.eu"]})
    assert r.status_code == 200, r.text
    # The alg-confusion forgery: HS256 keyed with the public PEM.
    import base64, hashlib, hmac
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    r = s.client(f"{head}.{body}.{sig}").post("/token", json={"channels": ["news.eu"]})
    assert r.status_code == 401


def test_startup_refusals_and_unrecorded_issuance(make_server, tmp_path):
    from conftest import SLUICED, SECRET
    import subprocess
    conf = tmp_path / "c.conf"
    conf.write_text("broker_max_ttl = 7200\nrevocation_max_ttl = 3600\n[role r]\ngrants = read\nchannels = a\n")
    r = subprocess.run([SLUICED, "--listen", "127.0.0.1:0", "--config", str(conf)],
                       env={"SLUICE_JWT_SECRET": SECRET}, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "revocation_max_ttl" in r.stderr
    conf.write_text("broker_allow_all = true\n")
    r = subprocess.run([SLUICED, "--listen", "0.0.0.0:0", "--config", str(conf)],
                       env={"SLUICE_JWT_SECRET": SECRET}, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "broker_allow_all" in r.stderr
    # allow-all on loopback: every valid channel, with the configured role.
    store = tmp_path / "k.jsonl"
    conf.write_text(f"broker_allow_all = true\nbroker_allow_all_role = read\napikey_store = {store}\n")
    from conftest import SLUICE_CLI
    key = subprocess.run([SLUICE_CLI, "apikey", "create", "--principal", "dev", "--store", str(store)],
                         capture_output=True, text=True, timeout=30).stdout.strip()
    s = make_server("--config", str(conf), "--audit-log", "/dev/full")
    # The audit log cannot be written: issuance is refused, not performed unrecorded.
    r = s.client(key).post("/token", json={"channels": ["anything"]})
    assert r.status_code == 503 and "audit log unavailable" in r.json()["message"]
    assert "token" not in r.json()
