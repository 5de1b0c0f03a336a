"""GET /metrics (docs/OPERATIONS.md "Metrics"): traffic over HTTP and WebSocket moves the counters
by exactly what was done; the whole text is read by Debian's python3-prometheus-client parser and
passes `promtool check metrics` without a lint remark; reading it is the admin operation
metrics.read on the API listener, while a metrics listener (--listen HOST:PORT,metrics) serves it
without credentials and nothing else. The counters are read from the metrics listener, so the
scrapes themselves do not count as API requests. Nothing here is timed: a wait only polls for a
state the server reaches by itself (a closed socket's session leaves the gauge)."""
import json
import re
import shutil
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Server
from wsraw import RawWS

PROMTOOL = shutil.which("promtool")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CONFIG = """
metrics_top_channels = 2
metrics_channels = quiet.*
[channel news]
kind = topic
"""


class MetricsServer(Server):
    """A sluiced with the conftest's API listener and a metrics listener after it."""

    def started_by(self, line):
        m = re.search(r"listening on ([\d.]+):(\d+) \((\S*)", line)
        if not m:
            return False
        if m.group(3).startswith("metrics"):
            self.metrics_url = f"http://{m.group(1)}:{m.group(2)}"
            return True
        self.host, self.port = m.group(1), int(m.group(2))
        self.url = f"http://{self.host}:{self.port}"
        return False


@pytest.fixture
def srv(make_server, tmp_path):
    conf = tmp_path / "metrics.conf"
    conf.write_text(CONFIG)
    s = make_server("--config", str(conf), "--listen", "127.0.0.1:0,metrics", cls=MetricsServer)
    s.admin = s.client(s.token("ops", role="admin"))
    s.worker = s.client(s.token("w1", role="write"))
    s.reader = s.client(s.token("r1", role="read"))
    return s


def text_of(s):
    r = httpx.get(s.metrics_url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    return r.text


def samples(text):
    """{(sample name, ((label, value), ...)): value} of the whole text, through the parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            key = (smp.name, tuple(sorted(smp.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = smp.value
    return out


def scrape(s):
    return samples(text_of(s))


def val(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0)


def delta(before, after, name, **labels):
    return val(after, name, **labels) - val(before, name, **labels)


def promtool_check(text):
    assert PROMTOOL, "promtool is missing (scripts/deps installs prometheus)"
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        f"promtool check metrics: rc {p.returncode}\n{p.stdout}\n{p.stderr}"


def make(s, cid, **opts):
    r = s.admin.post("/channels", json={"id": cid, **opts})
    assert r.status_code == 201, r.text


def test_http_traffic_moves_the_counters(srv):
    make(srv, "jobs", kind="queue")
    before = scrape(srv)
    for i in range(3):
        assert srv.worker.put("/channels/jobs", json={"n": i}).status_code == 200
    r = srv.worker.get("/channels/jobs?exclusive=true&limit=2")
    assert r.status_code == 200
    m1, m2 = r.json()["messages"]
    assert val(scrape(srv), "sluice_channel_inflight", channel="jobs") == 2
    r = srv.worker.post("/channels/jobs/acknowledge", json={"message_ids": [m1["id"]]})
    assert r.status_code == 200 and r.json()["acknowledged"] == 1
    r = srv.worker.post("/channels/jobs/terminate", json={"message_ids": [m2["id"]]})
    assert r.status_code == 200, r.text
    assert srv.reader.put("/channels/jobs", json={"no": 1}).status_code == 403
    assert srv.reader.post("/acl/x", json={}).status_code == 405  # no such method: no route
    assert srv.client().get("/channels/jobs/info").status_code == 401
    assert srv.client("not-a-token").get("/channels/jobs/info").status_code == 401
    assert srv.client(srv.token("w1", role="write", ttl=-60)).get("/channels").status_code == 401
    after = scrape(srv)

    d = lambda name, **kw: delta(before, after, name, **kw)  # noqa: E731
    assert d("sluice_http_requests_total", op="channel.write", status="200") == 3
    assert d("sluice_http_requests_total", op="channel.write", status="403") == 1
    assert d("sluice_http_requests_total", op="channel.read", status="200") == 1
    assert d("sluice_http_requests_total", op="channel.acknowledge", status="200") == 1
    assert d("sluice_http_requests_total", op="channel.terminate", status="200") == 1
    assert d("sluice_http_requests_total", op="none", status="405") == 1
    assert d("sluice_http_requests_total", op="channel.info", status="401") == 2
    assert d("sluice_http_requests_total", op="channel.list", status="401") == 1
    assert d("sluice_http_request_duration_seconds_count", op="channel.write") == 4
    assert d("sluice_http_request_duration_seconds_bucket", op="channel.write", le="+Inf") == 4
    assert d("sluice_authorization_denials_total", op="channel.write") == 1
    # 3 writes, a claim, an ack, a terminate, the denied write (its caller was authenticated)
    assert d("sluice_authentications_total", authenticator="jwt", outcome="ok") == 7
    assert d("sluice_authentications_total", authenticator="none", outcome="missing") == 1
    assert d("sluice_authentications_total", authenticator="none", outcome="invalid") == 1
    assert d("sluice_authentications_total", authenticator="none", outcome="expired") == 1
    assert d("sluice_revocation_checks_total", outcome="ok") == 7
    # the engine: 3 appends, one claim, an ack, a terminate (the denied write never got there)
    assert d("sluice_engine_request_duration_seconds_count", op="append") == 3
    assert d("sluice_engine_request_duration_seconds_count", op="claim") == 1
    assert d("sluice_engine_request_duration_seconds_count", op="ack") == 1
    assert d("sluice_engine_request_duration_seconds_count", op="terminate") == 1
    # timed on the monotonic clock: an fsynced append takes more than nothing, even when it is
    # well under the millisecond the loop's own clock counts in
    assert 0 < d("sluice_engine_request_duration_seconds_sum", op="append") < 30
    assert d("sluice_dead_letters_total") == 1
    # the embedded store made them durable (durability sync: each commit is an fsync)
    assert d("sluice_store_commits_total") >= 1
    assert d("sluice_store_sync_duration_seconds_count") >= 1
    assert val(after, "sluice_store_file_bytes") > 0
    assert val(after, "sluice_store_map_size_bytes") > 0
    # jobs holds one claimed message; its dead-letter queue the terminated one
    assert val(after, "sluice_channel_depth", channel="jobs", kind="queue") == 1
    assert val(after, "sluice_channel_inflight", channel="jobs") == 0
    assert val(after, "sluice_channel_dead_letters", channel="jobs") == 1
    assert val(after, "process_resident_memory_bytes") > 0
    assert val(after, "process_open_fds") > 0
    assert val(after, "sluice_build_info", version="0.1.0") == 1


def test_channels_are_bounded_to_top_n_and_opt_in_patterns(srv):
    depths = {"a": 1, "b": 4, "c": 2, "d": 3, "quiet.one": 0}
    for cid, n in depths.items():
        make(srv, cid)
        for i in range(n):
            assert srv.admin.put(f"/channels/{cid}", json={"i": i}).status_code == 200
    m = scrape(srv)
    shown = {dict(k[1])["channel"]: v for k, v in m.items() if k[0] == "sluice_channel_depth"}
    # metrics_top_channels = 2: the two deepest; metrics_channels = quiet.*: that one as well
    assert shown == {"b": 4, "d": 3, "quiet.one": 0}
    assert val(m, "sluice_channels") == 6  # every channel of the store: news as well


def test_websocket_traffic_moves_the_counters(srv):
    before = scrape(srv)
    ws = RawWS(srv.host, srv.port)
    assert ws.status == 101
    rep = ws.call("connect", {"token": srv.token("sub-1", role="read")}, timeout=10)
    assert "connect" in rep, rep
    rep = ws.call("subscribe", {"channel": "news"}, timeout=10)
    assert "subscribe" in rep, rep
    mid = scrape(srv)
    assert delta(before, mid, "sluice_ws_connections_total") == 1
    assert delta(before, mid, "sluice_ws_subscriptions_total") == 1
    assert val(mid, "sluice_ws_connections") == 1
    assert val(mid, "sluice_ws_subscriptions") == 1
    for i in range(2):
        assert srv.worker.put("/channels/news", json={"i": i}).status_code == 200
    got = []
    deadline = time.time() + 10
    while len(got) < 2 and time.time() < deadline:
        for o in ws.recv_objs(timeout=10):
            pub = o.get("push", {}).get("pub")
            if pub:
                got.append(pub["data"])
    assert got == [{"i": 0}, {"i": 1}]
    # a frame that is not the protocol: the server ends the session with 3501 (bad request)
    ws.send_text("this is not json")
    assert ws.recv_message(timeout=10)[:2] == ("close", 3501)
    ws.close()
    after = scrape(srv)
    deadline = time.time() + 10
    while val(after, "sluice_ws_connections") != 0 and time.time() < deadline:
        time.sleep(0.05)
        after = scrape(srv)
    assert delta(before, after, "sluice_ws_deliveries_total") == 2
    assert delta(before, after, "sluice_ws_disconnects_total", code="3501") == 1
    assert delta(before, after, "sluice_ws_received_bytes_total") > len("this is not json")
    assert delta(mid, after, "sluice_ws_sent_bytes_total") > 0
    assert val(after, "sluice_ws_connections") == 0
    assert val(after, "sluice_ws_subscriptions") == 0
    assert delta(before, after, "sluice_authentications_total", authenticator="jwt",
                 outcome="ok") == 3  # the connect and the two writes


def test_reading_metrics_is_authorised(srv):
    before = scrape(srv)
    assert srv.client().get("/metrics").status_code == 401
    r = srv.worker.get("/metrics")
    assert r.status_code == 403 and r.headers["content-type"] == "application/json"
    r = srv.admin.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    samples(r.text)
    # the metrics listener serves /metrics alone, and asks nothing
    assert httpx.get(srv.metrics_url + "/channels", timeout=10).status_code == 404
    assert httpx.post(srv.metrics_url + "/metrics", timeout=10).status_code == 404
    assert httpx.get(srv.metrics_url + "/metrics", timeout=10).status_code == 200
    after = scrape(srv)
    assert delta(before, after, "sluice_authorization_denials_total", op="metrics.read") == 1
    assert delta(before, after, "sluice_http_requests_total", op="metrics.read", status="200") == 1
    assert delta(before, after, "sluice_http_requests_total", op="metrics.read", status="401") == 1


def test_whole_text_parses_and_passes_promtool(srv):
    # traffic of every kind first, so that the labelled families have series
    make(srv, "work:odd_id-1.x", kind="queue")
    srv.worker.put("/channels/work:odd_id-1.x", json={"a": 1})
    srv.worker.get("/channels/work:odd_id-1.x?exclusive=true")
    srv.reader.put("/channels/news", json={})
    srv.client("bad").get("/channels")
    srv.admin.get("/metrics")
    ws = RawWS(srv.host, srv.port)
    ws.call("connect", {"token": srv.token("sub-1", role="read")}, timeout=10)
    ws.call("subscribe", {"channel": "news"}, timeout=10)
    srv.worker.put("/channels/news", json={"x": 1})
    ws.recv_objs(timeout=10)
    ws.close()
    for text in (text_of(srv), srv.admin.get("/metrics").text):
        fams = {f.name: f.type for f in text_string_to_metric_families(text)}
        for name, kind in {"sluice_http_requests": "counter",
                           "sluice_http_request_duration_seconds": "histogram",
                           "sluice_authentications": "counter",
                           "sluice_engine_request_duration_seconds": "histogram",
                           "sluice_store_sync_duration_seconds": "histogram",
                           "sluice_channel_depth": "gauge",
                           "sluice_ws_deliveries": "counter",
                           "process_resident_memory_bytes": "gauge"}.items():
            assert fams.get(name) == kind, (name, fams.get(name))
        samples(text)
        promtool_check(text)


def test_alert_rules_pass_promtool():
    import os
    rules = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "prometheus",
                         "alerts.yml")
    assert PROMTOOL, "promtool is missing (scripts/deps installs prometheus)"
    p = subprocess.run([PROMTOOL, "check", "rules", rules], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_metrics_listener_stays_on_loopback(tmp_path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True,
                   timeout=60)
    from conftest import SECRET, SLUICED
    env = {"SLUICE_JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    p = subprocess.run([SLUICED, "--engine", "memory", "--listen", "127.0.0.1:0",
                        "--listen", "0.0.0.0:0,tls,metrics", "--tls-cert", str(crt),
                        "--tls-key", str(key)], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1
    assert "metrics listener serves /metrics without credentials" in p.stderr


def test_redis_engine_round_trips(make_server, make_redis):
    r = make_redis()
    s = make_server("--engine", r.url, "--listen", "127.0.0.1:0,metrics", cls=MetricsServer)
    admin = s.client(s.token("ops", role="admin"))
    assert admin.post("/channels", json={"id": "jobs", "kind": "queue"}).status_code == 201
    before = scrape(s)
    for i in range(3):
        assert admin.put("/channels/jobs", json={"i": i}).status_code == 200
    text = text_of(s)
    after = samples(text)
    shard = [dict(k[1])["shard"] for k in after if k[0] == "sluice_redis_round_trips_total"]
    assert len(shard) == 1 and shard[0].startswith("127.0.0.1:")
    # each write is one script on the shard (the revocation checks go to the same Redis, on a
    # connection of their own, and are not counted here)
    assert delta(before, after, "sluice_redis_round_trips_total", shard=shard[0]) >= 3
    assert val(after, "sluice_redis_failures_total", shard=shard[0]) == 0
    assert delta(before, after, "sluice_redis_round_trip_seconds_count", shard=shard[0]) >= 3
    # on the monotonic clock: a loopback round trip takes microseconds, not a millisecond step
    assert 0 < delta(before, after, "sluice_redis_round_trip_seconds_sum", shard=shard[0]) < 30
    assert delta(before, after, "sluice_engine_request_duration_seconds_count", op="append") == 3
    assert val(after, "sluice_channel_depth", channel="jobs", kind="queue") == 3
    assert val(after, "sluice_channel_inflight", channel="jobs") == 0
    assert admin.get("/channels/jobs?exclusive=true&limit=2").status_code == 200
    assert val(scrape(s), "sluice_channel_inflight", channel="jobs") == 2
    assert "sluice_store_commits_total" not in text  # no embedded store
    promtool_check(text)
