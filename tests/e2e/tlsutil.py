"""A small PKI for the TLS tests, made with the openssl CLI in a temporary directory: a CA, server
certificates (good, expired, for another host, self-signed), client certificates (from the CA, and
from another CA nobody trusts), and a sluiced whose TLS listener ports are read from its start-up
lines (one per listener)."""
import os
import re
import ssl
import subprocess

from conftest import Server

OPENSSL = "openssl"


def run(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class PKI:
    def __init__(self, tmp):
        self.dir = str(tmp)
        d = self.dir
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=sluice test CA", cwd=d)
        run("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2",
            "-subj", "/CN=untrusted CA", cwd=d)
        self.issue("server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth")
        self.issue("server2", "/CN=localhost/O=second", "DNS:localhost,IP:127.0.0.1", "serverAuth")
        self.issue("wronghost", "/CN=other.example", "DNS:other.example", "serverAuth")
        self.issue("expired", "/CN=localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth",
                   days=-1)
        run("req", "-x509", *ec, "-keyout", "selfsigned.key", "-out", "selfsigned.crt", "-days",
            "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", cwd=d)
        self.issue("client", "/CN=worker-1/O=Example",
                   "DNS:worker.example,URI:urn:svc:worker,email:worker@example.com", "clientAuth")
        self.issue("rogue", "/CN=worker-1", "DNS:worker.example", "clientAuth", ca="other-ca")
        self.ca = self.path("ca.crt")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, subj, san, eku, ca="ca", days=1):
        d = self.dir
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage={eku}\n")
        # A negative -days makes notAfter lie in the past: an expired certificate.
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days), "-extfile",
            f"{name}.ext", cwd=d)

    def cert_args(self, name="server"):
        return ("--tls-cert", self.path(f"{name}.crt"), "--tls-key", self.path(f"{name}.key"))

    def client_context(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(self.path(f"{cert}.crt"), self.path(f"{cert}.key"))
        return ctx


class TLSServer(Server):
    """A sluiced with several listeners: self.ports in the order given (the conftest's plaintext
    127.0.0.1:0 first), self.url the first TLS one (https://localhost:PORT)."""

    def start(self):
        self.ports, self.tls_ports = [], []
        return super().start()

    def started_by(self, line):
        m = re.search(r"listening on ([\d.]+):(\d+) \((\S*)", line)
        if m:
            self.host = m.group(1)
            self.ports.append(int(m.group(2)))
            if "tls" in m.group(3):
                self.tls_ports.append(int(m.group(2)))
        if "TLS certificate" not in line:
            return False
        if not self.tls_ports:
            return None
        self.port = self.ports[0]
        self.plain_url = f"http://127.0.0.1:{self.ports[0]}"
        self.url = f"https://localhost:{self.tls_ports[0]}"
        return True

    def read_stderr_until(self, text, timeout=30):
        """Waits for a stderr line that contains text (a SIGHUP's answer)."""
        return self.wait_stderr(text, timeout)
