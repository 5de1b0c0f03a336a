"""The admin console (/admin) in a real browser: tests/node/console_e2e.mjs drives Debian's chromium
(headless, through the pinned puppeteer-core) against a real sluiced, while this side makes the
changes the page must notice: a write to the channel the page created, and a WebSocket client whose
tokens the page revokes. The browser signs in with the keyboard only, checks the CSP and that no
API request lacks its Authorization header, looks at every view at a desktop width and at 375 px,
and signs in again as a read-only viewer, who must see no admin action.

Screenshots (one per view, plus the phone-width and viewer views, and failure.png when it fails) go
to $SLUICE_CONSOLE_ARTIFACTS, by default artifacts/console/ beside the sluiced binary under test.
Static-file details (types, 404s, ETag, headers) are checked over plain HTTP below. Nothing is
timed: every wait is a deadline."""
import json
import os
import shutil
import subprocess
import threading

import httpx
import pytest

from conftest import SLUICED
from wsraw import RawWS

NODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node")
SCRIPT = os.path.join(NODE_DIR, "console_e2e.mjs")
NODE = os.environ.get("SLUICE_NODE") or shutil.which("node") or shutil.which("nodejs")
CHROMIUM = os.environ.get("SLUICE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.environ.get("SLUICE_CONSOLE_ARTIFACTS") or os.path.join(
    os.path.dirname(os.path.abspath(SLUICED)), "artifacts", "console")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

CONFIG = """
broker = true
workspace_operators = console-admin
ws_ping_interval = 600
ws_pong_timeout = 600
[role publisher]
grants = write
channels = console.*
"""


def need_browser():
    missing = []
    if NODE is None:
        missing.append("node (scripts/deps installs nodejs)")
    elif not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "puppeteer-core")):
        missing.append("tests/node/node_modules/puppeteer-core (scripts/deps runs npm ci)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (scripts/deps installs chromium)")
    if missing:
        msg = "missing: " + ", ".join(missing)
        if os.environ.get("SLUICE_REQUIRE_DEPS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def srv(make_server, tmp_path):
    conf = tmp_path / "console.conf"
    conf.write_text(CONFIG)
    return make_server("--config", str(conf), "--audit-log", str(tmp_path / "audit.jsonl"),
                       "--apikey-store", str(tmp_path / "keys"))


def test_static_files(srv):
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        page = c.get("/admin")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-cache"
        assert '<script src="/admin/app.js"' in page.text and "<script>" not in page.text
        assert c.get("/admin/index.html").content == page.content
        js = c.get("/admin/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert js.headers["content-security-policy"] == CSP
        css = c.get("/admin/app.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        # The browser revalidates with the ETag; an unchanged file is not sent again.
        etag = js.headers["etag"]
        assert etag.startswith('"') and etag != page.headers["etag"]
        again = c.get("/admin/app.js", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert c.get("/admin/app.js", headers={"If-None-Match": 'W/"x", ' + etag}).status_code == 304
        assert c.get("/admin/app.js", headers={"If-None-Match": '"other"'}).status_code == 200
        # Unknown or hostile names: never a file from elsewhere.
        for bad in ("/admin/nope.js", "/admin/app.jsx", "/admin/APP.JS", "/admin/app.js.map",
                    "/admin/%2e%2e%2fsluiced", "/admin/..%2f..%2fetc%2fpasswd",
                    "/admin/" + "a" * 5000, "/admin/app.js/x", "/admin/%00"):
            r = c.get(bad)
            assert r.status_code in (400, 404), (bad, r.status_code)
            assert r.headers["content-type"] == "application/json", bad
        # HEAD answers as GET without the body (link checkers, monitors); the probe too.
        head = c.head("/admin")
        assert head.status_code == 200 and head.content == b"", head
        assert head.headers["content-length"] == page.headers["content-length"]
        assert head.headers["etag"] == page.headers["etag"]
        assert c.head("/admin/app.js").headers["content-length"] == js.headers["content-length"]
        assert c.head("/healthz").status_code == 200
        # Only GET and HEAD: the console's routes change nothing.
        allow = c.post("/admin", content=b"x")
        assert allow.status_code == 405 and allow.headers["allow"] == "GET, HEAD", allow.headers
        assert c.post("/admin", content=b"x").status_code == 405
        assert c.delete("/admin/app.js").status_code == 405
        # No credential is needed for the files, and one that is refused elsewhere is ignored.
        assert c.get("/admin", headers={"Authorization": "Bearer nonsense"}).status_code == 200


def test_console_in_a_browser(srv):
    need_browser()
    os.makedirs(ARTIFACTS, exist_ok=True)
    for old in os.listdir(ARTIFACTS):  # this run's screenshots only
        if old.endswith(".png"):
            os.remove(os.path.join(ARTIFACTS, old))
    admin = srv.token("console-admin", role="admin")
    viewer = srv.token("console-viewer", role="read")
    victim = srv.token("console-victim", role="read", channels=["console.news"])
    other = srv.token("console-other", role="read", channels=["console.news"])
    with srv.client(admin) as c:
        r = c.post("/channels", json={"id": "console.news", "kind": "topic"})
        assert r.status_code == 201, r.text
        r = c.post("/channels", json={"id": "console.old", "kind": "queue"})
        assert r.status_code == 201, r.text
        assert c.put("/acl/console-grantee", json={"role": "write",
                                                   "channels": ["console.*"]}).status_code == 200
        r = c.put("/broker/principals/console-grantee", json={"roles": ["publisher"]})
        assert r.status_code == 200, r.text
        r = c.post("/apikeys", json={"principal": "console-reporter", "role": "read"})
        assert r.status_code == 201, r.text
        key = r.json()

    # The WebSocket clients: the page revokes the tokens of one and disconnects the other.
    ws = RawWS(srv.host, srv.port)
    assert ws.status == 101
    rep = ws.call("connect", {"token": victim}, timeout=30)
    assert "connect" in rep, rep
    ws2 = RawWS(srv.host, srv.port)
    assert ws2.status == 101
    rep = ws2.call("connect", {"token": other}, timeout=30)
    assert "connect" in rep, rep

    params = {"admin": admin, "viewer": viewer, "victim": "console-victim",
              "channel": "console.jobs", "doomed": "console.old", "other": "console-other", "grantee": "console-grantee", "apikeyId": key["id"],
              "apikeySecret": key["key"], "workspace": "console-acme",
              "wsChannel": "console.acme-jobs"}
    env = dict(os.environ, SLUICE_URL=srv.url, CONSOLE_PARAMS=json.dumps(params),
               CONSOLE_ARTIFACTS=ARTIFACTS, SLUICE_CHROMIUM=CHROMIUM)
    errlog = open(os.path.join(ARTIFACTS, "node-stderr.log"), "w")
    proc = subprocess.Popen([NODE, SCRIPT], cwd=NODE_DIR, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errlog, text=True)
    # The whole conversation has one generous deadline (chromium is slow to start here).
    killer = threading.Timer(300, proc.kill)
    killer.start()
    result, steps = None, []
    try:
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if "step" not in msg:
                result = msg
                break
            steps.append(msg["step"])
            answer = {"ok": True}
            try:
                if msg["step"] == "write":
                    with srv.client(admin) as c:
                        for n in range(msg["count"]):
                            r = c.put(f"/channels/{msg['channel']}", json={"n": n})
                            assert r.status_code == 200, r.text
                elif msg["step"] == "workspace":
                    # The channel the operator created is in the workspace, and only there.
                    acme = {"Sluice-Workspace": "console-acme"}
                    with srv.client(admin) as c:
                        r = c.get(f"/channels/{msg['channel']}/info", headers=acme)
                        assert r.status_code == 200, r.text
                        assert c.get(f"/channels/{msg['channel']}/info").status_code == 404
                        assert c.get(f"/channels/{msg['outside']}/info", headers=acme).status_code == 404
                elif msg["step"] in ("revoked", "disconnected"):
                    # The server closes the socket itself (a close frame, then TCP).
                    code = (ws if msg["step"] == "revoked" else ws2).wait_close(timeout=30)
                    assert code is not None
                    answer["code"] = code
                else:
                    raise AssertionError(f"unknown step {msg['step']}")
            except AssertionError as e:
                answer = {"ok": False, "error": str(e)}
            proc.stdin.write(json.dumps(answer) + "\n")
            proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
        errlog.close()
        ws.close()
        ws2.close()
    with open(os.path.join(ARTIFACTS, "node-stderr.log")) as f:
        stderr = f.read()[-4000:]
    assert result is not None, f"node printed no result (exit {proc.returncode}):\n{stderr}"
    assert result.get("ok") is True and proc.returncode == 0, (
        f"console_e2e failed: {result.get('error')}\nsteps: {steps}\nnode stderr: {stderr}")
    assert steps == ["write", "revoked", "disconnected", "workspace"]
    shots = {os.path.basename(p) for p in result["screenshots"]}
    for want in ("01-sign-in.png", "02-overview.png", "03-channels.png", "04-connections.png",
                 "05-access.png", "06-audit.png", "07-phone-channels.png",
                 "08-viewer-channels.png", "09-viewer-access.png", "10-operator-workspace.png"):
        assert want in shots and os.path.getsize(os.path.join(ARTIFACTS, want)) > 0, want
    # The page made its API requests with the credential (checked in the browser) and the
    # server's log never saw it.
    assert admin not in srv.stderr() and viewer not in srv.stderr()
