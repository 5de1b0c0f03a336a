"""The whole issue / delegate / revoke flow over HTTP, once with each authenticator as the
credential: API keys, the identity provider's JWTs, and tokens vouched for by an RFC 7662
introspection endpoint (the scripted test server, started here)."""
import os
import socket
import subprocess
import time

import jwt as pyjwt
import pytest

from test_introspection import ENDPOINT, free_port

IDP = "upstream-idp-secret-upstream-idp-secret!!"


@pytest.fixture
def endpoint():
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/python3", ENDPOINT, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("kind", ["apikey", "upstream-jwt", "introspection"])
def test_issue_delegate_revoke(make_server, cli, tmp_path, endpoint, kind):
    store = tmp_path / "keys.jsonl"
    (tmp_path / "idp.key").write_text(IDP)
    conf = tmp_path / "flow.conf"
    # The introspection server answers "good" with sub alice and "user-gw" with sub "ugw".
    conf.write_text(f"""
apikey_store = {store}
upstream_jwt_key = hs256:{tmp_path / 'idp.key'}
upstream_jwt_issuer = https://idp.example
upstream_jwt_audience = sluice
introspection_url = http://127.0.0.1:{endpoint}/introspect
broker_prefix = /auth
[role workers]
grants = write
channels = jobs
[role readers]
grants = read
channels = news.**
[principal alice]
roles = workers
[principal carol]
roles = readers
[delegate gw]
principals = carol
[delegate ugw]
principals = carol
[channel jobs]
[channel news.eu]
kind = topic
""")
    s = make_server("--config", str(conf))

    def cred(principal):
        if kind == "apikey":
            r = cli("apikey", "create", "--principal", principal, "--store", str(store))
            return r.stdout.strip()
        if kind == "upstream-jwt":
            now = int(time.time())
            return pyjwt.encode({"sub": principal, "iss": "https://idp.example", "aud": "sluice",
                                 "iat": now, "exp": now + 300}, IDP, algorithm="HS256")
        return {"alice": "good", "gw": "user-gw"}[principal]

    gateway = "gw" if kind != "introspection" else "ugw"
    # Issue, under the configured prefix, and use the token.
    r = s.client(cred("alice")).post("/auth/token", json={"channels": ["jobs", "news.eu"]})
    assert r.status_code == 200, r.text
    assert r.json()["channels_denied"] == [{"channel": "news.eu", "reason": "no matching role"}]
    alice_tok = r.json()["token"]
    assert s.client(alice_tok).put("/channels/jobs", json={"k": kind}).status_code == 200
    assert s.client(cred("alice")).post("/token", json={"channels": ["jobs"]}).status_code == 404
    # Delegate: the gateway mints a token for carol; not for alice.
    r = s.client(cred("gw")).post("/auth/token/delegate",
                                  json={"on_behalf_of": "carol", "channels": ["news.eu"]})
    assert r.status_code == 200, r.text
    carol = r.json()
    claims = pyjwt.decode(carol["token"], options={"verify_signature": False})
    assert claims["sub"] == "carol" and claims["act"] == {"sub": gateway}
    assert s.client(carol["token"]).get("/channels/news.eu").status_code == 200
    r = s.client(cred("gw")).post("/auth/token/delegate",
                                  json={"on_behalf_of": "alice", "channels": ["jobs"]})
    assert r.status_code == 403
    # Revoke: alice her own token by id; an administrator every token of carol.
    r = s.client(alice_tok).post("/auth/revoke",
                                 json={"token_id": pyjwt.decode(alice_tok, options={"verify_signature": False})["jti"]})
    assert r.status_code == 200
    assert s.client(alice_tok).put("/channels/jobs", json=1).status_code == 401
    admin = s.client(s.token("ops", role="admin"))
    assert admin.post("/auth/revoke", json={"user_id": "carol"}).status_code == 200
    r = s.client(carol["token"]).get("/channels/news.eu")
    assert r.status_code == 401 and r.json()["message"] == "token revoked"
