// End-to-end scenarios for sluiced's Centrifugo-compatible WebSocket endpoint, driven by the real
// centrifuge client (npm, v5) over the ws package. Run by tests/e2e/test_ws_centrifuge.py:
//
//   SLUICE_URL=http://127.0.0.1:PORT SLUICE_JWT_SECRET=... SCENARIO_PARAMS='{"token":...}' \
//     node tests/node/centrifuge_e2e.mjs SCENARIO
//
// Prints one JSON line {"scenario", "ok", ...} and exits 0, or {"scenario", "ok": false, "error",
// "events"} and exits 1. Every scenario has its own deadline, so a hang fails instead of blocking.
// Nothing is timed: every wait is a generous deadline (WAIT); bench/revocation.sh measures latency.
import {
  check, Failure, httpWrite, makeClient, makeSub, now, pubSummary, request, signToken, sleep,
  subscribedSummary, WAIT, waitFor, within, wsUrlOf,
} from './lib.mjs';

const P = JSON.parse(process.env.SCENARIO_PARAMS || '{}');
const clients = [];
const subs = [];

function client(label, options) {
  const c = makeClient(label, options);
  clients.push(c);
  return c;
}

function subscription(c, channel, options) {
  const s = makeSub(c, channel, options);
  s.label = `${c.label}:${channel}`;
  subs.push(s);
  return s;
}

const offsets = (pubs) => pubs.map((p) => p.offset);

function checkIncreasing(pubs, what, { consecutive = false } = {}) {
  const offs = offsets(pubs);
  for (let i = 0; i < offs.length; i++) {
    check(Number.isInteger(offs[i]) && offs[i] > 0, `${what}: offset ${i} is not a positive integer`, offs);
    if (i > 0) {
      check(offs[i] > offs[i - 1], `${what}: offsets do not increase`, offs);
      if (consecutive) check(offs[i] === offs[i - 1] + 1, `${what}: offsets are not consecutive`, offs);
    }
  }
}

function deepEqual(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// Waits for a subscription's next `subscribed` event (the n-th one, counting from 1).
async function subscribed(s, n = 1, ms = WAIT) {
  await waitFor(() => s.events('subscribed').length >= n || s.events('unsubscribed').length > 0,
    ms, `${s.label} to be subscribed`);
  check(s.events('subscribed').length >= n, `${s.label}: unsubscribed instead of subscribed`,
    s.events('unsubscribed'));
  return s.events('subscribed')[n - 1];
}

async function pubCount(s, n, ms = WAIT) {
  await waitFor(() => s.pubs.length >= n, ms, `${n} publications on ${s.label} (got ${s.pubs.length})`);
}

// (a) HTTP writes reach a subscriber in order, with increasing offsets that continue the stream
// position of the subscribe result.
async function deliver() {
  const ch = P.channel;
  await httpWrite(ch, { n: 1 }, P.writer);
  await httpWrite(ch, { n: 2 }, P.writer);
  const c = client('reader', { token: P.token });
  c.client.connect();
  const conn = await c.connected();
  const s = subscription(c, ch);
  s.sub.subscribe();
  const ctx = await subscribed(s);
  const written = [3, 4, 5, 6, 7];
  for (const n of written) await httpWrite(ch, { n }, P.writer);
  await pubCount(s, written.length);
  await sleep(200); // nothing more may come
  check(s.pubs.length === written.length, 'more publications than writes', s.pubs.map(pubSummary));
  check(deepEqual(s.pubs.map((p) => p.data), written.map((n) => ({ n }))),
    'publications are not the writes in order', s.pubs.map(pubSummary));
  checkIncreasing(s.pubs, 'live publications', { consecutive: true });
  check(s.pubs.every((p) => p.info === undefined), 'HTTP writes carry client info', s.pubs.map(pubSummary));
  check(s.pubs.every((p) => p.channel === ch), 'publication on the wrong channel', s.pubs.map((p) => p.channel));
  if (ctx.streamPosition) {
    check(s.pubs[0].offset === ctx.streamPosition.offset + 1,
      'the first live offset does not follow the subscribe position (2 messages were written before)',
      { position: ctx.streamPosition, first: s.pubs[0].offset });
  }
  return { client: conn.client, subscribed: subscribedSummary(ctx), pubs: s.pubs.map(pubSummary) };
}

// (b) sub.publish from one client arrives on another client's subscription, with the publisher's
// info; history returns the same publications, with limit, since and reverse.
async function publishHistory() {
  const ch = P.channel;
  const a = client('alice', { token: P.tokenA });
  const b = client('bob', { token: P.tokenB });
  a.client.connect();
  b.client.connect();
  const connA = await a.connected();
  await b.connected();
  const sb = subscription(b, ch);
  const sa = subscription(a, ch);
  sb.sub.subscribe();
  sa.sub.subscribe();
  const ctxB = await subscribed(sb);
  await subscribed(sa);
  const sent = [1, 2, 3].map((n) => ({ from: 'alice', n, text: `message ${n} ✓` }));
  for (const d of sent) {
    const r = await within(sa.sub.publish(d), WAIT, 'publish');
    check(r && typeof r === 'object', 'publish result is not an object', r);
  }
  await pubCount(sb, 3);
  await pubCount(sa, 3);
  check(deepEqual(sb.pubs.map((p) => p.data), sent), 'bob did not get alice\'s publications in order',
    sb.pubs.map(pubSummary));
  checkIncreasing(sb.pubs, 'publications', { consecutive: true });
  check(sb.pubs.every((p) => p.info && p.info.user === P.userA && p.info.client === connA.client),
    `publication info is not alice's (user ${P.userA}, client ${connA.client})`, sb.pubs.map(pubSummary));
  check(deepEqual(offsets(sa.pubs), offsets(sb.pubs)), 'publisher and subscriber see other offsets',
    { alice: offsets(sa.pubs), bob: offsets(sb.pubs) });
  const offs = offsets(sb.pubs);

  const h = await within(sb.sub.history({ limit: 10 }), WAIT, 'history limit 10');
  check(deepEqual(h.publications.map((p) => p.data), sent), 'history(limit 10) data', h.publications.map(pubSummary));
  check(deepEqual(offsets(h.publications), offs), 'history(limit 10) offsets', offsets(h.publications));
  check(h.offset === offs[2], 'history offset is not the top of the stream', { history: h.offset, top: offs[2] });
  check(typeof h.epoch === 'string' && h.epoch !== '', 'history has no epoch', h.epoch);
  if (ctxB.streamPosition) {
    check(h.epoch === ctxB.streamPosition.epoch, 'history epoch differs from the subscribe epoch',
      { history: h.epoch, subscribe: ctxB.streamPosition.epoch });
  }
  const hSince = await within(sb.sub.history({ limit: 10, since: { offset: offs[0], epoch: h.epoch } }), WAIT,
    'history since');
  check(deepEqual(offsets(hSince.publications), offs.slice(1)), 'history(since first) is not the later two',
    offsets(hSince.publications));
  const hRev = await within(sb.sub.history({ limit: 2, reverse: true }), WAIT, 'history reverse');
  check(deepEqual(offsets(hRev.publications), [offs[2], offs[1]]), 'history(limit 2, reverse) is not the newest two, newest first',
    offsets(hRev.publications));
  const hOne = await within(sb.sub.history({ limit: 1 }), WAIT, 'history limit 1');
  check(deepEqual(offsets(hOne.publications), [offs[0]]), 'history(limit 1) is not the oldest', offsets(hOne.publications));
  const hPos = await within(sb.sub.history({ limit: 0 }), WAIT, 'history limit 0');
  check(hPos.publications.length === 0 && hPos.offset === offs[2] && hPos.epoch === h.epoch,
    'history(limit 0) is not just the stream position', { ...hPos, publications: hPos.publications.map(pubSummary) });
  // Centrifugo keeps the publisher's info in history as well; reported here, asserted by the
  // Python side in its own test so that the rest of this scenario stands on its own.
  return {
    publisher: { user: P.userA, client: connA.client },
    received: sb.pubs.map(pubSummary),
    history: { offset: h.offset, epoch: h.epoch, publications: h.publications.map(pubSummary) },
    since: offsets(hSince.publications),
    reverse: offsets(hRev.publications),
  };
}

// (c) A dropped socket: publications written while the client is away arrive after it
// reconnects, through recovery (recovered: true), in order and once each.
async function recovery() {
  const ch = P.channel;
  const c = client('carol', { token: P.token });
  c.client.connect();
  const conn1 = await c.connected();
  const s = subscription(c, ch); // no recoverable option: the server decides for topics
  s.sub.subscribe();
  const ctx1 = await subscribed(s);
  check(ctx1.recoverable === true, 'subscribe result on a topic is not recoverable', subscribedSummary(ctx1));
  check(ctx1.streamPosition && typeof ctx1.streamPosition.epoch === 'string',
    'recoverable subscribe result has no stream position', subscribedSummary(ctx1));
  check(ctx1.wasRecovering === false, 'first subscribe says wasRecovering', subscribedSummary(ctx1));
  await httpWrite(ch, { n: 1 }, P.writer);
  await pubCount(s, 1);

  // Drop the TCP connection without a close frame and keep the client away until told.
  c.gate.open = false;
  const socketsBefore = c.sockets.length;
  c.dropTransport();
  await waitFor(() => s.events('subscribing').length >= 1, WAIT, 'the subscription to notice the drop');
  await waitFor(() => c.sockets.length > socketsBefore, WAIT, 'a reconnect attempt while away');
  for (const n of [2, 3, 4]) await httpWrite(ch, { n }, P.writer);
  check(s.pubs.length === 1, 'publications arrived while the socket was down', s.pubs.map(pubSummary));
  if (P.reconnect_url) c.gate.url = wsUrlOf(P.reconnect_url); // comes back on another node
  c.gate.open = true;

  const ctx2 = await subscribed(s, 2);
  await pubCount(s, 4);
  await httpWrite(ch, { n: 5 }, P.writer);
  await pubCount(s, 5);
  await sleep(200);
  const conns = c.events('connected');
  check(conns.length === 2 && conns[1].client !== conn1.client, 'expected exactly one reconnect with a new client id',
    conns.map((x) => x.client));
  const connecting = c.events('connecting');
  check(connecting.some((x) => x.code === 1), 'the client did not reconnect because of the transport',
    connecting);
  check(ctx2.wasRecovering === true && ctx2.recovered === true, 'resubscribe did not recover',
    subscribedSummary(ctx2));
  check(deepEqual(s.pubs.map((p) => p.data.n), [1, 2, 3, 4, 5]),
    'publications are not 1..5 once each in order', s.pubs.map(pubSummary));
  checkIncreasing(s.pubs, 'publications', { consecutive: true });
  return {
    first: subscribedSummary(ctx1),
    resubscribed: subscribedSummary(ctx2),
    pubs: s.pubs.map(pubSummary),
    connectingCodes: connecting.map((x) => x.code),
  };
}

// (d) A connection token that expires in a few seconds is renewed through getToken (the client's
// refresh command); the connection outlives the first token's expiry plus the server's grace.
async function refresh() {
  const ch = P.channel;
  const minted = [];
  const getToken = async () => {
    const t = now();
    const claims = { ...P.claims, iat: t, exp: t + 60, jti: `refresh-${minted.length + 1}` };
    minted.push(claims.jti);
    return signToken(claims);
  };
  const c = client('dave', { token: P.token, getToken });
  c.client.connect();
  const conn = await c.connected();
  const s = subscription(c, ch);
  s.sub.subscribe();
  await subscribed(s);
  await httpWrite(ch, { n: 1 }, P.writer);
  await pubCount(s, 1);
  const until = (P.shortExp + P.grace + 1.5) * 1000;
  while (Date.now() < until) {
    check(c.events('disconnected').length === 0 && c.events('connecting').length === 1,
      'the connection dropped before/after the token expiry', c.log.map(([e, x]) => [e, x && x.code]));
    await sleep(100);
  }
  check(minted.length >= 1, 'getToken was never called to refresh the expiring token');
  await httpWrite(ch, { n: 2 }, P.writer);
  await pubCount(s, 2);
  check(c.events('disconnected').length === 0 && c.events('connected').length === 1,
    'the connection did not survive the token expiry', c.log.map(([e, x]) => [e, x && x.code]));
  check(s.events('subscribed').length === 1, 'the subscription was re-established',
    s.log.map(([e, x]) => [e, x && x.code]));
  check(deepEqual(s.pubs.map((p) => p.data), [{ n: 1 }, { n: 2 }]), 'publications', s.pubs.map(pubSummary));
  return { client: conn.client, getTokenCalls: minted.length, survivedUntil: Math.round(Date.now() / 1000),
    firstExp: P.shortExp };
}

// (d, the other side) Without a new token the server ends the connection with 3005 (connection
// expired) once the token's expiry plus the grace has passed: getToken never answers here.
async function expire() {
  let asked = 0;
  const c = client('dave', { token: P.token, getToken: () => { asked++; return new Promise(() => {}); } });
  c.client.connect();
  await c.connected();
  await waitFor(() => c.events('connecting').length > 1 || c.events('disconnected').length > 0,
    (P.shortExp + P.grace) * 1000 + WAIT - Date.now(), 'the server to end the expired connection');
  const at = Date.now() / 1000;
  const ev = c.log.filter(([e]) => e === 'connecting' || e === 'disconnected').slice(1)[0];
  check(ev[1].code === 3005, 'expired connection: expected code 3005 (connection expired)', ev);
  check(at >= P.shortExp, 'the connection was ended before its token expired', { at, exp: P.shortExp });
  check(asked >= 1, 'the client was never asked for a new token');
  return { event: ev[0], code: ev[1].code, reason: ev[1].reason, secondsAfterExp: Math.round((at - P.shortExp) * 10) / 10 };
}

const subToken = (sub, channel, ttl = 60) => signToken({ sub, channel, iat: now(), exp: now() + ttl });

// (e) A `$` channel needs a subscription token: the Subscription's getToken provides one and the
// channel delivers; no token → 103; a token for another channel or another user → close 3500.
async function privateChannel() {
  const ch = P.channel;
  const asked = [];
  const c = client('erin', { token: P.token });
  c.client.connect();
  await c.connected();
  const s = subscription(c, ch, {
    getToken: async (ctx) => { asked.push(ctx.channel); return subToken(P.user, ctx.channel); },
  });
  s.sub.subscribe();
  const ctx = await subscribed(s);
  check(deepEqual(asked, [ch]), 'getToken was not asked once for the channel', asked);
  await httpWrite(ch, { n: 1 }, P.writer);
  await pubCount(s, 1);
  check(deepEqual(s.pubs[0].data, { n: 1 }), 'publication on the $ channel', s.pubs.map(pubSummary));

  // No subscription token: 103, the connection stays.
  const c2 = client('erin-no-token', { token: P.token });
  c2.client.connect();
  await c2.connected();
  const s2 = subscription(c2, ch);
  s2.sub.subscribe();
  await waitFor(() => s2.events('unsubscribed').length > 0 || s2.events('subscribed').length > 0, WAIT,
    'subscribe without a subscription token to be answered');
  check(s2.events('subscribed').length === 0, 'subscribed to a $ channel without a subscription token');
  const unsub2 = s2.events('unsubscribed')[0];
  check(unsub2.code === 103, 'no subscription token: expected unsubscribed with 103', unsub2);

  // A valid token for another channel, then for another user: the server closes with 3500.
  const wrong = {};
  for (const [label, mint] of [['other-channel', (x) => subToken(P.user, `${x.channel}x`)],
    ['other-user', (x) => subToken(`${P.user}-not`, x.channel)]]) {
    const c3 = client(`erin-${label}`, { token: P.token });
    c3.client.connect();
    await c3.connected();
    const s3 = subscription(c3, ch, { getToken: async (x) => mint(x) });
    s3.sub.subscribe();
    await waitFor(() => c3.events('disconnected').length > 0 || s3.events('subscribed').length > 0
      || s3.events('unsubscribed').length > 0, WAIT, `the server's answer to a subscription token for ${label}`);
    check(s3.events('subscribed').length === 0, `subscribed with a subscription token for ${label}`);
    const d = c3.events('disconnected')[0];
    check(d && d.code === 3500, `subscription token for ${label}: expected disconnect 3500`,
      { disconnected: d, unsubscribed: s3.events('unsubscribed') });
    wrong[label] = d.code;
  }
  check(c2.events('disconnected').length === 0 && c.events('disconnected').length === 0,
    'a good connection was dropped', { c: c.events('disconnected'), c2: c2.events('disconnected') });
  return { subscribed: subscribedSummary(ctx), getTokenAsked: asked, noToken: unsub2, wrongToken: wrong };
}

// (e, continued) A short subscription token is renewed through getToken (sub_refresh) and the
// subscription outlives its expiry plus the server's grace.
async function subRefresh() {
  const ch = P.channel;
  const asked = [];
  const c = client('erin', { token: P.token });
  c.client.connect();
  await c.connected();
  let firstExp = 0;
  const s = subscription(c, ch, {
    getToken: async (ctx) => {
      asked.push(ctx.channel);
      if (asked.length === 1) {
        firstExp = now() + P.shortTtl;
        return signToken({ sub: P.user, channel: ctx.channel, iat: now(), exp: firstExp });
      }
      return subToken(P.user, ctx.channel);
    },
  });
  s.sub.subscribe();
  await subscribed(s);
  const until = (firstExp + P.grace + 1.5) * 1000;
  while (Date.now() < until) {
    check(s.events('unsubscribed').length === 0 && s.events('subscribing').length === 1,
      'the subscription was interrupted', s.log.map(([e, x]) => [e, x && x.code]));
    await sleep(100);
  }
  check(asked.length >= 2, 'getToken was not asked again before the subscription token expired', asked);
  await httpWrite(ch, { n: 1 }, P.writer);
  await pubCount(s, 1);
  check(s.events('subscribed').length === 1 && s.events('unsubscribed').length === 0,
    'the subscription did not survive its token\'s expiry', s.log.map(([e, x]) => [e, x && x.code]));
  check(c.events('disconnected').length === 0, 'the connection dropped', c.events('disconnected'));
  return { getTokenCalls: asked.length, firstExp };
}

// (f) A channel outside the token's `channels` scope: subscribe → 103, publish → 103, and the
// connection goes on with the channels it may use.
async function denied() {
  const c = client('frank', { token: P.token });
  c.client.connect();
  await c.connected();
  const s = subscription(c, P.outside);
  s.sub.subscribe();
  const ready = s.sub.ready(WAIT).then(() => 'subscribed', (e) => e);
  await waitFor(() => s.events('unsubscribed').length > 0 || s.events('subscribed').length > 0, WAIT,
    'the subscribe outside the scope to be answered');
  check(s.events('subscribed').length === 0, `subscribed to ${P.outside} outside the token's scope`);
  const u = s.events('unsubscribed')[0];
  check(u.code === 103, 'expected unsubscribed with code 103 (permission denied)', u);
  const r = await ready;
  check(r !== 'subscribed', 'ready() resolved for a denied subscription');
  let pubErr = null;
  try {
    await within(c.client.publish(P.outside, { n: 1 }), WAIT, 'publish outside the scope');
  } catch (e) {
    pubErr = e;
  }
  check(pubErr && pubErr.code === 103, 'publish outside the scope: expected error 103', pubErr);
  check(c.events('disconnected').length === 0, 'the connection was closed after a denial', c.events('disconnected'));
  const ok = subscription(c, P.inside);
  ok.sub.subscribe();
  await subscribed(ok);
  await within(c.client.publish(P.inside, { n: 1 }), WAIT, 'publish inside the scope');
  await pubCount(ok, 1);
  return { unsubscribed: u, publishError: { code: pubErr.code, message: pubErr.message } };
}

// (g) Revoking the connection's token id over POST /revoke closes that socket with 3503 (and the
// client does not come back); another token of the same user keeps its connection.
async function revocation() {
  const ch = P.channel;
  const c1 = client('gina-1', { token: P.token1 });
  const c2 = client('gina-2', { token: P.token2 });
  c1.client.connect();
  c2.client.connect();
  await c1.connected();
  await c2.connected();
  const s1 = subscription(c1, ch);
  const s2 = subscription(c2, ch);
  s1.sub.subscribe();
  s2.sub.subscribe();
  await subscribed(s1);
  await subscribed(s2);
  const r = await request('POST', '/revoke', { token: P.admin, body: { token_id: P.jti1 } });
  check(r.status === 200, `POST /revoke answered ${r.status}`, r.body);
  await waitFor(() => c1.events('disconnected').length > 0, WAIT, 'the revoked connection to be closed');
  const d = c1.events('disconnected')[0];
  check(d.code === 3503, 'revoked connection: expected disconnect code 3503', d);
  const socketsAfter = c1.sockets.length;
  await sleep(1000);
  check(c1.client.state === 'disconnected' && c1.sockets.length === socketsAfter,
    'the client reconnected after 3503', { state: c1.client.state, sockets: c1.sockets.length });
  await httpWrite(ch, { n: 1 }, P.writer);
  await pubCount(s2, 1);
  check(c2.events('disconnected').length === 0, 'the other token\'s connection was closed', c2.events('disconnected'));
  check(s1.pubs.length === 0, 'the revoked connection still received a publication');
  return { disconnected: d };
}

// Deadlines for a whole scenario: only there to turn a hang into a failure.
const SCENARIOS = {
  deliver: [deliver, 90000],
  publish_history: [publishHistory, 90000],
  recovery: [recovery, 90000],
  refresh: [refresh, 90000],
  expire: [expire, 90000],
  private: [privateChannel, 90000],
  sub_refresh: [subRefresh, 90000],
  denied: [denied, 90000],
  revocation: [revocation, 90000],
};

function eventSummary() {
  const out = {};
  for (const c of clients) {
    out[c.label] = c.log.map(([e, x]) => (x && x.code !== undefined ? `${e}(${x.code} ${x.reason || ''})`
      : x && x.error ? `${e}(${x.type}: ${x.error.code} ${x.error.message})` : e));
  }
  for (const s of subs) {
    out[s.label] = s.log.map(([e, x]) => (x && x.code !== undefined ? `${e}(${x.code} ${x.reason || ''})`
      : x && x.error ? `${e}(${x.type}: ${x.error.code} ${x.error.message})` : e))
      .concat([`${s.pubs.length} publications`]);
  }
  return out;
}

let finished = false;

function finish(name, ok, fields) {
  if (finished) return;
  finished = true;
  for (const c of clients) {
    try { c.client.disconnect(); } catch { /* already gone */ }
  }
  process.stdout.write(`${JSON.stringify({ scenario: name, ok, ...fields })}\n`, () => process.exit(ok ? 0 : 1));
}

async function main() {
  const name = process.argv[2];
  const entry = SCENARIOS[name];
  if (!entry) {
    process.stderr.write(`usage: centrifuge_e2e.mjs ${Object.keys(SCENARIOS).join('|')}\n`);
    process.exit(2);
  }
  const [fn, ms] = entry;
  const timer = setTimeout(() => {
    process.stderr.write(`${name}: timed out after ${ms} ms\n`);
    finish(name, false, { error: `scenario timed out after ${ms} ms`, events: eventSummary() });
  }, ms);
  try {
    const result = await fn();
    clearTimeout(timer);
    finish(name, true, result);
  } catch (e) {
    clearTimeout(timer);
    const message = e instanceof Failure ? e.message : (e && e.stack) || JSON.stringify(e);
    process.stderr.write(`${name}: FAILED: ${message}\n`);
    finish(name, false, { error: message, events: eventSummary() });
  }
}

main();
