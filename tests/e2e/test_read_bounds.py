"""Reads serve stored messages as the bytes that were written, and one reply is bounded in bytes
(issue 8, item 10): over HTTP (`max_bytes`, the server's `read_max_bytes` cap, `"more"`), over
WebSocket (`history` and the `queue.claim` rpc answer error 106 rather than closing with 3008) and
through the C client (the `sluice` CLI). Nothing here measures time: the bound is asserted in bytes
and messages, and "no re-parse" by text that a JSON library would have changed (duplicate keys,
number spellings, escapes)."""
import itertools
import json
import textwrap

import pytest

from wsraw import RawWS

_conf = itertools.count()

CHANNELS = """
[channel news]
kind = topic
visibility = public
[channel jobs]
kind = queue
visibility = public
"""

# Valid JSON a parse-and-serialise round trip would not give back as written.
VERBATIM = [
    b'{"a":1,"a":2}',
    b"0.1",
    b'[1.0, -0, 1e2, 12345678901234567890e-3]',
    b'{ "k" : "caf\\u00e9\\/" }',
]


def start(make_server, tmp_path, extra="", *args):
    p = tmp_path / f"sluice{next(_conf)}.conf"
    p.write_text(textwrap.dedent(extra + CHANNELS))
    s = make_server("--config", str(p), *args)
    s.admin = s.client(s.token("ops", role="admin"))
    return s


def put(s, channel, data):
    r = s.admin.put(f"/channels/{channel}", content=data,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()["item_id"]


def blob(n, ch="x"):
    """A JSON string of exactly n bytes (quotes included)."""
    return b'"' + ch.encode() * (n - 2) + b'"'


# ---- data as stored -------------------------------------------------------------------------------


def test_http_read_returns_stored_bytes(make_server, tmp_path):
    s = start(make_server, tmp_path)
    for d in VERBATIM:
        put(s, "news", d)
        put(s, "jobs", d)
    r = s.admin.get("/channels/news", params={"limit": 100})
    assert r.status_code == 200
    body = r.content
    for d in VERBATIM:
        assert b'"content":{"data":' + d + b"}" in body, (d, body)
    assert json.loads(body)["more"] is False  # still one valid JSON document
    r = s.admin.get("/channels/jobs", params={"limit": 100, "exclusive": "true"})
    for d in VERBATIM:
        assert b'"content":{"data":' + d + b"}" in r.content
    msgs = json.loads(r.content)["messages"]
    assert len(msgs) == len(VERBATIM) and all(m["attempt"] == 1 for m in msgs)


def test_websocket_history_and_http_agree_byte_for_byte(make_server, tmp_path):
    s = start(make_server, tmp_path)
    with RawWS(s.host, s.port) as ws:
        assert "connect" in ws.call("connect", {"token": s.token("alice", role="write")})
        # Published over the socket, read over HTTP; written over HTTP, read from history. (The
        # socket refuses duplicate keys in a frame, docs/WEBSOCKET.md; HTTP stores them.)
        ws.send_text('{"id":50,"publish":{"channel":"news","data":[0.1,1e2,-0]}}')
        assert "error" not in ws.reply(50)
        put(s, "news", b'{"a":1,"a":2}')
        i, _ = ws.cmd("history", {"channel": "news", "limit": 10})
        raw = b""
        while b'"id":%d,' % i not in raw:
            kind, payload = ws.recv_message()
            assert kind == "text", kind
            raw = payload if isinstance(payload, bytes) else payload.encode()
        assert b'"data":{"a":1,"a":2}' in raw and b'"data":[0.1,1e2,-0]' in raw, raw
    body = s.admin.get("/channels/news", params={"after": "0" * 16}).content
    assert b'"data":{"a":1,"a":2}}' in body and b'"data":[0.1,1e2,-0]}' in body, body


def test_cli_prints_stored_bytes(make_server, tmp_path, cli):
    s = start(make_server, tmp_path)
    for d in VERBATIM:
        put(s, "news", d)
    tok = s.token("reader", role="read")
    r = cli("read", "news", "--limit", "10", "--url", s.url, "--token", tok)
    assert r.returncode == 0, r.stderr
    out = r.stdout.encode()
    for d in VERBATIM:
        assert b'"data":' + d + b"}" in out, (d, out)
    assert json.loads(out)["more"] is False


# ---- bounded replies over HTTP --------------------------------------------------------------------


def test_topic_read_is_bounded_and_continues(make_server, tmp_path, cli):
    s = start(make_server, tmp_path, "", "--read-max-bytes", "300000")
    ids = [put(s, "news", blob(100000, c)) for c in "abcde"]
    reader = s.client(s.token("reader", role="read"))
    # The server's cap: two messages of 100 kB (a third would pass 300 000 bytes).
    r = reader.get("/channels/news", params={"limit": 1000})
    j = r.json()
    assert [m["id"] for m in j["messages"]] == ids[:2] and j["more"] is True
    assert len(r.content) < 300000 + 2000  # the messages plus their envelopes
    # A larger max_bytes is lowered to the cap; a smaller one is obeyed; the cursor continues.
    j = reader.get("/channels/news", params={"max_bytes": 10 ** 12}).json()
    assert [m["id"] for m in j["messages"]] == ids[2:4] and j["more"] is True
    j = reader.get("/channels/news", params={"max_bytes": 150000}).json()
    assert [m["id"] for m in j["messages"]] == ids[4:] and j["more"] is False
    # One message larger than max_bytes still comes back, alone: a reader never stalls.
    j = reader.get("/channels/news", params={"after": ids[0], "max_bytes": 10}).json()
    assert [m["id"] for m in j["messages"]] == ids[1:2] and j["more"] is True
    # The CLI passes --max-bytes through and shows "more".
    r = cli("read", "news", "--after", ids[0], "--max-bytes", "250000", "--url", s.url,
            "--token", s.token("cli", role="read"))
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert [m["id"] for m in j["messages"]] == ids[1:3] and j["more"] is True


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1.5", "+5", "99999999999999999999999"])
def test_bad_max_bytes_is_400(make_server, tmp_path, value):
    s = start(make_server, tmp_path)
    r = s.admin.get("/channels/news", params={"max_bytes": value})
    assert r.status_code == 400 and "max_bytes" in r.json()["message"], r.text


def test_exclusive_read_never_claims_what_it_does_not_return(make_server, tmp_path):
    s = start(make_server, tmp_path, "", "--read-max-bytes", "300000")
    ids = [put(s, "jobs", blob(100000, c)) for c in "abcde"]
    w1 = s.client(s.token("w1", role="write"))
    w2 = s.client(s.token("w2", role="write"))
    j = w1.get("/channels/jobs", params={"exclusive": "true", "limit": 10}).json()
    assert [m["id"] for m in j["messages"]] == ids[:2] and j["more"] is True
    # What did not fit is still claimable, by anyone, at once.
    j = w2.get("/channels/jobs", params={"exclusive": "true", "limit": 10}).json()
    assert [m["id"] for m in j["messages"]] == ids[2:4] and j["more"] is True
    r = w1.post("/channels/jobs/acknowledge", json={"message_ids": ids[:2]})
    assert r.json()["acknowledged"] == 2
    j = w1.get("/channels/jobs", params={"exclusive": "true", "max_bytes": 1}).json()
    assert [m["id"] for m in j["messages"]] == ids[4:] and j["more"] is False


def test_read_max_bytes_config(make_server, tmp_path):
    s = start(make_server, tmp_path, "read_max_bytes = 150000\n")
    ids = [put(s, "news", blob(100000, c)) for c in "ab"]
    j = s.admin.get("/channels/news").json()
    assert [m["id"] for m in j["messages"]] == ids[:1] and j["more"] is True


# ---- bounded replies over WebSocket ---------------------------------------------------------------


def test_history_over_the_bound_is_an_error_not_a_close(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_max_outgoing = 200000\n")
    for c in "abc":
        put(s, "news", blob(100000, c))
    with RawWS(s.host, s.port) as ws:
        assert "connect" in ws.call("connect", {"token": s.token("alice", role="read")})
        rep = ws.call("history", {"channel": "news", "limit": -1})
        assert rep["error"]["code"] == 106, rep
        assert "200000" in rep["error"]["message"]
        # Still connected and served: one publication fits.
        rep = ws.call("history", {"channel": "news", "limit": 1})
        pubs = rep["history"]["publications"]
        assert len(pubs) == 1 and pubs[0]["data"] == "a" * 99998
        # A single publication over the bound: an error too, the socket stays open.
        put(s, "news", blob(250000))
        rep = ws.call("history", {"channel": "news", "limit": 1, "reverse": True})
        assert rep["error"]["code"] == 106, rep
        assert "history" in ws.call("history", {"channel": "news", "limit": 0})


def test_history_obeys_read_max_bytes(make_server, tmp_path):
    s = start(make_server, tmp_path, "read_max_bytes = 150000\n")
    for c in "ab":
        put(s, "news", blob(100000, c))
    with RawWS(s.host, s.port) as ws:
        assert "connect" in ws.call("connect", {"token": s.token("alice", role="read")})
        rep = ws.call("history", {"channel": "news", "limit": 2})
        assert rep["error"]["code"] == 106, rep
        assert "150000 bytes (read_max_bytes)" in rep["error"]["message"], rep
        rep = ws.call("history", {"channel": "news", "limit": 1})
        assert len(rep["history"]["publications"]) == 1, rep


def test_ws_claim_is_bounded_and_releases_what_it_cannot_send(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_max_outgoing = 200000\n")
    ids = [put(s, "jobs", blob(100000, c)) for c in "ab"]
    with RawWS(s.host, s.port) as ws:
        assert "connect" in ws.call("connect", {"token": s.token("w", role="write")})
        rep = ws.call("rpc", {"method": "queue.claim", "data": {"channel": "jobs", "limit": 5}})
        res = rep["rpc"]["data"]
        assert [m["id"] for m in res["messages"]] == ids[:1] and res["more"] is True, rep
        # The second was not claimed: another worker gets it now.
        other = s.client(s.token("v", role="write"))
        j = other.get("/channels/jobs", params={"exclusive": "true"}).json()
        assert [m["id"] for m in j["messages"]] == ids[1:]
        # A message the socket cannot carry is answered 106 and given back, not left leased.
        big = put(s, "jobs", blob(250000))
        rep = ws.call("rpc", {"method": "queue.claim", "data": {"channel": "jobs"}})
        assert rep["error"]["code"] == 106, rep
        j = other.get("/channels/jobs", params={"exclusive": "true"}).json()
        assert [m["id"] for m in j["messages"]] == [big]
        assert "history" in ws.call("history", {"channel": "news", "limit": 0})
