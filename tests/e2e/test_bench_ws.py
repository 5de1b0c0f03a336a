"""`sluice bench ws --publish-url`: the fan-out publisher connects to the node it names, the
subscribers to --url. Two nodes on the memory engine share nothing, which makes the routing
visible: publications sent to the other node are acknowledged there and reach no subscriber here;
sent to the subscribers' node (named another way) every one arrives. Two nodes on one Redis share
the topic: every publication made on A reaches every subscriber on B, which is what
bench/redis.sh measures."""
import json
import os
import subprocess

from conftest import SLUICE_CLI

BENCH = ("bench", "ws", "--scenario", "fanout", "--connections", "3", "--rate", "50",
         "--duration", "1", "--warmup", "0.2", "--json")


def topic(server):
    with server.client(server.token("ops", role="admin")) as c:
        r = c.post("/channels", json={"id": "bench", "kind": "topic"})
        assert r.status_code in (200, 201), r.text


def run_bench(cli, server, *args):
    r = cli(*BENCH, "--url", server.url, *args, env={"SLUICE_JWT_SECRET": server.secret})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_publisher_on_another_node(make_server, cli):
    a = make_server("--engine", "memory")
    b = make_server("--engine", "memory")
    topic(a)
    topic(b)
    rep = run_bench(cli, b, "--publish-url", a.url)
    assert rep["publish_host"] == f"{a.host}:{a.port}"
    assert rep["connections"]["ready"] == 3
    assert rep["publications"]["acknowledged"] > 0, rep
    assert rep["publications"]["errors"] == 0, rep
    # Node A has no subscriber and does not share its engine with B: nothing arrives.
    assert rep["deliveries"]["total"] == 0, rep
    assert rep["deliveries"]["missing"] == rep["publications"]["acknowledged"] * 3
    assert rep["errors"]["total"] == 0, rep


def test_publisher_on_another_node_sharing_redis(make_server, make_redis, cli):
    r = make_redis()
    a = make_server("--engine", r.url)
    b = make_server("--engine", r.url)
    topic(a)  # in Redis: node B serves it too
    rep = run_bench(cli, b, "--publish-url", a.url)
    acked = rep["publications"]["acknowledged"]
    assert acked > 0, rep
    assert rep["publications"]["errors"] == 0, rep
    assert rep["deliveries"]["total"] == acked * 3, rep
    assert rep["deliveries"]["missing"] == 0, rep
    assert rep["deliveries"]["reordered"] == 0, rep
    assert rep["errors"]["total"] == 0, rep


def test_publisher_on_the_same_node(make_server, cli):
    s = make_server("--engine", "memory")
    topic(s)
    # The same node through the other scheme: the publisher's URL is parsed on its own.
    rep = run_bench(cli, s, "--publish-url", f"ws://{s.host}:{s.port}/")
    assert rep["publish_host"] == f"{s.host}:{s.port}"
    acked = rep["publications"]["acknowledged"]
    assert acked > 0, rep
    assert rep["deliveries"]["total"] == acked * 3, rep
    assert rep["deliveries"]["missing"] == 0, rep
    assert rep["errors"]["total"] == 0, rep


def test_publisher_that_cannot_connect(make_server, cli):
    s = make_server("--engine", "memory")
    topic(s)
    # Port 1 on loopback: nothing listens there. The subscribers still connect; the report says
    # the publisher was refused and nothing was published.
    rep = run_bench(cli, s, "--publish-url", "http://127.0.0.1:1")
    assert rep["connections"]["ready"] == 3
    assert rep["publications"]["sent"] == 0, rep
    assert rep["errors"]["kinds"].get("refused") == 1, rep


def test_publish_url_refusals(cli):
    r = cli(*BENCH, "--url", "http://127.0.0.1:9", "--publish-url", "https://127.0.0.1:9")
    assert r.returncode == 2
    assert "--publish-url 'https://127.0.0.1:9': not http:// or ws://" in r.stderr
    r = cli("bench", "ws", "--scenario", "idle", "--url", "http://127.0.0.1:9", "--publish-url",
            "http://127.0.0.1:9")
    assert r.returncode == 2
    assert "--publish-url is for the fanout scenario" in r.stderr


def test_publisher_keeps_going_while_a_thousand_subscribers_fill_the_hub(make_server, make_redis,
                                                                        cli, tmp_path):
    """A publisher with many publications in flight on a Redis-engine node, fanning out to 1,000
    sockets on the same node: the batches of one loop iteration go over the hub's budget, and the
    publisher's socket, paused while its commands waited, must be read again once they ran
    (it stalled with every publication in flight unanswered)."""
    r = make_redis()
    conf = tmp_path / "fan.conf"
    conf.write_text("max_pending_per_address = 0\nws_max_outgoing = 4194304\n"
                    "ws_commands_per_second = 1000000\n")
    s = make_server("--engine", r.url, "--config", str(conf))
    topic(s)
    rep = run_bench(cli, s, "--connections", "1000", "--rate", "0", "--duration", "3",
                    "--warmup", "0.5")
    assert rep["connections"]["ready"] == 1000, rep["connections"]
    pubs = rep["publications"]
    assert pubs["errors"] == 0 and pubs["unanswered"] == 0, pubs
    assert rep["deliveries"]["in_window"] > 0, rep["deliveries"]
    assert rep["deliveries"]["missing"] == 0, rep["deliveries"]
    assert rep["errors"]["total"] == 0, rep["errors"]


def established_peers(port):
    """The remote addresses of the established TCP connections to local port `port`, as the
    kernel lists them for the server (/proc/net/tcp: little-endian hex address, state 01)."""
    peers = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            local, remote, state = line.split()[1:4]
            if state != "01" or int(local.split(":")[1], 16) != port:
                continue
            ip = bytes.fromhex(remote.split(":")[0])[::-1]
            peers.append(".".join(str(b) for b in ip))
    return peers


def test_connections_spread_over_source_addresses(make_server, cli):
    """--source binds the held connections to the given local addresses in turn (what 100,000
    connections to one server port need: one source address has about 28,000 ports). The server
    sees them come from those addresses, and the report counts each address's ready ones."""
    s = make_server("--engine", "memory")
    topic(s)
    e = dict(os.environ, SLUICE_JWT_SECRET=s.secret)
    e.pop("SLUICE_TOKEN", None)
    p = subprocess.Popen([SLUICE_CLI, "bench", "ws", "--scenario", "idle", "--connections", "6",
                          "--duration", "3", "--source", "127.0.0.2,127.0.0.3", "--url", s.url,
                          "--json"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stderr.readline().startswith("ready"), "the connections did not become ready"
        peers = established_peers(s.port)
    finally:
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert sorted(peers) == ["127.0.0.2"] * 3 + ["127.0.0.3"] * 3, peers
    rep = json.loads(out)
    assert rep["connections"]["ready"] == 6, rep
    assert rep["connections"]["sources"] == [{"address": "127.0.0.2", "ready": 3},
                                             {"address": "127.0.0.3", "ready": 3}], rep
    assert rep["errors"]["total"] == 0, rep


def test_source_refusals(make_server, cli):
    r = cli("bench", "ws", "--scenario", "idle", "--url", "http://127.0.0.1:9", "--source",
            "127.0.0.2,,127.0.0.3")
    assert r.returncode == 2
    assert "--source: expected IP addresses separated by commas" in r.stderr
    r = cli("bench", "ws", "--scenario", "idle", "--url", "http://127.0.0.1:9", "--source", "::1")
    assert r.returncode == 2
    assert "--source: '::1' is not an IPv4 address" in r.stderr
    # An address this machine does not have: every connection fails to bind, and says so.
    s = make_server("--engine", "memory")
    topic(s)
    r = cli("bench", "ws", "--scenario", "idle", "--connections", "2", "--duration", "1",
            "--source", "192.0.2.1", "--url", s.url, "--json", env={"SLUICE_JWT_SECRET": s.secret})
    assert r.returncode != 0
    rep = json.loads(r.stdout)
    assert rep["connections"]["ready"] == 0, rep
    assert rep["errors"]["kinds"] == {"bind error EADDRNOTAVAIL": 2}, rep
