"""sluiced's own log (issue 14, section 2; docs/OPERATIONS.md, "Logs") against the real server:
JSON lines that parse, levels that filter, request ids (a client's sane X-Request-Id kept and
echoed, anything else replaced) on the access line and on denials, the log file reopened after a
rename and SIGHUP, and no credential in any line (a bearer token, ?api_key= and ?token=)."""
import json
import os
import re
import signal
import time

import httpx

import conftest

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def json_lines(text):
    """Every line of text parsed as one JSON object (a line that does not parse fails)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}")
        assert isinstance(rec, dict), line
        assert TS.match(rec["ts"]), rec
        assert rec["level"] in ("debug", "info", "warn", "error"), rec
        assert isinstance(rec["msg"], str), rec
        out.append(rec)
    return out


def access_lines(recs):
    return [r for r in recs if r["msg"] == "access"]


def stopped_log(s):
    assert s.stop() == 0, s.stderr()
    return s.stderr()


def test_json_lines_and_access_log(make_server):
    s = make_server("--log-format", "json", "--access-log", "--engine", "memory")
    tok = s.token("ops", role="admin")
    c = s.client(tok)
    assert c.post("/channels", json={"id": "jobs", "kind": "topic"}).status_code in (200, 201)
    r = c.put("/channels/jobs", content=b'{"n":1}')
    assert r.status_code in (200, 201, 202)
    got = c.get("/channels/jobs", params={"limit": 5})
    assert got.status_code == 200
    recs = json_lines(stopped_log(s))
    start = [r for r in recs if "sluiced listening on" in r["msg"]]
    assert len(start) == 1 and start[0]["level"] == "info"
    acc = access_lines(recs)
    reads = [a for a in acc if a["method"] == "GET" and a["path"] == "/channels/jobs"]
    assert len(reads) == 1, acc
    a = reads[0]
    assert a["status"] == 200 and a["principal"] == "ops" and a["query"] == "limit=5"
    assert isinstance(a["duration_ms"], (int, float)) and a["duration_ms"] >= 0
    assert a["bytes"] == len(got.content)
    assert a["remote"].startswith("127.0.0.1:")
    assert HEX16.match(a["request_id"])
    writes = [x for x in acc if x["method"] == "PUT"]
    assert len(writes) == 1 and writes[0]["path"] == "/channels/jobs"
    assert all(x["level"] == "info" for x in acc)


def test_levels_filter(make_server):
    def run(level):
        s = make_server("--log-format", "json", "--log-level", level, "--engine", "memory")
        assert httpx.get(s.url + "/channels").status_code == 401  # a denial: info
        assert httpx.get(s.url + "/nowhere").status_code == 404  # refused: debug
        return json_lines(stopped_log(s))

    debug = run("debug")
    msgs = [r["msg"] for r in debug]
    assert "denied" in msgs and "request refused" in msgs
    assert [r["level"] for r in debug if r["msg"] == "request refused"] == ["debug"]
    info = [r["msg"] for r in run("info")]
    assert "denied" in info and "request refused" not in info
    warn = run("warn")
    assert all(r["level"] in ("warn", "error") or "listening on" in r["msg"] for r in warn), warn
    assert not [r for r in warn if r["msg"] in ("denied", "request refused", "access")]
    # the start-up line is written at every level: it says where sluiced listens
    err = run("error")
    assert any("sluiced listening on" in r["msg"] for r in err)
    assert not [r for r in err if r["msg"].startswith("signal")]


def test_request_id_echoed_and_on_every_line(make_server):
    s = make_server("--log-format", "json", "--access-log", "--engine", "memory")
    r = httpx.get(s.url + "/channels", headers={"X-Request-Id": "trace-1.A_b-9"})
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "trace-1.A_b-9"
    ok = httpx.get(s.url + "/healthz")
    generated = ok.headers["x-request-id"]
    assert HEX16.match(generated)
    recs = json_lines(stopped_log(s))
    mine = [x for x in recs if x.get("request_id") == "trace-1.A_b-9"]
    assert sorted(x["msg"] for x in mine) == ["access", "denied"], mine
    denied = [x for x in mine if x["msg"] == "denied"][0]
    assert denied["status"] == 401 and denied["op"] == "channel.list" and denied["reason"]
    assert [x["path"] for x in recs if x.get("request_id") == generated] == ["/healthz"]


def test_bad_request_ids_replaced(make_server):
    s = make_server("--log-format", "json", "--access-log", "--engine", "memory")
    bad = ["x" * 65, "has space", "semi;colon", "quote\"d", "\u00e9t\u00e9".encode(), "a\tb", ""]
    seen = set()
    for value in bad:
        r = httpx.get(s.url + "/healthz", headers={"X-Request-Id": value})
        rid = r.headers["x-request-id"]
        assert HEX16.match(rid), (value, rid)
        seen.add(rid)
    assert len(seen) == len(bad)  # a fresh one each time
    ok = httpx.get(s.url + "/healthz", headers={"X-Request-Id": "y" * 64})
    assert ok.headers["x-request-id"] == "y" * 64
    recs = json_lines(stopped_log(s))
    ids = {a["request_id"] for a in access_lines(recs)}
    assert seen | {"y" * 64} <= ids
    assert not [i for i in ids if not re.match(r"^[A-Za-z0-9._-]{1,64}$", i)]


def wait_for(pred, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_log_file_reopened_on_sighup(make_server, tmp_path):
    path = tmp_path / "sluiced.log"
    s = make_server("--log-format", "json", "--access-log", "--log-file", str(path),
                    "--engine", "memory")
    # the start-up line is on stderr too (where sluiced was started) and in the file
    assert "sluiced listening on" in s.stderr()
    assert httpx.get(s.url + "/healthz", headers={"X-Request-Id": "before"}).status_code == 200
    os.rename(path, str(path) + ".1")  # logrotate's move
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: path.exists() and "log file reopened" in path.read_text(), "the new file")
    assert httpx.get(s.url + "/healthz", headers={"X-Request-Id": "after"}).status_code == 200
    assert s.stop() == 0
    old = json_lines((tmp_path / "sluiced.log.1").read_text())
    new = json_lines(path.read_text())
    assert [a["request_id"] for a in access_lines(old)] == ["before"]
    assert [a["request_id"] for a in access_lines(new)] == ["after"]
    assert any("sluiced listening on" in r["msg"] for r in old)
    assert any(r["msg"] == "log file reopened" for r in new)
    assert "access" not in s.stderr()  # the file has the log, not stderr


def test_text_format(make_server):
    s = make_server("--log-format", "text", "--access-log", "--engine", "memory")
    httpx.get(s.url + "/channels/a%0Ab", headers={"X-Request-Id": "t-1"})
    log = stopped_log(s)
    line = [x for x in log.splitlines() if "request_id=t-1" in x and " access " in x]
    assert len(line) == 1, log
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info access ", line[0])
    assert "path=/channels/a%0Ab" in line[0] and "status=400" in line[0]


def test_no_credentials_in_access_or_denial_lines(make_server, tmp_path):
    s = make_server("--log-format", "json", "--access-log", "--log-level", "debug",
                    "--engine", "memory")
    tok = s.token("ops", role="admin")
    c = s.client(tok)
    c.post("/channels", json={"id": "jobs", "kind": "topic"})
    api_key = "sk_test_" + "q" * 40
    conftest.record_credential(api_key)
    r = c.get(f"/channels/jobs?limit=1&api_key={api_key}&token={tok}&access_token={tok}")
    assert r.status_code == 200
    s.client(tok + "x").get("/channels")  # a tampered token: denied
    httpx.get(s.url + "/channels", headers={"Authorization": "Bearer " + api_key})
    httpx.get(s.url + f"/channels?{tok}")  # a credential pasted alone in the query
    log = stopped_log(s)
    recs = json_lines(log)
    for secret in (tok, tok.split(".")[2], api_key, conftest.SECRET):
        assert secret not in log
    q = [a for a in access_lines(recs) if a["path"] == "/channels/jobs"][0]["query"]
    assert q == "limit=1&api_key=REDACTED&token=REDACTED&access_token=REDACTED"
    assert any(a.get("query") == "_" for a in access_lines(recs))
    assert len([x for x in recs if x["msg"] == "denied"]) >= 2


def test_credential_check_finds_a_planted_secret():
    """The end-of-session check itself: a credential a test used, found in a log, is reported
    with the tests' names and the line masked."""
    creds, logs = dict(conftest.CREDENTIALS), list(conftest.LOGS)
    try:
        secret = "planted-" + "s3cr3t" * 4
        conftest.record_credential(secret)
        conftest.record_log('{"msg":"access","path":"/x/' + secret + '"}\n', "stderr")
        leaks = conftest.credential_leaks()
        mine = [x for x in leaks if x[0] == conftest.CURRENT_TEST[0]]
        assert len(conftest.CREDENTIALS) > 1  # the same module as the session's: it saw others
        assert mine and "<credential>" in mine[0][3] and secret not in mine[0][3]
    finally:
        conftest.CREDENTIALS.clear()
        conftest.CREDENTIALS.update(creds)
        conftest.LOGS[:] = logs


def test_websocket_upgrade_logged_with_its_id(make_server):
    import base64
    import socket
    s = make_server("--log-format", "json", "--access-log", "--engine", "memory")
    tok = s.token("ops", role="admin")
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((s.host, s.port), timeout=10) as c:
        c.sendall((f"GET /connection/websocket?token={tok} HTTP/1.1\r\nHost: x\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   "X-Request-Id: ws-1\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            assert chunk, head
            head += chunk
    assert head.startswith(b"HTTP/1.1 101") and b"X-Request-Id: ws-1\r\n" in head, head
    log = stopped_log(s)
    assert tok not in log
    acc = [a for a in access_lines(json_lines(log)) if a["request_id"] == "ws-1"]
    assert len(acc) == 1 and acc[0]["status"] == 101 and acc[0]["query"] == "token=REDACTED"


def test_store_and_redis_lines_are_json_too(make_server, make_redis):
    """The layers below the server (the Redis links, the stores) write through the same log: with
    --log-format json a Redis outage is a JSON line at warn, not a bare line on stderr."""
    r = make_redis()
    s = make_server("--log-format", "json", "--engine", r.url)
    assert s.client(s.token("ops", role="admin")).get("/healthz").status_code == 200
    r.kill()
    deadline = time.time() + 15
    while "unavailable" not in s.stderr() and time.time() < deadline:
        time.sleep(0.1)
    recs = json_lines(stopped_log(s))
    down = [x for x in recs if "redis" in x["msg"] and "unavailable" in x["msg"]]
    assert down and all(x["level"] == "warn" for x in down), recs


def test_transport_refusals_logged_with_an_id(make_server):
    """A request the transport refuses before any route sees it (413, 431, 400) gets a request id
    in its answer, a "request refused" line at debug with that id, and an access line."""
    import socket
    s = make_server("--log-format", "json", "--log-level", "debug", "--access-log",
                    "--engine", "memory", "--max-body", "2048")
    big = httpx.put(s.url + "/channels/jobs", content=b"x" * 8192,
                    headers={"Authorization": "Bearer nope"})
    assert big.status_code == 413, big.text
    rid_big = big.headers["x-request-id"]
    assert HEX16.match(rid_big)
    host, port = s.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        raw = sock.recv(4096).decode()
    assert raw.startswith("HTTP/1.1 400"), raw
    rid_bad = re.search(r"(?im)^x-request-id: ([0-9a-f]{16})\r$", raw).group(1)
    recs = json_lines(stopped_log(s))
    for rid, status in ((rid_big, 413), (rid_bad, 400)):
        mine = [x for x in recs if x.get("request_id") == rid]
        assert sorted(x["msg"] for x in mine) == ["access", "request refused"], mine
        refused = [x for x in mine if x["msg"] == "request refused"][0]
        assert refused["status"] == status and refused["level"] == "debug" and refused["reason"]
        acc = [x for x in mine if x["msg"] == "access"][0]
        assert acc["status"] == status and acc["remote"].startswith("127.0.0.1:"), acc
    # the bearer token of the refused request is on no line
    assert "nope" not in json.dumps(recs)


def test_websocket_session_lines(make_server, tmp_path):
    """A WebSocket session's connect (debug), denied commands (info "denied", error 103) and the
    server closing it (info "ws closed" with the code) are on the log with the upgrade's request
    id and the session's principal; no token on any line."""
    from wsraw import RawWS
    conf = tmp_path / "ws.conf"
    conf.write_text("[channel news]\nkind = topic\n[channel secret]\nkind = topic\n")
    s = make_server("--log-format", "json", "--log-level", "debug", "--engine", "memory",
                    "--config", str(conf))
    tok = s.token("alice", role="read", channels=["news"])
    with RawWS(s.host, s.port, headers=[("X-Request-Id", "ws-a")]) as r:
        assert r.status == 101, r.status
        assert "connect" in r.call("connect", {"token": tok}, timeout=10)
        rep = r.call("subscribe", {"channel": "secret"}, timeout=10)
        assert rep["error"]["code"] == 103, rep
    bad = tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB")
    with RawWS(s.host, s.port, headers=[("X-Request-Id", "ws-b")]) as r:
        r.send_json({"id": 1, "connect": {"token": bad}})
        code = r.wait_close(timeout=10)
        assert code == 3500, code
    log = stopped_log(s)
    assert tok not in log and bad not in log
    recs = json_lines(log)
    a = [x for x in recs if x.get("request_id") == "ws-a"]
    conn = [x for x in a if x["msg"] == "ws connected"]
    assert len(conn) == 1 and conn[0]["level"] == "debug" and conn[0]["principal"] == "alice", a
    denied = [x for x in a if x["msg"] == "denied"]
    assert len(denied) == 1 and denied[0]["level"] == "info" and denied[0]["code"] == 103, a
    assert denied[0]["principal"] == "alice" and denied[0]["remote"].startswith("127.0.0.1:")
    b = [x for x in recs if x.get("request_id") == "ws-b" and x["msg"] == "ws closed"]
    assert len(b) == 1 and b[0]["level"] == "info" and b[0]["code"] == 3500, b
    assert b[0]["reason"] and "principal" not in b[0], b
