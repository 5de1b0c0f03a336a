// Issue 8, item 14, with the real centrifuge client: a connection token whose exp passed a few
// seconds ago (inside the server's clock-skew leeway) must make the client fetch a new token
// (error 109 at connect), not connect and be dropped with 3005 over and over with the same token.
// Prints one JSON result line: {ok, getTokenCalls, sockets, disconnects, connectedWithFresh}.
import { check, makeClient, now, signToken, sleep } from './lib.mjs';

const result = { ok: false };
try {
  const stale = signToken({ sub: 'alice', role: 'read', iat: now() - 600, exp: now() - 10 });
  let fresh = null;
  result.getTokenCalls = 0;
  const c = makeClient('leeway', {
    token: stale,
    getToken: async () => {
      result.getTokenCalls++;
      fresh = signToken({ sub: 'alice', role: 'read', iat: now(), exp: now() + 600 });
      return fresh;
    },
  });
  c.client.connect();
  const ctx = await c.connected(10000);
  // Stay connected long enough that a wrongly announced ttl (1 s) plus the grace would have
  // dropped the session already.
  await sleep(1500);
  result.sockets = c.sockets.length;
  result.disconnects = c.events('disconnected').map((d) => d.code);
  result.connectedWithFresh = fresh !== null && c.client.state === 'connected';
  result.ttlPositive = ctx !== undefined;
  check(result.getTokenCalls >= 1, 'getToken was never called', result);
  result.ok = true;
  c.client.disconnect();
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
}
console.log(JSON.stringify(result));
process.exit(0);
