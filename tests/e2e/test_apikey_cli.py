"""`sluice apikey` end to end: create, list, expire and delete through the real CLI against a store
file, with the documented exit codes; the key is printed exactly once and appears neither in the
store file (which holds its SHA-256, checked here independently) nor in any later output; hostile
arguments (a whole key where an id belongs, a corrupt store) are refused without echoing them."""
import hashlib
import json
import os
import re
import stat
import time

import pytest

KEY_RE = re.compile(r"^slk_([a-z2-7]{12})_([a-z2-7]{52})$")


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "keys.jsonl")


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def create(cli, store, *args, env=None):
    r = cli("apikey", "create", "--store", store, *args, env=env)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    m = KEY_RE.match(key)
    assert m, r.stdout
    assert r.stdout == key + "\n"  # one line, nothing else
    assert m.group(1) in r.stderr and key not in r.stderr
    return key, m.group(1), m.group(2)


def test_create_list_expire_delete(cli, store):
    key, kid, secret = create(cli, store, "--principal", "svc-billing", "--expires", "30d")
    # Only the hash is stored, and it is SHA-256 of the secret part.
    text = open(store).read()
    assert key not in text and secret not in text
    (rec,) = records(store)
    assert rec["id"] == kid and rec["principal"] == "svc-billing"
    assert rec["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert rec["expires_at"] - rec["created_at"] == 30 * 86400
    assert abs(rec["created_at"] - time.time()) < 60
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600

    key2, kid2, _ = create(cli, store, "--principal", "svc-worker", "--role", "write",
                           "--channel", "jobs", "--channel", "jobs.*")
    assert kid2 != kid

    r = cli("apikey", "list", "--store", store)
    assert r.returncode == 0, r.stderr
    assert key not in r.stdout and key2 not in r.stdout and "hash" not in r.stdout
    keys = {k["id"]: k for k in json.loads(r.stdout)["keys"]}
    assert keys[kid] == {"id": kid, "principal": "svc-billing", "role": None, "channels": None,
                         "created_at": rec["created_at"], "expires_at": rec["expires_at"],
                         "expired": False}
    assert keys[kid2]["role"] == "write" and keys[kid2]["channels"] == ["jobs", "jobs.*"]
    assert keys[kid2]["expires_at"] == 0

    r = cli("apikey", "expire", kid2, "--store", store)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "ok" and out["id"] == kid2 and abs(out["expires_at"] - time.time()) < 60
    keys = {k["id"]: k for k in json.loads(cli("apikey", "list", "--store", store).stdout)["keys"]}
    assert keys[kid2]["expired"] is True and keys[kid]["expired"] is False

    r = cli("apikey", "delete", kid, "--store", store)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"status": "ok", "id": kid}
    assert [k["id"] for k in records(store)] == [kid2]

    # Unknown ids: exit 5, for both.
    for sub in ("delete", "expire"):
        r = cli("apikey", sub, kid, "--store", store)
        assert r.returncode == 5, (sub, r.stderr)
        assert kid in r.stderr and r.stdout == ""

    # No temporary files are left next to the store.
    assert sorted(os.listdir(os.path.dirname(store))) == ["keys.jsonl", "keys.jsonl.lock"]


def test_json_output_and_env_store(cli, store):
    r = cli("apikey", "create", "--principal", "svc-a", "--expires", "12h", "--json",
            env={"SLUICE_APIKEY_STORE": store})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert KEY_RE.match(out["key"]) and out["key"][4:16] == out["id"]
    assert out["principal"] == "svc-a" and out["expires_at"] - out["created_at"] == 12 * 3600
    assert out["key"] not in r.stderr
    assert out["key"] not in open(store).read()
    r = cli("apikey", "list", env={"SLUICE_APIKEY_STORE": store})
    assert r.returncode == 0 and out["key"] not in r.stdout
    assert [k["id"] for k in json.loads(r.stdout)["keys"]] == [out["id"]]
    # Seconds without a suffix.
    r = cli("apikey", "create", "--principal", "svc-b", "--expires", "3600", "--json",
            "--store", store)
    out = json.loads(r.stdout)
    assert out["expires_at"] - out["created_at"] == 3600


def test_empty_store_lists_nothing(cli, store):
    r = cli("apikey", "list", "--store", store)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"keys": []}
    assert not os.path.exists(store)  # reading never creates the file


@pytest.mark.parametrize("args", [
    ("create",),                                              # --principal missing
    ("create", "--principal", "bad principal"),
    ("create", "--principal", "svc", "--role", "root"),
    ("create", "--principal", "svc", "--channel", "a..b"),
    ("create", "--principal", "svc", "--expires", "soon"),
    ("create", "--principal", "svc", "--expires", "0"),
    ("create", "--principal", "svc", "extra"),
    ("create", "--principal", "svc", "--bogus"),
    ("list", "extra"),
    ("expire",),
    ("delete", "a", "b"),
    ("delete", "AAAAAAAAAAAA"),
    ("frobnicate",),
    (),
])
def test_usage_errors(cli, store, args):
    r = cli("apikey", *args, "--store", store) if args else cli("apikey")
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert r.stdout == ""
    assert not os.path.exists(store)


def test_no_store_is_a_usage_error(cli):
    r = cli("apikey", "list", env={"SLUICE_APIKEY_STORE": ""})
    assert r.returncode == 2 and "SLUICE_APIKEY_STORE" in r.stderr


def test_whole_key_as_id_is_not_echoed(cli, store):
    key, kid, secret = create(cli, store, "--principal", "svc-a")
    r = cli("apikey", "delete", key, "--store", store)
    assert r.returncode == 2
    assert secret not in r.stderr and secret not in r.stdout
    assert [k["id"] for k in records(store)] == [kid]


def test_corrupt_store_names_file_and_line(cli, store):
    create(cli, store, "--principal", "svc-a")
    with open(store, "a") as f:
        f.write('{"id":"aaaaaaaaaaaa","principal":"x","chanels":[]}\n')
    for args in (("list",), ("create", "--principal", "svc-b"), ("delete", "aaaaaaaaaaaa")):
        r = cli("apikey", *args, "--store", store)
        assert r.returncode == 1, (args, r.stderr)
        assert f"{store}:2: unknown field 'chanels'" in r.stderr
    assert len(records(store)) == 2  # nothing was rewritten


def test_help(cli):
    for args in (("apikey", "--help"), ("apikey", "create", "--help"), ("apikey", "list", "-h"),
                 ("apikey", "expire", "--help"), ("apikey", "delete", "--help"),
                 ("help", "apikey", "create")):
        r = cli(*args)
        assert r.returncode == 0, args
        assert r.stdout.startswith("Usage: sluice apikey")
    assert "apikey" in cli("--help").stdout
