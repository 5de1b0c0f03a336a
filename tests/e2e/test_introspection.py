"""Introspection as a broker credential: an RFC 7662 endpoint (the scripted one of the unit tests,
a real HTTP server) vouches for opaque bearer tokens; inactive ones are 401, and an endpoint that
fails or is gone makes sluiced fail closed with 503 and Retry-After."""
import os
import socket
import subprocess
import sys
import time

import pytest

ENDPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit",
                        "introspect_server.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_introspected_tokens(make_server, tmp_path, endpoint):
    port, proc = endpoint
    conf = tmp_path / "i.conf"
    conf.write_text(f"""
introspection_url = http://127.0.0.1:{port}/introspect
[role workers]
grants = write
channels = jobs
[principal alice]
roles = workers
""")
    s = make_server("--config", str(conf))
    # "good" is active with sub alice.
    r = s.client("good").post("/token", json={"channels": ["jobs"]})
    assert r.status_code == 200, r.text
    assert r.json()["channels_granted"] == ["jobs"]
    r = s.client("inactive-token").post("/token", json={"channels": ["jobs"]})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    # A failing endpoint: fail closed.
    r = s.client("500").post("/token", json={"channels": ["jobs"]})
    assert r.status_code == 503 and r.headers["retry-after"]
    # Cached: "good" keeps working while the endpoint is gone; unknown tokens get 503.
    proc.terminate()
    proc.wait(timeout=10)
    assert s.client("good").post("/token", json={"channels": ["jobs"]}).status_code == 200
    r = s.client("user-9").post("/token", json={"channels": ["jobs"]})
    assert r.status_code == 503


def test_scope_and_revocation_of_introspected_tokens(make_server, tmp_path, endpoint):
    """An introspection answer's scope narrows what the broker mints (issue 8, item 1), and a
    cached answer is still checked against the revocation store (item 5)."""
    port, proc = endpoint
    conf = tmp_path / "i.conf"
    conf.write_text(f"""
introspection_url = http://127.0.0.1:{port}/introspect
[role workers]
grants = write
channels = jobs, orders.*
[principal alice]
roles = workers
""")
    s = make_server("--config", str(conf))
    r = s.client("scoped").post("/token", json={"channels": ["jobs", "orders.eu"]})
    assert r.status_code == 200, r.text
    assert r.json()["channels_granted"] == ["jobs"]
    assert r.json()["channels_denied"] == [{"channel": "orders.eu",
                                            "reason": "outside the credential's scope"}]
    import jwt as pyjwt
    assert pyjwt.decode(r.json()["token"], options={"verify_signature": False})["role"] == "read"
    assert s.client("badscope").post("/token", json={"channels": ["jobs"]}).status_code == 401
    # "good" is cached after its first use; revoking alice refuses it at once.
    assert s.client("good").post("/token", json={"channels": ["jobs"]}).status_code == 200
    assert s.client("good").post("/revoke", json={"user_id": "alice"}).status_code == 200
    r = s.client("good").post("/token", json={"channels": ["jobs"]})
    assert r.status_code == 401 and r.json()["message"] == "token revoked"
