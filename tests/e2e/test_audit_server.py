"""The server's audit log: denials and ACL changes are recorded (never a token), the file verifies
with `sluice audit verify`, and when the log cannot be written ACL changes are refused (503)."""
import json

from conftest import SECRET


def test_records_and_chain(make_server, cli, tmp_path):
    log = tmp_path / "audit.jsonl"
    s = make_server("--authz", "acl", "--admin", "ops", "--audit-log", str(log))
    ops_tok = s.token("ops")
    ops = s.client(ops_tok)
    assert ops.post("/channels", json={"id": "jobs"}).status_code == 201
    assert ops.put("/acl/worker-1", json={"role": "write", "channels": ["jobs"]}).status_code == 200
    rogue_tok = s.token("rogue-process")
    assert s.client(rogue_tok).get("/channels/jobs?exclusive=true").status_code == 403
    assert ops.delete("/acl/worker-1").status_code == 200
    s.stop()
    lines = log.read_text().splitlines()
    recs = [json.loads(l) for l in lines]
    events = [r["event"] for r in recs]
    assert events == ["acl.grant", "channel.create", "acl.grant", "authz.denied", "acl.revoke"]
    assert recs[0]["principal"] == "ops" and recs[0]["actor"] == "system"
    grant = recs[2]
    assert grant["actor"] == "ops" and grant["principal"] == "worker-1" and grant["role"] == "write"
    denial = recs[3]
    assert denial["principal"] == "rogue-process" and denial["operation"] == "channel.read"
    assert denial["resource"] == "jobs" and denial["source"] == "jwt"
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    text = log.read_text()
    for secret in (SECRET, ops_tok, rogue_tok, ops_tok.split(".")[2]):
        assert secret not in text
    r = cli("audit", "verify", str(log))
    assert r.returncode == 0, r.stdout + r.stderr
    # Edit one record: the chain breaks at the next line.
    lines[2] = lines[2].replace('"write"', '"admin"')
    log.write_text("\n".join(lines) + "\n")
    r = cli("audit", "verify", str(log))
    assert r.returncode == 1 and "line 4" in r.stderr


def test_unwritable_log_refuses_acl_changes(make_server):
    # /dev/full accepts the open and fails every write (ENOSPC): the bootstrap grant itself cannot
    # be recorded, so the server must refuse to start rather than run with an unrecorded admin.
    import subprocess
    from conftest import SLUICED
    r = subprocess.run([SLUICED, "--listen", "127.0.0.1:0", "--authz", "acl", "--admin", "ops",
                        "--audit-log", "/dev/full"], env={"SLUICE_JWT_SECRET": SECRET},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "audit log unavailable" in r.stderr
    # Without bootstrap grants it starts; then every ACL change is refused with 503 and not made.
    s = make_server("--audit-log", "/dev/full")
    admin = s.client(s.token("ops", role="admin"))
    r = admin.put("/acl/bob", json={"role": "read"})
    assert r.status_code == 503 and "audit log unavailable" in r.json()["message"]
    assert admin.get("/acl").json()["entries"] == []
    # Ordinary traffic keeps flowing.
    assert admin.post("/channels", json={"id": "jobs"}).status_code == 201
    assert admin.put("/channels/jobs", json=1).status_code == 200
