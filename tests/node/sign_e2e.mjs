// Issue 11, section 1: requests signed by an independent RFC 9421 implementation (the npm
// http-message-signatures package, pinned in package.json) are accepted by sluiced, for
// hmac-sha256 and ed25519; the same request sent twice is refused (its nonce), and so is one whose
// body was changed after signing. Run by tests/e2e/test_signatures.py with SLUICE_URL and
// SCENARIO_PARAMS = {"hmac_secret", "ed25519_key" (PEM private key), "channel"}.
// Prints one JSON result line: {ok, results: {alg: {status, replay, tampered}}}.
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { httpbis, createSigner } from 'http-message-signatures';

const result = { ok: false, results: {} };
try {
  const base = process.env.SLUICE_URL;
  const p = JSON.parse(process.env.SCENARIO_PARAMS);
  const keys = {
    'hmac-sha256': { keyid: 'svc-hmac', key: Buffer.from(p.hmac_secret) },
    ed25519: { keyid: 'svc-ed', key: createPrivateKey(p.ed25519_key) },
  };
  for (const [alg, { keyid, key }] of Object.entries(keys)) {
    const body = JSON.stringify({ signedBy: 'node', alg });
    const digest = createHash('sha256').update(body).digest('base64');
    const request = {
      method: 'PUT',
      url: `${base}/channels/${p.channel}`,
      headers: {
        'Content-Type': 'application/json',
        'Content-Digest': `sha-256=:${digest}:`,
      },
    };
    const signed = await httpbis.signMessage(
      {
        key: createSigner(key, alg, keyid),
        fields: ['@method', '@target-uri', 'content-digest', 'content-type'],
        params: ['created', 'expires', 'keyid', 'alg', 'nonce'],
        paramValues: { nonce: randomBytes(16).toString('base64url') },
      },
      request,
    );
    const send = async (b) => {
      const r = await fetch(signed.url, { method: signed.method, headers: signed.headers, body: b });
      return { status: r.status, body: await r.text() };
    };
    const first = await send(body);
    const replay = await send(body);
    result.results[alg] = {
      status: first.status,
      body: first.body,
      replay: replay.status,
      replayBody: replay.body,
      signatureInput: signed.headers['Signature-Input'] ?? signed.headers['signature-input'],
    };
  }
  // A third request whose body differs from the one its digest and signature cover.
  const body = JSON.stringify({ signedBy: 'node', tampered: false });
  const request = {
    method: 'PUT',
    url: `${base}/channels/${p.channel}`,
    headers: {
      'Content-Type': 'application/json',
      'Content-Digest': `sha-256=:${createHash('sha256').update(body).digest('base64')}:`,
    },
  };
  const signed = await httpbis.signMessage(
    {
      key: createSigner(keys['hmac-sha256'].key, 'hmac-sha256', 'svc-hmac'),
      fields: ['@method', '@target-uri', 'content-digest'],
      params: ['created', 'keyid', 'alg', 'nonce'],
      paramValues: { nonce: randomBytes(16).toString('hex') },
    },
    request,
  );
  const r = await fetch(signed.url, {
    method: 'PUT',
    headers: signed.headers,
    body: JSON.stringify({ signedBy: 'node', tampered: true }),
  });
  result.tampered = { status: r.status, body: await r.text() };
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
