"""Live revocation latency, driven by bench/revocation.sh: how long after POST /revoke an open
WebSocket session of the revoked token is closed with 3503.

For each token (one per run, read from TOKENS as lines "TOKEN_ID TOKEN"): open a WebSocket to
WS_URL, connect with the token (Centrifugo protocol), then POST /revoke {"token_id"} to REVOKE_URL
with the admin token, and timestamp (time.perf_counter, one process) the request being sent, its
answer arriving and the close frame arriving. WS_URL and REVOKE_URL may be the same node or two
nodes sharing Redis. Runs one at a time, so each measures one revocation on an otherwise idle
server.

Prints one JSON object: per-run milliseconds from the answer to the close (negative when the close
overtook the answer) and from the request to the close, with their median, p90 and maximum.
Exits 1, saying why, when a run cannot be measured: the connect is refused, /revoke does not
answer 200, or no close 3503 arrives within 30 s.

    python3 bench/revocation_latency.py WS_URL REVOKE_URL ADMIN_TOKEN TOKENS
"""
import asyncio
import json
import statistics
import sys
import time

import httpx
import websockets

WAIT = 30  # seconds: a close later than this is a failure, not a figure


def fail(msg):
    sys.exit(f"revocation_latency: {msg}")


async def read_until_close(ws):
    """Reads (answering the server's protocol pings) until the server closes; returns the time the
    close arrived."""
    try:
        while True:
            frame = await ws.recv()
            if frame == "{}":
                await ws.send("{}")
    except websockets.ConnectionClosed:
        return time.perf_counter()


async def one_run(http, ws_url, admin, token_id, token):
    async with websockets.connect(ws_url, compression=None, max_size=None, open_timeout=WAIT,
                                  close_timeout=1) as ws:
        await ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if "connect" not in reply:
            fail(f"connect with token {token_id} refused: {reply}")
        closed = asyncio.create_task(read_until_close(ws))
        t_sent = time.perf_counter()
        r = await http.post("/revoke", json={"token_id": token_id},
                            headers={"Authorization": f"Bearer {admin}"})
        t_answer = time.perf_counter()
        if r.status_code != 200:
            fail(f"POST /revoke for {token_id} answered {r.status_code}: {r.text}")
        try:
            t_close = await asyncio.wait_for(closed, WAIT)
        except asyncio.TimeoutError:
            fail(f"no close within {WAIT} s of revoking {token_id}")
        if ws.close_code != 3503:
            fail(f"revoking {token_id} closed the session with {ws.close_code}, not 3503")
        return (t_close - t_answer) * 1000, (t_close - t_sent) * 1000


def summary(xs):
    s = sorted(xs)
    return {"median": round(statistics.median(s), 3),
            "p90": round(s[min(len(s) - 1, int(0.9 * len(s)))], 3),
            "max": round(s[-1], 3)}


async def main():
    if len(sys.argv) != 5:
        fail("usage: revocation_latency.py WS_URL REVOKE_URL ADMIN_TOKEN TOKENS")
    ws_url, revoke_url, admin, tokens_file = sys.argv[1:]
    with open(tokens_file) as f:
        tokens = [line.split() for line in f if line.strip()]
    if not tokens:
        fail(f"no tokens in {tokens_file}")
    after_answer, after_request = [], []
    async with httpx.AsyncClient(base_url=revoke_url, timeout=WAIT) as http:
        for token_id, token in tokens:
            a, q = await one_run(http, ws_url, admin, token_id, token)
            after_answer.append(a)
            after_request.append(q)
    print(json.dumps({
        "runs": len(tokens),
        "answer_to_close_ms": summary(after_answer),
        "request_to_close_ms": summary(after_request),
        "answer_to_close_ms_runs": [round(x, 3) for x in after_answer],
    }))


asyncio.run(main())
