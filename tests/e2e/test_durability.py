"""The durable engine on the real binary: kill -9 under load and restart on the same data directory
(nothing answered "done" is lost, nothing acknowledged comes back, leases, message ids, topic
cursors and WebSocket offsets survive), security state across restarts, bad data directories
(corrupt, truncated, unreadable, shared, full disk, newer format) refused with clear messages,
online backup under load, the three durability modes, and the audit log across rotation and
kill -9.

A request that was in flight when the server was killed has no known outcome: the tests record
only what got a reply, and allow either outcome for the rest. No timing is asserted; waits have
generous deadlines."""
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest
import websockets

from conftest import SECRET, SLUICE_CLI, SLUICED, Server

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehavior")


class Node:
    """sluiced on a data directory the test keeps: started, killed (-9) and restarted on it."""

    def __init__(self, data_dir, *args, secret=SECRET):
        self.data_dir = str(data_dir)
        self.args = args
        self.secret = secret
        self.srv = None

    def start(self):
        self.srv = Server(("--data-dir", self.data_dir, *self.args), secret=self.secret).start()
        return self.srv

    def kill(self):
        p = self.srv.proc
        p.kill()
        p.wait(timeout=30)
        self.srv.join_stderr()

    def stop(self):
        rc = self.srv.stop()
        assert rc == 0, f"sluiced exited {rc}:\n{self.srv.stderr()}"

    def running(self):
        return self.srv is not None and self.srv.proc.poll() is None

    def wait_stderr(self, needle, timeout=15):
        """Waits for a line of the server's stderr that contains needle."""
        return self.srv.wait_stderr(needle, timeout)


@pytest.fixture
def nodes():
    made = []

    def make(data_dir, *args, **kw):
        n = Node(data_dir, *args, **kw)
        made.append(n)
        return n

    yield make
    failed = []
    for n in made:
        if n.running():
            rc = n.srv.stop()
            if rc != 0:
                failed.append(f"sluiced exited {rc}:\n{n.srv.stderr()}")
    assert not failed, "\n".join(failed)


def refused(args, env_secret=True, prefix=()):
    """Runs sluiced expecting it to refuse to start; returns its stderr."""
    env = dict(os.environ)
    env.pop("SLUICE_JWT_SECRET", None)
    if env_secret:
        env["SLUICE_JWT_SECRET"] = SECRET
    r = subprocess.run([*prefix, SLUICED, "--listen", "127.0.0.1:0", *args], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, f"exit {r.returncode}:\n{r.stderr}"
    for mark in SANITIZER_MARKS:
        assert mark not in r.stderr, r.stderr
    return r.stderr


def tok(srv, sub, role="admin", **kw):
    return srv.token(sub, role=role, **kw)


def claim_all(c, channel, limit=1000):
    """Claims every message available now; returns {id: data}."""
    got = {}
    while True:
        r = c.get(f"/channels/{channel}", params={"exclusive": "true", "limit": limit})
        assert r.status_code == 200, r.text
        msgs = r.json()["messages"]
        for m in msgs:
            assert m["id"] not in got, m
            got[m["id"]] = m["content"]["data"]
        if not msgs:
            return got


def history(c, channel):
    """Every message of a topic (by `after`, so no cursor moves): [(id, data)] in order."""
    out, after = [], "0000000000000000"
    while True:
        r = c.get(f"/channels/{channel}", params={"after": after, "limit": 1000})
        assert r.status_code == 200, r.text
        msgs = r.json()["messages"]
        out += [(m["id"], m["content"]["data"]) for m in msgs]
        if not r.json()["more"]:
            return out
        after = msgs[-1]["id"]


def ws_call(srv, token, calls):
    """Connects over WebSocket and runs [(method, body)]; returns the replies."""
    async def go():
        async with websockets.connect(f"ws://{srv.host}:{srv.port}/connection/websocket",
                                      ping_interval=None, open_timeout=10) as ws:
            out = []
            for i, (method, body) in enumerate([("connect", {"token": token}), *calls], 1):
                await ws.send(json.dumps({"id": i, method: body}))
                while True:
                    for line in (await asyncio.wait_for(ws.recv(), 15)).split("\n"):
                        obj = json.loads(line) if line.strip() else {}
                        if obj.get("id") == i:
                            out.append(obj)
                    if len(out) == i:
                        break
            return out[1:]
    return asyncio.run(asyncio.wait_for(go(), 60))


# ---- 1. kill -9 under load --------------------------------------------------------------------


class Ledger:
    """What the clients were told, per channel. Shared by the load threads (one lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = {}      # payload key -> payload (every write sent, answered or not)
        self.written = {}        # (channel, id) -> payload key, for writes answered 200
        self.by_payload = {}     # payload key -> id (from a write reply or a claim)
        self.claimed = set()     # (channel, id) claimed with a 200
        self.acked = set()       # (channel, id) whose acknowledgement was answered and counted
        self.ack_unknown = set() # (channel, id) in an ack without a reply, or a partial count
        self.unanswered = {}     # channel -> claims sent that got no reply (killed)
        self.max_seen = {}       # channel -> highest id seen in any reply
        self.epoch = None        # topic t's WebSocket stream epoch, once seen
        self.floor = {}          # channel -> max_seen at the last kill: new ids must be above
        self.errors = []

    def fail(self, msg):
        with self.lock:
            self.errors.append(msg)

    def seen(self, ch, mid):
        n = int(mid, 16)
        if n > self.max_seen.get(ch, 0):
            self.max_seen[ch] = n

    def wrote(self, ch, mid, key):
        with self.lock:
            if int(mid, 16) <= self.floor.get(ch, 0):
                self.errors.append(f"{ch}: id {mid} reused after a restart (floor "
                                   f"{self.floor[ch]:016x})")
            if (ch, mid) in self.written or self.by_payload.get(key, mid) != mid:
                self.errors.append(f"{ch}: id {mid} given twice or payload {key} has two ids")
            self.written[(ch, mid)] = key
            self.by_payload[key] = mid
            self.seen(ch, mid)

    def got(self, ch, msgs):
        """Messages a claim or read returned: known payloads, never an acknowledged one."""
        with self.lock:
            for m in msgs:
                mid, data = m["id"], m["content"]["data"]
                key = data.get("key") if isinstance(data, dict) else None
                if (ch, mid) in self.acked:
                    self.errors.append(f"{ch}: acknowledged message {mid} came back")
                if key not in self.attempted:
                    self.errors.append(f"{ch}: message {mid} holds a payload never written: {data}")
                elif self.attempted[key] != data:
                    self.errors.append(f"{ch}: message {mid} payload changed: {data}")
                if self.by_payload.setdefault(key, mid) != mid:
                    self.errors.append(f"{ch}: payload {key} under two ids "
                                       f"{self.by_payload[key]} and {mid}")
                self.seen(ch, mid)

    def kill_point(self):
        with self.lock:
            self.floor = dict(self.max_seen)


_nonce = iter(range(1 << 62))


def payload(ch, who, n):
    key = f"{ch}-{who}-{n}-{next(_nonce)}"  # unique in the process
    return key, {"key": key, "who": who, "n": n, "pad": "p" * random.randint(0, 300)}


def queue_worker(url, token, ch, who, led, stop, limit=4, ack=True):
    """Writes, claims and (unless ack=False) acknowledges in a loop until stopped or the server
    is gone."""
    c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=20)
    n, phase = 0, None
    try:
        while not stop.is_set():
            n += 1
            phase = "write"
            key, p = payload(ch, who, n)
            with led.lock:
                led.attempted[key] = p
            r = c.put(f"/channels/{ch}", content=json.dumps(p))
            if r.status_code != 200:
                return led.fail(f"write {ch}: {r.status_code} {r.text}")
            led.wrote(ch, r.json()["item_id"], key)
            phase = "claim"
            r = c.get(f"/channels/{ch}", params={"exclusive": "true", "limit": limit})
            if r.status_code != 200:
                return led.fail(f"claim {ch}: {r.status_code} {r.text}")
            phase = "ack"
            msgs = r.json()["messages"]
            led.got(ch, msgs)
            ids = [m["id"] for m in msgs]
            with led.lock:
                led.claimed.update((ch, i) for i in ids)
            if not ids or not ack:
                continue
            with led.lock:
                led.ack_unknown.update((ch, i) for i in ids)
            r = c.post(f"/channels/{ch}/acknowledge", json={"message_ids": ids})
            if r.status_code != 200:
                return led.fail(f"ack {ch}: {r.status_code} {r.text}")
            count = r.json()["acknowledged"]
            with led.lock:
                if count == len(ids):  # all of them: each one is gone for good
                    led.acked.update((ch, i) for i in ids)
                if count in (0, len(ids)):
                    led.ack_unknown.difference_update((ch, i) for i in ids)
    except httpx.TransportError:  # killed; a claim without a reply may hold up to limit
        if phase == "claim":
            with led.lock:
                led.unanswered[ch] = led.unanswered.get(ch, 0) + limit
    finally:
        c.close()


def topic_worker(url, token, led, stop, cursor):
    """Publishes to topic t and reads it through the reader's cursor, which never goes back."""
    c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=20)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            key, p = payload("t", "tw", n)
            with led.lock:
                led.attempted[key] = p
            r = c.put("/channels/t", content=json.dumps(p))
            if r.status_code != 200:
                return led.fail(f"write t: {r.status_code} {r.text}")
            led.wrote("t", r.json()["item_id"], key)
            r = c.get("/channels/t", params={"limit": 3})
            if r.status_code != 200:
                return led.fail(f"read t: {r.status_code} {r.text}")
            msgs = r.json()["messages"]
            led.got("t", msgs)
            for m in msgs:
                if int(m["id"], 16) <= cursor[0]:
                    led.fail(f"t: the cursor went back: {m['id']} after {cursor[0]:016x}")
                cursor[0] = int(m["id"], 16)
    except httpx.TransportError:
        pass
    finally:
        c.close()


def check_after_restart(srv, led, cursor, run):
    """Everything answered before the kill is there, and nothing acknowledged came back."""
    adm = srv.client(tok(srv, "checker"))
    # Seq high-water on a queue that was empty at the kill: a new id is above the acked one.
    r = adm.put("/channels/hw", json={"run": run})
    assert r.status_code == 200, r.text
    hw = int(r.json()["item_id"], 16)
    assert hw > led.max_seen.get("hw", 0), (hw, led.max_seen)
    led.max_seen["hw"] = hw
    msgs = adm.get("/channels/hw", params={"exclusive": "true"}).json()["messages"]
    assert [m["id"] for m in msgs] == [r.json()["item_id"]], msgs
    assert adm.post("/channels/hw/acknowledge",
                    json={"message_ids": [msgs[0]["id"]]}).json()["acknowledged"] == 1
    # Queue q: its depth lies between what must be there and what may be there.
    with led.lock:
        must = {i for (ch, i) in led.written if ch == "q"} | {i for (ch, i) in led.claimed
                                                               if ch == "q"}
        must -= {i for (ch, i) in led.acked | led.ack_unknown if ch == "q"}
        may = sum(1 for k in led.attempted if k.startswith("q-")) - sum(
            1 for (ch, _) in led.acked if ch == "q")
    depth = adm.get("/channels/q/info").json()["depth"]
    assert len(must) <= depth <= may, (len(must), depth, may)
    # Queue held (lease 3600 s): nothing claimed before the kill is claimable again; all the
    # rest is, and is taken out of the way (acknowledged) here.
    prober = srv.client(tok(srv, "prober"))
    with led.lock:
        held_acked = {i for (ch, i) in led.acked if ch == "held"}
    got = claim_all(prober, "held")
    led.got("held", [{"id": i, "content": {"data": d}} for i, d in got.items()])
    with led.lock:
        held_claimed = {i for (ch, i) in led.claimed if ch == "held"}
        held_written = {i for (ch, i) in led.written if ch == "held"}
    back = held_claimed & set(got)
    assert not back, f"claimed before the kill, claimable again after it: {sorted(back)}"
    # All the rest is claimable, but for what claims without a reply may have taken.
    missing = held_written - held_claimed - held_acked - set(got)
    assert len(missing) <= led.unanswered.get("held", 0), (sorted(missing), led.unanswered)
    if got:
        r = prober.post("/channels/held/acknowledge", json={"message_ids": list(got)})
        assert r.json()["acknowledged"] == len(got), r.text
        with led.lock:
            led.acked.update(("held", i) for i in got)
    depth = adm.get("/channels/held/info").json()["depth"]
    assert depth >= len(held_claimed - {i for (ch, i) in led.acked if ch == "held"}), depth
    # Topic t: every published message, in order, with its data; the cursor never goes back.
    hist = history(adm, "t")
    ids = [i for i, _ in hist]
    assert ids == sorted(set(ids)), "topic ids out of order or repeated"
    led.got("t", [{"id": i, "content": {"data": d}} for i, d in hist])
    with led.lock:
        want = {i for (ch, i) in led.written if ch == "t"}
    assert want <= set(ids), sorted(want - set(ids))
    reader = srv.client(tok(srv, "tw"))
    msgs = reader.get("/channels/t", params={"limit": 1000}).json()["messages"]
    assert all(int(m["id"], 16) > cursor[0] for m in msgs), (cursor[0], [m["id"] for m in msgs])
    if msgs:
        cursor[0] = int(msgs[-1]["id"], 16)
    # WebSocket: the stream's offset is the top message's, and a client recovers from an
    # offset that was given out before the kill.
    if hist:
        top = int(hist[-1][0], 16)
        h, = ws_call(srv, tok(srv, "wsr", role="read"),
                     [("history", {"channel": "t", "limit": 0})])
        assert h["history"]["offset"] == top, h
        epoch = h["history"]["epoch"]
        # The stream is the same one after a restart: its epoch is stored with the channel.
        assert led.epoch in (None, epoch), (led.epoch, epoch)
        led.epoch = epoch
        if len(hist) >= 3:
            s, = ws_call(srv, tok(srv, "wsr", role="read"),
                         [("subscribe", {"channel": "t", "recover": True, "epoch": epoch,
                                         "offset": top - 2})])
            sub = s["subscribe"]
            assert sub.get("recovered") is True, s
            assert [p["offset"] for p in sub["publications"]] == [top - 1, top], s
            assert [p["data"] for p in sub["publications"]] == [d for _, d in hist[-2:]], s


def test_kill9_under_load_and_restart(nodes, tmp_path):
    conf = tmp_path / "sluice.conf"
    conf.write_text("[channel q]\nclaim_timeout = 2\n[channel held]\nclaim_timeout = 3600\n"
                    "[channel hw]\n[channel t]\nkind = topic\n")
    node = nodes(tmp_path / "data", "--config", str(conf))
    led, cursor = Ledger(), [0]
    rnd = random.Random()
    kills = 20
    for run in range(kills + 1):
        srv = node.start()
        check_after_restart(srv, led, cursor, run)
        assert not led.errors, led.errors[:10]
        if run == kills:
            break
        stop = threading.Event()
        threads = [threading.Thread(target=queue_worker,
                                    args=(srv.url, tok(srv, f"w{i}"), "q", f"w{i}", led, stop))
                   for i in range(8)]
        threads.append(threading.Thread(target=queue_worker, args=(
            srv.url, tok(srv, "holder"), "held", "holder", led, stop, 1, False)))
        threads.append(threading.Thread(target=topic_worker,
                                        args=(srv.url, tok(srv, "tw"), led, stop, cursor)))
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.3, 1.5))
        node.kill()
        stop.set()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        # Only now: a reply that arrived just before the kill may be recorded just after it, and
        # must count in the floor rather than look like an id handed out again.
        led.kill_point()
        assert not led.errors, led.errors[:10]
    # Drain q once the last leases (2 s) ran out: exactly what must be there, and nothing acked.
    drainer = srv.client(tok(srv, "drainer"))
    with led.lock:
        must = {i for (ch, i) in led.written.keys() | led.claimed if ch == "q"}
        must -= {i for (ch, i) in led.acked | led.ack_unknown if ch == "q"}
    drained = {}
    deadline = time.time() + 60
    while time.time() < deadline:
        got = claim_all(drainer, "q")
        led.got("q", [{"id": i, "content": {"data": d}} for i, d in got.items()])
        drained.update(got)
        if got:
            r = drainer.post("/channels/q/acknowledge", json={"message_ids": list(got)})
            assert r.json()["acknowledged"] == len(got), r.text
        if drainer.get("/channels/q/info").json()["depth"] == 0:
            break
        time.sleep(0.5)
    assert drainer.get("/channels/q/info").json()["depth"] == 0
    assert must <= set(drained), sorted(must - set(drained))
    assert not led.errors, led.errors[:10]
    assert len(led.acked) > 0 and len(led.written) > 100, (len(led.acked), len(led.written))
    node.stop()


# ---- 2. security state across restarts --------------------------------------------------------


def test_security_state_survives_restart(nodes, tmp_path):
    conf = tmp_path / "sec.conf"
    conf.write_text("[role workers]\ngrants = write\nchannels = jobs\n[channel jobs]\n")
    node = nodes(tmp_path / "data", "--config", str(conf), "--authz", "acl", "--admin", "ops")
    s = node.start()
    past = int(time.time()) - 10
    ops = s.client(s.token("ops"))
    assert ops.put("/acl/worker-1", json={"role": "write", "channels": ["jobs"]}).status_code == 200
    assert ops.put("/acl/temp", json={"role": "write"}).status_code == 200
    assert ops.delete("/acl/temp").status_code == 200
    assert ops.put("/acl/mallory", json={"role": "write"}).status_code == 200
    r = ops.put("/broker/principals/bob", json={"roles": ["workers"]})
    assert r.status_code == 200, r.text
    r = ops.post("/apikeys", json={"principal": "worker-1", "role": "write", "channels": ["jobs"]})
    assert r.status_code == 201, r.text
    kept = r.json()["key"]
    r = ops.post("/apikeys", json={"principal": "worker-1", "role": "write"})
    gone, gone_id = r.json()["key"], r.json()["id"]
    assert ops.delete(f"/apikeys/{gone_id}").status_code == 200
    revoked = s.token("worker-1", jti="w1-a", iat=past)
    old_mallory = s.token("mallory", jti="m-1", iat=past)
    assert s.client(revoked).put("/channels/jobs", json=1).status_code == 200
    assert s.client(old_mallory).put("/channels/jobs", json=1).status_code == 200
    assert ops.post("/revoke", json={"token_id": "w1-a"}).status_code == 200
    assert ops.post("/revoke", json={"user_id": "mallory"}).status_code == 200

    def check(s):
        assert s.client(s.token("worker-1", jti="w1-b")).put("/channels/jobs",
                                                            json=2).status_code == 200
        r = s.client(revoked).put("/channels/jobs", json=3)
        assert r.status_code == 401 and r.json()["message"] == "token revoked", r.text
        assert s.client(old_mallory).put("/channels/jobs", json=3).status_code == 401
        later = s.token("mallory", jti="m-2", iat=int(time.time()) + 2)
        assert s.client(later).put("/channels/jobs", json=3).status_code == 200
        assert s.client(s.token("temp")).put("/channels/jobs", json=3).status_code == 403
        assert s.client(kept).put("/channels/jobs", json=4).status_code == 200
        assert s.client(gone).put("/channels/jobs", json=4).status_code == 401
        ops = s.client(s.token("ops"))
        assert ops.get("/broker/principals/bob").json() == {"principal": "bob",
                                                            "roles": ["workers"]}
        grants = json.dumps(ops.get("/acl").json())
        assert "worker-1" in grants and "temp" not in grants
        assert gone_id not in json.dumps(ops.get("/apikeys").json())

    check(s)
    node.kill()  # everything above was answered, so it is on disk
    check(node.start())
    node.stop()  # and after a clean stop too
    check(node.start())
    node.stop()


# ---- 3. bad data directories --------------------------------------------------------------------


def make_store(nodes, data):
    node = nodes(data)
    s = node.start()
    c = s.client(tok(s, "ops"))
    assert c.post("/channels", json={"id": "q"}).status_code == 201
    for i in range(200):
        assert c.put("/channels/q", json={"i": i, "pad": "x" * 300}).status_code == 200
    node.stop()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "meta-pages", "pages-ff",
                                    "pages-random"])
def test_corrupt_data_file_refused(nodes, tmp_path, damage):
    data = tmp_path / "data"
    make_store(nodes, data)
    f = data / "data.mdb"
    size = f.stat().st_size
    if damage == "truncated":
        # Into the pages in use (about 70 KiB of messages), not just the zeros that sync mode
        # keeps written past them (docs/STORAGE.md): cutting only those loses nothing.
        os.truncate(f, 4 * 4096)
        expect = "is truncated"
    elif damage == "garbage":
        f.write_bytes(random.Random(1).randbytes(size))
        expect = "is not a sluice LMDB store"
    elif damage == "meta-pages":  # both meta pages (the first two 4 KiB pages) overwritten
        with open(f, "r+b") as fh:
            fh.write(random.Random(2).randbytes(8192))
        expect = "is not a sluice LMDB store"
    else:  # every page but the two meta pages: LMDB keeps no checksums, so the damage is found
        # only where loading reads it (a fault inside LMDB, or a page it finds is not one)
        with open(f, "r+b") as fh:
            fh.seek(8192)
            fh.write(b"\xff" * (size - 8192) if damage == "pages-ff"
                     else random.Random(3).randbytes(size - 8192))
        expect = "damaged"
    err = refused(["--data-dir", str(data)])
    assert expect in err and str(data) in err, err


def test_unusable_data_dir(tmp_path):
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    err = refused(["--data-dir", str(plain / "data")])
    assert f"cannot create the data directory {plain / 'data'}: Not a directory" in err, err
    err = refused(["--data-dir", str(plain)])
    assert f"cannot create the data directory {plain}: Not a directory" in err, err
    # A directory the server's user may not enter (root's 0700 directory, run as nobody).
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o755)
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed"
    err = refused(["--data-dir", str(locked / "data")],
                  prefix=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert str(locked / "data") in err and "Permission denied" in err, err


def test_two_servers_one_data_dir(nodes, tmp_path):
    node = nodes(tmp_path / "data")
    s = node.start()
    err = refused(["--data-dir", str(tmp_path / "data")])
    assert f"data directory {tmp_path / 'data'} is in use by another sluiced (pid " \
           f"{s.proc.pid})" in err, err
    assert s.client(tok(s, "ops")).get("/healthz").status_code == 200
    node.stop()


def test_newer_format_refused(nodes, tmp_path):
    import lmdb
    data = tmp_path / "data"
    make_store(nodes, data)
    for value, expect in ((b"2", "has store format 2, newer than format 1"),
                          (b"x1", "has an unreadable store format version")):
        env = lmdb.open(str(data), max_dbs=16, subdir=True)
        with env.begin(write=True, db=env.open_db(b"meta")) as txn:
            txn.put(b"format", value)
        env.close()
        err = refused(["--data-dir", str(data)])
        assert expect in err and str(data) in err, err
    env = lmdb.open(str(data), max_dbs=16, subdir=True)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"format", b"1")
    env.close()
    s = nodes(data).start()  # back to this build's format: it serves what it held
    assert len(claim_all(s.client(tok(s, "ops")), "q")) == 200


def test_full_disk(nodes, tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"mount tmpfs (needs root): {r.stderr}"
    node = None
    try:
        data = mnt / "data"
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (768 << 10))  # taken back later to make room
        node = nodes(data)
        s = node.start()
        c = s.client(tok(s, "ops"))
        assert c.post("/channels", json={"id": "q"}).status_code == 201
        ok, answer = [], None
        for i in range(2000):
            r = c.put("/channels/q", json={"i": i, "pad": "d" * 4000})
            if r.status_code == 200:
                ok.append(r.json()["item_id"])
                continue
            answer = r
            break
        assert answer is not None, "the disk never filled"
        assert answer.status_code == 507, answer.text
        body = answer.json()
        assert body["error"] == "insufficient_storage", body
        assert "could not be made durable" in body["message"] and "disk full" in body["message"]
        assert len(ok) > 10
        # The server still answers: the health check and listings at once (they change nothing);
        # a channel read waits for the store like every channel operation, so while the failed
        # batch is pending it may say 507; a change fails the same way.
        assert c.get("/healthz").status_code == 200
        assert c.get("/acl").status_code == 200
        r = c.get("/channels/q/info")
        assert r.status_code in (200, 507), r.text
        assert r.status_code == 200 or r.json()["error"] == "insufficient_storage", r.text
        assert c.put("/channels/q", json={"more": 1}).status_code == 507
        assert node.running()
        # Room again: the failed batches are retried, and new writes succeed.
        filler.unlink()
        deadline = time.time() + 30
        while time.time() < deadline:
            r = c.put("/channels/q", json={"after": "room"})
            if r.status_code == 200:
                break
            assert r.status_code == 507, r.text
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        ok.append(r.json()["item_id"])
        assert c.get("/healthz").status_code == 200
        node.kill()
        s = node.start()
        got = claim_all(s.client(tok(s, "ops")), "q")
        assert set(ok) <= set(got), sorted(set(ok) - set(got))
        node.stop()
    finally:
        if node is not None and node.running():  # a failed test: free the mount first
            node.kill()
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ---- 4. online backup under load --------------------------------------------------------------


def test_backup_under_load(nodes, tmp_path):
    data, dest = tmp_path / "data", tmp_path / "copy"
    node = nodes(data)
    s = node.start()
    c = s.client(tok(s, "ops"))
    assert c.post("/channels", json={"id": "q"}).status_code == 201
    assert c.post("/channels", json={"id": "t", "kind": "topic"}).status_code == 201
    assert c.post("/channels", json={"id": "load"}).status_code == 201
    before = {}
    for i in range(150):
        r = c.put("/channels/q" if i % 2 else "/channels/t", json={"i": i})
        assert r.status_code == 200
        before[("q" if i % 2 else "t", r.json()["item_id"])] = {"i": i}
    stop = threading.Event()
    led = Ledger()
    load = [threading.Thread(target=queue_worker,
                             args=(s.url, tok(s, f"bw{i}"), "load", f"bw{i}", led, stop))
            for i in range(3)]
    for t in load:
        t.start()
    try:
        r = subprocess.run([SLUICE_CLI, "backup", "--data-dir", str(data), str(dest)],
                           capture_output=True, text=True, timeout=120)
    finally:
        stop.set()
        for t in load:
            t.join(60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"status": "ok", "data_dir": str(data), "dest": str(dest)}
    assert not led.errors, led.errors[:10]
    copy = nodes(dest).start()  # beside the original, which still runs
    cc = copy.client(tok(copy, "restorer"))
    got = claim_all(cc, "q")
    hist = dict(history(cc, "t"))
    for (ch, mid), data_ in before.items():
        assert (got if ch == "q" else hist).get(mid) == data_, (ch, mid)
    assert len(got) == sum(1 for k in before if k[0] == "q")
    assert cc.get("/channels/load/info").status_code == 200
    assert s.client(tok(s, "ops")).get("/healthz").status_code == 200


# ---- 5. durability modes ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "batch", "none"])
def test_durability_modes_restart_cleanly(nodes, tmp_path, mode):
    node = nodes(tmp_path / "data", "--durability", mode)
    s = node.start()
    assert f"durability {mode}" in s.stderr(), s.stderr()
    c = s.client(tok(s, "ops"))
    assert c.post("/channels", json={"id": "q", "claim_timeout": 3600}).status_code == 201
    assert c.post("/channels", json={"id": "t", "kind": "topic"}).status_code == 201
    ids = [c.put("/channels/q", json={"i": i}).json()["item_id"] for i in range(20)]
    tids = [c.put("/channels/t", json={"i": i}).json()["item_id"] for i in range(5)]
    claimed = [m["id"] for m in c.get("/channels/q", params={"exclusive": "true",
                                                             "limit": 3}).json()["messages"]]
    assert claimed == ids[:3]
    acked = [m["id"] for m in s.client(tok(s, "other")).get(
        "/channels/q", params={"exclusive": "true", "limit": 2}).json()["messages"]]
    assert s.client(tok(s, "other")).post("/channels/q/acknowledge",
                                          json={"message_ids": acked}).json()["acknowledged"] == 2
    assert [m["id"] for m in c.get("/channels/t", params={"limit": 2}).json()["messages"]] == \
        tids[:2]
    node.stop()
    s = node.start()
    c = s.client(tok(s, "ops"))
    got = claim_all(s.client(tok(s, "third")), "q")
    assert sorted(got) == ids[5:], sorted(got)  # claimed ones still leased, acked ones gone
    assert [m["id"] for m in c.get("/channels/t", params={"limit": 10}).json()["messages"]] == \
        tids[2:]  # the cursor
    assert c.put("/channels/q", json="new").json()["item_id"] > ids[-1]
    node.stop()


# ---- 6. audit log across rotation and kill -9 -------------------------------------------------


def test_audit_log_rotation_and_kill9(nodes, tmp_path, cli):
    log = tmp_path / "audit.jsonl"
    node = nodes(tmp_path / "data", "--authz", "acl", "--admin", "ops", "--audit-log", str(log))
    s = node.start()
    ops = s.client(s.token("ops"))
    for i in range(3):
        assert ops.put(f"/acl/before-{i}", json={"role": "read"}).status_code == 200
    os.rename(log, f"{log}.1")
    s.proc.send_signal(signal.SIGHUP)
    node.wait_stderr("audit log reopened")
    granted = []
    stop = threading.Event()

    def grant_loop():
        c = s.client(s.token("ops"))
        try:
            for i in range(100000):
                if stop.is_set():
                    return
                if c.put(f"/acl/after-{i}", json={"role": "read"}).status_code == 200:
                    granted.append(f"after-{i}")
        except httpx.TransportError:
            pass

    t = threading.Thread(target=grant_loop)
    t.start()
    deadline = time.time() + 30
    while len(granted) < 20 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0, 0.3))
    node.kill()
    stop.set()
    t.join(60)
    assert len(granted) >= 20
    r = cli("audit", "verify", f"{log}.1", str(log))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(x) for p in (f"{log}.1", log) for x in open(p).read().splitlines()]
    out = json.loads(r.stdout)
    assert out["status"] == "intact" and out["records"] == len(lines), (out, len(lines))
    recorded = {x.get("principal") for x in lines if x["event"] == "acl.grant"}
    assert {f"before-{i}" for i in range(3)} | set(granted) <= recorded
    # The restarted server continues the chain in the same file.
    s = node.start()
    assert s.client(s.token("ops")).put("/acl/last", json={"role": "read"}).status_code == 200
    node.stop()
    r = cli("audit", "verify", f"{log}.1", str(log))
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"last"' in log.read_text()
