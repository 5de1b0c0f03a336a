// The sluice admin console: one page over sluiced's own authorised HTTP API.
//
// The credential (a token or an API key) lives in one variable of this closure and goes out only
// as an Authorization header to this origin: never to localStorage, sessionStorage, a cookie or a
// URL, so reloading the page signs out. The page decides nothing about access: every list and
// every action is a request the server authorises; a 403 is shown as "not allowed". Admin actions
// are offered only where a probe request (one that cannot change anything) was not refused.
// Data is refreshed by polling, which works through every proxy; a source that answers 403 or 404
// is not asked again this session (each denial is an audit record on the server).
// Everything the server sends is rendered as text (textContent), never as markup.
'use strict';

(() => {
  const POLL_MS = 1500;
  const SERIES_MAX = 120; // points per chart: three minutes at the poll interval
  const BROKER_EVERY = 5; // broker roles are asked every fifth poll (one request per principal)
  const BROKER_MAX = 25; // principals asked per round

  let credential = null; // the only copy of the secret
  let workspace = ''; // the workspace an operator addresses (Sluice-Workspace); '' for its own
  let generation = 0; // bumped at sign-out: answers of an older session are dropped
  let timer = null;
  let busy = false;
  let ticks = 0;
  let view = 'overview';
  // Capabilities from the probes: true allowed, false refused (403).
  const caps = { 'channels.create': false, principals: false };
  // Sources retired for this session: path -> 'denied' | 'unavailable'.
  const retired = new Map();
  const series = new Map(); // chart key -> [[t, v], ...]
  const counters = new Map(); // counter key -> [t, v] last seen (for rates)
  let chanPrev = null; // {t, published: Map id -> n}
  const brokerRoles = new Map(); // principal -> [roles] | null
  const pendingConfirm = new Map(); // button -> timeout id

  const $ = (id) => document.getElementById(id);

  // ---- the API --------------------------------------------------------------------------------

  // One authorised request. Returns {status, json, text}; status 0 on a network failure.
  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + credential };
    if (workspace) headers['Sluice-Workspace'] = workspace;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      return { status: 0, json: null, text: '' };
    }
    const text = await res.text();
    let json = null;
    if ((res.headers.get('content-type') || '').includes('json')) {
      try {
        json = JSON.parse(text);
      } catch (e) {
        json = null;
      }
    }
    return { status: res.status, json, text };
  }

  const errMessage = (r) =>
    (r.json && typeof r.json.message === 'string' && r.json.message) || 'HTTP ' + r.status;

  // A polled source: its answer, or null after marking its section (and retiring it on 403/404).
  async function source(path) {
    if (retired.has(path)) return { status: -1, retired: retired.get(path) };
    const r = await api('GET', path);
    if (r.status === 403) retired.set(path, 'denied');
    else if (r.status === 404) retired.set(path, 'unavailable');
    return r;
  }

  // ---- small DOM helpers ----------------------------------------------------------------------

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'type') e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }

  function setText(node, text) {
    const t = String(text);
    if (node.textContent !== t) node.textContent = t;
  }

  function setState(id, r, what) {
    const node = $(id);
    let msg = '';
    if (r.retired === 'denied' || r.status === 403) msg = 'Not allowed: this credential may not ' + what + '.';
    else if (r.retired === 'unavailable' || r.status === 404) msg = 'Unavailable on this server.';
    else if (r.status === 0) msg = 'The server did not answer; retrying.';
    else if (r.status >= 400) msg = 'Error: ' + errMessage(r);
    setText(node, msg);
    node.classList.toggle('denied', r.retired === 'denied' || r.status === 403);
    // The section's table (and the audit chain line) go with a refusal: no empty headings.
    for (let n = node.nextElementSibling; n && n.tagName !== 'H3'; n = n.nextElementSibling) {
      if (n.classList.contains('scroll') || n.classList.contains('chain')) n.hidden = msg !== '';
      if (n.classList.contains('scroll')) break;
    }
    return msg === '';
  }

  // Keyed table update: rows are kept (and so is the keyboard focus inside them) and only their
  // changed cells rewritten, so a refresh never moves a keyboard user.
  function syncRows(tbody, items, keyOf, build, update) {
    const old = new Map();
    for (const tr of Array.from(tbody.rows)) old.set(tr.dataset.key, tr);
    let prev = null;
    const seen = new Map();
    for (const it of items) {
      let key = keyOf(it);
      const n = seen.get(key) || 0; // equal keys (two identical raw lines) stay distinct rows
      seen.set(key, n + 1);
      if (n > 0) key += '#' + n;
      let tr = old.get(key);
      if (tr) old.delete(key);
      else {
        tr = build(it, key);
        tr.dataset.key = key;
      }
      update(tr, it);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of old.values()) tr.remove();
  }

  // A row of cells with labels (the narrow layout shows each cell under its column's name).
  function row(labels) {
    const tr = el('tr');
    for (const l of labels) tr.append(el('td', { 'data-label': l }));
    return tr;
  }

  const fmtNum = (n) =>
    n == null || Number.isNaN(n) ? '–' : Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1);
  const fmtTime = (s) => (typeof s === 'number' && s > 0 ? new Date(s * 1000).toISOString().replace('T', ' ').slice(0, 19) + 'Z' : '–');
  function fmtBytes(n) {
    if (n == null) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }

  function notice(text, bad) {
    const n = $('notice');
    n.textContent = text;
    n.classList.toggle('error', !!bad);
  }

  // The outcome of an action, said in the status line.
  function report(r, done) {
    if (r.status === 401) return signOut('The credential was refused: signed out.');
    if (r.status === 403) return notice('Not allowed: ' + errMessage(r), true);
    if (r.status === 0) return notice('The server did not answer.', true);
    if (r.status >= 400) return notice('Failed: ' + errMessage(r), true);
    notice(done);
    poll();
  }

  // A destructive button asks once more: the first press arms it for five seconds.
  function confirmed(btn, label) {
    if (pendingConfirm.has(btn)) {
      clearTimeout(pendingConfirm.get(btn));
      pendingConfirm.delete(btn);
      btn.textContent = btn.dataset.label;
      btn.classList.remove('armed');
      return true;
    }
    btn.dataset.label = btn.textContent;
    btn.textContent = label;
    btn.classList.add('armed');
    pendingConfirm.set(
      btn,
      setTimeout(() => {
        pendingConfirm.delete(btn);
        btn.textContent = btn.dataset.label;
        btn.classList.remove('armed');
      }, 5000),
    );
    return false;
  }

  // ---- Prometheus text (exposition format 0.0.4) ----------------------------------------------

  // Parses the text into {types: Map family -> type, samples: Map name -> [{labels, value}]}.
  // Malformed lines are skipped: a chart goes missing rather than the page failing.
  function parseMetrics(text) {
    const types = new Map();
    const samples = new Map();
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '') continue;
      if (line[0] === '#') {
        const m = /^#\s*TYPE\s+([A-Za-z_:][A-Za-z0-9_:]*)\s+(\w+)/.exec(line);
        if (m) types.set(m[1], m[2]);
        continue;
      }
      const s = parseSample(line);
      if (s === null) continue;
      if (!samples.has(s.name)) samples.set(s.name, []);
      samples.get(s.name).push(s);
    }
    return { types, samples };
  }

  function parseSample(line) {
    const m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line);
    if (!m) return null;
    const name = m[0];
    let i = name.length;
    const labels = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ' || line[i] === ',') i++;
        if (line[i] === '}') {
          i++;
          break;
        }
        const lm = /^[A-Za-z_][A-Za-z0-9_]*/.exec(line.slice(i, i + 256));
        if (!lm) return null;
        i += lm[0].length;
        if (line[i] !== '=' || line[i + 1] !== '"') return null;
        i += 2;
        let v = '';
        for (;;) {
          if (i >= line.length) return null;
          const c = line[i++];
          if (c === '"') break;
          if (c === '\\') {
            const e = line[i++];
            v += e === 'n' ? '\n' : e === undefined ? '' : e;
          } else v += c;
        }
        labels[lm[0]] = v;
      }
    }
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest[0] === '') return null;
    const value = rest[0] === '+Inf' ? Infinity : rest[0] === '-Inf' ? -Infinity : Number(rest[0]);
    if (Number.isNaN(value) && rest[0] !== 'NaN') return null;
    return { name, labels, value };
  }

  const sumOf = (list) => (list || []).reduce((a, s) => a + (Number.isFinite(s.value) ? s.value : 0), 0);

  // The charts: each picks the first metric that exists among its candidates, so the page keeps
  // working if a name changes; rate: a counter shown per second between two polls.
  const CHARTS = [
    { key: 'requests', title: 'HTTP requests /s', rate: true, names: ['sluice_http_requests_total', 'sluice_requests_total'] },
    { key: 'ws', title: 'WebSocket connections', names: ['sluice_ws_connections', 'sluice_websocket_connections', 'sluice_ws_connections_open'] },
    { key: 'deliveries', title: 'Deliveries /s', rate: true, names: ['sluice_ws_deliveries_total', 'sluice_websocket_deliveries_total'] },
    { key: 'denials', title: 'Authorisation denials /s', rate: true, names: ['sluice_authz_denials_total', 'sluice_authorization_denials_total'] },
    { key: 'depth', title: 'Messages waiting (top channels)', names: ['sluice_channel_depth'] },
    { key: 'rss', title: 'Resident memory', bytes: true, names: ['process_resident_memory_bytes', 'sluice_process_resident_memory_bytes'] },
    { key: 'fds', title: 'Open file descriptors', names: ['process_open_fds', 'sluice_process_open_fds'] },
  ];

  function push(key, t, v) {
    if (!series.has(key)) series.set(key, []);
    const s = series.get(key);
    s.push([t, v]);
    if (s.length > SERIES_MAX) s.shift();
  }

  function recordMetrics(parsed, t) {
    let any = false;
    for (const c of CHARTS) {
      const name = c.names.find((n) => parsed.samples.has(n));
      if (!name) continue;
      any = true;
      const v = sumOf(parsed.samples.get(name));
      if (c.rate) {
        const last = counters.get(c.key);
        counters.set(c.key, [t, v]);
        if (last && t > last[0] && v >= last[1]) push(c.key, t, (v - last[1]) / (t - last[0]));
        else if (!series.has(c.key)) series.set(c.key, []);
      } else push(c.key, t, v);
    }
    return any;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  // One small line chart per series, drawn as inline SVG (no library).
  function drawCharts() {
    const box = $('charts');
    for (const c of CHARTS) {
      const pts = series.get(c.key);
      let fig = box.querySelector('[data-chart="' + c.key + '"]');
      if (!pts) {
        if (fig) fig.remove();
        continue;
      }
      const W = 240;
      const H = 64;
      if (!fig) {
        fig = el('figure', { class: 'chart', 'data-chart': c.key });
        const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', preserveAspectRatio: 'none' });
        s.append(svg('path', { class: 'area', d: '' }), svg('polyline', { class: 'line', points: '' }));
        fig.append(el('figcaption', {}, el('span', { class: 'title', text: c.title }), el('span', { class: 'value' })), s);
        box.append(fig);
      }
      const cur = pts.length ? pts[pts.length - 1][1] : null;
      const shown = cur == null ? '–' : c.bytes ? fmtBytes(cur) : fmtNum(cur);
      setText(fig.querySelector('.value'), shown);
      const s = fig.querySelector('svg');
      s.setAttribute('aria-label', `${c.title}: ${shown}`);
      const vals = pts.map((p) => (Number.isFinite(p[1]) && p[1] > 0 ? p[1] : 0));
      const max = Math.max(1e-9, ...vals);
      // Few points fill a short window first; then the window grows to SERIES_MAX and slides.
      const n = Math.min(SERIES_MAX, Math.max(20, pts.length));
      const xy = pts.map((p, i) => {
        const x = ((i + (n - pts.length)) / (n - 1)) * W;
        const y = H - 2 - (vals[i] / max) * (H - 4);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      s.querySelector('.line').setAttribute('points', xy.join(' '));
      s.querySelector('.area').setAttribute('d', xy.length ? `M${xy[0].split(',')[0]},${H} L${xy.join(' L')} L${W},${H} Z` : '');
    }
  }

  // ---- views ----------------------------------------------------------------------------------

  function renderChannels(list, stats, t) {
    const tbody = $('channels-table').tBodies[0];
    const st = new Map();
    for (const s of stats || []) if (s && typeof s.id === 'string') st.set(s.id, s);
    const depthOf = new Map(list.map((c) => [c.id, c.depth]));
    // Rate: messages published per second between two polls (the server's per-channel counter).
    const published = new Map();
    for (const [id, s] of st) if (typeof s.published === 'number') published.set(id, s.published);
    const rates = new Map();
    if (chanPrev && t > chanPrev.t)
      for (const [id, n] of published) {
        const p = chanPrev.published.get(id);
        if (p != null && n >= p) rates.set(id, (n - p) / (t - chanPrev.t));
      }
    chanPrev = { t, published };
    const admin = caps['channels.create'];
    syncRows(
      tbody,
      list,
      (c) => c.id,
      (c) => {
        const tr = row(['Id', 'Kind', 'Depth', 'Rate /s', 'In flight', 'Dead letters', 'Subscribers', 'Actions']);
        tr.cells[0].className = 'mono';
        return tr;
      },
      (tr, c) => {
        const s = st.get(c.id) || {};
        const dl = c.options && c.options.dead_letter;
        setText(tr.cells[0], c.id);
        setText(tr.cells[1], c.kind || '–');
        setText(tr.cells[2], fmtNum(c.depth));
        setText(tr.cells[3], rates.has(c.id) ? fmtNum(rates.get(c.id)) : '–');
        setText(tr.cells[4], fmtNum(s.in_flight));
        let dead = s.dead_letters;
        if (dead == null && dl && depthOf.has(dl)) dead = depthOf.get(dl);
        // Topics have no dead letters; a queue's dead-letter channel that does not exist yet
        // holds none, but its name says where they would go.
        setText(tr.cells[5], c.kind === 'topic' ? '–' : dead == null ? (dl ? '→ ' + dl : '–') : fmtNum(dead));
        setText(tr.cells[6], fmtNum(s.subscribers));
        const cell = tr.cells[7];
        if (admin && !cell.firstChild) {
          const b = el('button', { type: 'button', class: 'danger', text: 'Delete' });
          b.setAttribute('aria-label', 'Delete channel ' + c.id);
          b.addEventListener('click', () => deleteChannel(b, tr.dataset.key));
          cell.append(b);
        } else if (!admin && cell.firstChild) cell.textContent = '';
      },
    );
    setText($('sum-channels'), list.length);
    setText($('sum-depth'), list.reduce((a, c) => a + (c.depth || 0), 0));
  }

  function renderConnections(conns) {
    const tbody = $('connections-table').tBodies[0];
    const admin = caps.principals;
    syncRows(
      tbody,
      conns,
      (c) => String(c.id != null ? c.id : c.principal + '@' + (c.remote_addr || c.remote || '')),
      () => row(['Principal', 'Transport', 'Remote', 'Subscriptions', 'Since', 'Actions']),
      (tr, c) => {
        const subs = Array.isArray(c.subscriptions) ? c.subscriptions : [];
        setText(tr.cells[0], c.principal || '(anonymous)');
        setText(tr.cells[1], c.transport || 'websocket');
        setText(tr.cells[2], c.remote_addr || c.remote || c.address || '–');
        setText(tr.cells[3], subs.length ? subs.join(', ') : '–');
        setText(tr.cells[4], fmtTime(c.since));
        const cell = tr.cells[5];
        if (admin && !cell.firstChild && c.principal) {
          const d = el('button', { type: 'button', class: 'danger', text: 'Disconnect' });
          d.setAttribute('aria-label', 'Disconnect every connection of ' + c.principal);
          d.addEventListener('click', () => disconnect(d, c.principal));
          const r = el('button', { type: 'button', class: 'danger', text: 'Revoke tokens' });
          r.setAttribute('aria-label', 'Revoke every token of ' + c.principal);
          r.addEventListener('click', () => revoke(r, { user_id: c.principal }));
          cell.append(d, r);
        } else if (!admin && cell.firstChild) cell.textContent = '';
      },
    );
    setText($('sum-connections'), conns.length);
  }

  function renderAcl(entries) {
    const tbody = $('acl-table').tBodies[0];
    const admin = caps.principals;
    syncRows(
      tbody,
      entries,
      (e) => e.principal,
      () => {
        const tr = row(['Principal', 'Role', 'Channels', 'Denied', 'Broker roles', 'Actions']);
        tr.cells[0].className = 'mono';
        return tr;
      },
      (tr, e) => {
        setText(tr.cells[0], e.principal);
        setText(tr.cells[1], e.role);
        setText(tr.cells[2], (e.channels || []).join(', ') || '–');
        setText(tr.cells[3], (e.deny || []).join(', ') || '–');
        const roles = brokerRoles.get(e.principal);
        setText(tr.cells[4], roles === undefined ? '…' : roles === null ? '–' : roles.join(', ') || '(none)');
        const cell = tr.cells[5];
        if (admin && !cell.firstChild) {
          const b = el('button', { type: 'button', class: 'danger', text: 'Revoke grant' });
          b.setAttribute('aria-label', 'Revoke the grant of ' + e.principal);
          b.addEventListener('click', () => revokeGrant(b, tr.dataset.key));
          cell.append(b);
        } else if (!admin && cell.firstChild) cell.textContent = '';
      },
    );
  }

  function renderApikeys(keys) {
    // Only what GET /apikeys lists: the id and the metadata. The secret is never sent back.
    syncRows(
      $('apikeys-table').tBodies[0],
      keys,
      (k) => k.id,
      () => {
        const tr = row(['Id', 'Principal', 'Role', 'Channels', 'Created', 'Expires']);
        tr.cells[0].className = 'mono';
        return tr;
      },
      (tr, k) => {
        setText(tr.cells[0], k.id);
        setText(tr.cells[1], k.principal);
        setText(tr.cells[2], k.role || '(from the ACL)');
        setText(tr.cells[3], Array.isArray(k.channels) ? k.channels.join(', ') : 'all its role allows');
        setText(tr.cells[4], fmtTime(k.created_at));
        setText(tr.cells[5], k.expired ? 'expired' : k.expires_at ? fmtTime(k.expires_at) : 'never');
      },
    );
  }

  const AUDIT_FIXED = new Set(['seq', 'prev', 'ts', 'event', 'actor']);
  function renderAudit(a) {
    const chain = $('audit-chain');
    const recs = Array.isArray(a.records) ? a.records.slice().reverse() : [];
    if (a.verified === true) {
      const over = typeof a.checked === 'number' ? ' over ' + a.checked + ' records' : '';
      setText(chain, '✓ Chain verified' + over + ': no record was changed, removed or inserted.');
      chain.className = 'chain ok';
    } else {
      const why = typeof a.error === 'string' ? a.error : typeof a.reason === 'string' ? a.reason : '';
      setText(chain, '✗ The chain does NOT verify' + (why ? ': ' + why : '.'));
      chain.className = 'chain bad';
    }
    syncRows(
      $('audit-table').tBodies[0],
      recs,
      (r) => (r && typeof r === 'object' && r.seq != null ? 'seq:' + r.seq : 'raw:' + JSON.stringify(r)),
      () => row(['Time', 'Event', 'Actor', 'Details']),
      (tr, r) => {
        if (r === null || typeof r !== 'object') {
          // A line that is no record (the chain verdict says why): its text as it is.
          setText(tr.cells[0], '–');
          setText(tr.cells[1], '(not a record)');
          setText(tr.cells[2], '–');
          setText(tr.cells[3], String(r));
          return;
        }
        setText(tr.cells[0], fmtTime(r.ts));
        setText(tr.cells[1], r.event || '–');
        setText(tr.cells[2], r.actor || r.principal || '–');
        const rest = Object.entries(r)
          .filter(([k]) => !AUDIT_FIXED.has(k) && !(k === 'principal' && !r.actor))
          .map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v)));
        setText(tr.cells[3], rest.join('  '));
      },
    );
  }

  // ---- polling --------------------------------------------------------------------------------

  async function refreshBroker(entries, g) {
    const path0 = '/broker/principals/';
    if (retired.has(path0)) {
      for (const e of entries) brokerRoles.set(e.principal, null);
      return;
    }
    for (const e of entries.slice(0, BROKER_MAX)) {
      const r = await api('GET', path0 + encodeURIComponent(e.principal));
      if (g !== generation) return;
      if (r.status === 403 || r.status === 404) {
        retired.set(path0, r.status === 403 ? 'denied' : 'unavailable');
        for (const x of entries) brokerRoles.set(x.principal, null);
        return;
      }
      if (r.status === 200 && r.json && Array.isArray(r.json.roles)) brokerRoles.set(e.principal, r.json.roles);
    }
  }

  async function poll() {
    if (busy || credential === null || document.hidden) return; // a background tab asks nothing
    busy = true;
    const g = generation;
    try {
      const [ch, st, cn, acl, keys, audit, met] = await Promise.all([
        source('/channels'),
        source('/server/channels'),
        source('/server/connections'),
        source('/acl'),
        source('/apikeys'),
        source('/audit?limit=100'),
        source('/metrics'),
      ]);
      if (g !== generation) return;
      if ([ch, st, cn, acl, keys, audit, met].some((r) => r.status === 401)) {
        signOut('The credential is no longer accepted (expired or revoked): signed out.');
        return;
      }
      const t = performance.now() / 1000;
      const stNote = st.retired === 'denied' || st.status === 403 ? 'not allowed for this credential'
        : st.retired === 'unavailable' || st.status === 404 ? 'unavailable on this server' : '';
      setText($('chanstats-state'), stNote ? 'Rate, in flight, dead letters and subscribers: ' + stNote + '.' : '');
      if (setState('channels-state', ch, 'list channels'))
        renderChannels((ch.json && ch.json.channels) || [], st.status === 200 && st.json ? st.json.channels : null, t);
      if (cn.status === 200 && cn.json) {
        setState('connections-state', cn, '');
        renderConnections(Array.isArray(cn.json.connections) ? cn.json.connections : []);
      } else {
        setState('connections-state', cn, 'list connections');
        setText($('sum-connections'), cn.retired === 'denied' || cn.status === 403 ? 'not allowed' : '–');
      }
      if (setState('acl-state', acl, 'read the ACL')) {
        const entries = (acl.json && acl.json.entries) || [];
        if (view === 'access' && ticks % BROKER_EVERY === 0) await refreshBroker(entries, g);
        if (g !== generation) return;
        renderAcl(entries);
      }
      if (setState('apikeys-state', keys, 'list API keys')) renderApikeys((keys.json && keys.json.keys) || []);
      if (setState('audit-state', audit, 'read the audit log') && audit.json) renderAudit(audit.json);
      if (met.status === 200) {
        const any = recordMetrics(parseMetrics(met.text), t);
        setText($('metrics-state'), any ? '' : 'No known metrics in the server\'s answer.');
        drawCharts();
        // Without the connection list, the WebSocket gauge still counts the sockets.
        const ws = series.get('ws');
        if (cn.status !== 200 && ws && ws.length) setText($('sum-connections'), fmtNum(ws[ws.length - 1][1]));
      } else setState('metrics-state', met, 'read metrics');
      setText($('sum-updated'), new Date().toLocaleTimeString());
      ticks++;
    } finally {
      busy = false;
    }
  }

  // ---- actions --------------------------------------------------------------------------------

  async function deleteChannel(btn, id) {
    if (!confirmed(btn, 'Confirm delete')) return;
    report(await api('DELETE', '/channels/' + encodeURIComponent(id)), 'Channel ' + id + ' deleted.');
  }

  async function revokeGrant(btn, principal) {
    if (!confirmed(btn, 'Confirm revoke')) return;
    report(await api('DELETE', '/acl/' + encodeURIComponent(principal)), 'Grant of ' + principal + ' revoked.');
  }

  async function disconnect(btn, principal) {
    if (!confirmed(btn, 'Confirm disconnect')) return;
    const r = await api('POST', '/server/disconnect', { principal, reason: 'disconnected from the console' });
    report(r, 'Connections of ' + principal + ' closed.');
  }

  async function revoke(btn, body) {
    if (btn && !confirmed(btn, 'Confirm revoke')) return;
    const r = await api('POST', '/revoke', { ...body, reason: 'revoked from the console' });
    report(r, body.user_id ? 'Every token of ' + body.user_id + ' revoked.' : 'Token ' + body.token_id + ' revoked.');
  }

  function wireForms() {
    $('create-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const id = $('create-id').value.trim();
      if (!id) return notice('A channel needs an id.', true);
      const r = await api('POST', '/channels', { id, kind: $('create-kind').value });
      if (r.status < 300 && r.status >= 200) $('create-id').value = '';
      report(r, 'Channel ' + id + ' created.');
    });
    $('grant-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const p = $('grant-principal').value.trim();
      if (!p) return notice('A grant needs a principal.', true);
      const channels = $('grant-channels').value.split(',').map((s) => s.trim()).filter(Boolean);
      const r = await api('PUT', '/acl/' + encodeURIComponent(p), { role: $('grant-role').value, channels });
      if (r.status >= 200 && r.status < 300) {
        $('grant-principal').value = '';
        $('grant-channels').value = '';
      }
      report(r, 'Granted ' + $('grant-role').value + ' to ' + p + '.');
    });
    $('revoke-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const v = $('revoke-value').value.trim();
      if (!v) return notice('Say whose tokens to revoke.', true);
      await revoke(null, { [$('revoke-kind').value]: v });
      $('revoke-value').value = '';
    });
  }

  // ---- signing in and out ---------------------------------------------------------------------

  // Probes that cannot change anything: the router authorises before it reads the body, so a
  // request with an empty or incomplete body answers 403 when the credential may not, else 400.
  async function probe() {
    const c = await api('POST', '/channels', '{}');
    caps['channels.create'] = c.status !== 403 && c.status !== 401 && c.status !== 0;
    const p = await api('PUT', '/acl/console-probe');
    caps.principals = p.status !== 403 && p.status !== 401 && p.status !== 0;
    for (const f of document.querySelectorAll('.admin-action')) f.hidden = !caps[f.dataset.cap];
  }

  // What the token says about itself (not verified here; the server verifies): for the header.
  function describe(cred) {
    const parts = cred.split('.');
    if (parts.length === 3) {
      try {
        const c = JSON.parse(atob(parts[1].replace(/-/g, '+').replace(/_/g, '/')));
        if (typeof c.sub === 'string') return 'token of ' + c.sub + (typeof c.role === 'string' ? ' (' + c.role + ')' : '');
      } catch (e) {
        /* not a JWT's payload: an API key or another bearer credential */
      }
    }
    return 'API key or bearer credential';
  }

  async function signIn(ev) {
    ev.preventDefault();
    const input = $('credential');
    const cred = input.value.trim();
    input.value = ''; // not left in the form either
    if (!cred) {
      setText($('signin-error'), 'Paste a token or an API key.');
      input.focus();
      return;
    }
    const ws = $('workspace').value.trim();
    if (ws && !/^[A-Za-z0-9_-]{1,63}$/.test(ws)) {
      setText($('signin-error'), 'A workspace name is 1 to 63 letters, digits, "_" or "-".');
      $('workspace').focus();
      return;
    }
    credential = cred;
    workspace = ws;
    const g = generation;
    const r = await api('GET', '/channels');
    if (g !== generation) return;
    // Addressing a workspace is for operators: anyone else is refused (403) whatever they may do.
    if (r.status === 401 || r.status === 0 || (workspace && r.status === 403)) {
      credential = null;
      workspace = '';
      setText($('signin-error'), r.status === 0 ? 'The server did not answer.' : 'Not accepted: ' + errMessage(r));
      input.focus();
      return;
    }
    await probe();
    if (g !== generation) return;
    setText($('signin-error'), '');
    $('signin').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
    const who = $('who');
    who.hidden = false;
    who.textContent =
      'Signed in: ' + describe(cred) + (workspace ? ' — in workspace ' + workspace : '') + (caps.principals ? '' : ' — view only');
    showView('overview', false);
    $('main').focus();
    await poll();
    timer = setInterval(poll, POLL_MS);
  }

  function signOut(message) {
    credential = null;
    workspace = '';
    generation++;
    clearInterval(timer);
    timer = null;
    busy = false;
    ticks = 0;
    retired.clear();
    series.clear();
    counters.clear();
    brokerRoles.clear();
    chanPrev = null;
    for (const id of ['channels-table', 'connections-table', 'acl-table', 'apikeys-table', 'audit-table'])
      $(id).tBodies[0].textContent = '';
    $('charts').textContent = '';
    for (const id of ['sum-channels', 'sum-depth', 'sum-connections', 'sum-updated']) setText($(id), '–');
    notice('');
    $('app').hidden = true;
    $('signout').hidden = true;
    $('who').hidden = true;
    $('signin').hidden = false;
    setText($('signin-error'), message || '');
    $('credential').focus();
  }

  function showView(name, focus) {
    view = name;
    for (const b of document.querySelectorAll('.tabs button')) {
      if (b.dataset.view === name) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
    for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== 'view-' + name;
    if (focus) $('h-' + name).parentElement.focus();
  }

  function init() {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', () => signOut('Signed out.'));
    for (const b of document.querySelectorAll('.tabs button'))
      b.addEventListener('click', () => {
        showView(b.dataset.view, false);
        if (view === 'access') poll();
      });
    wireForms();
    document.addEventListener('visibilitychange', () => poll());
    for (const f of document.querySelectorAll('.admin-action')) f.hidden = true;
    $('credential').focus();
  }

  // For the browser test only: the page's parser, pure (no credential reachable through it).
  window.sluiceConsole = Object.freeze({ parseMetrics });

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
