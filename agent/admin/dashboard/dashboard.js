// berth's dashboard: polls the admin API every second and renders it.
// Every value from the API is hostile input (container names and labels are
// chosen by whoever starts a container): it enters the page through
// textContent and DOM calls only, never as markup.
'use strict';

const TOKEN_KEY = 'berth.admin-token';
const POLL_MS = 1000;
// Rates and percentiles are taken over this window of past readings.
const WINDOW_MS = 10000;

const $ = (id) => document.getElementById(id);

// el builds an element; children are nodes or strings (made text nodes).
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'label') e.dataset.label = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class AuthError extends Error {}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  // The admin API takes mutations declared JSON only (CSRF protection).
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.ok) return resp.status === 204 ? null : resp.json();
  let message = resp.status + ' ' + resp.statusText;
  try { message = (await resp.json()).error || message; } catch (_) { /* not JSON */ }
  throw resp.status === 401 ? new AuthError(message) : new Error(message);
}

// ---- numbers over the window ------------------------------------------------

// readings: {at, targets: Map(id and group -> counters), groups: Map(name -> counters)};
// counters are {requests, failures, counts} (counts: the latency histogram's).
let readings = [];

function remember(targets, groups) {
  const now = performance.now();
  const r = { at: now, targets: new Map(), groups: new Map() };
  const counters = (x) => ({ requests: x.requests, failures: x.failures || 0, counts: latencyOf(x).counts });
  for (const t of targets) r.targets.set(t.id + '\u0000' + t.group, counters(t));
  for (const g of groups) r.groups.set(g.name, counters(g));
  readings.push(r);
  while (readings.length > 2 && now - readings[1].at >= WINDOW_MS) readings.shift();
}

// latencyOf is the histogram of a group or target; an agent without one counts nothing.
const latencyOf = (x) => x.latency || { bounds: [], counts: [] };

// span is the oldest and the newest reading of key in map, and the seconds between.
function span(map, key) {
  const last = readings[readings.length - 1];
  const first = readings.find((r) => r[map].has(key));
  if (!first || first === last) return null;
  return { a: first[map].get(key), b: last[map].get(key), secs: (last.at - first.at) / 1000 };
}

function rates(map, key) {
  const s = span(map, key);
  // A counter that went down belongs to a new target (the agent restarted).
  if (!s || s.b.requests < s.a.requests || s.b.failures < s.a.failures) return null;
  const requests = s.b.requests - s.a.requests;
  return { perSec: requests / s.secs, errors: requests ? (s.b.failures - s.a.failures) / requests : null };
}

// quantile of the window's latency histogram, interpolated inside its bucket as Prometheus does.
function quantile(map, key, bounds, q) {
  const s = span(map, key);
  if (!s || s.a.counts.length !== s.b.counts.length) return null;
  const d = s.b.counts.map((n, i) => n - s.a.counts[i]);
  const total = d[d.length - 1];
  if (!(total > 0)) return null;
  const rank = q * total;
  const i = d.findIndex((n) => n >= rank);
  if (i >= bounds.length) return { over: bounds[bounds.length - 1] };
  const lower = i === 0 ? 0 : bounds[i - 1];
  const below = i === 0 ? 0 : d[i - 1];
  const inBucket = d[i] - below;
  return { secs: lower + (bounds[i] - lower) * (inBucket ? (rank - below) / inBucket : 1) };
}

const fmtRate = (r) => (r === null ? '–' : r.perSec < 10 ? r.perSec.toFixed(1) : Math.round(r.perSec).toString());
const fmtErrors = (r) => (r === null || r.errors === null ? '–' : (100 * r.errors).toFixed(r.errors && r.errors < 0.01 ? 2 : 1) + ' %');
function fmtLatency(v) {
  if (v === null) return '–';
  if (v.over !== undefined) return '> ' + v.over + ' s';
  const ms = v.secs * 1000;
  return ms < 1 ? (ms * 1000).toFixed(0) + ' µs' : ms < 100 ? ms.toFixed(1) + ' ms' : Math.round(ms) + ' ms';
}

// ---- rendering ----------------------------------------------------------------

const pill = (state, text) => el('span', { class: 'pill s-' + state }, text || state);

function table(headers, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'empty' }, empty);
  return el('div', { class: 'table-wrap' }, el('table', { class: 'stack' },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { class: h.num ? 'num' : undefined }, h.text)))),
    el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c, i) =>
      el('td', { class: headers[i].num ? 'num' : undefined, label: headers[i].text }, c)))))));
}

function renderFleet(status) {
  const nodes = status.nodes.length ? status.nodes : [{ node: status.node, state: 'alive', version: status.version, self: true, address: '', targets: null, config_drift: false, has_ours: true }];
  const rows = nodes.map((n) => [
    el('span', {}, n.node, n.self ? el('span', { class: 'reason' }, 'this agent') : null),
    // Alive for memberlist, but missing this agent's pings: avoided here.
    pill(n.suspect ? 'suspect' : n.state),
    n.version || '–',
    el('span', { class: 'mono' }, n.address || '–'),
    n.targets === null ? '–' : String(n.targets),
    n.config_drift ? pill('drift', 'differs') : 'same',
    n.self ? '–' : n.has_ours ? 'yes' : 'not yet',
  ]);
  const note = status.nodes.length ? null : el('p', { class: 'note' }, 'cluster.enabled is false: this agent is alone.');
  return [note, table([{ text: 'Node' }, { text: 'State' }, { text: 'Version' }, { text: 'Gossip address' },
    { text: 'Targets', num: true }, { text: 'Config' }, { text: 'Has our changes' }], rows, 'No node.')];
}

function renderDrains(drains) {
  const now = Date.now();
  const rows = drains.map((d) => {
    const left = Math.max(0, Math.round((Date.parse(d.deadline) - now) / 1000));
    return [
      el('span', { class: 'mono' }, d.target),
      d.container || '–',
      String(d.in_flight),
      d.reported + ' of ' + d.nodes,
      d.done ? (d.outcome === 'drained' ? 'drained' : 'delay ended') : left + ' s left',
      d.requested ? actionButton('undrain', { id: d.target, container: d.container }) : 'container stopping',
    ];
  });
  return table([{ text: 'Target' }, { text: 'Container' }, { text: 'In flight', num: true },
    { text: 'Nodes reported' }, { text: 'Progress' }, { text: '' }], rows, 'No target of this node is draining.');
}

function actionButton(action, t) {
  return el('button', { type: 'button', 'data-action': action, 'data-target': t.id, onclick: () => ask(action, t) },
    action === 'drain' ? 'Drain' : 'Undrain');
}

// Only this node's containers drain here: another node's drain on its own agent.
function targetAction(t, status, drains) {
  if (t.node !== status.node || t.source !== 'docker') return '';
  const drain = drains.find((d) => d.target === t.id);
  if (drain) return drain.requested ? actionButton('undrain', t) : '';
  return t.state === 'draining' ? '' : actionButton('drain', t);
}

function renderGroups(status, targets, drains) {
  if (status.groups.length === 0) return el('p', { class: 'empty' }, 'No target group yet: start a container labelled berth.group=NAME.');
  return status.groups.map((g) => {
    const r = rates('groups', g.name);
    const states = Object.entries(g.states).map(([s, n]) => n + ' ' + s).join(', ') || 'no target';
    const rows = targets.filter((t) => t.group === g.name).map((t) => {
      const key = t.id + '\u0000' + t.group;
      const tr = rates('targets', key);
      return [
        el('span', { class: 'mono' }, t.id),
        el('span', {}, pill(t.state), t.ejected ? [' ', pill('ejected')] : null, t.suspect ? [' ', pill('suspect')] : null, t.reason ? el('span', { class: 'reason' }, t.reason) : null),
        t.node,
        el('span', { class: 'mono' }, t.address),
        t.container || '–',
        String(t.in_flight),
        fmtRate(tr),
        fmtErrors(tr),
        fmtLatency(quantile('targets', key, latencyOf(t).bounds, 0.5)),
        fmtLatency(quantile('targets', key, latencyOf(t).bounds, 0.99)),
        targetAction(t, status, drains),
      ];
    });
    return el('div', { class: 'card', 'data-group': g.name },
      el('div', { class: 'card-head' },
        el('h3', {}, g.name),
        g.fail_open ? pill('failopen', 'fail open') : null,
        el('span', { class: 'facts' }, g.protocol + ', ' + g.algorithm + ', deregistration delay ' + g.deregistration_delay + ' · ' + states),
        el('span', { class: 'stats' },
          el('span', {}, 'in flight ', el('b', {}, String(g.in_flight))),
          el('span', {}, 'req/s ', el('b', {}, fmtRate(r))),
          el('span', {}, 'errors ', el('b', {}, fmtErrors(r))),
          el('span', {}, 'p50 ', el('b', {}, fmtLatency(quantile('groups', g.name, latencyOf(g).bounds, 0.5)))),
          el('span', {}, 'p99 ', el('b', {}, fmtLatency(quantile('groups', g.name, latencyOf(g).bounds, 0.99)))))),
      table([{ text: 'Target' }, { text: 'State' }, { text: 'Host' }, { text: 'Address' }, { text: 'Container' },
        { text: 'In flight', num: true }, { text: 'Req/s', num: true }, { text: 'Errors', num: true },
        { text: 'p50', num: true }, { text: 'p99', num: true }, { text: '' }],
      rows, 'No target.'));
  });
}

function renderListeners(status) {
  return status.listeners.map((l) => el('div', { class: 'card' },
    el('div', { class: 'card-head' }, el('h3', {}, l.name), el('span', { class: 'facts mono' }, l.protocol + ' ' + l.address)),
    el('ol', { class: 'rules' },
      l.rules.map((r) => el('li', {},
        el('b', {}, String(r.priority)), ' ',
        [(r.hosts || []).map((h) => 'host ' + h), (r.paths || []).map((p) => 'path ' + p)].flat().join(' and ') || 'always',
        ' → ', r.action, el('span', { class: 'note' }, ' (' + r.source + ')'))),
      el('li', { class: 'rule-default' }, 'otherwise → ' + l.default))));
}

function renderSkipped(skipped) {
  return table([{ text: 'Container' }, { text: 'Why it is not a target' }],
    skipped.map((s) => [s.name || s.container, s.reason]), 'None.');
}

function renderLabelProblems(problems) {
  return table([{ text: 'Container' }, { text: 'Left out, the container still serves' }],
    problems.map((p) => [p.name || p.container, p.reason]), 'None.');
}

// A section is replaced only when what it shows changed, and not while a
// pointer is down: a button must not be replaced under a click.
const shown = new Map();
let pointerDown = false;
function put(id, nodes) {
  nodes = [nodes].flat().filter((n) => n);
  const sig = nodes.map((n) => n.textContent).join('\u0000');
  if (shown.get(id) === sig) return;
  shown.set(id, sig);
  $(id).replaceChildren(...nodes);
}

let last = null;
function render() {
  if (!last || pointerDown) return;
  const { status, targets, drains } = last;
  $('node').textContent = status.node + (status.version ? ' · ' + status.version : '');
  const docker = $('docker');
  const dstate = status.docker.disabled ? 'disabled' : status.docker.connected ? 'connected' : 'disconnected';
  docker.className = 'pill s-' + dstate;
  docker.textContent = 'docker ' + dstate;
  docker.title = status.docker.error || '';
  put('fleet', renderFleet(status));
  put('drains', renderDrains(drains));
  put('groups', renderGroups(status, targets, drains));
  put('listeners', renderListeners(status));
  $('skipped-section').hidden = status.skipped.length === 0;
  put('skipped', renderSkipped(status.skipped));
  const problems = status.label_problems || [];
  $('label-problems-section').hidden = problems.length === 0;
  put('label-problems', renderLabelProblems(problems));
}

// ---- polling, login, drains -----------------------------------------------------

let timer = null;
async function poll() {
  clearTimeout(timer);
  try {
    const [status, targets, drains] = await Promise.all([
      call('GET', '/api/v1/status'), call('GET', '/api/v1/targets'), call('GET', '/api/v1/drains')]);
    remember(targets, status.groups);
    last = { status, targets, drains };
    $('login').hidden = true;
    $('content').hidden = false;
    $('content').classList.remove('stale');
    $('forget').hidden = !sessionStorage.getItem(TOKEN_KEY);
    showError('');
    render();
    $('live').textContent = 'live · ' + new Date().toLocaleTimeString();
  } catch (err) {
    if (err instanceof AuthError) {
      askToken(sessionStorage.getItem(TOKEN_KEY) ? err.message : '');
      return; // no polling until a token is given
    }
    $('content').classList.add('stale');
    $('live').textContent = 'not live';
    showError('The agent does not answer: ' + err.message);
  }
  timer = setTimeout(poll, POLL_MS);
}

function showError(message) {
  $('error').hidden = !message;
  $('error').textContent = message;
}

function askToken(message) {
  readings = [];
  last = null;
  shown.clear();
  $('content').hidden = true;
  $('login').hidden = false;
  $('forget').hidden = true;
  $('live').textContent = 'needs the token';
  $('login-error').hidden = !message;
  $('login-error').textContent = message;
  $('token').focus();
}

let pending = null;
function ask(action, t) {
  pending = { action, target: t.id };
  const who = t.id + (t.container ? ' (container ' + t.container + ')' : '');
  $('confirm-text').textContent = action === 'drain'
    ? 'Drain ' + who + '? It gets no new requests on any node; those in flight may finish within its deregistration delay.'
    : 'Undrain ' + who + '? It serves new requests again.';
  $('confirm-ok').textContent = action === 'drain' ? 'Drain' : 'Undrain';
  $('confirm').showModal();
}

async function confirmed() {
  const p = pending;
  pending = null;
  $('confirm').close();
  if (!p) return;
  try {
    if (p.action === 'drain') await call('POST', '/api/v1/drains', { target: p.target });
    else await call('DELETE', '/api/v1/drains/' + p.target.split('/').map(encodeURIComponent).join('/'));
    showError('');
  } catch (err) {
    showError(p.action + ' ' + p.target + ': ' + err.message);
  }
  poll();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    $('token').value = '';
    poll();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    askToken('');
  });
  $('confirm-ok').addEventListener('click', confirmed);
  $('confirm-cancel').addEventListener('click', () => { pending = null; $('confirm').close(); });
  document.addEventListener('pointerdown', () => { pointerDown = true; });
  const up = () => { pointerDown = false; render(); };
  document.addEventListener('pointerup', up);
  document.addEventListener('pointercancel', up);
  poll();
});
