"""`sluiced --check-config FILE`: a configuration and the files it names are
validated without starting anything (no store opened or created, no audit log, no port); exit 0
and "FILE: ok", or 1 and the reason. Good configurations, hostile ones, and a check against the
data directory of a running server."""
import os
import subprocess

from conftest import SLUICED, SECRET

OPENSSL = "openssl"


def check(*args, env=None):
    e = dict(os.environ)
    e.pop("SLUICE_JWT_SECRET", None)
    e.update(env or {})
    return subprocess.run([SLUICED, *args], env=e, capture_output=True, text=True, timeout=60)


def write(path, text):
    path.write_text(text)
    return str(path)


def pki(tmp):
    """A self-signed certificate, its key, and a key that does not match it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run([OPENSSL, "req", "-x509", *ec, "-keyout", "server.key", "-out", "server.crt",
                    "-days", "1", "-subj", "/CN=localhost"], cwd=tmp, check=True,
                   capture_output=True, timeout=60)
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", "other.key"], cwd=tmp, check=True,
                   capture_output=True, timeout=60)
    return tmp / "server.crt", tmp / "server.key", tmp / "other.key"


def full_config(tmp, **over):
    """A configuration that names every kind of file the check reads."""
    crt, key, _ = pki(tmp)
    write(tmp / "jwt.secret", "s" * 40 + "\n")
    write(tmp / "acl.conf", "[acl worker-1]\nrole = write\nchannels = jobs, jobs.*\n"
          "[acl reader]\nrole = read\n")
    settings = {
        "listen": "127.0.0.1:0",
        "listen ": "127.0.0.1:0,tls",
        "tls_cert": str(crt),
        "tls_key": str(key),
        "jwt_secret_file": str(tmp / "jwt.secret"),
        "authz": "acl",
        "admin": "ops",
        "acl_file": str(tmp / "acl.conf"),
        "data_dir": str(tmp / "data"),
        "audit_log": str(tmp / "audit.jsonl"),
    }
    settings.update(over)
    text = "".join(f"{k.strip()} = {v}\n" for k, v in settings.items() if v is not None)
    text += "[channel jobs]\nkind = queue\nmax_attempts = 5\n"
    return write(tmp / "sluice.conf", text)


def test_good_config_is_ok_and_touches_nothing(tmp_path):
    conf = full_config(tmp_path)
    r = check("--check-config", conf)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{conf}: ok\n"
    # Nothing was created: not the data directory, not the audit log.
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "audit.jsonl").exists()


def test_equals_form_and_flags_around_it(tmp_path):
    conf = full_config(tmp_path)
    r = check("--engine", "memory", f"--check-config={conf}", "--max-body", "2048")
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_flags_after_it_are_checked_too(tmp_path):
    conf = full_config(tmp_path)
    r = check("--check-config", conf, "--durability", "sometimes")
    assert r.returncode == 1
    assert "durability" in r.stderr


def test_missing_file_argument():
    r = check("--check-config")
    assert r.returncode == 1
    assert "--check-config needs a FILE" in r.stderr


def test_unreadable_config(tmp_path):
    r = check("--check-config", str(tmp_path / "nope.conf"))
    assert r.returncode == 1
    assert "nope.conf" in r.stderr and "cannot open" in r.stderr


def test_syntax_error_names_file_and_line(tmp_path):
    conf = write(tmp_path / "bad.conf", "listen = 127.0.0.1:0\n[channel jobs]\nkind = pipe\n")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "bad.conf:3:" in r.stderr and "kind must be queue or topic" in r.stderr
    assert r.stdout == ""


def test_tls_key_that_does_not_match(tmp_path):
    conf = full_config(tmp_path, tls_key=str(tmp_path / "other.key"))
    r = check("--check-config", conf)
    assert r.returncode == 1, r.stdout
    assert "other.key" in r.stderr or "key" in r.stderr.lower()


def test_tls_cert_missing(tmp_path):
    conf = full_config(tmp_path, tls_cert=str(tmp_path / "missing.crt"))
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "missing.crt" in r.stderr


def test_tls_without_a_tls_listener(tmp_path):
    conf = full_config(tmp_path, **{"listen ": None})
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "no listener serves TLS" in r.stderr


def test_short_jwt_secret(tmp_path):
    conf = full_config(tmp_path)
    write(tmp_path / "jwt.secret", "short\n")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "shorter than 32 bytes" in r.stderr
    assert "short\n" not in r.stderr.replace("shorter", "")  # never the secret itself


def test_missing_secret_file(tmp_path):
    conf = full_config(tmp_path, jwt_secret_file=str(tmp_path / "none.secret"))
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "none.secret" in r.stderr


def test_acl_mode_without_a_secret(tmp_path):
    conf = full_config(tmp_path, jwt_secret_file=None, listen=None, **{"listen ": None},
                       tls_cert=None, tls_key=None)
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "needs JWT authentication" in r.stderr
    # The same file with the secret in the environment is fine.
    r = check("--check-config", conf, env={"SLUICE_JWT_SECRET": SECRET})
    assert r.returncode == 0, r.stderr


def test_plaintext_off_loopback(tmp_path):
    conf = full_config(tmp_path, listen="0.0.0.0:0")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "refusing to serve plaintext" in r.stderr


def test_broken_acl_file(tmp_path):
    conf = full_config(tmp_path)
    write(tmp_path / "acl.conf", "[acl worker-1]\nrole = superuser\n")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "acl.conf:2:" in r.stderr and "role must be" in r.stderr


def test_acl_file_with_other_settings(tmp_path):
    conf = full_config(tmp_path)
    write(tmp_path / "acl.conf", "insecure = true\n[acl worker-1]\nrole = write\n")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "acl.conf:1:" in r.stderr and "[acl PRINCIPAL] sections only" in r.stderr
    write(tmp_path / "acl.conf", "[acl worker-1]\nrole = write\n[channel sneaky]\nkind = topic\n")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "acl.conf:3:" in r.stderr


def test_acl_file_naming_a_config_principal(tmp_path):
    conf = full_config(tmp_path)
    write(tmp_path / "acl.conf", "[acl ops]\nrole = read\n")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "[acl ops] is also an admin" in r.stderr


def test_acl_file_twice_the_same_principal(tmp_path):
    conf = full_config(tmp_path)
    write(tmp_path / "acl.conf", "[acl w]\nrole = read\n[acl w]\nrole = admin\n")
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "appears twice" in r.stderr


def test_hostile_acl_files(tmp_path):
    conf = full_config(tmp_path)
    # larger than the bound
    with open(tmp_path / "acl.conf", "w") as f:
        f.write("[acl w]\nrole = read\n")
        f.write("#" * (16 << 20))
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "larger than" in r.stderr
    # a NUL byte, an endless line, an invalid principal, a bad pattern
    for text, why in ((b"[acl w]\nrole = re\0ad\n", "NUL"),
                      (b"[acl w]\nrole = " + b"r" * 100000 + b"\n", "line longer"),
                      (b"[acl w/../x]\nrole = read\n", "invalid principal"),
                      (b"[acl w]\nrole = read\nchannels = a..b\n", "invalid channel pattern")):
        (tmp_path / "acl.conf").write_bytes(text)
        r = check("--check-config", conf)
        assert r.returncode == 1, text
        assert why in r.stderr, (text, r.stderr)


def test_data_dir_that_is_a_file(tmp_path):
    write(tmp_path / "data", "not a directory")
    conf = full_config(tmp_path)
    r = check("--check-config", conf)
    assert r.returncode == 1
    assert "is not a directory" in r.stderr


def test_check_beside_a_running_server(tmp_path, make_server):
    """The data directory of a running server is not opened (its lock would refuse a second
    sluiced): the check passes while the server runs, and the server is unaffected."""
    data = tmp_path / "live"
    s = make_server("--data-dir", str(data))
    conf = write(tmp_path / "s.conf", f"listen = 127.0.0.1:0\ndata_dir = {data}\n")
    r = check("--check-config", conf, env={"SLUICE_JWT_SECRET": SECRET})
    assert r.returncode == 0, r.stderr
    with s.client(s.token("ops", role="admin")) as c:
        assert c.get("/healthz").status_code == 200
