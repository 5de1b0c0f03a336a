"""Configuration end to end (docs/CONFIG.md): each setting overrides only itself, from the config
file and from flags in either order. Issue 8, item 9: `revocation` set after `apikey_store` (in the
file, or `--config F --revocation ...`) turned API keys off or crashed the server."""
import subprocess
import time

import httpx
import jwt as pyjwt
import pytest

from conftest import SLUICED
from test_introspection import endpoint  # noqa: F401 (a fixture)

SECRET_A = "a-secret-that-is-32-bytes-long!!!"
SECRET_B = "b-secret-that-is-32-bytes-long!!!"


def conf_with_authenticators(tmp_path, store, revocation_line):
    (tmp_path / "idp.key").write_text("upstream-idp-secret-upstream-idp-secret!!")
    conf = tmp_path / "sluice.conf"
    conf.write_text(f"""
apikey_store = {store}
upstream_jwt_key = hs256:{tmp_path / 'idp.key'}
upstream_jwt_issuer = https://idp.example
upstream_jwt_audience = sluice
introspection_url = http://127.0.0.1:9/introspect
authenticators = apikey, upstream-jwt, introspection
{revocation_line}
[channel news]
kind = topic
""")
    return conf


@pytest.mark.parametrize("where", ["file", "flag-after-file", "flag-before-file"])
@pytest.mark.parametrize("revocation", ["embedded", "memory", "off"])
def test_revocation_leaves_api_keys_alone(make_server, cli, tmp_path, where, revocation):
    store = tmp_path / "keys.jsonl"
    r = cli("apikey", "create", "--principal", "svc", "--role", "read", "--store", str(store))
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    line = f"revocation = {revocation}" if where == "file" else ""
    conf = conf_with_authenticators(tmp_path, store, line)
    args = {"file": ["--config", str(conf)],
            "flag-after-file": ["--config", str(conf), "--revocation", revocation],
            "flag-before-file": ["--revocation", revocation, "--config", str(conf)]}[where]
    s = make_server(*args)
    # "memory" is the old name of the embedded store.
    shown = "embedded" if revocation == "memory" else revocation
    assert f"revocation {shown}" in s.stderr()
    r = s.client(key).get("/channels/news")
    assert r.status_code == 200, r.text
    bad = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    # Unknown to the store, it goes on down the chain to the unreachable introspection endpoint.
    assert s.client(bad).get("/channels/news").status_code == 503


def bearer(secret):
    now = int(time.time())
    return pyjwt.encode({"sub": "ops", "role": "admin", "iat": now, "exp": now + 300}, secret,
                        algorithm="HS256")


def test_secret_file_flag_overrides_the_file(make_server, tmp_path):
    (tmp_path / "a.secret").write_text(SECRET_A + "\n")
    (tmp_path / "b.secret").write_text(SECRET_B + "\r\n\n")
    conf = tmp_path / "sluice.conf"
    conf.write_text(f"jwt_secret_file = {tmp_path / 'a.secret'}\n[channel news]\nkind = topic\n")
    # Used to add a second default key (and refuse to start): now the flag replaces the file's.
    s = make_server("--config", str(conf), "--jwt-secret-file", str(tmp_path / "b.secret"),
                    secret=None)
    r = s.client(bearer(SECRET_B)).get("/channels/news")
    assert r.status_code == 200, r.text
    assert s.client(bearer(SECRET_A)).get("/channels/news").status_code == 401


def test_oversized_secret_file_is_refused(tmp_path):
    big = tmp_path / "big.secret"
    big.write_text("s" * 70000)
    r = subprocess.run([SLUICED, "--listen", "127.0.0.1:0", "--jwt-secret-file", str(big)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "larger than 65536 bytes" in r.stderr and "sss" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--listen"], "option '--listen' needs a value"),
    (["stray"], "unexpected argument 'stray'"),
    (["--listen=[[a]]:80"], "listen must be HOST:PORT"),
])
def test_bad_command_lines(args, message):
    r = subprocess.run([SLUICED, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and message in r.stderr, r.stderr


@pytest.mark.parametrize("ttl, asks", [(None, 1), ("0", 3)])
def test_introspection_cache_ttl_zero_means_no_caching(make_server, tmp_path, endpoint, ttl, asks):
    port, _ = endpoint
    conf = tmp_path / "i.conf"
    conf.write_text(f"introspection_url = http://127.0.0.1:{port}/introspect\n"
                    + (f"introspection_cache_ttl = {ttl}\n" if ttl else "")
                    + "[channel news]\nkind = topic\n")
    s = make_server("--config", str(conf))
    for _ in range(3):
        r = s.client("good").get("/channels/news")  # alice, known but granted nothing
        assert r.status_code == 403 and "'alice'" in r.text, r.text
    stats = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
    assert stats["counts"]["good"] == asks  # 0 used to mean the default, 30 s
