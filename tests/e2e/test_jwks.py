"""Upstream JWTs verified with an identity provider's published keys (issue 11, part 3): a small
provider the test runs (python http.server on a free loopback port) serves OIDC discovery and a
JWKS; tokens are made by PyJWT. Keys of every kind, algorithm confusion, keys rotated mid-test
(a new kid accepted after the refresh, a removed key refused after it), unknown-kid floods that
reach the provider at most at the configured rate (the server's hits are counted), a provider
that goes down (old keys keep working, then 503 past jwks_max_stale) and one that answers garbage
(the last good keys stay)."""
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

AUD = "sluice"


def make_key(alg):
    if alg in ("RS256", "RS384", "RS512", "PS256"):
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(priv.public_key()))
    elif alg in ("ES256", "ES384"):
        priv = ec.generate_private_key(ec.SECP256R1() if alg == "ES256" else ec.SECP384R1())
        jwk = json.loads(ECAlgorithm.to_jwk(priv.public_key()))
    else:
        priv = ed25519.Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(priv.public_key()))
    return priv, jwk


class Provider:
    """An OIDC provider's two documents, changeable while sluiced runs."""

    def __init__(self):
        self.keys = {}  # kid -> (alg, private key, jwk)
        self.hits = {"discovery": 0, "jwks": 0}
        self.max_age = 3600
        self.garbage = False
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                with provider.lock:
                    if self.path == "/.well-known/openid-configuration":
                        provider.hits["discovery"] += 1
                        body = json.dumps({"issuer": provider.issuer,
                                           "jwks_uri": provider.issuer + "/keys"}).encode()
                    elif self.path == "/keys":
                        provider.hits["jwks"] += 1
                        body = (b'{"keys": [garbage' if provider.garbage
                                else json.dumps({"keys": [dict(j, kid=k, alg=a, use="sig")
                                                          for k, (a, _, j) in
                                                          provider.keys.items()]}).encode())
                    else:
                        self.send_error(404)
                        return
                    max_age = provider.max_age
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", f"public, max-age={max_age}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, kid, alg="RS256"):
        priv, jwk = make_key(alg)
        with self.lock:
            self.keys[kid] = (alg, priv, jwk)

    def remove(self, kid):
        with self.lock:
            return self.keys.pop(kid)

    def jwks_hits(self):
        with self.lock:
            return self.hits["jwks"]

    def token(self, kid, sub="alice", key=None, alg=None, **extra):
        a, priv, _ = key or self.keys[kid]
        now = int(time.time())
        claims = {"sub": sub, "iss": self.issuer, "aud": AUD, "iat": now, "exp": now + 600,
                  **extra}
        return pyjwt.encode(claims, priv, algorithm=alg or a, headers={"kid": kid})

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


@pytest.fixture
def provider():
    p = Provider()
    yield p
    p.stop()


def start(make_server, tmp_path, provider, **keys):
    settings = {"upstream_oidc_issuer": provider.issuer, "upstream_jwt_audience": AUD, **keys}
    conf = tmp_path / "jwks.conf"
    conf.write_text("\n".join(f"{k} = {v}" for k, v in settings.items()) + """
[role workers]
grants = write
channels = jobs
[principal alice]
roles = workers
""")
    return make_server("--config", str(conf))


def status(server, token):
    with server.client(token) as c:
        return c.post("/token", json={"channels": ["jobs"]}).status_code


def eventually(fn, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.1)
    return fn()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_keys_of_every_kind_and_algorithm_confusion(make_server, tmp_path, provider):
    algs = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
    for a in algs:
        provider.add("k-" + a, a)
    s = start(make_server, tmp_path, provider)
    for a in algs:
        assert status(s, provider.token("k-" + a)) == 200, a
    # alg must be the key's: an RS384 token under the RS256 key's kid, PS256 under RS256.
    rs = provider.keys["k-RS256"]
    assert status(s, provider.token("k-RS256", key=rs, alg="RS384")) == 401
    assert status(s, provider.token("k-RS256", key=rs, alg="PS256")) == 401
    # HS256 with the public key's PEM (or its JWK text) as the secret: the classic confusion.
    pem = rs[1].public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"sub": "alice", "iss": provider.issuer, "aud": AUD, "iat": now, "exp": now + 600}
    for secret in (pem, json.dumps(rs[2]).encode()):
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k-RS256"}).encode())
        body = b64(json.dumps(claims).encode())
        sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        assert status(s, f"{head}.{body}.{b64(sig)}") == 401
    # "none", with and without a signature.
    head = b64(json.dumps({"alg": "none", "kid": "k-RS256"}).encode())
    body = b64(json.dumps(claims).encode())
    assert status(s, f"{head}.{body}.") == 401
    # The right kid, a key the provider never published.
    other = make_key("ES256")
    assert status(s, provider.token("k-ES256", key=("ES256", other[0], other[1]))) == 401
    # Wrong audience and issuer.
    assert status(s, provider.token("k-EdDSA", aud="someone-else")) == 401
    assert status(s, provider.token("k-EdDSA", iss="https://evil.example")) == 401


def test_rotation_new_kid_and_removed_key(make_server, tmp_path, provider):
    provider.add("old", "RS256")
    provider.max_age = 3600  # no timed refresh during the test: only unknown kids refresh
    s = start(make_server, tmp_path, provider, jwks_refresh_min=300,
              jwks_unknown_kid_interval=0.5)
    old = provider.token("old")
    assert status(s, old) == 200
    # A new key published mid-test: its first token makes sluiced fetch the set again.
    provider.add("new", "ES256")
    hits = provider.jwks_hits()
    assert status(s, provider.token("new")) == 200
    assert provider.jwks_hits() == hits + 1
    # The old key is withdrawn; the next refresh (here another new kid's) drops it.
    provider.remove("old")
    assert status(s, old) == 200  # not refreshed yet: the keys held still verify it
    time.sleep(0.6)
    provider.add("newer", "EdDSA")
    assert status(s, provider.token("newer")) == 200
    assert status(s, old) == 401
    assert status(s, provider.token("new")) == 200


def test_removed_key_refused_after_timed_refresh(make_server, tmp_path, provider):
    provider.add("a", "ES384")
    provider.add("b", "PS256")
    provider.max_age = 1  # the set's HTTP lifetime: refreshed every second
    s = start(make_server, tmp_path, provider, jwks_refresh_min=1, jwks_refresh_max=1,
              jwks_unknown_kid_interval=60)
    ta = provider.token("a")
    assert status(s, ta) == 200
    provider.remove("a")
    assert eventually(lambda: status(s, ta) == 401)
    assert status(s, provider.token("b")) == 200


def test_unknown_kid_flood_is_rate_limited(make_server, tmp_path, provider):
    provider.add("real", "RS256")
    interval = 1.0
    s = start(make_server, tmp_path, provider, jwks_refresh_min=300,
              jwks_unknown_kid_interval=interval)
    assert status(s, provider.token("real")) == 200
    signer = provider.keys["real"]
    before = provider.jwks_hits()
    t0 = time.time()
    refused = 0
    with s.client() as c:
        for _ in range(150):
            tok = provider.token(f"made-up-{uuid.uuid4()}", key=signer)
            r = c.post("/token", json={"channels": ["jobs"]},
                       headers={"Authorization": f"Bearer {tok}"})
            refused += r.status_code == 401
    elapsed = time.time() - t0
    fetched = provider.jwks_hits() - before
    assert refused == 150
    # At most one fetch per interval (plus the one the first made-up kid may start at once).
    assert 1 <= fetched <= int(elapsed / interval) + 1, (fetched, elapsed)
    assert status(s, provider.token("real")) == 200


def test_provider_down_then_stale(make_server, tmp_path, provider):
    provider.add("k", "EdDSA")
    provider.max_age = 1
    s = start(make_server, tmp_path, provider, jwks_refresh_min=1, jwks_refresh_max=1,
              jwks_max_stale=3, jwks_unknown_kid_interval=60)
    tok = provider.token("k")
    assert status(s, tok) == 200
    down_at = time.time()
    provider.stop()
    seen = [status(s, tok)]
    # Right after the provider went away the keys are still fresh or within jwks_max_stale.
    assert seen[0] == 200
    assert eventually(lambda: seen.append(status(s, tok)) or seen[-1] == 503, deadline=30)
    assert time.time() - down_at >= 3  # never before max_stale has passed
    assert set(seen) <= {200, 503}
    with s.client(tok) as c:
        r = c.post("/token", json={"channels": ["jobs"]})
        assert r.status_code == 503 and r.headers.get("retry-after")


def test_garbage_keeps_the_last_good_keys(make_server, tmp_path, provider):
    provider.add("k", "ES256")
    provider.max_age = 1
    s = start(make_server, tmp_path, provider, jwks_refresh_min=1, jwks_refresh_max=1,
              jwks_max_stale=600, jwks_unknown_kid_interval=60)
    tok = provider.token("k")
    assert status(s, tok) == 200
    provider.garbage = True
    hits = provider.jwks_hits()
    assert eventually(lambda: provider.jwks_hits() >= hits + 2)  # garbage fetched, twice
    assert status(s, tok) == 200
    provider.garbage = False
    provider.add("k2", "RS512")
    assert eventually(lambda: status(s, provider.token("k2")) == 200)


def test_jwks_url_without_discovery_and_start_up_waits(make_server, tmp_path, provider):
    provider.add("k", "RS256")
    s = start(make_server, tmp_path, provider, upstream_jwks_url=provider.issuer + "/keys",
              upstream_jwt_issuer=provider.issuer)
    # The first token may arrive before the first fetch ended: it waits for it.
    assert status(s, provider.token("k")) == 200
    assert provider.hits["discovery"] == 0


def test_config_refusals(tmp_path):
    import subprocess

    from conftest import SLUICED
    conf = tmp_path / "bad.conf"
    conf.write_text("upstream_jwks_url = http://idp.example.com/keys\n")
    p = subprocess.run([SLUICED, "--listen", "127.0.0.1:0", "--config", str(conf),
                        "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=30,
                       env={"SLUICE_JWT_SECRET": "your-32-byte-production-secret-key"})
    assert p.returncode != 0 and "loopback" in p.stderr


def test_websocket_connection_token_from_the_provider(make_server, tmp_path, provider):
    """A connection token of the provider authenticates a WebSocket session, also when its kid
    is new (the connect waits for the refresh on the loop)."""
    from wsraw import RawWS
    provider.add("first", "ES256")
    s = start(make_server, tmp_path, provider, jwks_refresh_min=300,
              jwks_unknown_kid_interval=0.5)
    assert status(s, provider.token("first")) == 200
    provider.add("rotated", "PS256")
    ws = RawWS(s.host, s.port)
    i, _ = ws.cmd("connect", {"token": provider.token("rotated")})
    reply = next(o for o in ws.recv_objs() if o.get("id") == i)
    assert "connect" in reply and "error" not in reply, reply
    ws.close()
    bad = RawWS(s.host, s.port)
    other = make_key("ES256")
    i, _ = bad.cmd("connect", {"token": provider.token("first", key=("ES256", other[0], other[1]))})
    kind, *rest = bad.recv_message()
    if kind == "text":  # an error reply, not a session
        objs = [json.loads(line) for line in rest[0].splitlines() if line.strip()]
        assert objs and not any("connect" in o for o in objs), objs
    else:  # or refused by closing the socket
        assert kind == "close", (kind, rest)
    bad.close()
