#!/usr/bin/env python3
"""A scripted RFC 7662 introspection endpoint for tests/unit/test_introspect.c: it listens on
127.0.0.1:<port> (argv[1]) and answers POST <any path> by the posted token, so each test picks the
endpoint behaviour it needs through the token it asks about (the table in `answer` below). It
records every request (count per decoded token, and the raw body, Content-Type and Authorization
of the last one) and reports them on GET /stats, so the test can prove what was sent and that a
cached answer sent nothing. With a certificate and key after the port it serves https. Standard
library only; the test starts it and kills it."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

lock = threading.Lock()
counts = {}
total = 0
last = {}


def answer(token):
    """(status, body, extra headers, delay in seconds) for a token."""
    now = time.time()
    ok = lambda sub, **kw: (200, json.dumps(dict(active=True, sub=sub, **kw)), (), 0)
    if token == "good":
        return ok("alice", exp=now + 60, scope="read write")
    if token.startswith("user-") or token.startswith("shared-") or token.startswith("keep-"):
        return ok("u" + token.split("-", 1)[1], exp=now + 60)
    if token.startswith("tenant-"):  # a workspace member (upstream_workspace_claim = tenant)
        t = token.split("-", 1)[1]
        return ok("alice", exp=now + 60, tenant="a/b" if t == "bad" else t)
    if token == "scoped":  # a provider scope that narrows what sluice mints
        return ok("alice", exp=now + 60, scope="openid sluice:read sluice:channel:jobs")
    if token == "badscope":
        return ok("alice", exp=now + 60, scope="sluice:superuser")
    if token == "jti":
        return ok("bob", jti="tok-1", iat=int(now) - 5, exp=now + 60)
    if token == "bad-jti":
        return ok("bob", jti="has space", exp=now + 60)
    if token == "noexp":
        return ok("carol")
    if token.startswith("shortexp"):
        return ok("dave", exp=now + 10)
    if token == "expired":
        return ok("erin", exp=now - 10)
    if token == "nosub":
        return (200, '{"active":true,"exp":%d}' % (now + 60), (), 0)
    if token == "badsub":
        return ok("has space", exp=now + 60)
    if token == "longsub":
        return ok("x" * 256, exp=now + 60)
    if token == "badexp":
        return ok("frank", exp="soon")
    if token == "bad-json":
        return (200, "{this is not json", (), 0)
    if token == "dup":
        return (200, '{"active":false,"active":true,"sub":"mallory"}', (), 0)
    if token == "active-string":
        return (200, '{"active":"true","sub":"mallory"}', (), 0)
    if token == "array":
        return (200, "[true]", (), 0)
    if token == "empty":
        return (200, "", (), 0)
    if token == "big":
        return (200, json.dumps(dict(active=True, sub="big", pad="x" * 100000)), (), 0)
    if token == "500":
        return (500, '{"error":"server_error"}', (), 0)
    if token == "503":
        return (503, "", (("Retry-After", "1"),), 0)
    if token == "401":
        return (401, '{"error":"invalid_client"}', (), 0)
    if token == "redirect":
        return (302, "", (("Location", "/followed"),), 0)
    if token.startswith("slow"):
        return (200, json.dumps(dict(active=True, sub="slow")), (), 3.0)
    if token == "hangup":
        return None
    return (200, '{"active":false}', (), 0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, extra=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/stats":
            self.send(404, "{}")
            return
        with lock:
            body = json.dumps(dict(total=total, counts=counts, last=last))
        self.send(200, body)

    def do_POST(self):
        global total, last
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("latin-1")
        form = parse_qs(raw, keep_blank_values=True)
        token = form.get("token", [""])[0]
        with lock:
            total += 1
            counts[token] = counts.get(token, 0) + 1
            last = dict(
                path=self.path,
                body=raw,
                content_type=self.headers.get("Content-Type", ""),
                authorization=self.headers.get("Authorization", ""),
                hint=form.get("token_type_hint", [""])[0],
            )
        if self.path == "/followed":
            self.send(200, '{"active":true,"sub":"followed"}')
            return
        a = answer(token)
        if a is None:
            self.close_connection = True  # no answer at all
            return
        status, body, extra, delay = a
        if delay:
            time.sleep(delay)
        self.send(status, body, extra)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out and hang up are part of the test


if __name__ == "__main__":
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    if len(sys.argv) == 4:  # port cert key: serve https
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
