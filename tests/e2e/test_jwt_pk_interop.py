"""Upstream JWTs signed elsewhere: keys generated and tokens signed with PyJWT and
python3-cryptography (an implementation independent of sluice's OpenSSL path), verified through
`sluice token inspect --verify --pubkey FILE`. ES256 and EdDSA tokens verify with their own public
key and fail with any other; the alg-confusion forgery (HS256 keyed with the public PEM) fails; a
private key file is refused, not silently reduced to its public half."""
import base64
import hashlib
import hmac
import json
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ISS = "https://idp.example"
AUD = "sluice"


def keypair(kind):
    if kind == "ES256":
        priv = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ES384-key":
        priv = ec.generate_private_key(ec.SECP384R1())
    else:
        priv = ed25519.Ed25519PrivateKey.generate()
    pub = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def claims(**extra):
    now = int(time.time())
    c = {"sub": "alice@idp", "iat": now, "exp": now + 300, "iss": ISS, "aud": AUD,
         "role": "read", "channels": ["orders.*"], "jti": "idp-123"}
    c.update(extra)
    return c


def write(tmp_path, data, name="pub.pem"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def inspect(cli, token, keyfile, *extra):
    r = cli("token", "inspect", "--verify", "--pubkey", keyfile, *extra, token)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r, out


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_pyjwt_tokens_verify(cli, tmp_path, alg):
    priv, pub = keypair(alg)
    keyfile = write(tmp_path, pub)
    for headers in (None, {"kid": "idp-2024"}):
        tok = pyjwt.encode(claims(), priv, algorithm=alg, headers=headers)
        r, out = inspect(cli, tok, keyfile, "--iss", ISS, "--aud", AUD)
        assert r.returncode == 0, r.stderr
        assert out["verified"] is True
        assert out["header"]["alg"] == alg
        assert out["payload"]["sub"] == "alice@idp"
    # Many tokens: ES256 R or S with leading zero bytes must still be 64 bytes and verify.
    for i in range(20):
        tok = pyjwt.encode(claims(jti=f"t{i}"), priv, algorithm=alg)
        r, out = inspect(cli, tok, keyfile)
        assert r.returncode == 0 and out["verified"] is True, (i, r.stdout, r.stderr)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_rejections(cli, tmp_path, alg):
    priv, pub = keypair(alg)
    other, _ = keypair(alg)
    keyfile = write(tmp_path, pub)

    def rejected(tok, error, *extra):
        r, out = inspect(cli, tok, keyfile, *extra)
        assert r.returncode == 3, (r.stdout, r.stderr)
        assert out["verified"] is False and out["error"] == error, out

    rejected(pyjwt.encode(claims(), other, algorithm=alg), "bad signature")
    good = pyjwt.encode(claims(), priv, algorithm=alg)
    h, p, s = good.split(".")
    forged = pyjwt.encode(claims(sub="root", role="admin"), other, algorithm=alg).split(".")[1]
    rejected(f"{h}.{forged}.{s}", "bad signature")
    rejected(pyjwt.encode(claims(exp=int(time.time()) - 3600), priv, algorithm=alg),
             "token expired")
    rejected(good, "invalid issuer", "--iss", "https://evil.example")
    rejected(good, "invalid audience", "--aud", "someone-else")
    # Alg confusion: the public key is public, so an attacker can HMAC with its PEM text.
    # (PyJWT itself refuses to use a PEM as an HMAC secret, so the token is built by hand.)
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims(sub="root", role="admin")).encode())
    mac = hmac.new(pub, f"{head}.{body}".encode(), hashlib.sha256).digest()
    rejected(f"{head}.{body}.{b64(mac)}", "algorithm not allowed")
    # DER signatures (what OpenSSL and many libraries produce natively) are not JOSE's R||S.
    if alg == "ES256":
        der = priv.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
        rejected(f"{h}.{p}.{b64(der)}", "bad signature")
        rejected(pyjwt.encode(claims(), priv, algorithm="ES256",
                              headers={"alg": "ES384"}), "algorithm not allowed")


def test_key_files(cli, tmp_path):
    es_priv, es_pub = keypair("ES256")
    ed_priv, ed_pub = keypair("EdDSA")
    _, p384_pub = keypair("ES384-key")
    tok = pyjwt.encode(claims(), es_priv, algorithm="ES256")
    # An ES256 token against an Ed25519 key: the key's algorithm decides.
    r, out = inspect(cli, tok, write(tmp_path, ed_pub))
    assert r.returncode == 3 and out["error"] == "algorithm not allowed"
    pkcs8 = es_priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    for bad in (pkcs8, p384_pub, b"not a key\n", pkcs8 + es_pub):
        r, _ = inspect(cli, tok, write(tmp_path, bad, "bad.pem"))
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert "not a P-256 or Ed25519 public key" in r.stderr
        assert "PRIVATE" not in r.stderr and "MIG" not in r.stderr
    r, _ = inspect(cli, tok, str(tmp_path / "missing.pem"))
    assert r.returncode == 1 and "cannot read public key file" in r.stderr
    r = cli("token", "inspect", "--pubkey", write(tmp_path, es_pub), tok)
    assert r.returncode == 2 and "--pubkey needs --verify" in r.stderr
    r = cli("token", "inspect", "--verify", "--pubkey", write(tmp_path, es_pub),
            "--secret-file", write(tmp_path, b"x" * 40, "secret"), tok)
    assert r.returncode == 2 and "exclude each other" in r.stderr
