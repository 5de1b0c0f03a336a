"""TLS on sluiced's listeners (docs/TLS.md) with a PKI the test makes (tlsutil.py, openssl CLI):
httpx and curl over https, wss:// with python websockets and with the real centrifuge client in
Node, bad server certificates (expired, another host, self-signed) refused by the clients, client
certificates (mutual TLS) accepted with the configured principal, missing or untrusted ones
refused, TLS 1.0/1.1 refused, SIGHUP reload without dropping an open connection (and a bad file
on reload keeping the old certificate), the refusal of plaintext on a non-loopback address, and a
half-open handshake closed by the request timeout. Nothing here is timed: events are awaited with
generous deadlines."""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import httpx
import pytest
import websockets

from conftest import SECRET, SLUICED
from tlsutil import PKI, TLSServer

CURL = shutil.which("curl")
NODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node")
NODE = os.environ.get("SLUICE_NODE") or shutil.which("node") or shutil.which("nodejs")

CONFIG = "broker = true\n[channel news]\nkind = topic\n[channel jobs]\nkind = queue\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_tls(make_server):
    return lambda *args, **kw: make_server(*args, cls=TLSServer, **kw)


def conf(tmp_path, text=CONFIG):
    p = tmp_path / "tls.conf"
    p.write_text(text)
    return str(p)


def test_https_with_httpx_and_curl(make_tls, pki, tmp_path):
    s = make_tls("--listen", "127.0.0.1:0,tls", *pki.cert_args(), "--config", conf(tmp_path))
    tok = s.token("writer", role="write", channels=["jobs"])
    with httpx.Client(base_url=s.url, verify=pki.ca, timeout=10,
                      headers={"Authorization": f"Bearer {tok}"}) as c:
        r = c.put("/channels/jobs", content=b'{"task":"tls"}')
        assert r.status_code == 200, r.text
        r = c.get("/channels/jobs", params={"exclusive": "true"})
        assert r.status_code == 200
        assert r.json()["messages"][0]["content"]["data"] == {"task": "tls"}
        assert r.http_version == "HTTP/1.1"
    # The plaintext listener on loopback serves the same server.
    r = httpx.get(f"{s.plain_url}/channels", headers={"Authorization": f"Bearer {tok}"}, timeout=10)
    assert r.status_code == 200
    # curl: ALPN http/1.1, a large body in and out, keep-alive across two requests.
    assert CURL, "curl is not installed"
    big = "x" * 300000
    body = tmp_path / "big.json"
    body.write_text(json.dumps({"big": big}))
    p = subprocess.run([CURL, "-sS", "--cacert", pki.ca, "-H", f"Authorization: Bearer {tok}",
                        "-X", "PUT", "--data-binary", f"@{body}", f"{s.url}/channels/jobs",
                        "-w", "\\n%{http_code} %{http_version}\\n", "--next", "--cacert", pki.ca,
                        "-H", f"Authorization: Bearer {tok}",
                        f"{s.url}/channels/jobs?exclusive=true", "-w", "\\n%{http_code}\\n"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[1] == "200 1.1", p.stdout[:300]
    got = json.loads(lines[2])
    assert got["messages"][0]["content"]["data"]["big"] == big
    assert lines[3] == "200"
    # Pipelined requests in one TLS record are answered in order on the one connection, and an
    # Expect: 100-continue goes through the session too.
    raw = socket.create_connection(("127.0.0.1", s.tls_ports[0]), timeout=15)
    with pki.client_context().wrap_socket(raw, server_hostname="localhost") as t:
        auth = f"Authorization: Bearer {tok}\r\n"
        t.sendall((f"PUT /channels/jobs HTTP/1.1\r\nHost: l\r\n{auth}Content-Length: 7\r\n\r\n"
                   '{"p":1}'
                   f"GET /channels/nope HTTP/1.1\r\nHost: l\r\n{auth}\r\n"
                   f"PUT /channels/jobs HTTP/1.1\r\nHost: l\r\n{auth}Content-Length: 7\r\n"
                   "Expect: 100-continue\r\n\r\n").encode())
        data = b""
        while data.count(b"HTTP/1.1 ") < 3:
            data += t.recv(65536)
        t.sendall(b'{"p":2}')
        while data.count(b"HTTP/1.1 ") < 4:
            data += t.recv(65536)
        codes = [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
        assert codes == [200, 403, 100, 200], data[:600]
    # Plain HTTP spoken to the TLS port gets no answer (the handshake fails, the socket closes).
    with socket.create_connection(("127.0.0.1", s.tls_ports[0]), timeout=15) as raw:
        raw.sendall(b"GET /channels HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while chunk := raw.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
        assert b"HTTP/1.1" not in data


@pytest.mark.parametrize("name,why", [
    ("expired", "expired"),
    ("wronghost", "match"),
    ("selfsigned", "self"),
])
def test_bad_server_certificates_refused(make_tls, pki, name, why):
    s = make_tls("--listen", "127.0.0.1:0,tls", *pki.cert_args(name))
    with pytest.raises(httpx.ConnectError) as e:
        httpx.get(f"{s.url}/channels", verify=pki.ca, timeout=10)
    assert why in str(e.value).lower(), str(e.value)
    p = subprocess.run([CURL, "-sS", "--cacert", pki.ca, f"{s.url}/channels"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode in (35, 51, 60), (p.returncode, p.stderr)
    # The server itself is fine: a client that does not verify gets an answer.
    assert httpx.get(f"{s.url}/channels", verify=False, timeout=10).status_code == 401


def test_old_protocol_versions_refused(make_tls, pki):
    s = make_tls("--listen", "127.0.0.1:0,tls", *pki.cert_args())
    port = s.tls_ports[0]
    for flag in ("-tls1", "-tls1_1"):
        p = subprocess.run(["openssl", "s_client", flag, "-connect", f"127.0.0.1:{port}",
                            "-servername", "localhost", "-CAfile", pki.ca, "-cipher",
                            "DEFAULT@SECLEVEL=0"],
                           input="", capture_output=True, text=True, timeout=30)
        assert p.returncode != 0, p.stdout
        assert "alert protocol version" in p.stderr or "no protocols available" in p.stderr, p.stderr
    for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        p = subprocess.run(["openssl", "s_client", flag, "-connect", f"127.0.0.1:{port}",
                            "-servername", "localhost", "-CAfile", pki.ca, "-alpn", "http/1.1",
                            "-verify_return_error"],
                           input="", capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert f"Protocol  : {version}" in p.stdout or f"New, {version}" in p.stdout, p.stdout
        assert "ALPN protocol: http/1.1" in p.stdout
    # A client that offers only h2 is refused rather than answered in another protocol.
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                        "localhost", "-CAfile", pki.ca, "-alpn", "h2"],
                       input="", capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "no application protocol" in p.stderr, p.stderr


def test_client_certificates(make_tls, pki, tmp_path):
    # Required on one listener (the only credential it takes), optional on another.
    s = make_tls("--listen", "127.0.0.1:0,mtls=required,auth=cert", "--listen",
                 "127.0.0.1:0,mtls", *pki.cert_args(), "--tls-client-ca", pki.ca,
                 "--authz", "acl", "--admin", "ops", "--config",
                 conf(tmp_path, CONFIG + "[acl worker-1]\nrole = write\nchannels = jobs\n"))
    required, optional = (f"https://localhost:{p}" for p in s.tls_ports)
    good = pki.client_context("client")
    r = httpx.put(f"{required}/channels/jobs", content=b'{"n":1}', verify=good, timeout=10)
    assert r.status_code == 200, r.text
    r = httpx.get(f"{required}/channels/jobs", params={"exclusive": "true"}, verify=good,
                  timeout=10)
    assert r.json()["messages"][0]["sender_id"] == "worker-1"
    # auth=cert: a bearer token is not looked at there, the certificate decides.
    admin = s.token("ops")
    r = httpx.get(f"{required}/acl", headers={"Authorization": f"Bearer {admin}"}, verify=good,
                  timeout=10)
    assert r.status_code == 403, r.text
    # Without a certificate, or with one from a CA nobody trusts: no session at all (TLS 1.3
    # reports the refusal with the first read, so the request fails either way).
    for ctx in (pki.client_context(), pki.client_context("rogue")):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{required}/channels", verify=ctx, timeout=10)
    # Optional: no certificate is no credential (401), a bearer token still works, the client
    # certificate is one; an untrusted one fails the handshake.
    r = httpx.get(f"{optional}/channels", verify=pki.client_context(), timeout=10)
    assert r.status_code == 401
    r = httpx.get(f"{optional}/acl", headers={"Authorization": f"Bearer {admin}"},
                  verify=pki.client_context(), timeout=10)
    assert r.status_code == 200
    r = httpx.get(f"{optional}/channels", verify=good, timeout=10)
    assert r.status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{optional}/channels", verify=pki.client_context("rogue"), timeout=10)
    # The plaintext listener has no certificate to offer: 401.
    assert httpx.get(f"{s.plain_url}/channels", timeout=10).status_code == 401


@pytest.mark.parametrize("kind,principal", [("dns", "worker.example"), ("uri", "urn:svc:worker"),
                                            ("email", "worker@example.com")])
def test_client_principal_from_san(make_tls, pki, tmp_path, kind, principal):
    s = make_tls("--listen", "127.0.0.1:0,mtls=required", *pki.cert_args(), "--tls-client-ca",
                 pki.ca, "--authz", "acl", "--config",
                 conf(tmp_path, f"tls_client_principal = {kind}\n" + CONFIG +
                      f"[acl {principal}]\nrole = write\n"))
    good = pki.client_context("client")
    assert httpx.put(f"{s.url}/channels/jobs", content=b"1", verify=good,
                     timeout=10).status_code == 200
    r = httpx.get(f"{s.url}/channels/jobs", params={"exclusive": "true"}, verify=good, timeout=10)
    assert r.json()["messages"][0]["sender_id"] == principal


def test_wss_with_python_websockets(make_tls, pki, tmp_path):
    s = make_tls("--listen", "127.0.0.1:0,tls", *pki.cert_args(), "--config", conf(tmp_path))
    tok = s.token("reader", role="write", channels=["news"])

    async def go():
        async with websockets.connect(f"wss://localhost:{s.tls_ports[0]}/connection/websocket",
                                      ssl=pki.client_context(), ping_interval=None,
                                      compression=None, open_timeout=10) as ws:
            await ws.send(json.dumps({"id": 1, "connect": {"token": tok}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert reply["id"] == 1 and reply["connect"]["client"], reply
            await ws.send(json.dumps({"id": 2, "subscribe": {"channel": "news"}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert reply["id"] == 2 and "error" not in reply, reply
            # A write over HTTPS arrives as a push over wss; then a large publish over wss.
            r = await asyncio.to_thread(httpx.put, f"{s.url}/channels/news", content=b'{"n":7}',
                                        headers={"Authorization": f"Bearer {tok}"},
                                        verify=pki.ca, timeout=10)
            assert r.status_code == 200
            push = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert push["push"]["pub"]["data"] == {"n": 7}, push
            big = "y" * 50000  # several TLS records, under ws_max_message
            await ws.send(json.dumps({"id": 3, "publish": {"channel": "news", "data": {"b": big}}}))
            got = {}
            while 3 not in got or "push" not in got:
                for line in (await asyncio.wait_for(ws.recv(), 15)).split("\n"):
                    obj = json.loads(line)
                    got[obj.get("id", "push")] = obj
            assert "error" not in got[3], got[3]
            assert got["push"]["push"]["pub"]["data"]["b"] == big

    asyncio.run(go())


def test_wss_client_certificate_is_the_session(make_tls, pki, tmp_path):
    """Over wss on an mtls listener the client certificate authenticates the upgrade: a connect
    without a token is its holder; without a certificate a token is still needed."""
    s = make_tls("--listen", "127.0.0.1:0,mtls", *pki.cert_args(), "--tls-client-ca", pki.ca,
                 "--authz", "acl", "--config",
                 conf(tmp_path, CONFIG + "[acl worker-1]\nrole = write\nchannels = news\n"))
    url = f"wss://localhost:{s.tls_ports[0]}/connection/websocket"

    async def connect(ctx):
        async with websockets.connect(url, ssl=ctx, ping_interval=None, compression=None,
                                      open_timeout=10) as ws:
            await ws.send(json.dumps({"id": 1, "connect": {}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if "connect" not in reply:
                return reply
            await ws.send(json.dumps({"id": 2, "publish": {"channel": "news", "data": 1}}))
            return json.loads(await asyncio.wait_for(ws.recv(), 15))

    assert "error" not in asyncio.run(connect(pki.client_context("client")))
    r = httpx.get(f"{s.url}/channels/news", verify=pki.client_context("client"), timeout=10)
    assert r.json()["messages"][0]["sender_id"] == "worker-1"
    assert asyncio.run(connect(pki.client_context()))["error"]["code"] == 101  # unauthorized


def test_wss_with_centrifuge_client(make_tls, pki, tmp_path):
    assert NODE and os.path.isdir(os.path.join(NODE_DIR, "node_modules", "centrifuge")), \
        "node and tests/node/node_modules are needed (scripts/deps)"
    s = make_tls("--listen", "127.0.0.1:0,tls", *pki.cert_args(), "--config", conf(tmp_path))
    tok = s.token("reader-1", role="read", channels=["news"])
    writer = s.token("http-writer", role="write", channels=["news"])
    # The sockets over wss:// (Node trusts the test CA through NODE_EXTRA_CA_CERTS); the
    # scenario's HTTP writes go to the plaintext listener (its helper speaks plain http).
    env = dict(os.environ, SLUICE_URL=s.url, SLUICE_WRITE_URL=s.plain_url,
               SLUICE_JWT_SECRET=s.secret, NODE_EXTRA_CA_CERTS=pki.ca,
               SCENARIO_PARAMS=json.dumps({"channel": "news", "token": tok, "writer": writer}))
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "centrifuge_e2e.mjs"), "deliver"],
                       cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    assert lines, f"node printed no result (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    res = json.loads(lines[-1])
    assert p.returncode == 0 and res.get("ok") is True, (res.get("error"), p.stderr[-3000:])
    assert [x["data"] for x in res["pubs"]] == [{"n": n} for n in (3, 4, 5, 6, 7)]
    # Without the CA the client refuses the server.
    env.pop("NODE_EXTRA_CA_CERTS")
    p = subprocess.run([NODE, os.path.join(NODE_DIR, "centrifuge_e2e.mjs"), "deliver"],
                       cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 or '"ok":true' not in p.stdout.replace(" ", "")


def peer_cert_der(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            return t.getpeercert(binary_form=True)


def http_roundtrip(t, path="/channels"):
    t.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += t.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        rest += t.recv(65536)
    return int(head.split(b" ")[1])


def test_sighup_reload_keeps_open_connections(make_tls, pki, tmp_path):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(pki.path("server.crt"), cert)
    shutil.copy(pki.path("server.key"), key)
    s = make_tls("--listen", "127.0.0.1:0,tls", "--tls-cert", str(cert), "--tls-key", str(key),
                 secret=None)
    port = s.tls_ports[0]
    first = peer_cert_der(port)
    # A keep-alive connection opened before the reload.
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    old = pki.client_context().wrap_socket(raw, server_hostname="localhost")
    assert http_roundtrip(old) == 200
    shutil.copy(pki.path("server2.crt"), cert)
    shutil.copy(pki.path("server2.key"), key)
    s.proc.send_signal(signal.SIGHUP)
    assert "O=second" in s.read_stderr_until("TLS certificate reloaded")
    second = peer_cert_der(port)
    assert second != first and second == ssl.PEM_cert_to_DER_cert(open(pki.path("server2.crt")).read())
    # The old connection is still open, still served, with the certificate it started with.
    assert http_roundtrip(old) == 200
    assert old.getpeercert(binary_form=True) == first
    old.close()
    # A bad file on reload: the current certificate stays, the log says why and names no key.
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    s.proc.send_signal(signal.SIGHUP)
    line = s.read_stderr_until("TLS reload failed")
    assert "keeping the current certificate" in line and "not a key" not in line
    assert peer_cert_der(port) == second
    with httpx.Client(base_url=s.url, verify=pki.ca, timeout=10) as c:
        assert c.get("/channels").status_code == 200


def test_plaintext_on_a_public_address_refused(make_tls, pki):
    env = {"SLUICE_JWT_SECRET": SECRET}
    r = subprocess.run([SLUICED, "--engine", "memory", "--listen", "0.0.0.0:0"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "refusing to serve plaintext HTTP on 0.0.0.0" in r.stderr and "--insecure" in r.stderr
    # Also when it is only one of several listeners.
    r = subprocess.run([SLUICED, "--engine", "memory", "--listen", "127.0.0.1:0", "--listen",
                        "0.0.0.0:0,tls", "--listen", "[::]:0", *pki.cert_args()], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "plaintext HTTP on ::" in r.stderr, r.stderr
    # TLS settings that do not hang together are start-up errors too.
    for args, msg in ((["--listen", "127.0.0.1:0,tls"], "--tls-cert and --tls-key"),
                      (["--listen", "127.0.0.1:0", *pki.cert_args()], "no listener serves TLS"),
                      (["--listen", "127.0.0.1:0,mtls", *pki.cert_args()], "--tls-client-ca"),
                      (["--listen", "127.0.0.1:0,tls,bogus", *pki.cert_args()], "unknown option"),
                      (["--listen", "127.0.0.1:0,tls", "--tls-cert", pki.path("server.crt"),
                        "--tls-key", pki.path("client.key")], "tls_key")):
        r = subprocess.run([SLUICED, "--engine", "memory", *args], env=env, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)
        assert "PRIVATE" not in r.stderr
    # TLS on the public address is fine, and so is plaintext with --insecure.
    s = make_tls("--listen", "0.0.0.0:0,tls", *pki.cert_args())
    assert httpx.get(f"https://localhost:{s.tls_ports[0]}/channels", verify=pki.ca,
                     timeout=10).status_code == 401
    s2 = make_tls("--listen", "0.0.0.0:0", "--insecure", "--listen", "127.0.0.1:0,tls",
                  *pki.cert_args())
    assert httpx.get(f"http://127.0.0.1:{s2.ports[1]}/channels", timeout=10).status_code == 401


def test_half_open_handshake_closed_by_the_timeout(make_tls, pki):
    s = make_tls("--listen", "127.0.0.1:0,tls", *pki.cert_args(), "--request-timeout", "1")
    port = s.tls_ports[0]
    # Silent, half a ClientHello, and a complete handshake that never sends a request.
    silent = socket.create_connection(("127.0.0.1", port), timeout=30)
    half = socket.create_connection(("127.0.0.1", port), timeout=30)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    idle = pki.client_context().wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                                     timeout=30),
                                            server_hostname="localhost")
    # Before the handshake completes nothing can be answered: the socket is just closed.
    for sk in (silent, half):
        try:
            assert sk.recv(4096) == b""
        except ConnectionResetError:
            pass
    # After it, the timeout is the first request's: 408, then the close.
    data = b""
    try:
        while chunk := idle.recv(4096):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    assert data.startswith(b"HTTP/1.1 408 "), data
    for sk in (silent, half, idle):
        sk.close()
    # The server is still serving.
    assert httpx.get(f"{s.url}/channels", verify=pki.ca, timeout=10).status_code == 401
