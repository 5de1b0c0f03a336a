"""sluiced's WebSocket endpoint (/connection/websocket, Centrifugo JSON protocol) against
docs/WEBSOCKET.md "Session", "Transport" and "Protocol": every error code, every disconnect code,
framing, and delivery, over a real sluiced.

Normal traffic uses Debian's python3-websockets (10.4, asyncio API, each test runs its coroutine
with asyncio.run); hostile traffic uses wsraw.RawWS, a blocking socket with hand-built frames. The
servers run with small limits and timeouts so the whole file stays fast. The only timing assertion
is the issue's bound on live revocation (close within 1 s of the HTTP response)."""
import asyncio
import contextlib
import itertools
import json
import socket
import textwrap
import threading
import time

import jwt as pyjwt
import pytest
import websockets

from wsraw import BINARY, CONT, PING, TEXT, RawWS

_conf = itertools.count()

TOPICS = """
[channel news]
kind = topic
retention_max_count = 100
[channel other]
kind = topic
[channel third]
kind = topic
[channel jobs]
kind = queue
"""


def start(make_server, tmp_path, conf="", *args, **kw):
    """sluiced with a config file written to tmp_path (JWT on unless secret=None)."""
    p = tmp_path / f"sluice{next(_conf)}.conf"
    p.write_text(textwrap.dedent(conf))
    return make_server("--config", str(p), *args, **kw)


def admin(srv):
    return srv.client(srv.token("ops", role="admin"))


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw(srv, **kw):
    return RawWS(srv.host, srv.port, **kw)


def raw_connected(srv, token, **kw):
    r = raw(srv, **kw)
    assert r.status == 101, r.status
    rep = r.call("connect", {"token": token}, timeout=WAIT)
    assert "connect" in rep, rep
    return r


def tamper(tok):
    """The same token with a different signature."""
    return tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# ---- a well-behaved client (python3-websockets) --------------------------------------------------


# How long a test waits for a reply, push or close that must come: generous (a loaded machine under
# the sanitizers can be slow), and never a statement about speed.
WAIT = 15


class WS:
    """Numbered commands, replies matched by id, pushes kept in arrival order, server pings ({})
    answered unless answer_pings is False. Every line of every frame must parse as JSON."""

    def __init__(self, ws, answer_pings=True):
        self.ws = ws
        self.answer_pings = answer_pings
        self.next_id = 1
        self.replies = {}
        self.pushes = []
        self.frames = []
        self.pings = 0
        self.info = None

    @classmethod
    async def open(cls, srv, query="", answer_pings=True):
        ws = await websockets.connect(
            f"ws://{srv.host}:{srv.port}/connection/websocket{query}", ping_interval=None,
            compression=None, max_size=None, open_timeout=10, close_timeout=3)
        return cls(ws, answer_pings)

    async def _pump(self, timeout):
        msg = await asyncio.wait_for(self.ws.recv(), max(timeout, 0.001))
        assert isinstance(msg, str), f"binary frame from the server: {msg!r}"
        self.frames.append(msg)
        for line in msg.split("\n"):
            if not line.strip():
                continue
            obj = json.loads(line)
            assert isinstance(obj, dict), line
            if obj == {}:
                self.pings += 1
                if self.answer_pings:
                    await self.ws.send("{}")
            elif "id" in obj:
                self.replies[obj["id"]] = obj
            else:
                assert "push" in obj, obj
                self.pushes.append(obj["push"])

    async def send(self, method, body=None):
        i = self.next_id
        self.next_id += 1
        await self.ws.send(json.dumps({method: {} if body is None else body, "id": i}))
        return i

    async def reply(self, i, timeout=WAIT):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while i not in self.replies:
            await self._pump(deadline - loop.time())
        return self.replies.pop(i)

    async def call(self, method, body=None, timeout=WAIT):
        return await self.reply(await self.send(method, body), timeout)

    async def ok(self, method, body=None, timeout=WAIT):
        r = await self.call(method, body, timeout)
        assert method in r and "error" not in r, f"{method} {body} -> {r}"
        return r[method]

    async def err(self, method, body=None, timeout=WAIT):
        r = await self.call(method, body, timeout)
        assert "error" in r, f"{method} {body} -> {r} (expected an error)"
        return r["error"]

    async def connect(self, token=None, **kw):
        body = dict(kw)
        if token is not None:
            body["token"] = token
        self.info = await self.ok("connect", body)
        return self.info

    async def push(self, pred=lambda p: True, timeout=WAIT):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for k, p in enumerate(self.pushes):
                if pred(p):
                    return self.pushes.pop(k)
            await self._pump(deadline - loop.time())

    async def pubs(self, channel, n, timeout=WAIT):
        return [(await self.push(lambda p: p.get("channel") == channel and "pub" in p,
                                 timeout))["pub"] for _ in range(n)]

    async def idle(self, seconds):
        """Keep reading (and answering pings) for a while."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            try:
                await self._pump(end - loop.time())
            except asyncio.TimeoutError:
                pass

    async def closed(self, timeout=WAIT):
        """Read until the server closes; the close code (1006: no close frame)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                await self._pump(deadline - loop.time())
        except websockets.ConnectionClosed:
            return self.ws.close_code
        except asyncio.TimeoutError:
            raise AssertionError("still open after %.1f s; pushes %s" % (timeout, self.pushes))

    async def close(self):
        await self.ws.close()


@contextlib.asynccontextmanager
async def session(srv, token=None, connect=True, **kw):
    c = await WS.open(srv, **kw)
    try:
        if connect:
            await c.connect(token)
        yield c
    finally:
        await c.close()


def write(srv, channel, data, token=None):
    cl = srv.client(token or (srv.token("ops", role="admin") if srv.secret else None))
    r = cl.put(f"/channels/{channel}", json=data)
    assert r.status_code == 200, (r.status_code, r.text)
    return r


def pub_push(channel):
    return lambda p: p.get("channel") == channel and "pub" in p


# ---- connecting ----------------------------------------------------------------------------------


def test_connect_result_and_url_token(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)

    async def go():
        async with session(s, s.token("alice", role="read", ttl=600)) as c:
            i = c.info
            assert isinstance(i["client"], str) and i["client"]
            assert isinstance(i["version"], str)
            assert i["ping"] == 25 and i["pong"] is True
            assert i["expires"] is True and 0 < i["ttl"] <= 600
            assert "subscribe" in await c.call("subscribe", {"channel": "news"})
        # The token may come on the URL instead of in connect.
        tok = s.token("bob", role="read")
        async with session(s, connect=False, query=f"?token={tok}") as c:
            info = await c.connect()
            assert info["client"]
    run(go())


def test_open_server_connects_anonymous(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS, secret=None)

    async def go():
        async with session(s) as c:
            assert c.info["client"] and not c.info.get("expires")
            await c.ok("subscribe", {"channel": "news"})
            write(s, "news", {"n": 1})
            pub = (await c.push(pub_push("news")))["pub"]
            assert pub["data"] == {"n": 1}
    run(go())


# ---- error replies -------------------------------------------------------------------------------


def test_error_100_revocation_store_unavailable(make_server, tmp_path):
    s = start(make_server, tmp_path, f"revocation = redis://127.0.0.1:{closed_port()}\n" + TOPICS)

    async def go():
        async with session(s, connect=False) as c:
            e = await c.err("connect", {"token": s.token("alice", role="read")})
            assert e["code"] == 100 and e.get("temporary") is True, e
    run(go())


def test_error_101_before_connect_and_without_token(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_handshake_timeout = 2\n" + TOPICS)
    with raw(s) as r:
        assert r.status == 101
        for method, body in (("subscribe", {"channel": "news"}), ("history", {"channel": "news"}),
                             ("publish", {"channel": "news", "data": 1}),
                             ("rpc", {"method": "queue.claim", "data": {"channel": "jobs"}})):
            rep = r.call(method, body)
            assert rep.get("error", {}).get("code") == 101, (method, rep)
        # connect without a token while authentication is on: 101, and the socket stays open...
        rep = r.call("connect", {})
        assert rep.get("error", {}).get("code") == 101, rep
        # ...so a connect with a token may follow.
        rep = r.call("connect", {"token": s.token("alice", role="read")})
        assert "connect" in rep, rep
        assert "subscribe" in r.call("subscribe", {"channel": "news"})
    # Without a token the socket stays open only until the handshake timeout.
    with raw(s) as r:
        rep = r.call("connect", {})
        assert rep.get("error", {}).get("code") == 101, rep
        assert r.wait_close(timeout=WAIT) == 3502


def test_error_102_unknown_channel(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS + "[channel hidden]\nvisibility = private\n")

    async def go():
        async with session(s, s.token("alice", role="write")) as c:
            for ch in ("nope", "hidden"):
                assert (await c.err("subscribe", {"channel": ch}))["code"] == 102, ch
                assert (await c.err("history", {"channel": ch}))["code"] == 102, ch
                assert (await c.err("publish", {"channel": ch, "data": 1}))["code"] == 102, ch
    run(go())


def test_error_103_permission(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS + "[channel $secret]\nkind = topic\n")

    async def go():
        # Outside the token's channel scope, and a write with a read token.
        async with session(s, s.token("alice", role="read", channels=["news"])) as c:
            assert (await c.err("subscribe", {"channel": "other"}))["code"] == 103
            assert (await c.err("history", {"channel": "other"}))["code"] == 103
            assert (await c.err("publish", {"channel": "news", "data": 1}))["code"] == 103
            await c.ok("subscribe", {"channel": "news"})
            # A subscription token adds a requirement, never a permission.
            sub = s.token("alice", channel="$secret")
            assert (await c.err("subscribe", {"channel": "$secret", "token": sub}))["code"] == 103
        async with session(s, s.token("alice", role="read")) as c:
            # A $ channel without a subscription token, or with one that does not verify.
            assert (await c.err("subscribe", {"channel": "$secret"}))["code"] == 103
            bad = tamper(s.token("alice", channel="$secret"))
            assert (await c.err("subscribe", {"channel": "$secret", "token": bad}))["code"] == 103
            e = await c.err("subscribe", {"channel": "$secret", "token": "junk"})
            assert e["code"] == 103, e
            r = await c.ok("subscribe", {"channel": "$secret",
                                         "token": s.token("alice", channel="$secret", ttl=600)})
            assert r.get("expires") is True and 0 < r["ttl"] <= 600, r
    run(go())


def test_error_104_unknown_command_and_method(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)
    with raw_connected(s, s.token("alice", role="write")) as r:
        r.send_text('{"id":7,"frobnicate":{"channel":"news"}}')
        rep = r.reply(7)
        assert rep["error"]["code"] == 104, rep
        rep = r.call("rpc", {"method": "nope", "data": {}})
        assert rep["error"]["code"] == 104, rep
        assert "history" in r.call("history", {"channel": "news", "limit": 0})  # still usable


def test_error_105_already_subscribed(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)

    async def go():
        async with session(s, s.token("alice", role="read")) as c:
            await c.ok("subscribe", {"channel": "news"})
            assert (await c.err("subscribe", {"channel": "news"}))["code"] == 105
            await c.ok("unsubscribe", {"channel": "news"})
            await c.ok("subscribe", {"channel": "news"})
    run(go())


def test_error_106_limit(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS + "[channel small]\nkind = queue\nmax_messages = 1\n")

    async def go():
        async with session(s, s.token("alice", role="write")) as c:
            await c.ok("publish", {"channel": "small", "data": {"a": 1}})
            assert (await c.err("publish", {"channel": "small", "data": {"a": 2}}))["code"] == 106
            e = await c.err("rpc", {"method": "queue.write",
                                    "data": {"channel": "small", "data": {"a": 3}}})
            assert e["code"] == 106, e
        # connect.subs with more than 64 entries.
        async with session(s, connect=False) as c:
            subs = {f"c{i}": {} for i in range(65)}
            e = await c.err("connect", {"token": s.token("alice", role="read"), "subs": subs})
            assert e["code"] == 106, e
    run(go())


def test_error_107_bad_request(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)
    with raw_connected(s, s.token("alice", role="write")) as r:
        cases = [
            '{"id":10,"subscribe":{}}',                                   # no channel
            '{"id":11,"subscribe":{"channel":""}}',                       # empty
            '{"id":12,"subscribe":{"channel":5}}',                        # wrong type
            '{"id":13,"subscribe":[]}',                                   # body not an object
            '{"id":14,"publish":{"channel":"news"}}',                      # no data
            '{"id":15,"history":{"channel":"news","limit":1.5}}',         # a real is not an int
            '{"id":16,"subscribe":{"channel":"news","offset":-1}}',       # negative offset
            '{"id":17,"subscribe":{"channel":"' + "a" * 256 + '"}}',      # channel over 255
            '{"id":18,"subscribe":{"channel":"news"},"history":{"channel":"news"}}',  # two commands
            '{"id":19}',                                                  # id without a command
            '{"id":20,"history":{"channel":"jobs"}}',                     # history of a queue
            '{"id":21,"rpc":{"method":"queue.claim","data":{"channel":"jobs","limit":0}}}',
        ]
        wrong = []
        for line in cases:
            i = json.loads(line)["id"] if line.startswith('{"id":') else None
            r.send_text(line)
            rep = r.reply(i)
            if rep.get("error", {}).get("code") != 107:
                wrong.append((line[:80], rep))
        assert not wrong, wrong
        assert "history" in r.call("history", {"channel": "news", "limit": 0})


def test_error_109_token_expired(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS + "[channel $secret]\nkind = topic\n")

    async def go():
        async with session(s, connect=False) as c:
            e = await c.err("connect", {"token": s.token("alice", role="read", ttl=-120)})
            assert e["code"] == 109, e
            # The client fetches a new token and connects again on the same socket.
            await c.connect(s.token("alice", role="read"))
            e = await c.err("subscribe", {"channel": "$secret",
                                          "token": s.token("alice", channel="$secret", ttl=-120)})
            assert e["code"] == 109, e
            await c.ok("subscribe", {"channel": "$secret",
                                     "token": s.token("alice", channel="$secret")})
    run(go())


def test_error_111_commands_per_second(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_commands_per_second = 5\n" + TOPICS)
    with raw_connected(s, s.token("alice", role="read")) as r:
        time.sleep(1.1)  # a fresh second for the budget, whether or not connect counted
        cmds = [r.cmd("history", {"channel": "news", "limit": 0}, send=False) for _ in range(12)]
        r.send_json(*(o for _, o in cmds))
        got = {}
        while len(got) < len(cmds):
            for obj in r.recv_objs():
                if "id" in obj:
                    got[obj["id"]] = obj
        order = [got[i] for i, _ in cmds]
        ok = [o for o in order if "history" in o]
        limited = [o for o in order if o.get("error", {}).get("code") == 111]
        assert len(ok) + len(limited) == len(order), order
        assert 1 <= len(ok) <= 5 and limited, order
        assert all(o["error"].get("temporary") is True for o in limited), limited
        assert order.index(limited[0]) == len(ok), "a command succeeded after the budget ran out"
        time.sleep(1.1)  # the budget refills
        assert "history" in r.call("history", {"channel": "news", "limit": 0})


def test_error_112_unrecoverable(make_server, tmp_path):
    s = start(make_server, tmp_path,
              TOPICS + "[channel short]\nkind = topic\nretention_max_count = 3\n")

    async def go():
        for n in range(6):
            write(s, "short", {"n": n})
        async with session(s, s.token("alice", role="read")) as c:
            h = await c.ok("history", {"channel": "short", "limit": 0})
            epoch, top = h["epoch"], h["offset"]
            assert isinstance(epoch, str) and epoch and top >= 6, h
            e = await c.err("subscribe", {"channel": "short", "recover": True, "offset": top - 1,
                                          "epoch": epoch + "x"})
            assert e["code"] == 112, e
            # Six written, three retained: everything after top-5 is no longer there.
            e = await c.err("subscribe", {"channel": "short", "recover": True, "offset": top - 5,
                                          "epoch": epoch})
            assert e["code"] == 112, e
            # Within retention it recovers (positive control).
            r = await c.ok("subscribe", {"channel": "short", "recover": True, "offset": top - 2,
                                         "epoch": epoch})
            assert r.get("recovered") is True, r
            assert [p["data"]["n"] for p in r["publications"]] == [4, 5], r
    run(go())


# ---- disconnects ---------------------------------------------------------------------------------


def test_close_3005_expired_and_refresh(make_server, tmp_path):
    s = start(make_server, tmp_path, "jwt_leeway = 0\nws_refresh_grace = 1\n" + TOPICS)

    async def go():
        async with session(s, s.token("alice", role="read", ttl=2)) as a, \
                session(s, s.token("alice", role="read", ttl=2)) as b:
            assert a.info["expires"] is True and 0 < a.info["ttl"] <= 2, a.info
            # b refreshes in time with a token of the same principal and stays.
            r = await b.ok("refresh", {"token": s.token("alice", role="read", ttl=600)})
            assert r.get("expires") is True and 2 < r["ttl"] <= 600, r
            assert r["client"] == b.info["client"], r
            assert await a.closed(timeout=10) == 3005
            await b.ok("history", {"channel": "news", "limit": 0})
            # An expired token as the refresh: 109.
            e = await b.err("refresh", {"token": s.token("alice", role="read", ttl=-60)})
            assert e["code"] == 109, e
    run(go())


def _flood(srv, channel, count, size):
    """Pipelined HTTP writes over one raw socket (fast), responses drained by a second thread."""
    body = json.dumps({"pad": "x" * size}).encode()
    tok = srv.token("ops", role="admin")
    req = (f"PUT /channels/{channel} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    sock = socket.create_connection((srv.host, srv.port), timeout=30)
    got = []

    def reader():
        try:
            while True:
                b = sock.recv(65536)
                if not b:
                    break
                got.append(b)
                if b"".join(got).count(b"HTTP/1.1 ") >= count:
                    break
        except OSError:
            pass

    t = threading.Thread(target=reader)
    t.start()
    sock.sendall(req * count)
    t.join(60)
    sock.close()
    return b"".join(got).count(b"HTTP/1.1 200")


def test_close_3008_slow_consumer(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_max_outgoing = 4096\n" + TOPICS)
    slow = raw_connected(s, s.token("slow", role="read"), rcvbuf=4096)
    try:
        assert "subscribe" in slow.call("subscribe", {"channel": "news"})
        # The subscriber stops reading while 300 publications of 16 KiB are written.
        assert _flood(s, "news", 300, 16000) == 300
        assert slow.wait_close(timeout=30) == 3008
    finally:
        slow.close()
    assert s.client().get("/healthz").status_code == 200


def test_close_3012_no_pong(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_ping_interval = 1\nws_pong_timeout = 1\n" + TOPICS)

    async def go():
        tok = s.token("alice", role="read")
        async with session(s, tok, answer_pings=False) as mute, session(s, tok) as good:
            assert mute.info["ping"] == 1 and mute.info["pong"] is True
            code, _ = await asyncio.gather(mute.closed(timeout=10), good.idle(4))
            assert code == 3012
            assert mute.pings >= 1
            # The client that answers every {} is still connected.
            assert good.pings >= 1
            await good.ok("history", {"channel": "news", "limit": 0})
    run(go())


def test_close_3500_invalid_token(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS + "[channel $secret]\nkind = topic\n"
              "[channel $other]\nkind = topic\n")
    good = s.token("alice", role="read")
    wrong = {
        "bad signature": tamper(good),
        "other secret": pyjwt.encode(
            {"sub": "alice", "role": "read", "exp": int(time.time()) + 60},
            "another-32-byte-secret-key-xxxxxxxx", algorithm="HS256"),
        "not a jwt": "not.a.jwt",
    }
    codes = {}
    for name, tok in wrong.items():
        with raw(s) as r:
            r.send_json({"connect": {"token": tok}, "id": 1})
            codes[name] = r.wait_close(timeout=WAIT)
    # A refresh that authenticates another principal.
    with raw_connected(s, good) as r:
        r.cmd("refresh", {"token": s.token("bob", role="read")})
        codes["refresh other sub"] = r.wait_close(timeout=WAIT)
    # Subscription tokens valid but for another channel / another sub.
    for name, sub in (("$ other channel", s.token("alice", channel="$other")),
                      ("$ other sub", s.token("bob", channel="$secret"))):
        with raw_connected(s, good) as r:
            r.cmd("subscribe", {"channel": "$secret", "token": sub})
            codes[name] = r.wait_close(timeout=WAIT)
    assert codes == {k: 3500 for k in codes}, codes


def test_close_3501_bad_frames(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)
    tok = s.token("alice", role="read")
    cases = {
        "truncated": b'{"id":2,"history":',
        "trailing garbage": b'{"id":2,"history":{"channel":"news"}} x',
        "not an object": b"[1,2]",
        "duplicate key": b'{"id":2,"id":3,"history":{"channel":"news"}}',
        "nested duplicate": b'{"id":2,"history":{"channel":"news","channel":"other"}}',
        "no id": b'{"history":{"channel":"news"}}',
        "negative id": b'{"id":-1,"history":{"channel":"news"}}',
        "string id": b'{"id":"2","history":{"channel":"news"}}',
        "id over 2^32-1": b'{"id":4294967296,"history":{"channel":"news"}}',
        "\\u0000 in a string": b'{"id":2,"history":{"channel":"ne\\u0000ws"}}',
        "NUL byte": b'{"id":2,"history":{"channel":"news"}}\x00',
        "129 commands": b"\n".join(b'{"id":%d,"history":{"channel":"news","limit":0}}' % (i + 2)
                                   for i in range(129)),
    }
    codes = {}
    for name, data in cases.items():
        with raw_connected(s, tok) as r:
            r.send_frame(TEXT, data)
            codes[name] = r.wait_close(timeout=WAIT)
    with raw_connected(s, tok) as r:
        r.cmd("connect", {"token": tok})
        codes["second connect"] = r.wait_close(timeout=WAIT)
    assert codes == {k: 3501 for k in codes}, codes


def test_close_3502_stale(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_handshake_timeout = 1\n" + TOPICS)
    with raw(s) as r:
        assert r.status == 101
        assert r.wait_close(timeout=WAIT) == 3502


# A revocation reaches open sockets: awaited with a generous deadline, not timed (a loaded machine
# under the sanitizers is no place for a latency bound). How fast it arrives, on one node and
# across nodes sharing Redis, is measured by bench/revocation.sh (docs/BENCHMARKS.md).
def _revoke_and_wait(s, body, sockets):
    r = admin(s).post("/revoke", json=body)
    assert r.status_code == 200, r.text
    return [sock.wait_close(timeout=30) for sock in sockets]


def test_close_3503_revoke_token_id(make_server, tmp_path):
    s = start(make_server, tmp_path, "broker = true\n" + TOPICS)
    alice = raw_connected(s, s.token("alice", role="read", jti="ws-jti-1"))
    other = raw_connected(s, s.token("alice", role="read", jti="ws-jti-2"))
    try:
        assert "subscribe" in alice.call("subscribe", {"channel": "news"})
        assert _revoke_and_wait(s, {"token_id": "ws-jti-1"}, [alice]) == [3503]
        # Another token of the same user is untouched.
        assert "history" in other.call("history", {"channel": "news", "limit": 0})
    finally:
        alice.close()
        other.close()


def test_close_3503_revoke_user(make_server, tmp_path):
    s = start(make_server, tmp_path, "broker = true\n" + TOPICS)
    a1 = raw_connected(s, s.token("alice", role="read", jti="u-1"))
    a2 = raw_connected(s, s.token("alice", role="read", jti="u-2"))
    bob = raw_connected(s, s.token("bob", role="read", jti="u-3"))
    try:
        assert _revoke_and_wait(s, {"user_id": "alice"}, [a1, a2]) == [3503, 3503]
        assert "history" in bob.call("history", {"channel": "news", "limit": 0})
    finally:
        for x in (a1, a2, bob):
            x.close()


def test_close_3504_connection_limit(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_max_connections = 2\n" + TOPICS)
    tok = s.token("alice", role="read")
    a = raw_connected(s, tok)
    b = raw_connected(s, tok)
    try:
        with raw(s) as c:
            assert c.status == 101
            assert c.wait_close(timeout=WAIT) == 3504
        a.close()
        # The freed slot is usable again (once the server has seen the socket go; a generous
        # deadline, not a timing).
        deadline = time.time() + 30
        while True:
            d = raw(s)
            rep = None
            try:
                rep = d.call("connect", {"token": tok}, timeout=2)
            except AssertionError:
                pass
            d.close()
            if rep and "connect" in rep:
                break
            assert time.time() < deadline, "a slot never came free"
            time.sleep(0.1)
    finally:
        a.close()
        b.close()


def test_close_3505_channel_limit(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_max_subscriptions = 2\n" + TOPICS)
    with raw_connected(s, s.token("alice", role="read")) as r:
        assert "subscribe" in r.call("subscribe", {"channel": "news"})
        assert "subscribe" in r.call("subscribe", {"channel": "other"})
        r.cmd("subscribe", {"channel": "third"})
        assert r.wait_close(timeout=WAIT) == 3505


ACL = """
authz = acl
admin = ops
[acl alice]
role = read
channels = news, other
[acl bob]
role = read
""" + TOPICS


def test_acl_narrowed_unsubscribe_2000(make_server, tmp_path):
    s = start(make_server, tmp_path, ACL)

    async def go():
        async with session(s, s.token("alice")) as c:
            await c.ok("subscribe", {"channel": "news"})
            await c.ok("subscribe", {"channel": "other"})
            r = admin(s).put("/acl/alice", json={"role": "read", "channels": ["other"]})
            assert r.status_code == 200, r.text
            p = await c.push(lambda p: "unsubscribe" in p, timeout=WAIT)
            assert p["channel"] == "news" and p["unsubscribe"]["code"] == 2000, p
            # "other" is still subscribed and delivers; "news" is now denied.
            write(s, "other", {"still": True})
            pub = (await c.push(pub_push("other")))["pub"]
            assert pub["data"] == {"still": True}
            assert not [p for p in c.pushes if "unsubscribe" in p], c.pushes
            assert (await c.err("subscribe", {"channel": "news"}))["code"] == 103
    run(go())


def test_close_3507_acl_entry_deleted(make_server, tmp_path):
    s = start(make_server, tmp_path, ACL)

    async def go():
        async with session(s, s.token("bob")) as c, session(s, s.token("alice")) as a:
            await c.ok("subscribe", {"channel": "news"})
            await a.ok("subscribe", {"channel": "news"})
            assert admin(s).delete("/acl/bob").status_code == 200
            assert await c.closed(timeout=WAIT) == 3507
            await a.ok("history", {"channel": "news", "limit": 0})  # others unaffected
    run(go())


def test_channel_deleted_unsubscribe_2000(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)

    async def go():
        async with session(s, s.token("alice", role="read")) as c:
            await c.ok("subscribe", {"channel": "news"})
            assert admin(s).delete("/channels/news").status_code == 200
            p = await c.push(lambda p: "unsubscribe" in p, timeout=WAIT)
            assert p["channel"] == "news" and p["unsubscribe"]["code"] == 2000, p
    run(go())


def test_close_3509_too_many_errors(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_max_errors = 3\n" + TOPICS)
    with raw_connected(s, s.token("alice", role="read")) as r:
        for i in range(3):
            rep = r.call("subscribe", {"channel": f"nope{i}"})
            assert rep.get("error", {}).get("code") == 102, rep
        r.cmd("subscribe", {"channel": "nope3"})
        assert r.wait_close(timeout=WAIT) == 3509


@pytest.mark.parametrize("case", ["too big", "too big in fragments", "binary", "invalid utf-8",
                                  "unmasked"])
def test_transport_close_codes(make_server, tmp_path, case):
    s = start(make_server, tmp_path, "ws_max_message = 1024\n" + TOPICS)
    want = {"too big": 1009, "too big in fragments": 1009, "binary": 1003, "invalid utf-8": 1007,
            "unmasked": 1002}[case]
    with raw_connected(s, s.token("alice", role="read")) as r:
        pad = '{"id":2,"history":{"channel":"news","x":"' + "a" * 2000 + '"}}'
        if case == "too big":
            r.send_text(pad)
        elif case == "too big in fragments":
            r.send_frame(TEXT, pad[:700], fin=False)
            r.send_frame(CONT, pad[700:1400], fin=False)
            r.send_frame(CONT, pad[1400:], fin=True)
        elif case == "binary":
            r.send_frame(BINARY, b'{"id":2,"history":{"channel":"news"}}')
        elif case == "invalid utf-8":
            r.send_frame(TEXT, b'{"id":2,"history":{"channel":"ne\xffws"}}')
        else:
            r.send_frame(TEXT, b'{"id":2,"history":{"channel":"news"}}', mask=False)
        assert r.wait_close(timeout=WAIT) == want


# ---- framing -------------------------------------------------------------------------------------


def test_fragmented_message_with_ping_between(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)
    with raw(s) as r:
        msg = json.dumps({"connect": {"token": s.token("alice", role="read")}, "id": 1}) + "\n" + \
            json.dumps({"subscribe": {"channel": "news"}, "id": 2})
        q = len(msg) // 4
        r.send_frame(TEXT, msg[:q], fin=False)
        r.send_frame(CONT, msg[q:2 * q], fin=False)
        r.send_frame(PING, b"between")
        r.send_frame(CONT, msg[2 * q:3 * q], fin=False)
        r.send_frame(CONT, msg[3 * q:], fin=True)
        got = {}
        while len(got) < 2 or not r.pongs:
            for obj in r.recv_objs():
                if "id" in obj:
                    got[obj["id"]] = obj
        assert "connect" in got[1] and "subscribe" in got[2], got
        assert r.pongs == [b"between"]


def test_several_commands_in_one_frame(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)
    write(s, "news", {"n": 0})
    with raw(s) as r:
        tok = s.token("alice", role="read")
        # \r\n separators, a blank line and a trailing newline are allowed.
        r.send_text(f'{{"connect":{{"token":"{tok}"}},"id":1}}\r\n'
                    '{"subscribe":{"channel":"news"},"id":2}\n\n'
                    '{"history":{"channel":"news","limit":-1},"id":3}\n'
                    '{"subscribe":{"channel":"nope"},"id":4}\n')
        seen = []
        while len([o for o in seen if "id" in o]) < 4:
            seen.extend(o for o in r.recv_objs() if o != {})
        ids = [o["id"] for o in seen if "id" in o]
        assert ids == [1, 2, 3, 4], seen
        by = {o["id"]: o for o in seen if "id" in o}
        assert "connect" in by[1] and "subscribe" in by[2]
        assert [p["data"] for p in by[3]["history"]["publications"]] == [{"n": 0}]
        assert by[4]["error"]["code"] == 102


def test_interleaved_pushes_and_replies(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)

    async def go():
        async with session(s, s.token("alice", role="read")) as a, \
                session(s, s.token("bob", role="write")) as b:
            await a.ok("subscribe", {"channel": "news"})
            ids = []
            for n in range(10):
                write(s, "news", {"n": n})
                ids.append(await a.send("history", {"channel": "news", "limit": 0}))
                await b.ok("publish", {"channel": "news", "data": {"b": n}})
            for i in ids:
                assert "history" in await a.reply(i)
            pubs = await a.pubs("news", 20)
            offs = [p["offset"] for p in pubs]
            assert offs == sorted(offs) and len(set(offs)) == 20, offs
            from_b = [p for p in pubs if "b" in p["data"]]
            assert [p["data"]["b"] for p in from_b] == list(range(10))
            assert all(p["info"]["user"] == "bob" and p["info"]["client"] == b.info["client"]
                       for p in from_b), from_b[0]
            from_http = [p for p in pubs if "n" in p["data"]]
            assert [p["data"]["n"] for p in from_http] == list(range(10))
    run(go())


# ---- delivery ------------------------------------------------------------------------------------


def test_publications_in_order(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)

    async def go():
        async with session(s, s.token("alice", role="read")) as c:
            await c.ok("subscribe", {"channel": "news"})
            for n in range(20):
                write(s, "news", {"n": n})
            pubs = await c.pubs("news", 20)
            assert [p["data"] for p in pubs] == [{"n": n} for n in range(20)]
            offs = [p["offset"] for p in pubs]
            assert offs == list(range(offs[0], offs[0] + 20)) and offs[0] >= 1, offs
    run(go())


def test_history(make_server, tmp_path):
    s = start(make_server, tmp_path, "ws_history_max = 4\n" + TOPICS)

    async def go():
        for n in range(3):
            write(s, "news", {"n": n})
        async with session(s, s.token("alice", role="read")) as c:
            h = await c.ok("history", {"channel": "news", "limit": -1})
            pubs = h["publications"]
            assert [p["data"] for p in pubs] == [{"n": 0}, {"n": 1}, {"n": 2}], h
            o = [p["offset"] for p in pubs]
            assert o == [o[0], o[0] + 1, o[0] + 2] and h["offset"] == o[2], h
            epoch = h["epoch"]
            assert isinstance(epoch, str) and epoch
            h0 = await c.ok("history", {"channel": "news", "limit": 0})
            assert not h0.get("publications") and h0["offset"] == o[2] and h0["epoch"] == epoch
            hs = await c.ok("history", {"channel": "news", "limit": -1,
                                        "since": {"offset": o[0], "epoch": epoch}})
            assert [p["offset"] for p in hs["publications"]] == o[1:], hs
            hr = await c.ok("history", {"channel": "news", "limit": 2, "reverse": True})
            assert [p["offset"] for p in hr["publications"]] == [o[2], o[1]], hr
            for n in range(3, 7):
                write(s, "news", {"n": n})
            hc = await c.ok("history", {"channel": "news", "limit": 100})
            assert len(hc["publications"]) == 4, hc  # capped at ws_history_max
    run(go())


def test_recovery_after_reconnect(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)

    async def go():
        write(s, "news", {"n": 0})
        tok = s.token("alice", role="read")
        async with session(s, tok) as c:
            r = await c.ok("subscribe", {"channel": "news", "recoverable": True})
            assert r.get("recoverable") is True, r
            epoch, offset = r["epoch"], r["offset"]
            assert epoch and offset >= 1, r
        for n in range(1, 4):
            write(s, "news", {"n": n})
        async with session(s, tok) as c:
            r = await c.ok("subscribe", {"channel": "news", "recoverable": True, "recover": True,
                                         "offset": offset, "epoch": epoch})
            assert r.get("recovered") is True and r.get("was_recovering") is True, r
            pubs = r["publications"]
            assert [p["data"] for p in pubs] == [{"n": 1}, {"n": 2}, {"n": 3}], r
            assert [p["offset"] for p in pubs] == [offset + 1, offset + 2, offset + 3], r
            assert r["offset"] == offset + 3 and r["epoch"] == epoch, r
            # Live delivery continues after the recovered ones.
            write(s, "news", {"n": 4})
            pub = (await c.push(pub_push("news")))["pub"]
            assert pub["data"] == {"n": 4} and pub["offset"] == offset + 4
    run(go())


def test_queue_rpc(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS)

    def rpc(method, data):
        return {"method": method, "data": data}

    async def go():
        async with session(s, s.token("worker", role="write")) as w, \
                session(s, s.token("viewer", role="read")) as ro:
            await w.ok("subscribe", {"channel": "jobs"})
            r = await w.ok("rpc", rpc("queue.write", {"channel": "jobs", "data": {"task": 1}}))
            mid = r["data"]["id"]
            assert isinstance(mid, str) and mid
            # A queue's subscribers get a wake-up publication per write.
            pub = (await w.push(pub_push("jobs")))["pub"]
            assert pub["data"] == {"id": mid}, pub
            r = await w.ok("rpc", rpc("queue.claim", {"channel": "jobs", "limit": 5}))
            msgs = r["data"]["messages"]
            assert len(msgs) == 1, r
            m = msgs[0]
            assert m["id"] == mid and m["content"]["data"] == {"task": 1}, m
            assert m["attempt"] == 1 and m["claim_expires_at"] > time.time() - 5, m
            r = await w.ok("rpc", rpc("queue.ack", {"channel": "jobs", "ids": [mid]}))
            assert r["data"] == {"acknowledged": 1}, r
            # nack: the message comes back with its attempt counted.
            r = await w.ok("rpc", rpc("queue.write", {"channel": "jobs", "data": {"task": 2}}))
            mid2 = r["data"]["id"]
            r = await w.ok("rpc", rpc("queue.claim", {"channel": "jobs"}))
            assert [m["id"] for m in r["data"]["messages"]] == [mid2], r
            r = await w.ok("rpc", rpc("queue.nack", {"channel": "jobs", "ids": [mid2], "delay": 0}))
            assert r["data"] == {"nacked": 1}, r
            r = await w.ok("rpc", rpc("queue.claim", {"channel": "jobs"}))
            [m] = r["data"]["messages"]
            assert m["id"] == mid2 and m["attempt"] == 2, m
            # A read-only token may not write.
            e = await ro.err("rpc", rpc("queue.write", {"channel": "jobs", "data": {"task": 3}}))
            assert e["code"] == 103, e
            # Nothing was written by it: the queue holds only mid2, which w has claimed.
            r = await w.ok("rpc", rpc("queue.claim", {"channel": "jobs", "limit": 10}))
            assert r["data"]["messages"] == [], r
    run(go())


def test_queue_rpc_features(make_server, tmp_path):
    """docs/QUEUES.md over rpc: the write envelope, idempotency keys, delays, extend, terminate."""
    s = start(make_server, tmp_path, TOPICS)

    def rpc(method, data):
        return {"method": method, "data": {"channel": "jobs", **data}}

    async def go():
        async with session(s, s.token("worker", role="write")) as w, \
                session(s, s.token("viewer", role="read")) as ro:
            r = await w.ok("rpc", rpc("queue.write", {"data": {"t": 1}, "idempotency_key": "k1",
                                                      "metadata": {"trace": "x"},
                                                      "correlation_id": "c-1", "ttl": 3600}))
            assert r["data"]["duplicate"] is False, r
            mid = r["data"]["id"]
            r = await w.ok("rpc", rpc("queue.write", {"data": {"t": 1}, "idempotency_key": "k1"}))
            assert r["data"] == {"id": mid, "duplicate": True}, r
            r = await w.ok("rpc", rpc("queue.write", {"data": {"t": 2}, "delay": 3600}))
            r = await w.ok("rpc", rpc("queue.claim", {"limit": 10}))
            [m] = r["data"]["messages"]  # the delayed one waits an hour
            assert m["id"] == mid and m["metadata"] == {"trace": "x"}, m
            assert m["correlation_id"] == "c-1" and m["expires_at"] > time.time(), m
            r = await w.ok("rpc", rpc("queue.extend", {"ids": [mid], "seconds": 600}))
            assert r["data"] == {"extended": 1}, r
            e = await ro.err("rpc", rpc("queue.extend", {"ids": [mid]}))
            assert e["code"] == 103, e
            e = await ro.err("rpc", rpc("queue.terminate", {"ids": [mid]}))
            assert e["code"] == 103, e
            r = await w.ok("rpc", rpc("queue.terminate", {"ids": [mid], "reason": "poison"}))
            assert r["data"] == {"terminated": 1}, r
            r = await w.ok("rpc", rpc("queue.ack", {"ids": [mid]}))
            assert r["data"] == {"acknowledged": 0}, r
            # Malformed options are refused before anything is stored.
            # The envelope's strings are 1..255 bytes here as over HTTP (the channel API checks).
            for bad in ({"data": 1, "delay": "soon"}, {"data": 1, "metadata": [1]},
                        {"data": 1, "idempotency_key": 5}, {"data": 1, "correlation_id": ""},
                        {"data": 1, "reply_to": "r" * 256}):
                await w.err("rpc", rpc("queue.write", bad))
            await w.err("rpc", rpc("queue.extend", {"ids": [mid], "seconds": "x"}))
            # A batch: one request, every id in order, a repeated key reported, not stored.
            r = await w.ok("rpc", rpc("queue.batch", {"messages": [
                {"data": {"b": 1}, "idempotency_key": "kb"},
                {"data": {"b": 2}, "correlation_id": "c-2"},
                {"data": {"b": 3}, "idempotency_key": "kb"}]}))
            ids = r["data"]["ids"]
            assert len(ids) == 3 and ids[0] == ids[2] and ids[0] < ids[1], r
            assert r["data"]["duplicates"] == 1, r
            r = await w.ok("rpc", rpc("queue.claim", {"limit": 10}))
            got = [(m["id"], m["content"]["data"]) for m in r["data"]["messages"]]
            assert got == [(ids[0], {"b": 1}), (ids[1], {"b": 2})], got
            # A bad envelope refuses the whole batch; so do an empty one and a read-only caller.
            before = (await w.ok("rpc", rpc("queue.claim", {"limit": 10})))["data"]["messages"]
            assert before == [], before
            await w.err("rpc", rpc("queue.batch", {"messages": [{"data": 1}, {"data": 2,
                                                                               "ttl": "x"}]}))
            await w.err("rpc", rpc("queue.batch", {"messages": []}))
            await w.err("rpc", rpc("queue.batch", {"messages": [{"data": 1}] * 1001}))
            e = await ro.err("rpc", rpc("queue.batch", {"messages": [{"data": 1}]}))
            assert e["code"] == 103, e
            r = await w.ok("rpc", rpc("queue.claim", {"limit": 10}))
            assert r["data"]["messages"] == [], r
    run(go())


def test_presence_join_leave(make_server, tmp_path):
    s = start(make_server, tmp_path, TOPICS + "[channel room]\nkind = topic\npresence = true\n"
              "join_leave = true\n")

    def joined(user, kind="join"):
        return lambda p: (p.get("channel") == "room" and kind in p
                          and p[kind]["info"]["user"] == user)

    async def go():
        async with session(s, s.token("alice", role="read")) as a, \
                session(s, s.token("bob", role="read")) as b:
            await a.ok("subscribe", {"channel": "room", "join_leave": True})
            await b.ok("subscribe", {"channel": "room", "join_leave": True})
            j = await a.push(joined("bob"))
            assert j["join"]["info"]["client"] == b.info["client"], j
            async with session(s, s.token("alice", role="read")) as a2:
                await a2.ok("subscribe", {"channel": "room", "join_leave": True})
                p = (await a.ok("presence", {"channel": "room"}))["presence"]
                want = {x.info["client"]: u for x, u in ((a, "alice"), (b, "bob"), (a2, "alice"))}
                assert {k: v["user"] for k, v in p.items()} == want, p
                assert all(v["client"] == k for k, v in p.items()), p
                st = await b.ok("presence_stats", {"channel": "room"})
                assert st == {"num_clients": 3, "num_users": 2}, st
                a2_client = a2.info["client"]
            # a2 disconnected: a leave for it.
            lv = await a.push(lambda p: p.get("channel") == "room" and "leave" in p
                              and p["leave"]["info"]["client"] == a2_client)
            assert lv["leave"]["info"]["user"] == "alice"
            await b.ok("unsubscribe", {"channel": "room"})
            await a.push(joined("bob", "leave"))
            st = await a.ok("presence_stats", {"channel": "room"})
            assert st == {"num_clients": 1, "num_users": 1}, st
            # A channel without presence.
            await a.ok("subscribe", {"channel": "news"})
            assert (await a.err("presence", {"channel": "news"}))["code"] == 108
            assert (await a.err("presence_stats", {"channel": "news"}))["code"] == 108
    run(go())
