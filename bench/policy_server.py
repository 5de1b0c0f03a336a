"""The policy service of bench/policy.sh: allows everything, in the shape of Open Policy Agent's
data API, with the TTL given on the command line (0: sluice must ask for every request). Counts
the questions it answered and prints the count on SIGTERM (to stderr).
    python3 bench/policy_server.py PORT TTL"""
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, TTL = int(sys.argv[1]), float(sys.argv[2])
BODY = json.dumps({"result": {"allow": True, "ttl": TTL, "reason": "bench"}}).encode()
asked = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: curl reuses the connection
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, *a):
        pass

    def do_POST(self):
        global asked
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        asked += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


def stop(*_):
    print(f"policy_server: {asked} questions", file=sys.stderr, flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
