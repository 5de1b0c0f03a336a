// The admin console (/admin) in a real browser: Debian's chromium, headless, driven with
// puppeteer-core (pinned in package.json). Run by tests/e2e/test_console.py:
//
//   SLUICE_URL=http://127.0.0.1:PORT CONSOLE_PARAMS='{"admin":..., ...}' CONSOLE_ARTIFACTS=DIR \
//     node tests/node/console_e2e.mjs
//
// The Python side makes the changes the page must see (a write, a WebSocket client): when the
// script needs one it prints {"step": NAME, ...} and reads one line ({"ok": true} or an error)
// from stdin. At the end it prints {"ok": true, ...} and exits 0, or {"ok": false, "error"} and
// exits 1. A screenshot of every view is saved into CONSOLE_ARTIFACTS. Every wait is a generous
// deadline, never a statement about speed.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

import puppeteer from 'puppeteer-core';

const BASE = process.env.SLUICE_URL;
const P = JSON.parse(process.env.CONSOLE_PARAMS || '{}');
const ART = process.env.CONSOLE_ARTIFACTS || 'artifacts/console';
const CHROMIUM = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium';
const WAIT = 30000;
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const VIEWS = ['overview', 'channels', 'connections', 'access', 'audit'];

class Failure extends Error {}
function check(cond, message, detail) {
  if (!cond) throw new Failure(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
}

// ---- the conversation with the Python side ----------------------------------------------------

const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on('line', (l) => {
  const w = waiting.shift();
  if (w) w(l);
});
function step(name, extra = {}) {
  process.stdout.write(JSON.stringify({ step: name, ...extra }) + '\n');
  return new Promise((resolve, reject) => {
    waiting.push((l) => {
      const r = JSON.parse(l);
      if (r.ok) resolve(r);
      else reject(new Failure(`step ${name} failed on the Python side: ${r.error}`));
    });
  });
}

// ---- the page ---------------------------------------------------------------------------------

const requests = []; // every request the page made to sluiced: {url, method, auth}
const cspViolations = [];
const pageErrors = [];
const shots = [];

async function shot(page, name) {
  const file = path.join(ART, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim());
const isHidden = (page, sel) => page.$eval(sel, (e) => e.hidden);

// Waits until the text of sel matches: how is 'eq', 'includes', 'startsWith' or 'nonEmpty'.
async function waitText(page, sel, how, arg, what) {
  try {
    await page.waitForFunction(
      (s, h, a) => {
        const e = document.querySelector(s);
        if (e === null) return false;
        const t = e.textContent.trim();
        return h === 'eq' ? t === a : h === 'includes' ? t.includes(a) : h === 'startsWith' ? t.startsWith(a) : t.length > 0;
      },
      { timeout: WAIT, polling: 100 },
      sel,
      how,
      arg,
    );
  } catch (e) {
    const now = await page.$eval(sel, (x) => x.textContent.trim()).catch(() => '(missing)');
    throw new Failure(`timed out waiting for ${what} (${sel} shows ${JSON.stringify(now)})`);
  }
}

// The depth cell of a channel's row.
async function depthOf(page, id) {
  return page.evaluate((k) => {
    const tr = document.querySelector(`#channels-table tbody tr[data-key="${CSS.escape(k)}"]`);
    return tr ? tr.cells[2].textContent.trim() : null;
  }, id);
}

async function waitDepth(page, id, want) {
  try {
    await page.waitForFunction(
      (k, w) => {
        const tr = document.querySelector(`#channels-table tbody tr[data-key="${CSS.escape(k)}"]`);
        return tr !== null && tr.cells[2].textContent.trim() === w;
      },
      { timeout: WAIT, polling: 100 },
      id,
      String(want),
    );
  } catch (e) {
    throw new Failure(`the depth of ${id} never showed ${want} (shows ${await depthOf(page, id)})`);
  }
}

async function view(page, name) {
  await page.click(`.tabs button[data-view="${name}"]`);
  await page.waitForFunction((n) => !document.getElementById('view-' + n).hidden, { timeout: WAIT }, name);
}

// Presses Tab until the element with id `target` has the focus; returns the ids passed on the way.
// Fails when the focus went round the page without reaching it.
async function tabTo(page, target, max = 80) {
  const seen = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(() => {
      const a = document.activeElement;
      if (!a || a === document.body) return '(body)';
      return a.id || `${a.tagName.toLowerCase()}[${a.textContent.trim().slice(0, 30)}]`;
    });
    seen.push(id);
    if (id === target) return seen;
  }
  throw new Failure(`Tab never reached #${target}`, seen);
}

// Whether the focused element shows a visible focus ring (outline or box shadow).
const focusVisible = (page) =>
  page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';
  });

async function signInByKeyboard(page, credential) {
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await tabTo(page, 'credential');
  check(await focusVisible(page), 'the focused credential field shows no focus ring');
  await page.keyboard.type(credential);
  const path = await tabTo(page, 'signin-button');
  check(await focusVisible(page), 'the focused sign-in button shows no focus ring');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => !document.getElementById('app').hidden, { timeout: WAIT });
  return path;
}

async function noHorizontalScroll(page, where) {
  const r = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: document.documentElement.clientWidth,
  }));
  check(r.scroll <= r.width, `the page scrolls sideways at ${where}`, r);
}

async function main() {
  mkdirSync(ART, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    timeout: 120000,
    protocolTimeout: 120000,
  });
  const result = { ok: true };
  let page = null;
  try {
    page = await browser.newPage();
    page.setDefaultTimeout(WAIT);
    await page.setViewport({ width: 1280, height: 900 });
    page.on('request', (r) => {
      if (r.url().startsWith(BASE)) {
        const h = r.headers();
        requests.push({
          url: r.url().slice(BASE.length),
          method: r.method(),
          auth: h.authorization || null,
          workspace: h['sluice-workspace'] || null,
        });
      }
    });
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(String(e)));

    // The page and its headers.
    const resp = await page.goto(BASE + '/admin', { waitUntil: 'load', timeout: 120000 });
    check(resp.status() === 200, 'GET /admin', resp.status());
    const h = resp.headers();
    check(h['content-security-policy'] === CSP, 'the Content-Security-Policy', h['content-security-policy']);
    check(h['x-content-type-options'] === 'nosniff', 'X-Content-Type-Options', h['x-content-type-options']);
    check(/text\/html/.test(h['content-type']), 'Content-Type of /admin', h['content-type']);
    check(!!h['cache-control'], 'Cache-Control missing');
    await shot(page, '01-sign-in');

    // The page's Prometheus text parser on odd but valid input and on garbage.
    const parsed = await page.evaluate(() => {
      const t = [
        '# HELP sluice_x A help line with \\ and "quotes"',
        '# TYPE sluice_x counter',
        'sluice_x{channel="a\\"b\\\\c\\nd",op="w"} 3',
        'sluice_x{channel="},{=",op=""} 4 1700000000000',
        'sluice_g +Inf',
        'sluice_h NaN',
        '',
        'garbage line {{{',
        'sluice_bad{channel="unterminated} 1',
        'sluice_bad2{="x"} 1',
        'sluice_bad3 notanumber',
        '{x="y"} 2',
      ].join('\n');
      const m = window.sluiceConsole.parseMetrics(t);
      const x = m.samples.get('sluice_x') || [];
      return {
        type: m.types.get('sluice_x'),
        labels: x.map((s) => s.labels.channel),
        values: x.map((s) => s.value),
        g: String((m.samples.get('sluice_g') || [{}])[0].value),
        h: (m.samples.get('sluice_h') || []).length,
        names: [...m.samples.keys()].sort(),
      };
    });
    check(parsed.type === 'counter', 'parser: TYPE', parsed);
    check(JSON.stringify(parsed.labels) === JSON.stringify(['a"b\\c\nd', '},{=']), 'parser: label escapes', parsed);
    check(JSON.stringify(parsed.values) === '[3,4]', 'parser: values', parsed);
    check(parsed.g === 'Infinity' && parsed.h === 1, 'parser: +Inf and NaN', parsed);
    check(JSON.stringify(parsed.names) === JSON.stringify(['sluice_g', 'sluice_h', 'sluice_x']), 'parser: garbage was kept', parsed);

    // A wrong credential is refused and the form stays.
    await page.type('#credential', 'not-a-token');
    await page.keyboard.press('Enter');
    await waitText(page, '#signin-error', 'nonEmpty', '', 'the sign-in error');
    check(await page.$eval('#app', (e) => e.hidden), 'signed in with a bad credential');

    // Sign in as the admin with the keyboard only.
    result.tabPath = await signInByKeyboard(page, P.admin);
    const stored = await page.evaluate(() => ({
      local: localStorage.length,
      session: sessionStorage.length,
      cookie: document.cookie,
      url: location.href,
      field: document.getElementById('credential').value,
    }));
    check(stored.local === 0 && stored.session === 0 && stored.cookie === '' && stored.field === '', 'the credential was stored', stored);
    check(!stored.url.includes(P.admin), 'the credential is in the URL');
    for (const f of ['#create-form', '#grant-form', '#revoke-form'])
      check(!(await isHidden(page, f)), `the admin does not see ${f}`);

    // Overview: the charts from /metrics.
    await page.waitForFunction(() => document.querySelectorAll('#charts .chart').length >= 2, { timeout: WAIT });
    await page.waitForFunction(() => document.querySelector('#charts .chart polyline').getAttribute('points').split(' ').length >= 2, { timeout: WAIT });
    result.charts = await page.$$eval('#charts .chart .title', (t) => t.map((x) => x.textContent));
    await shot(page, '02-overview');

    // Channels: create one with the keyboard (tab to the view, then through the form).
    await page.focus('.tabs button[data-view="overview"]');
    for (let i = 0; i < 10; i++) {
      if ((await page.evaluate(() => document.activeElement.dataset.view || null)) === 'channels') break;
      await page.keyboard.press('Tab');
    }
    check((await page.evaluate(() => document.activeElement.dataset.view)) === 'channels', 'Tab did not reach the Channels tab');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('view-channels').hidden, { timeout: WAIT });
    await tabTo(page, 'create-id');
    await page.keyboard.type(P.channel);
    await tabTo(page, 'create-button');
    check(await focusVisible(page), 'the focused Create button shows no focus ring');
    await page.keyboard.press('Enter');
    await waitText(page, '#notice', 'includes', 'created', 'the channel to be created');
    await waitDepth(page, P.channel, 0);
    // A write made elsewhere shows up by itself (polling).
    await step('write', { channel: P.channel, count: 2 });
    await waitDepth(page, P.channel, 2);
    await shot(page, '03-channels');
    // The row's Delete button is reachable by Tab, and keeps the focus across refreshes (rows are
    // updated in place, not rebuilt).
    const del = `Delete channel ${P.channel}`;
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      if ((await page.evaluate(() => document.activeElement.getAttribute('aria-label'))) === del) break;
    }
    check((await page.evaluate(() => document.activeElement.getAttribute('aria-label'))) === del, 'Tab never reached the Delete button');
    check(await focusVisible(page), 'the focused Delete button shows no focus ring');
    const before = await text(page, '#sum-updated');
    await waitText(page, '#sum-updated', 'nonEmpty', '', 'a refresh');
    await page.waitForFunction((b) => document.getElementById('sum-updated').textContent !== b, { timeout: WAIT }, before);
    await page.waitForFunction((b) => document.getElementById('sum-updated').textContent !== b, { timeout: WAIT }, await text(page, '#sum-updated'));
    check((await page.evaluate(() => document.activeElement.getAttribute('aria-label'))) === del, 'a refresh took the focus away');
    // Delete another channel: the first press only arms the button, the second deletes.
    const doomed = `#channels-table tbody tr[data-key="${P.doomed}"] button`;
    await page.click(doomed);
    await waitText(page, doomed, 'startsWith', 'Confirm', 'the armed Delete button');
    check(await page.$(`#channels-table tbody tr[data-key="${P.doomed}"]`), 'one press deleted the channel');
    await page.click(doomed);
    await waitText(page, '#notice', 'includes', 'deleted', 'the channel to be deleted');
    await page.waitForFunction((d) => !document.querySelector(`#channels-table tbody tr[data-key="${d}"]`), { timeout: WAIT }, P.doomed);

    // Connections: the test's two WebSocket clients; revoke the tokens of one, disconnect the other.
    await view(page, 'connections');
    await waitText(page, '#sum-connections', 'eq', '2', 'two live connections');
    await page.waitForFunction((p) => document.querySelector('#connections-table tbody').textContent.includes(p), { timeout: WAIT }, P.victim);
    await shot(page, '04-connections');
    // By keyboard: the form's select, field and button are reached with Tab.
    await tabTo(page, 'revoke-kind');
    check((await page.$eval('#revoke-kind', (e) => e.value)) === 'user_id', 'the revoke form does not default to a principal');
    await tabTo(page, 'revoke-value');
    await page.keyboard.type(P.victim);
    await tabTo(page, 'revoke-button');
    await page.keyboard.press('Enter');
    await waitText(page, '#notice', 'includes', 'revoked', 'the revocation');
    await waitText(page, '#sum-connections', 'eq', '1', 'the socket counter to drop to 1');
    await step('revoked');
    // Disconnect the other principal with its row's button (armed, then pressed).
    const disc = `#connections-table tbody button[aria-label="Disconnect every connection of ${P.other}"]`;
    await page.click(disc);
    await page.click(disc);
    await waitText(page, '#notice', 'includes', 'closed', 'the disconnect');
    await waitText(page, '#sum-connections', 'eq', '0', 'the socket counter to drop to 0');
    await step('disconnected');

    // Access: ACL grants with broker roles, API keys without secrets.
    await view(page, 'access');
    // Grant with the keyboard, then revoke the grant with its row's button.
    await tabTo(page, 'grant-principal');
    await page.keyboard.type('console-new');
    await tabTo(page, 'grant-channels');
    await page.keyboard.type('console.news, console.jobs');
    await tabTo(page, 'grant-button');
    await page.keyboard.press('Enter');
    await waitText(page, '#notice', 'includes', 'Granted', 'the grant');
    await page.waitForFunction(() => {
      const tr = document.querySelector('#acl-table tbody tr[data-key="console-new"]');
      return tr && tr.cells[1].textContent === 'read' && tr.cells[2].textContent === 'console.news, console.jobs';
    }, { timeout: WAIT });
    const rg = '#acl-table tbody tr[data-key="console-new"] button';
    await page.click(rg);
    await page.click(rg);
    await page.waitForFunction(() => !document.querySelector('#acl-table tbody tr[data-key="console-new"]'), { timeout: WAIT });
    await page.waitForFunction((p) => document.querySelector('#acl-table tbody').textContent.includes(p), { timeout: WAIT }, P.grantee);
    await page.waitForFunction((k) => document.querySelector('#apikeys-table tbody').textContent.includes(k), { timeout: WAIT }, P.apikeyId);
    const accessText = await page.$eval('#view-access', (e) => e.textContent);
    check(!accessText.includes(P.apikeySecret), 'an API key secret is on the page');
    await page.waitForFunction((p) => {
      const tr = document.querySelector(`#acl-table tbody tr[data-key="${CSS.escape(p)}"]`);
      return tr && tr.cells[4].textContent.includes('publisher');
    }, { timeout: WAIT }, P.grantee);
    await shot(page, '05-access');

    // Audit: the chain verifies and the console's own actions are there.
    await view(page, 'audit');
    await waitText(page, '#audit-chain', 'startsWith', '✓', 'the verified chain');
    await page.waitForFunction(() => document.querySelector('#audit-table tbody').textContent.includes('token.revoke'), { timeout: WAIT });
    await shot(page, '06-audit');

    // A phone's width: no sideways scrolling in any view.
    await page.setViewport({ width: 375, height: 800 });
    for (const v of VIEWS) {
      await view(page, v);
      await noHorizontalScroll(page, `375px (${v})`);
      await shot(page, `07-phone-${v}`);
    }
    await page.setViewport({ width: 1280, height: 900 });

    // Sign out; a viewer (read-only token) sees the data it may and no admin action.
    await page.click('#signout');
    await page.waitForFunction(() => !document.getElementById('signin').hidden, { timeout: WAIT });
    await page.type('#credential', P.viewer);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('app').hidden, { timeout: WAIT });
    await view(page, 'channels');
    await page.waitForFunction((c) => document.querySelector(`#channels-table tbody tr[data-key="${CSS.escape(c)}"]`), { timeout: WAIT }, P.channel);
    for (const f of ['#create-form', '#grant-form', '#revoke-form'])
      check(await isHidden(page, f), `the viewer sees ${f}`);
    await waitText(page, '#sum-updated', 'nonEmpty', '', 'a refresh');
    await shot(page, '08-viewer-channels');
    for (const v of VIEWS) {
      await view(page, v);
      const buttons = await page.$$eval('main button', (bs) => bs.filter((b) => b.offsetParent !== null).map((b) => b.textContent.trim()));
      check(buttons.length === 0, `the viewer sees buttons in ${v}`, buttons);
    }
    await view(page, 'access');
    await waitText(page, '#acl-state', 'startsWith', 'Not allowed', 'the viewer\'s ACL to say not allowed');
    await shot(page, '09-viewer-access');

    // An API key signs in as well (this one has the read role: a viewer too).
    await page.click('#signout');
    await page.waitForFunction(() => !document.getElementById('signin').hidden, { timeout: WAIT });
    await page.type('#credential', P.apikeySecret);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('app').hidden, { timeout: WAIT });
    await view(page, 'channels');
    await page.waitForFunction((c) => document.querySelector(`#channels-table tbody tr[data-key="${CSS.escape(c)}"]`), { timeout: WAIT }, P.channel);
    check(await isHidden(page, '#create-form'), 'a read-only API key sees the create form');
    const keyOnPage = await page.evaluate((k) => document.documentElement.outerHTML.includes(k), P.apikeySecret);
    check(!keyOnPage, 'the API key is in the page');
    check(requests.every((r) => r.workspace === null), 'a request named a workspace before any was asked for');

    // An operator addresses a workspace: a credential that is no operator is refused at sign-in;
    // the operator's every request then names the workspace, and what it creates lands there
    // (the Python side looks, in the workspace and outside it).
    await page.click('#signout');
    await page.waitForFunction(() => !document.getElementById('signin').hidden, { timeout: WAIT });
    await page.type('#credential', P.viewer);
    await page.type('#workspace', 'no such name!');
    await page.keyboard.press('Enter');
    await waitText(page, '#signin-error', 'startsWith', 'A workspace name', 'the refusal of a malformed workspace name');
    await page.$eval('#workspace', (e) => (e.value = ''));
    await page.type('#workspace', P.workspace);
    await page.type('#credential', P.viewer);
    await page.keyboard.press('Enter');
    await waitText(page, '#signin-error', 'startsWith', 'Not accepted', 'the refusal of a non-operator in a workspace');
    check(await isHidden(page, '#app'), 'a credential that is no operator signed into a workspace');
    const opFrom = requests.length;
    await page.type('#credential', P.admin);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => !document.getElementById('app').hidden, { timeout: WAIT });
    await waitText(page, '#who', 'includes', 'in workspace ' + P.workspace, 'the workspace in the header');
    await view(page, 'channels');
    check(!(await isHidden(page, '#create-form')), 'the operator does not see the create form in the workspace');
    await page.type('#create-id', P.wsChannel);
    await page.click('#create-button');
    await page.waitForFunction((c) => document.querySelector(`#channels-table tbody tr[data-key="${CSS.escape(c)}"]`), { timeout: WAIT }, P.wsChannel);
    const outside = await page.evaluate((c) => document.querySelector(`#channels-table tbody tr[data-key="${CSS.escape(c)}"]`) !== null, P.channel);
    check(!outside, 'the workspace lists a channel of the default workspace');
    await shot(page, '10-operator-workspace');
    await step('workspace', { channel: P.wsChannel, outside: P.channel });
    const mine = requests.slice(opFrom).filter((r) => !r.url.startsWith('/admin'));
    check(mine.length > 0 && mine.every((r) => r.workspace === P.workspace), 'an operator request without its workspace',
      mine.filter((r) => r.workspace !== P.workspace).slice(0, 5));

    // Every request to sluiced outside the static files carried the credential.
    const api = requests.filter((r) => !r.url.startsWith('/admin'));
    check(api.length > 0, 'the page made no API request');
    const bare = api.filter((r) => !r.auth || !r.auth.startsWith('Bearer '));
    check(bare.length === 0, 'requests without Authorization', bare.slice(0, 5));
    check(cspViolations.length === 0, 'Content-Security-Policy violations', cspViolations);
    check(pageErrors.length === 0, 'errors in the page', pageErrors);
    result.requests = api.length;
    result.screenshots = shots;
  } catch (e) {
    if (page) await shot(page, 'failure').catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
  return result;
}

main()
  .then((r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  })
  .catch((e) => {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e), screenshots: shots }) + '\n');
    process.exit(1);
  });
