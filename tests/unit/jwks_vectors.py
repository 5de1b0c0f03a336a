"""Test vectors for tests/unit/test_jwks.c, made fresh on every run by an independent JOSE
implementation (PyJWT with python3-cryptography): a JWKS holding one key of every algorithm sluice
takes and keys it must skip, tokens that must verify against it and tokens that must not (with the
verifier's fixed reason), and each algorithm's key as PEM. Prints one JSON object."""
import base64
import hashlib
import hmac
import json
import os
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key(alg, bits=2048):
    if alg in ("RS256", "RS384", "RS512", "PS256"):
        priv = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return priv, json.loads(RSAAlgorithm.to_jwk(priv.public_key()))
    if alg in ("ES256", "ES384"):
        priv = ec.generate_private_key(ec.SECP256R1() if alg == "ES256" else ec.SECP384R1())
        return priv, json.loads(ECAlgorithm.to_jwk(priv.public_key()))
    priv = ed25519.Ed25519PrivateKey.generate()
    return priv, json.loads(OKPAlgorithm.to_jwk(priv.public_key()))


def pem(priv):
    return priv.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode()


now = int(time.time())
claims = {"sub": "idp-user", "iat": now, "exp": now + 600}
ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
privs, keys, tokens, pems = {}, [], [], []
for a in ALGS:
    priv, jwk = key(a)
    privs[a] = priv
    keys.append(dict(jwk, kid="k-" + a, alg=a, use="sig"))
    tok = jwt.encode(claims, priv, algorithm=a, headers={"kid": "k-" + a})
    tokens.append({"name": a, "token": tok, "reason": ""})
    pems.append({"alg": a, "pem": pem(priv), "token": tok})

# Keys the parser must skip, by kid.
small, small_jwk = key("RS256", 1024)
_, enc = key("RS256")
priv_jwk = json.loads(RSAAlgorithm.to_jwk(privs["RS256"]))  # with d, p, q...
priv_jwk.pop("key_ops", None)  # PyJWT says "sign": the private parts must be refused by themselves
p521 = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP521R1()).public_key()))
_, ec256 = key("ES256")
xk = x25519.X25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)
skipped = [
    {"kty": "oct", "k": b64(os.urandom(32)), "kid": "sym", "alg": "HS256"},
    dict(enc, kid="enc", use="enc"),
    dict(small_jwk, kid="small"),
    dict(priv_jwk, kid="private"),
    dict(p521, kid="p521"),
    dict(ec256, kid="mismatch", alg="RS256"),
    {"kty": "OKP", "crv": "X25519", "x": b64(xk), "kid": "x25519"},
    dict(ec256, kid="ops", key_ops=["encrypt"]),
    dict(ec256, kid="k-RS256"),  # duplicate kid
    {"kty": "EC", "crv": "P-256", "x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32), "kid": "offcurve"},
    {"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "badb64"},
]
keys += skipped
doc = json.dumps({"keys": keys})


def bad(name, token, reason):
    tokens.append({"name": name, "token": token, "reason": reason})


def raw(header, payload, sig=b""):
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(payload).encode())
    return f"{h}.{p}.{b64(sig)}", f"{h}.{p}"


bad("RS384 under the RS256 key", jwt.encode(claims, privs["RS256"], algorithm="RS384",
                                            headers={"kid": "k-RS256"}), "algorithm not allowed")
bad("PKCS1 signature under the PS256 key", jwt.encode(claims, privs["PS256"], algorithm="RS256",
                                                      headers={"kid": "k-PS256"}),
    "algorithm not allowed")
_, si = raw({"alg": "PS256", "kid": "k-PS256"}, claims)
tok = jwt.encode(claims, privs["PS256"], algorithm="RS256", headers={"kid": "k-PS256"})
bad("RS256 signature labelled PS256", si + "." + tok.split(".")[2], "bad signature")
for secret, what in ((pem(privs["RS256"]).encode(), "PEM"),
                     (json.dumps(keys[0]).encode(), "JWK")):
    _, si = raw({"alg": "HS256", "typ": "JWT", "kid": "k-RS256"}, claims)
    bad("HS256 keyed with the public " + what,
        si + "." + b64(hmac.new(secret, si.encode(), hashlib.sha256).digest()),
        "algorithm not allowed")
bad("alg none", raw({"alg": "none", "kid": "k-RS256"}, claims)[0], "algorithm not allowed")
bad("ES256 under the ES384 key", jwt.encode(claims, privs["ES256"], algorithm="ES256",
                                            headers={"kid": "k-ES384"}), "algorithm not allowed")
bad("unknown kid", jwt.encode(claims, privs["ES256"], algorithm="ES256",
                              headers={"kid": "nobody"}), "unknown key id")
bad("a skipped key's kid", jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()),
                                      algorithm="ES256", headers={"kid": "ops"}),
    "unknown key id")
t = tokens[0]["token"].split(".")
t2 = jwt.encode(dict(claims, sub="someone-else"), privs["RS256"], algorithm="RS256",
                headers={"kid": "k-RS256"}).split(".")
bad("RS256 payload swapped", f"{t[0]}.{t2[1]}.{t[2]}", "bad signature")
sig = base64.urlsafe_b64decode(t[2] + "==")
bad("RS256 signature one byte short", f"{t[0]}.{t[1]}.{b64(sig[:-1])}", "bad signature")
bad("RS256 signature with a leading zero", f"{t[0]}.{t[1]}." + b64(bytes(1) + sig), "bad signature")
bad("expired EdDSA", jwt.encode(dict(claims, exp=now - 120), privs["EdDSA"], algorithm="EdDSA",
                                headers={"kid": "k-EdDSA"}), "token expired")

print(json.dumps({"now": now, "jwks": doc, "usable": len(ALGS),
                  "skipped": [k["kid"] for k in skipped], "tokens": tokens, "pems": pems,
                  "small_pem": pem(small)}))
