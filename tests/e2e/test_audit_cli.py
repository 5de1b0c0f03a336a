"""`sluice audit verify` against logs built independently in Python from the format documented in
docs/AUDIT.md (seq 1, 2, 3, ...; prev = SHA-256 of the previous line's bytes), then tampered with
in every way the chain must reveal: edited, removed, reordered, inserted and truncated lines. The
one thing it cannot reveal, lines cut off the end, shows up as a different tip (last_seq and
last_hash), which is what operators anchor elsewhere."""
import hashlib
import json

GENESIS = "0" * 64


def chain(records):
    """Lines (bytes, no newline) of a valid log holding records (dicts) in order."""
    lines, prev = [], GENESIS
    for i, rec in enumerate(records, 1):
        line = json.dumps({"seq": i, "prev": prev, **rec}, separators=(",", ":"),
                          ensure_ascii=False).encode()
        lines.append(line)
        prev = hashlib.sha256(line).hexdigest()
    return lines


def records(n):
    return [{"ts": 1700000000.25 + i, "event": "acl.grant", "actor": "ops",
             "principal": f"worker-{i}", "role": "write"} for i in range(n)]


def write(tmp_path, lines, end=b"\n", name="audit.log"):
    p = tmp_path / name
    p.write_bytes(b"\n".join(lines) + end if lines else b"")
    return str(p)


def verify(cli, path):
    r = cli("audit", "verify", path)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r, out


def assert_tampered(cli, path, line, reason):
    r, out = verify(cli, path)
    assert r.returncode == 1, r.stderr
    assert out["status"] == "tampered" and out["line"] == line and reason in out["reason"], out
    assert out["records"] == line - 1 and out["last_seq"] == line - 1
    assert f"line {line}: {reason}" in r.stderr
    return out


def test_intact_log(cli, tmp_path):
    lines = chain(records(20) + [{"event": "channel.create", "principal": "björk-✓"}])
    r, out = verify(cli, write(tmp_path, lines))
    assert r.returncode == 0, r.stderr
    assert out == {"status": "intact", "records": 21, "last_seq": 21,
                   "last_hash": hashlib.sha256(lines[-1]).hexdigest()}
    assert r.stderr == ""


def test_empty_log_is_intact(cli, tmp_path):
    r, out = verify(cli, write(tmp_path, []))
    assert r.returncode == 0
    assert out == {"status": "intact", "records": 0, "last_seq": 0, "last_hash": GENESIS}


def test_edited_line(cli, tmp_path):
    lines = chain(records(20))
    # A valid edit of line 7 is only visible from line 8, whose prev no longer matches.
    lines[6] = lines[6].replace(b'"role":"write"', b'"role":"admin"')
    assert_tampered(cli, write(tmp_path, lines), 8, "hash chain broken")


def test_edited_chain_fields(cli, tmp_path):
    lines = chain(records(10))
    edited = list(lines)
    edited[4] = edited[4].replace(b'"seq":5', b'"seq":6')
    assert_tampered(cli, write(tmp_path, edited), 5, "sequence 5 expected, found 6")
    edited = list(lines)
    rec = json.loads(edited[4])
    rec["prev"] = rec["prev"].upper()
    edited[4] = json.dumps(rec, separators=(",", ":")).encode()
    assert_tampered(cli, write(tmp_path, edited), 5, 'missing or invalid "prev"')


def test_removed_line(cli, tmp_path):
    lines = chain(records(20))
    del lines[4]
    assert_tampered(cli, write(tmp_path, lines), 5, "sequence 5 expected, found 6")


def test_removed_and_renumbered(cli, tmp_path):
    """Renumbering after a deletion fixes seq but not the hash chain."""
    recs = records(10)
    lines = chain(recs)
    renumbered = lines[:4]
    for line in lines[5:]:
        rec = json.loads(line)
        rec["seq"] -= 1
        renumbered.append(json.dumps(rec, separators=(",", ":")).encode())
    assert_tampered(cli, write(tmp_path, renumbered), 5, "hash chain broken")
    # Hiding the deletion means rewriting every line after it: only an external anchor of the
    # tip reveals that.
    r, out = verify(cli, write(tmp_path, chain(recs[:4] + recs[5:])))
    assert r.returncode == 0 and out["last_seq"] == 9


def test_reordered_lines(cli, tmp_path):
    lines = chain(records(20))
    lines[9], lines[10] = lines[10], lines[9]
    assert_tampered(cli, write(tmp_path, lines), 10, "sequence 10 expected, found 11")


def test_inserted_line(cli, tmp_path):
    lines = chain(records(10))
    assert_tampered(cli, write(tmp_path, lines[:2] + [b"garbage"] + lines[2:]), 3,
                    "not a JSON object")
    assert_tampered(cli, write(tmp_path, lines[:2] + [b""] + lines[2:]), 3, "not a JSON object")
    assert_tampered(cli, write(tmp_path, lines[:2] + [lines[1]] + lines[2:]), 3,
                    "sequence 3 expected, found 2")


def test_truncated_last_line(cli, tmp_path):
    lines = chain(records(10))
    lines[-1] = lines[-1][:len(lines[-1]) // 2]
    assert_tampered(cli, write(tmp_path, lines, end=b""), 10, "truncated record")
    assert_tampered(cli, write(tmp_path, chain(records(3)), end=b""), 3, "truncated record")


def test_removed_last_line_changes_the_tip(cli, tmp_path):
    """Documented limitation: the file alone cannot show that its end was cut off, but the tip it
    reports no longer matches the one an operator anchored."""
    lines = chain(records(10))
    _, full = verify(cli, write(tmp_path, lines))
    r, cut = verify(cli, write(tmp_path, lines[:-1]))
    assert r.returncode == 0
    assert (cut["last_seq"], cut["last_hash"]) != (full["last_seq"], full["last_hash"])


def test_usage_and_unreadable(cli, tmp_path):
    r = cli("audit", "verify", str(tmp_path / "missing.log"))
    assert r.returncode == 2 and "No such file" in r.stderr and r.stdout == ""
    r = cli("audit", "verify", str(tmp_path))
    assert r.returncode == 2 and "Is a directory" in r.stderr
    assert cli("audit", "verify").returncode == 2
    assert cli("audit", "verify", "a", "b").returncode == 2
    assert cli("audit", "frobnicate").returncode == 2
    r = cli("audit", "verify", "--help")
    assert r.returncode == 0 and "Usage: sluice audit verify FILE" in r.stdout
    r = cli("help", "audit")
    assert r.returncode == 0 and "verify FILE" in r.stdout
