"""A policy service in the shape of Open Policy Agent's data API, for tests/unit/test_policy_http.c
and bench/policy.sh: POST {"input": {...}} is answered {"result": {"allow": ..., "ttl": TTL,
"reason": ...}}. It allows everyone but a few principals that script its behaviour:
  deny-*    denied                    slow-*    answered after 3 s
  badjson-* a body that is not JSON   fail-*    HTTP 500
GET answers {"questions": N, "last": INPUT} (what it was asked so far). On SIGTERM it prints the
number of questions to stderr and exits.
    python3 tests/unit/policy_server.py PORT TTL"""
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, TTL = int(sys.argv[1]), float(sys.argv[2])
lock = threading.Lock()
asked = 0
last = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: curl reuses the connection
    disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall

    def log_message(self, *a):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            self.answer(200, json.dumps({"questions": asked, "last": last}).encode())

    def do_POST(self):
        global asked, last
        inp = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["input"]
        who = inp["identity"]["principal"]
        with lock:
            asked += 1
            last = inp
        if who.startswith("slow-"):
            time.sleep(3)
        if who.startswith("fail-"):
            return self.answer(500, b'{"error":"failure"}')
        if who.startswith("badjson-"):
            return self.answer(200, b"{not json")
        allow = not who.startswith("deny-")
        self.answer(200, json.dumps({"result": {"allow": allow, "ttl": TTL,
                                                "reason": "test policy"}}).encode())


def stop(*_):
    print(f"policy_server: {asked} questions", file=sys.stderr, flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
server.serve_forever()
