// Helpers for the scenarios in centrifuge_e2e.mjs: the real centrifuge client over ws, HTTP calls
// to sluiced with node:http, HS256 tokens signed with node:crypto, and waiting with deadlines.
import { createHmac } from 'node:crypto';
import http from 'node:http';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

export const BASE_URL = process.env.SLUICE_URL || 'http://127.0.0.1:8080';
export const WS_URL = BASE_URL.replace(/^http/, 'ws') + '/connection/websocket';
// Several nodes: HTTP writes may go to another node than the sockets (SLUICE_WRITE_URL).
const WRITE_URL = process.env.SLUICE_WRITE_URL || BASE_URL;
export const wsUrlOf = (base) => base.replace(/^http/, 'ws') + '/connection/websocket';
const SECRET = process.env.SLUICE_JWT_SECRET || '';

export class Failure extends Error {}

export function check(cond, message, detail) {
  if (!cond) {
    throw new Failure(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// How long a scenario waits for something that must happen: generous (a loaded machine under the
// sanitizers can be slow), and never a statement about speed. Latencies are benchmarked instead.
export const WAIT = 15000;

// Polls cond() until it is truthy; fails with `what` after ms milliseconds.
export async function waitFor(cond, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() >= deadline) throw new Failure(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

// A promise that fails with `what` after ms milliseconds unless p settles first.
export function within(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// An HS256 JWT with the server's secret (what the Python side mints with PyJWT).
export function signToken(claims) {
  check(SECRET !== '', 'SLUICE_JWT_SECRET is not set for the Node side');
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export const now = () => Math.floor(Date.now() / 1000);

// One HTTP request to sluiced; resolves {status, body} (body parsed as JSON when it is).
export function request(method, path, { token, body, base = BASE_URL } = {}) {
  const url = new URL(path, base);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (payload) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = payload.length;
  }
  return within(new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: parsed });
      });
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  }), WAIT, `${method} ${path}`);
}

// Writes one message to a channel over HTTP (PUT /channels/{id}); fails unless 200.
export async function httpWrite(channel, data, token) {
  const r = await request('PUT', `/channels/${channel}`, { token, body: data, base: WRITE_URL });
  check(r.status === 200, `PUT /channels/${channel} answered ${r.status}`, r.body);
  return r.body;
}

// A Centrifuge client on the ws package whose sockets can be inspected and dropped, with every
// event recorded in order: `log` holds [event name, context] pairs.
//   gate.open = false makes new connection attempts fail (they go to a closed port) until it is
//   set back to true; dropTransport() ends the current socket without a close frame.
export function makeClient(label, options = {}) {
  const sockets = [];
  const gate = { open: true };
  class TrackedWebSocket extends WebSocket {
    constructor(url, protocols) {
      // gate.url: reconnect to another node from now on
      super(gate.open ? (gate.url || url) : 'ws://127.0.0.1:1/connection/websocket', protocols);
      sockets.push(this);
    }
  }
  const client = new Centrifuge(WS_URL, {
    websocket: TrackedWebSocket,
    name: 'sluice-e2e',
    timeout: WAIT, // the client's own deadline for a reply: generous, like every wait here
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    debug: process.env.CENTRIFUGE_DEBUG === '1',
    ...options,
  });
  const log = [];
  for (const ev of ['connecting', 'connected', 'disconnected', 'error']) {
    client.on(ev, (ctx) => log.push([ev, ctx]));
  }
  return {
    label,
    client,
    log,
    sockets,
    gate,
    events: (name) => log.filter(([e]) => e === name).map(([, ctx]) => ctx),
    dropTransport() {
      const ws = sockets[sockets.length - 1];
      check(ws && ws.readyState === WebSocket.OPEN, `${label}: no open socket to drop`);
      ws.terminate();
    },
    async connected(ms = WAIT) {
      await within(client.ready(ms), ms + 100, `${label} to connect`);
      return this.events('connected').at(-1);
    },
  };
}

// A subscription with every event recorded: `pubs` the publications in arrival order, `log` the
// rest in order.
export function makeSub(c, channel, options = {}) {
  const sub = c.client.newSubscription(channel, options);
  const log = [];
  const pubs = [];
  for (const ev of ['subscribing', 'subscribed', 'unsubscribed', 'error']) {
    sub.on(ev, (ctx) => log.push([ev, ctx]));
  }
  sub.on('publication', (ctx) => pubs.push(ctx));
  return {
    sub,
    log,
    pubs,
    events: (name) => log.filter(([e]) => e === name).map(([, ctx]) => ctx),
  };
}

// Short, JSON-friendly summaries of contexts for the result line.
export const pubSummary = (p) => ({ data: p.data, offset: p.offset, info: p.info });
export const subscribedSummary = (ctx) => ({
  recoverable: ctx.recoverable,
  positioned: ctx.positioned,
  wasRecovering: ctx.wasRecovering,
  recovered: ctx.recovered,
  streamPosition: ctx.streamPosition,
});
