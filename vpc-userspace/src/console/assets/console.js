// The console's script (issue 22): a client of the agent's Lambda API and
// of /console/api/*. Vanilla ES2020, no framework, no build step; the
// DOM hooks (ids, data-*) are the contract the browser test drives.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const SVGNS = 'http://www.w3.org/2000/svg';

// An element with attributes (`class`, `data-*`, properties for `on*`)
// and children (strings become text nodes, null is skipped).
function make(ns, tag, attrs, children) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}
const h = (tag, attrs, ...children) => make(null, tag, attrs, children);
const s = (tag, attrs, ...children) => make(SVGNS, tag, attrs, children);

// ---- errors: one line in #banner per source, replaced, not stacked ----
const errors = new Map();
function showError(source, message) {
  if (message) errors.set(source, message); else errors.delete(source);
  $('#banner').replaceChildren(...[...errors].map(([k, m]) =>
    h('div', {}, h('span', {}, m), h('button', { type: 'button', title: 'Dismiss', onclick: () => showError(k, null) }, '\u00d7'))));
}

// The API's message verbatim: Lambda answers {"message"} or {"Message"}
// (with "Type" or "__type"); the console's own routes {"message"}.
class ApiError extends Error {
  constructor(status, body, text) {
    super((body && (body.message || body.Message)) || text || `HTTP ${status}`);
    this.status = status;
    this.type = body && (body.__type || body.Type);
  }
}
async function api(path, options = {}, source = path.split('?')[0]) {
  let r;
  try { r = await fetch(path, options); } catch (e) {
    showError(source, `${path}: ${e.message} (is the agent running?)`);
    throw e;
  }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!r.ok) {
    const err = new ApiError(r.status, body, text);
    if (source) showError(source, `${path}: ${err.message}`);
    throw err;
  }
  if (source) showError(source, null);
  return body;
}
const lambda = (name, rest = '') => `/2015-03-31/functions/${encodeURIComponent(name)}${rest}`;

// ---- small formatting helpers ----
function statusClass(v) {
  if (['Active', 'Successful'].includes(v)) return 'ok';
  if (['Pending', 'InProgress'].includes(v)) return 'progress';
  if (['Failed'].includes(v)) return 'bad';
  return 'idle';
}
function setStatus(el, v) { el.textContent = v || ''; el.className = `status ${statusClass(v)}`; }
const fmt = (n) => (n ?? 0).toLocaleString('en-US');
function bytes(n) {
  n = n || 0;
  for (const u of ['B', 'KiB', 'MiB', 'GiB']) { if (n < 1024 || u === 'GiB') return `${u === 'B' ? n : n.toFixed(1)} ${u}`; n /= 1024; }
  return String(n);
}
function ago(seconds) {
  const t = Math.max(0, Math.round(seconds || 0));
  if (t < 120) return `${t}s`;
  if (t < 7200) return `${Math.round(t / 60)}m`;
  return `${Math.round(t / 3600)}h`;
}
const time = (unix_s) => new Date(unix_s * 1000).toLocaleTimeString('en-GB');
const historyLabel = (c) => (c.State === 'Pending' ? 'Pending' : `${c.State} / ${c.LastUpdateStatus}`);
function decodeBase64(b64) {
  try { return new TextDecoder().decode(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))); } catch (_) { return b64; }
}

// ---- the deployment's desired state (/console/api/state), shared by pages ----
let lastState = null;
async function loadState() {
  const st = (await api('/console/api/state')) || {};
  for (const k of ['hosts', 'vpcs', 'subnets', 'route_tables', 'security_groups', 'gateways', 'endpoints', 'instances', 'enis', 'functions'])
    st[k] = st[k] || [];
  lastState = st;
  const ctx = [st.deployment && `deployment ${st.deployment}`, st.region, st.account, st.hook && `hook ${st.hook}`].filter(Boolean);
  $('#context').textContent = ctx.join(' \u00b7 ');
  return st;
}
const byId = (list) => new Map(list.map((x) => [x.id, x]));

// ---- routing: #/functions, #/functions/NAME, #/topology, #/flows ----
let timers = [];
let routeSeq = 0; // bumps on every route change: stale async work checks it
// A page's periodic work (unless the page was left while it loaded); a
// tick while the last one still waits is skipped: answers stay in order.
function every(seq, ms, fn) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } finally { busy = false; }
  };
  if (current(seq)) timers.push(setInterval(tick, ms));
}
function route() {
  timers.forEach(clearInterval);
  timers = [];
  const seq = ++routeSeq;
  const parts = (location.hash.replace(/^#\/?/, '') || 'functions').split('/').filter(Boolean);
  const page = parts[0];
  $$('.page').forEach((p) => { p.hidden = true; });
  $$('a[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === page));
  if (page === 'functions' && parts.length > 1) return functionPage(decodeURIComponent(parts.slice(1).join('/')), seq);
  if (page === 'topology') return topologyPage(seq);
  if (page === 'flows') return flowsPage(seq);
  if (page !== 'functions') { location.hash = '#/functions'; return undefined; }
  return functionsPage(seq);
}
const current = (seq) => seq === routeSeq;

// ---- Functions: the list ----
// ListFunctions has no State: like AWS's console, GetFunction per function.
async function functionsPage(seq) {
  $('#functions-page').hidden = false;
  document.title = 'Functions \u2014 VPC console';
  const refresh = async () => {
    let list;
    let st = lastState;
    try {
      [list, st] = await Promise.all([api('/2015-03-31/functions'), loadState().catch(() => lastState)]);
    } catch (_) { return; }
    const names = (list.Functions || []).map((f) => f.FunctionName).sort();
    const configs = await Promise.all(names.map((n) =>
      api(lambda(n), {}, 'GetFunction').then((r) => r.Configuration).catch(() => null)));
    if (!current(seq)) return;
    renderFunctions(configs.filter(Boolean), st);
  };
  $('#functions-refresh').onclick = refresh;
  $('#functions-filter').oninput = filterFunctions;
  await refresh();
  every(seq, 3000, refresh);
}

function renderFunctions(configs, st) {
  const tbody = $('#functions tbody');
  const enis = new Map(((st && st.functions) || []).map((f) => [f.name, f.enis || []]));
  const seen = new Set();
  for (const c of configs) {
    const name = c.FunctionName;
    seen.add(name);
    // Rows are updated in place (keyed by name): a row being clicked stays.
    let tr = $$('tr', tbody).find((r) => r.dataset.function === name);
    if (!tr) {
      tr = h('tr', { 'data-function': name },
        h('td', { class: 'name' }, h('a', { href: `#/functions/${encodeURIComponent(name)}` }, name)),
        h('td', { class: 'state' }, h('span', { class: 'status' })),
        h('td', { class: 'last-update-status' }, h('span', { class: 'status' })),
        h('td', { class: 'reason' }), h('td', { class: 'eni' }), h('td', { class: 'vpc' }), h('td', { class: 'runtime' }));
      const after = $$('tr', tbody).find((r) => r.dataset.function > name);
      tbody.insertBefore(tr, after || null);
    }
    setStatus($('td.state .status', tr), c.State);
    setStatus($('td.last-update-status .status', tr), c.LastUpdateStatus);
    const reasons = [c.StateReason, c.LastUpdateStatusReason].filter(Boolean);
    const codes = [c.StateReasonCode, c.LastUpdateStatusReasonCode].filter((x) => x && x !== 'Idle');
    $('td.reason', tr).textContent = [...new Set(reasons)].join(' \u2014 ') || codes.join(', ');
    $('td.eni', tr).textContent = (enis.get(name) || []).join(' ');
    const vpc = c.VpcConfig && c.VpcConfig.VpcId;
    $('td.vpc', tr).textContent = vpc ? `${vpc} (${c.VpcConfig.SubnetIds.length} subnet${c.VpcConfig.SubnetIds.length === 1 ? '' : 's'})` : '\u2014';
    $('td.runtime', tr).textContent = c.Runtime || c.PackageType || '';
  }
  $$('tr', tbody).filter((r) => !seen.has(r.dataset.function)).forEach((r) => r.remove());
  filterFunctions();
  $('#functions-count').textContent = `(${configs.length})`;
  $('#functions-empty').hidden = configs.length > 0;
}

// The list's keyword filter, as Lambda's console has: any cell's text.
function filterFunctions() {
  const q = $('#functions-filter').value.trim().toLowerCase();
  for (const tr of $$('#functions tbody tr')) tr.hidden = !!q && !tr.textContent.toLowerCase().includes(q);
}

// ---- Functions: one function ----
let fn = null; // {name, config, history: [label], asked, answered}
async function functionPage(name, seq) {
  $('#function').hidden = false;
  document.title = `${name} \u2014 VPC console`;
  if (!fn || fn.name !== name) {
    fn = { name, config: null, history: [], asked: 0, answered: 0 };
    $('#state-history').replaceChildren();
    $('#invoke-status').textContent = '';
    $('#invoke-result').textContent = '';
    $('#invoke-log').textContent = '';
    $('#vpc-form').hidden = true;
  }
  $('#function-name').textContent = name;
  $('#crumb-name').textContent = name;
  $('#edit-vpc').onclick = openVpcForm;
  $('#cancel-vpc').onclick = () => { $('#vpc-form').hidden = true; };
  $('#vpc-form').onsubmit = (e) => { e.preventDefault(); saveVpc(name, seq); };
  $('#invoke').onclick = () => invoke(name);
  // Its flows: the flows view, filtered to it.
  $('#function-flows').onclick = () => {
    for (const id of FILTERS) $(`#${id}`).value = '';
    $('#filter-function').value = name;
  };
  const refresh = async () => {
    const [c] = await Promise.all([getFunction(name), loadState().catch(() => null)]);
    if (c && current(seq)) showFunction(c);
  };
  await refresh();
  // State changes on its own too (Pending -> Active, Inactive on idle).
  every(seq, 3000, refresh);
}

// GetFunction; null for an answer older than one already shown (the
// page's refresh and an update's polling overlap).
async function getFunction(name) {
  const n = ++fn.asked;
  const r = await api(lambda(name), {}, 'GetFunction').catch(() => null);
  if (!r || fn.name !== name || n < fn.answered) return null;
  fn.answered = n;
  return r.Configuration;
}

// The configuration and what the state has of the function, shown at
// once: a new State/LastUpdateStatus pair never shows beside old ENIs.
function showFunction(c) {
  showConfig(c);
  renderFunctionState(c.FunctionName);
}

function showConfig(c) {
  fn.config = c;
  setStatus($('#function-state'), c.State);
  setStatus($('#last-update-status'), c.LastUpdateStatus);
  const label = historyLabel(c);
  if (fn.history[fn.history.length - 1] !== label) {
    fn.history.push(label);
    const reason = c.LastUpdateStatusReason || c.StateReason;
    // The item's text is the pair alone (tests read it); when and why in its title.
    $('#state-history').append(h('li', { title: [new Date().toLocaleTimeString('en-GB'), reason].filter(Boolean).join(' \u2014 ') },
      h('span', { class: `status ${statusClass(c.State === 'Pending' ? 'Pending' : c.LastUpdateStatus)}` }, label)));
  }
  const kv = [['Function ARN', c.FunctionArn], ['Runtime', c.Runtime || c.PackageType], ['Handler', c.Handler],
    ['Memory', c.MemorySize && `${c.MemorySize} MB`], ['Timeout', c.Timeout && `${c.Timeout} s`],
    ['Last modified', c.LastModified], ['State reason', [c.StateReasonCode, c.StateReason].filter(Boolean).join(': ')],
    ['Last update reason', [c.LastUpdateStatusReasonCode, c.LastUpdateStatusReason].filter(Boolean).join(': ')]];
  $('#function-overview').replaceChildren(...kv.filter(([, v]) => v).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
  renderVpcConfig();
}

function subnetMeta(sn) {
  return sn ? [sn.cidr, sn.ipv6_cidr, sn.az].filter(Boolean).join(' \u00b7 ') : '';
}
function subnetBadges(sn) {
  if (!sn) return [];
  return [h('span', { class: `badge ${sn.public ? 'public' : 'private'}` }, sn.public ? 'public' : 'private'),
    sn.dual_stack ? h('span', { class: 'badge dual' }, 'dual-stack') : null];
}

function renderVpcConfig() {
  const c = fn.config;
  const vc = (c && c.VpcConfig) || {};
  const subnets = byId((lastState && lastState.subnets) || []);
  const box = $('#vpc-config');
  if (!vc.VpcId && !(vc.SubnetIds || []).length) {
    box.replaceChildren(h('p', { class: 'empty' }, 'This function is not connected to a VPC.'),
      h('dl', { class: 'kv' }, h('dt', {}, 'Ipv6AllowedForDualStack'), h('dd', {}, String(!!vc.Ipv6AllowedForDualStack))));
  } else {
    box.replaceChildren(h('dl', { class: 'kv' },
      h('dt', {}, 'VPC'), h('dd', { class: 'mono' }, vc.VpcId || '\u2014'),
      h('dt', {}, 'Subnets'), h('dd', {}, ...(vc.SubnetIds || []).map((id) => h('div', { 'data-subnet': id },
        h('code', {}, id), ' ', h('span', { class: 'muted' }, subnetMeta(subnets.get(id))), ...subnetBadges(subnets.get(id))))),
      h('dt', {}, 'Security groups'), h('dd', {}, ...(vc.SecurityGroupIds || []).map((id) => h('div', { 'data-group': id }, h('code', {}, id)))),
      h('dt', {}, 'Ipv6AllowedForDualStack'), h('dd', {}, String(!!vc.Ipv6AllowedForDualStack))));
  }
}

// The function's ENIs and environments as the desired state has them.
function renderFunctionState(name) {
  const f = ((lastState && lastState.functions) || []).find((x) => x.name === name);
  const enis = byId((lastState && lastState.enis) || []);
  $('#function-enis').replaceChildren(...((f && f.enis) || []).flatMap((id, i) => {
    const e = enis.get(id);
    return [i ? ' ' : '', h('span', { title: e ? `${e.ip}${e.ip6 ? ` ${e.ip6}` : ''} in ${e.subnet} [${e.groups.join(', ')}]` : '' }, id)];
  }));
  if (!f || !(f.enis || []).length) $('#function-enis').append(h('span', { class: 'muted' }, 'none'));
  $('#function-envs tbody').replaceChildren(...((f && f.environments) || []).map((env) => h('tr', {},
    h('td', {}, String(env.n)), h('td', { class: 'mono' }, [env.ip, env.ip6].filter(Boolean).join(' ')),
    h('td', {}, env.subnet || '\u2014'), h('td', { class: 'mono' }, env.eni || '\u2014'), h('td', {}, env.host || ''))));
  renderVpcConfig();
}

// "Edit VPC", as Lambda's console: every subnet of the deployment grouped
// by VPC (CIDR, AZ, dual-stack), every security group, the IPv6 switch.
async function openVpcForm() {
  const st = await loadState().catch(() => lastState || {});
  const vc = (fn.config && fn.config.VpcConfig) || {};
  const vpcs = (st.vpcs || []).map((v) => v.id);
  for (const x of [...(st.subnets || []), ...(st.security_groups || [])]) if (!vpcs.includes(x.vpc)) vpcs.push(x.vpc);
  const vpcInfo = byId(st.vpcs || []);
  // One checkbox per item, grouped by VPC; what the function names but the
  // state does not know (yet) still shows, chosen.
  const choices = (box, name, items, chosen, meta) => {
    const known = new Set(items.map((x) => x.id));
    const el = $(box);
    el.replaceChildren(...vpcs.map((vpc) => h('div', { class: 'vpc-group', 'data-vpc': vpc },
      h('div', {}, vpc, ' ', h('span', { class: 'muted mono' }, [vpcInfo.get(vpc)?.cidr, vpcInfo.get(vpc)?.ipv6_cidr].filter(Boolean).join(' \u00b7 '))),
      ...items.filter((x) => x.vpc === vpc).map((x) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name, value: x.id, checked: chosen.has(x.id) }), h('code', {}, x.id), ...meta(x)))))
      .filter((g) => g.childElementCount > 1));
    for (const id of chosen) if (!known.has(id)) el.append(h('label', { class: 'check' },
      h('input', { type: 'checkbox', name, value: id, checked: true }), h('code', {}, id)));
  };
  choices('#vpc-form-subnets', 'subnet', st.subnets || [], new Set(vc.SubnetIds || []), (sn) => [
    h('span', { class: 'meta' }, `${sn.cidr}${sn.ipv6_cidr ? ` \u00b7 ${sn.ipv6_cidr}` : ''} \u00b7 ${sn.az}`), ...subnetBadges(sn)]);
  choices('#vpc-form-groups', 'group', st.security_groups || [], new Set(vc.SecurityGroupIds || []), (g) => [
    g.default ? h('span', { class: 'meta' }, 'default') : null]);
  $('#ipv6-dual-stack').checked = !!vc.Ipv6AllowedForDualStack;
  // Lambda's console warns (and no more) when one subnet is chosen.
  const warn = () => { $('#vpc-form-warning').hidden = $$('#vpc-form input[name="subnet"]:checked').length !== 1; };
  $('#vpc-form-subnets').onchange = warn;
  warn();
  $('#form-error').textContent = '';
  $('#vpc-form').hidden = false;
  $('#vpc-form').scrollIntoView({ block: 'nearest' });
}

// UpdateFunctionConfiguration, then GetFunction every 500 ms until the
// update is Successful or Failed; then the ENIs from the desired state.
async function saveVpc(name, seq) {
  const checked = (n) => $$(`#vpc-form input[name="${n}"]:checked`).map((i) => i.value);
  const body = { VpcConfig: { SubnetIds: checked('subnet'), SecurityGroupIds: checked('group'), Ipv6AllowedForDualStack: $('#ipv6-dual-stack').checked } };
  $('#save-vpc').disabled = true;
  $('#form-error').textContent = '';
  let config;
  try {
    config = await api(lambda(name, '/configuration'), {
      method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    }, null);
  } catch (e) {
    $('#form-error').textContent = e.message; // AWS's validation message, verbatim
    return;
  } finally { $('#save-vpc').disabled = false; }
  if (!current(seq)) return;
  fn.answered = ++fn.asked; // GetFunctions sent before it are older
  $('#vpc-form').hidden = true;
  showConfig(config);
  while (current(seq)) {
    await new Promise((resolve) => { setTimeout(resolve, 500); });
    const c = current(seq) && await getFunction(name);
    if (!c || !current(seq)) continue;
    if (['Successful', 'Failed'].includes(c.LastUpdateStatus) && c.State !== 'Pending') {
      await loadState().catch(() => null);
      if (current(seq)) showFunction(c);
      return;
    }
    showConfig(c);
  }
}

function invokeStatus(text, cls) {
  $('#invoke-status').textContent = text;
  $('#invoke-status').className = `status ${cls}`;
}

// A test event: Invoke with the log tail.
async function invoke(name) {
  let event = $('#test-event').value;
  try { event = JSON.stringify(JSON.parse(event)); } catch (e) {
    invokeStatus(`Failed: the event is not JSON (${e.message})`, 'bad');
    return;
  }
  $('#invoke').disabled = true;
  invokeStatus('Invoking\u2026', 'progress');
  try {
    const r = await fetch(lambda(name, '/invocations'), { method: 'POST', headers: { 'X-Amz-Log-Type': 'Tail', 'Content-Type': 'application/json' }, body: event });
    const text = await r.text();
    if (!r.ok) {
      let body = null;
      try { body = JSON.parse(text); } catch (_) { /* not JSON */ }
      const err = new ApiError(r.status, body, text);
      // The exception's name is in X-Amzn-ErrorType (the body's Type is "User").
      invokeStatus(`Failed: ${r.headers.get('X-Amzn-ErrorType') || err.type || r.status}`, 'bad');
      $('#invoke-result').textContent = err.message;
      $('#invoke-log').textContent = '';
      return;
    }
    const failed = r.headers.get('X-Amz-Function-Error');
    invokeStatus(failed ? `Failed: ${failed}` : 'Succeeded', failed ? 'bad' : 'ok');
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* the body as it came */ }
    $('#invoke-result').textContent = shown;
    const log = r.headers.get('X-Amz-Log-Result');
    $('#invoke-log').textContent = log ? decodeBase64(log) : '';
    showError('Invoke', null);
  } catch (e) {
    showError('Invoke', `Invoke: ${e.message}`);
    invokeStatus(`Failed: ${e.message}`, 'bad');
  } finally { $('#invoke').disabled = false; }
}

// ---- Topology: a deterministic layout of the desired state ----
const T = { pad: 16, lambdaW: 250, gap: 90, colW: 236, colGap: 14, line: 13, edgeH: 36 };
const HOST_COLOURS = ['#0972d3', '#ec7211', '#037f0c', '#c925d1', '#8d6605', '#d91515', '#5a2ca0', '#00819b'];
let topo = { key: null, counters: new Map(), prev: new Map(), hosts: new Map() };

async function topologyPage(seq) {
  $('#topology').hidden = false;
  document.title = 'Topology \u2014 VPC console';
  const refreshState = async () => {
    const st = await loadState().catch(() => null);
    if (!st || !current(seq)) return;
    const key = JSON.stringify(st);
    if (key !== topo.key) { topo.key = key; drawTopology(st); applyCounters(null); }
  };
  const refreshCounters = async () => {
    const c = await api('/console/api/counters').catch(() => null);
    if (c && current(seq)) applyCounters(c);
  };
  topo.key = null;
  await refreshState();
  await refreshCounters();
  every(seq, 1000, refreshCounters);
  every(seq, 5000, refreshState);
}

// Text that fits `width` pixels (an estimate: no layout pass needed).
function fit(text, width, px = 6.1) {
  text = String(text ?? '');
  const max = Math.max(3, Math.floor(width / px));
  return text.length > max ? `${text.slice(0, max - 1)}\u2026` : text;
}
// A text, cut to `width` with the whole in its tooltip.
function label(x, y, text, cls, width) {
  const shown = width ? fit(text, width, cls && cls.includes('mono') ? 6.2 : 6.1) : text;
  return s('text', { x, y, class: cls }, shown, shown !== text ? s('title', {}, text) : null);
}
const badgeWidth = (text) => text.length * 5.6 + 8;
function badge(x, y, text, kind) {
  return s('g', { class: `badge badge-${kind}` }, s('rect', { x, y: y - 9, width: badgeWidth(text), height: 12, rx: 3 }), s('text', { x: x + 4, y }, text));
}

// A resource box: a title, detail lines, and (for a node the datapath
// counts) a counter line and a drops line. Returns {g, h}.
function nodeBox(kind, id, x, y, w, title, lines, counterNode, host, shownKind = kind) {
  const hgt = 8 + T.line * (1 + lines.length + (counterNode ? 2 : 0)) + 2;
  const g = s('g', { 'data-id': id, 'data-kind': kind, class: `node ${kind}`, transform: `translate(${x},${y})` },
    s('rect', { class: 'box', width: w, height: hgt, rx: 4 }),
    s('title', {}, [title, ...lines].join('\n')));
  const hostX = host ? 14 : 0;
  if (host) g.append(s('circle', { class: 'hostdot', cx: 10, cy: 11, r: 4, fill: topo.hosts.get(host) || '#aab7b8' }, s('title', {}, `host ${host}`)));
  g.append(label(6 + hostX, 15, title, 'title', w - 48 - hostX));
  g.append(s('text', { x: w - 6, y: 14, class: 'kind', 'text-anchor': 'end' }, shownKind.toUpperCase()));
  lines.forEach((l, i) => g.append(label(6, 15 + T.line * (i + 1), l, 'sub mono', w - 12)));
  if (counterNode) {
    const cy = 15 + T.line * (lines.length + 1);
    g.append(s('text', { x: 6, y: cy, class: 'counter mono', 'data-counter': counterNode },
      s('tspan', { class: 'forwarded' }, 'fwd \u2014'), s('tspan', { dx: 8, class: 'dropped' }, ''), s('title', {}, 'no counters yet')));
    g.append(s('text', { x: 6, y: cy + T.line, class: 'drops mono', 'data-drops': counterNode }, ''));
  }
  return { g, h: hgt };
}

function drawTopology(st) {
  const svg = $('#topology-svg');
  const links = s('g', { class: 'links' });
  const nodes = s('g', { class: 'nodes' });
  const where = new Map(); // id -> {x, y, w, h} in SVG coordinates: the lines' ends
  topo.hosts = new Map(st.hosts.map((hst, i) => [hst.name, HOST_COLOURS[i % HOST_COLOURS.length]]));
  const manyHosts = st.hosts.length > 1;
  const hostOf = (x) => (manyHosts ? x.host : null);
  const place = (id, x, y, w, hh) => where.set(id, { x, y, w, h: hh });

  // Hosts: a legend, one colour each.
  let lx = T.pad;
  const legend = s('g', { class: 'legend' }, s('text', { x: lx, y: 18, class: 'caption' }, st.hosts.length > 1 ? 'HOSTS' : 'HOST'));
  lx += st.hosts.length > 1 ? 56 : 46;
  for (const hst of st.hosts) {
    const name = `${hst.name}${hst.this ? ' (this)' : ''}${hst.live === false ? ' \u2014 gone' : ''}`;
    legend.append(s('g', { 'data-id': hst.name, 'data-kind': 'host', transform: `translate(${lx},0)` },
      s('circle', { cx: 5, cy: 14, r: 5, fill: topo.hosts.get(hst.name), opacity: hst.live === false ? 0.35 : 1 }),
      s('text', { x: 14, y: 18 }, name)));
    lx += 24 + name.length * 6.4;
  }
  // What the lines mean.
  lx += 24;
  for (const [cls, text] of [['link', 'environment \u2192 its Hyperplane ENI'], ['assoc', 'subnet \u2194 its route table']]) {
    legend.append(s('path', { class: cls, d: `M${lx},14 h24` }), s('text', { x: lx + 30, y: 18, class: 'sub' }, text));
    lx += 40 + text.length * 6;
  }
  nodes.append(legend);
  const top = 40;

  // VPCs, stacked; in each, its subnets as columns, what sits in them
  // inside, its route tables underneath, its gateways on its edge.
  const vx = T.pad + T.lambdaW + T.gap;
  let vy = top + T.edgeH / 2;
  let right = vx;
  const vpcIds = st.vpcs.map((v) => v.id);
  for (const x of st.subnets) if (!vpcIds.includes(x.vpc)) vpcIds.push(x.vpc);
  const vpcInfo = byId(st.vpcs);
  for (const vpcId of vpcIds) {
    const vpc = vpcInfo.get(vpcId) || { id: vpcId, cidr: '' };
    const g = s('g', { 'data-id': vpcId, 'data-kind': 'vpc', class: 'vpc' });
    // Subnets with Hyperplane ENIs nearest the Lambda side (fewer crossing
    // lines), then by AZ, public first.
    const hasEni = (sn) => (st.enis.some((e) => e.subnet === sn.id) ? 0 : 1);
    const subnets = st.subnets.filter((sn) => sn.vpc === vpcId).sort((a, b) => hasEni(a) - hasEni(b)
      || (a.az || '').localeCompare(b.az || '') || (b.public - a.public) || a.id.localeCompare(b.id));
    // Each route table under its first subnet's column when that is free,
    // else in the next free one: association lines stay short.
    const firstColumn = (rt) => Math.min(...rt.subnets.map((id) => subnets.findIndex((sn) => sn.id === id)).filter((i) => i >= 0), 1e6);
    const slots = [];
    const tables = st.route_tables.filter((rt) => rt.vpc === vpcId)
      .sort((a, b) => firstColumn(a) - firstColumn(b) || a.id.localeCompare(b.id))
      .map((rt) => {
        let slot = firstColumn(rt) === 1e6 ? 0 : firstColumn(rt); // unassociated: the first free column
        while (slots[slot]) slot += 1;
        slots[slot] = rt;
        return { rt, slot };
      });
    const edge = [...st.gateways.filter((gw) => gw.vpc === vpcId && gw.kind !== 'nat'),
      ...st.endpoints.filter((ep) => ep.vpc === vpcId && ep.kind === 'Gateway')];
    const cols = Math.max(1, subnets.length, slots.length);
    const inner = s('g', {});
    // Subnets and what sits in them.
    const sy = vy + 44;
    let subnetH = 60;
    const columns = subnets.map((sn, i) => {
      const sx = vx + 14 + i * (T.colW + T.colGap);
      const sg = s('g', { 'data-id': sn.id, 'data-kind': 'subnet', class: `subnet ${sn.public ? 'public' : 'private'}` },
        s('title', {}, `${sn.id} ${sn.cidr}${sn.ipv6_cidr ? ` ${sn.ipv6_cidr}` : ''} ${sn.az} (${sn.public ? 'public' : 'private'}; route table ${sn.route_table}, network ACL ${sn.acl})`));
      const rect = s('rect', { class: 'box', x: sx, y: sy, width: T.colW, rx: 6 });
      sg.append(rect, label(sx + 8, sy + 16, sn.id, 'title', T.colW - 110));
      let bx = sx + T.colW - 6;
      for (const [text, kind] of [sn.dual_stack ? ['dual-stack', 'dual'] : null, [sn.public ? 'public' : 'private', sn.public ? 'public' : 'private']].filter(Boolean)) {
        bx -= badgeWidth(text) + 4;
        sg.append(badge(bx, sy + 15, text, kind));
      }
      sg.append(label(sx + 8, sy + 30, `${sn.cidr} \u00b7 ${sn.az || ''}`, 'sub mono', T.colW - 16));
      if (sn.ipv6_cidr) sg.append(label(sx + 8, sy + 43, sn.ipv6_cidr, 'sub mono', T.colW - 16));
      let iy = sy + (sn.ipv6_cidr ? 52 : 40);
      const items = [
        ...st.enis.filter((e) => e.subnet === sn.id).map((e) =>
          nodeBox('eni', e.id, sx + 8, 0, T.colW - 16, e.id, [`${[e.ip, e.ip6].filter(Boolean).join(' ')} [${e.groups.join(', ')}]`, `\u2190 ${(e.functions || []).join(', ') || 'no function'}`], e.id, null)),
        ...st.gateways.filter((gw) => gw.kind === 'nat' && gw.subnet === sn.id).map((gw) =>
          nodeBox('nat', gw.id, sx + 8, 0, T.colW - 16, gw.id, [`NAT gateway ${[gw.ip, gw.public_ip && `\u2192 ${gw.public_ip}`].filter(Boolean).join(' ')}`], null, null)),
        ...st.endpoints.filter((ep) => ep.kind !== 'Gateway' && (ep.subnets || []).includes(sn.id)).map((ep) =>
          // Its network interface in this subnet is host `<id>.<n>` (n from 1, in its subnets' order).
          nodeBox('endpoint', ep.id, sx + 8, 0, T.colW - 16, ep.id, [ep.service], `${ep.id}.${ep.subnets.indexOf(sn.id) + 1}`, null)),
        ...st.instances.filter((inst) => inst.subnet === sn.id).map((inst) =>
          nodeBox('instance', inst.id, sx + 8, 0, T.colW - 16, inst.id, [`${[inst.ip, inst.ip6].filter(Boolean).join(' ')} [${inst.groups.join(', ')}]`], inst.id, hostOf(inst),
            inst.kind === 'network_interface' ? 'interface' : 'instance')),
      ];
      for (const it of items) {
        it.g.setAttribute('transform', `translate(${sx + 8},${iy})`);
        place(it.g.dataset.id, sx + 8, iy, T.colW - 16, it.h);
        sg.append(it.g);
        iy += it.h + 6;
      }
      subnetH = Math.max(subnetH, iy - sy + 4);
      inner.append(sg);
      return { sn, sx, rect };
    });
    columns.forEach((c) => c.rect.setAttribute('height', subnetH));
    // Route tables under the subnets, each linked to its subnets.
    const ry = sy + subnetH + 22;
    let tablesH = 0;
    tables.forEach(({ rt, slot }) => {
      const rx = vx + 14 + slot * (T.colW + T.colGap);
      // Its routes as EC2 lists them: the VPC's local ones first.
      const lines = rt.routes.map((r) => `${r.destination} \u2192 ${r.target}${r.state === 'blackhole' ? ' (blackhole)' : ''}`);
      const b = nodeBox('route-table', rt.id, rx, ry, T.colW, rt.id, [...lines, `subnets: ${rt.subnets.join(', ') || '\u2014'}`], null, null);
      if (rt.main) b.g.append(s('text', { x: T.colW - 6, y: 27, class: 'kind main', 'text-anchor': 'end' }, 'MAIN'));
      inner.append(b.g);
      tablesH = Math.max(tablesH, b.h);
      for (const id of rt.subnets) {
        const c = columns.find((col) => col.sn.id === id);
        if (c) links.append(s('path', { class: 'assoc', d: `M${c.sx + T.colW / 2},${sy + subnetH} C${c.sx + T.colW / 2},${ry - 10} ${rx + T.colW / 2},${sy + subnetH + 10} ${rx + T.colW / 2},${ry}` }));
      }
    });
    const vw = Math.max(28 + cols * T.colW + (cols - 1) * T.colGap, 200 + edge.length * 170);
    const vh = ry + (tablesH ? tablesH + 14 : 0) - vy;
    g.append(s('rect', { class: 'box', x: vx, y: vy, width: vw, height: vh, rx: 10 }),
      s('text', { x: vx + 12, y: vy + 30, class: 'title' }, `${vpcId}`),
      s('text', { x: vx + 20 + vpcId.length * 8, y: vy + 30, class: 'sub mono' }, [vpc.cidr, vpc.ipv6_cidr].filter(Boolean).join(' \u00b7 ')),
      inner);
    // Gateways on the VPC's edge: IGW, egress-only IGW, gateway endpoints.
    edge.forEach((gw, i) => {
      const kind = gw.kind === 'internet' ? 'igw' : gw.kind === 'egress_only' ? 'eigw' : 'endpoint';
      const what = gw.kind === 'internet' ? 'internet gateway' : gw.kind === 'egress_only' ? 'egress-only IGW' : `${(gw.service || '').split('.').pop()} gateway endpoint`;
      const ex = vx + vw - 14 - (i + 1) * 160 + 4;
      const b = nodeBox(kind, gw.id, ex, vy - T.edgeH / 2, 150, gw.id, [what], null, null);
      g.append(b.g);
    });
    nodes.append(g);
    right = Math.max(right, vx + vw);
    vy += vh + 40;
  }

  // The Lambda side (AWS's service VPC): functions and their environments.
  const lw = T.lambdaW;
  let y = top + 30;
  const lambdaSide = s('g', { class: 'lambda' });
  // Functions in the order of their ENIs down the VPCs (fewer crossing
  // lines); those without an ENI last; then by name.
  const eniY = (f) => Math.min(...(f.enis || []).map((id) => where.get(id)?.y ?? 1e6), 1e6);
  for (const f of [...st.functions].sort((a, b) => eniY(a) - eniY(b) || a.name.localeCompare(b.name))) {
    const fx = T.pad + 10;
    const fw = lw - 20;
    const vc = f.vpc_config;
    const fb = nodeBox('function', f.name, fx, y, fw, f.name,
      [vc ? `${vc.vpc}: ${vc.subnets.join(', ')} [${vc.groups.join(', ')}]${vc.ipv6_allowed_for_dual_stack ? ' IPv6' : ''}` : 'no VPC'], null, null);
    place(f.name, fx, y, fw, fb.h);
    let ey = fb.h + 4;
    for (const env of f.environments || []) {
      const node = env.node || `${f.name}.${env.n}`; // the counters' name for it
      const eb = nodeBox('env', node, 8, ey, fw - 16, `env ${env.n}`, [[env.ip, env.ip6].filter(Boolean).join(' ')], node, hostOf(env));
      eb.g.dataset.function = f.name;
      fb.g.append(eb.g);
      place(node, fx + 8, y + ey, fw - 16, eb.h);
      if (env.eni) links.append(s('path', { class: 'link', 'data-from': node, 'data-to': env.eni, 'data-function': f.name }));
      ey += eb.h + 4;
    }
    if (!(f.environments || []).length) {
      for (const eni of f.enis || []) links.append(s('path', { class: 'link', 'data-from': f.name, 'data-to': eni, 'data-function': f.name }));
    }
    fb.g.querySelector('rect.box').setAttribute('height', ey + 2);
    where.get(f.name).h = ey + 2;
    lambdaSide.append(fb.g);
    y += ey + 10;
  }
  const lambdaBottom = y;
  nodes.append(s('rect', { class: 'lambda-side', x: T.pad, y: top, width: lw, height: lambdaBottom - top, rx: 8 }),
    s('text', { x: T.pad + 10, y: top + 18, class: 'caption' }, 'AWS LAMBDA'), lambdaSide);

  // Environments (or functions) to their ENIs.
  for (const p of links.querySelectorAll('path.link')) {
    const a = where.get(p.dataset.from);
    const b = where.get(p.dataset.to);
    if (!a || !b) { p.remove(); continue; }
    const x1 = a.x + a.w;
    const y1 = a.y + Math.min(a.h / 2, 20);
    const x2 = b.x;
    const y2 = b.y + 18;
    const mx = (x1 + x2) / 2;
    p.setAttribute('d', `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
  }
  if (!st.functions.length && !st.vpcs.length) nodes.append(s('text', { x: vx, y: top + 40, class: 'sub' }, 'Nothing deployed (or the state is not available yet).'));
  const width = Math.max(right, vx + 400) + T.pad;
  const height = Math.max(lambdaBottom, vy - 20) + T.pad;
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  // Lines drawn last, over the boxes they cross (translucent, not hit-testable).
  svg.replaceChildren(s('title', {}, `Topology of ${st.deployment || 'the deployment'}`), nodes, links);
  // Hovering a function or an environment brings out its lines.
  svg.onmouseover = (e) => highlight(e.target.closest('g[data-kind="function"], g[data-kind="env"], g[data-kind="eni"]'));
  svg.onmouseout = () => highlight(null);
  // A function (or its environment) opens its page; an ENI or an instance
  // the flows through it.
  svg.onclick = (e) => {
    const g = e.target.closest('g[data-kind]');
    if (!g) return;
    const kind = g.dataset.kind;
    if (kind === 'function' || kind === 'env') location.hash = `#/functions/${encodeURIComponent(g.dataset.function || g.dataset.id)}`;
    else if (kind === 'eni' || kind === 'instance') {
      for (const id of FILTERS) $(`#${id}`).value = '';
      if (kind === 'eni') $('#filter-eni').value = g.dataset.id;
      else $('#filter-address').value = st.instances.find((i) => i.id === g.dataset.id)?.ip || '';
      location.hash = '#/flows';
    }
  };
}

function highlight(g) {
  $$('#topology-svg .hl').forEach((x) => x.classList.remove('hl'));
  if (!g) return;
  const id = g.dataset.id;
  for (const p of $$('#topology-svg path.link')) {
    if ([p.dataset.from, p.dataset.to, p.dataset.function].includes(id)) {
      p.classList.add('hl');
      $$(`#topology-svg g[data-id="${CSS.escape(p.dataset.to)}"], #topology-svg g[data-id="${CSS.escape(p.dataset.from)}"]`).forEach((x) => x.classList.add('hl'));
    }
  }
}

const REASON_ABBREV = (r) => r.replace(/_denied$/, '').replace(/_/g, ' ');
// Counters into the drawing; `c` null re-applies the last ones (after a redraw).
function applyCounters(c) {
  if (c) {
    topo.counters = new Map((c.interfaces || []).map((i) => [i.node, i]));
    // The router's drops by reason (a packet crosses several interfaces:
    // their counters do not add up to the router's).
    const totals = Object.entries(c.drops || {}).sort((a, b) => b[1] - a[1]);
    $('#topology-totals').replaceChildren(...['router drops ', h('b', {}, fmt(totals.reduce((n, [, v]) => n + v, 0))),
      ...totals.map(([r, n]) => h('span', { class: 'drop' }, `${r} ${fmt(n)}`)),
      c.at_ms ? h('span', { class: 'muted' }, ` \u00b7 ${new Date(c.at_ms).toLocaleTimeString('en-GB')}`) : null].filter(Boolean));
  }
  for (const t of $$('#topology-svg text[data-counter]')) {
    const node = t.dataset.counter;
    const i = topo.counters.get(node);
    if (!i) continue;
    const drops = Object.entries(i.drops || {}).sort((a, b) => b[1] - a[1]);
    t.children[0].textContent = `fwd ${fmt(i.forwarded)}`;
    t.children[1].textContent = `drop ${fmt(i.dropped)}`;
    t.children[1].classList.toggle('some', !!i.dropped);
    t.querySelector('title').textContent = [`${node}${i.interface ? ` (${i.interface})` : ''}: forwarded ${fmt(i.forwarded)}, dropped ${fmt(i.dropped)}`,
      ...drops.map(([r, n]) => `  ${r}: ${fmt(n)}`)].join('\n');
    const list = $(`#topology-svg text[data-drops="${CSS.escape(node)}"]`);
    if (list) {
      const w = Number(t.closest('g.node').querySelector('rect.box').getAttribute('width')) - 12;
      list.replaceChildren(fit(drops.map(([r, n]) => `${REASON_ABBREV(r)} ${fmt(n)}`).join(' \u00b7 '), w, 5.6),
        s('title', {}, drops.map(([r, n]) => `${r}: ${n}`).join('\n')));
    }
    const before = topo.prev.get(node);
    if (c && before && (before.forwarded !== i.forwarded || before.dropped !== i.dropped)) {
      const g = t.closest('g.node');
      const cls = before.dropped !== i.dropped ? 'changed-drop' : 'changed';
      g.classList.add(cls);
      setTimeout(() => g.classList.remove(cls), 700);
    }
  }
  // Interfaces the state does not draw (the VPC resolver, the internet's
  // and AWS's services): a line under the drawing.
  const drawn = new Set($$('#topology-svg text[data-counter]').map((x) => x.dataset.counter));
  const others = [...topo.counters.values()].filter((i) => !drawn.has(i.node));
  $('#topology-other').replaceChildren(...(others.length ? ['Other interfaces: '] : []), ...others.map((i) => h('span', {
    class: `other${i.dropped ? ' some' : ''}`, title: Object.entries(i.drops || {}).map(([r, n]) => `${r}: ${n}`).join('\n'),
  }, h('b', {}, i.node), ` fwd ${fmt(i.forwarded)} drop ${fmt(i.dropped)}`)));
  if (c) topo.prev = new Map([...topo.counters].map(([k, v]) => [k, { forwarded: v.forwarded, dropped: v.dropped }]));
}

// ---- Flows: connections and drops, as Hubble's UI ----
let flows = { data: null, selected: null };
const FILTERS = ['filter-function', 'filter-eni', 'filter-address', 'filter-port'];

async function flowsPage(seq) {
  $('#flows').hidden = false;
  document.title = 'Flows \u2014 VPC console';
  $('#explain-close').onclick = () => { $('#explain').hidden = true; flows.selected = null; renderFlows(); };
  // The agent filters too (the table may hold millions; it answers the
  // 1,000 most recent matches): the filters go with every read.
  const query = () => {
    const q = new URLSearchParams();
    for (const [id, k] of [['filter-function', 'function'], ['filter-eni', 'eni'], ['filter-address', 'address'], ['filter-port', 'port']]) {
      const v = $(`#${id}`).value.trim();
      if (v) q.set(k, v);
    }
    return q.toString() ? `?${q}` : '';
  };
  const refresh = async () => {
    const d = await api(`/console/api/flows${query()}`).catch(() => null);
    if (!d || !current(seq)) return;
    flows.data = d;
    $('#flows-updated').textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
    renderFlows();
  };
  let pending = null;
  for (const id of FILTERS) {
    $(`#${id}`).oninput = () => {
      renderFlows();
      clearTimeout(pending);
      pending = setTimeout(refresh, 300);
    };
  }
  await refresh();
  every(seq, 2000, refresh);
}

// One row's fields for filtering and explaining, connection or drop alike.
function flowOf(kind, r) {
  if (kind === 'connection') {
    const o = r.original || {};
    const rep = r.reply || {};
    return { kind, from: r.from, to: r.to, src: o.src, dst: o.dst, sport: o.sport, dport: o.dport, protocol: r.protocol, eni: r.eni,
      addresses: [o.src, o.dst, rep.src, rep.dst], ports: [o.sport, o.dport, rep.sport, rep.dport] };
  }
  return { kind, from: r.from, to: r.to, src: r.src, dst: r.dst, sport: r.sport, dport: r.dport, protocol: r.protocol, eni: r.eni,
    addresses: [r.src, r.dst, r.packet_src, r.packet_dst], ports: [r.sport, r.dport] };
}
const flowKey = (f) => [f.kind, f.protocol, f.src, f.sport, f.dst, f.dport].join('|');

function matches(f) {
  const v = (id) => $(`#${id}`).value.trim().toLowerCase();
  const fnq = v('filter-function');
  const eniq = v('filter-eni');
  const addr = v('filter-address');
  const port = v('filter-port');
  const has = (x, q) => x != null && String(x).toLowerCase().includes(q);
  if (fnq && !has(f.from, fnq) && !has(f.to, fnq)) return false;
  if (eniq && !has(f.eni, eniq)) return false;
  if (addr && !f.addresses.some((a) => has(a, addr))) return false;
  if (port && !f.ports.some((p) => p != null && String(p) === port)) return false;
  return true;
}

// An end of a flow: its resource, address and port (/protocol on the
// destination, as Hubble shows it).
function endpoint(who, addr, port, extra, protocol) {
  return h('span', { class: 'ep' }, who ? h('span', { class: 'who' }, who) : null,
    h('span', { class: 'addr' }, `${addr ?? '?'}${port != null ? `:${port}` : ''}${protocol ? `/${protocol}` : ''}`),
    extra ? h('span', { class: 'via' }, extra) : null);
}

function renderFlows() {
  const d = flows.data || { connections: [], drops: [] };
  const row = (cls, f, cells) => {
    const key = flowKey(f);
    return h('tr', { class: `${cls}${flows.selected === key ? ' selected' : ''}`, 'data-key': key, tabindex: 0,
      onclick: () => explain(f), onkeydown: (e) => { if (e.key === 'Enter') explain(f); } }, ...cells);
  };
  // A table's rows, or a line saying why there are none.
  const fill = (table, rows, total, what, none) => {
    const cols = $(`${table} thead tr`).childElementCount;
    $(`${table} tbody`).replaceChildren(...(rows.length ? rows : [h('tr', { class: 'none' },
      h('td', { colspan: cols }, total ? `No ${what} match the filters.` : none))]));
    $(`${table}-count`).textContent = `(${rows.length}${rows.length !== total ? ` of ${total}` : ''})`;
  };
  const drops = (d.drops || []).map((r) => [r, flowOf('drop', r)]).filter(([, f]) => matches(f))
    .sort((a, b) => (b[0].last_s || 0) - (a[0].last_s || 0));
  fill('#drops', drops.map(([r, f]) => row('drop', f, [
    h('td', { class: 'time', title: `first ${time(r.first_s)}` }, time(r.last_s)),
    h('td', { class: 'reason' }, r.reason), h('td', { class: 'why' }, r.why || ''),
    h('td', {}, endpoint(r.from, r.src, r.sport, r.packet_src && r.packet_src !== r.src ? `packet from ${r.packet_src}` : null)),
    h('td', {}, endpoint(r.to, r.dst, r.dport, r.packet_dst && r.packet_dst !== r.dst ? `packet to ${r.packet_dst}` : null, r.protocol)),
    h('td', { class: 'mono' }, r.eni || ''), h('td', { class: 'nowrap' }, `${fmt(r.packets)} \u00b7 ${bytes(r.bytes)}`)])),
  (d.drops || []).length, 'drops', 'No drops recorded since the agent started.');
  // Drops by reason (packets) among the rows shown, the largest first.
  const reasons = new Map();
  for (const [r] of drops) reasons.set(r.reason, (reasons.get(r.reason) || 0) + (r.packets || 1));
  $('#drops-reasons').replaceChildren(...[...reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => h('span', { title: `${fmt(n)} packets` }, `${r} ${fmt(n)}`)));
  const conns = (d.connections || []).map((r) => [r, flowOf('connection', r)]).filter(([, f]) => matches(f));
  fill('#connections', conns.map(([r, f]) => {
    const o = r.original || {};
    const rep = r.reply || {};
    return row('connection', f, [
      h('td', {}, r.state || ''),
      h('td', {}, endpoint(r.from, o.src, o.sport, rep.dst && rep.dst !== o.src ? `as ${rep.dst}:${rep.dport}` : null)),
      h('td', {}, endpoint(r.to, o.dst, o.dport, rep.src && rep.src !== o.dst ? `reply from ${rep.src}:${rep.sport}` : null, r.protocol)),
      h('td', { class: 'mono' }, r.eni || ''), h('td', {}, `${fmt(o.packets)} / ${fmt(rep.packets)}`),
      h('td', {}, `${bytes(o.bytes)} / ${bytes(rep.bytes)}`), h('td', {}, ago(r.age_s)), h('td', {}, ago(r.timeout_s))]);
  }), d.connections_matched ?? (d.connections || []).length, 'connections', 'No connections tracked.');
}

// `vpc explain` for a row: from its resource or source address to its
// resource or destination address, its protocol and destination port.
async function explain(f) {
  flows.selected = flowKey(f);
  $$('#flows tr.selected').forEach((r) => r.classList.remove('selected'));
  $$('#flows tr[data-key]').filter((r) => r.dataset.key === flows.selected).forEach((r) => r.classList.add('selected'));
  const q = { from: f.from || f.src, to: f.to || f.dst, protocol: f.protocol, port: f.dport };
  const params = new URLSearchParams(Object.entries(q).filter(([, v]) => v != null && v !== ''));
  $('#explain').hidden = false;
  $('#explain-query').textContent = `${q.from} \u2192 ${q.to} ${q.protocol}${q.port != null ? ` port ${q.port}` : ''}`;
  $('#explain-verdict').textContent = '\u2026';
  $('#explain-verdict').className = '';
  $('#explain-why').textContent = '';
  $('#explain-steps').replaceChildren();
  let r;
  try { r = await api(`/console/api/explain?${params}`, {}, null); } catch (e) {
    $('#explain-verdict').textContent = 'Cannot explain';
    $('#explain-why').textContent = e.message;
    return;
  }
  if (flows.selected !== flowKey(f)) return; // another row was opened meanwhile
  const verdict = r.allowed ? 'allow' : 'deny';
  $('#explain-verdict').textContent = `${verdict.toUpperCase()}${r.reason ? ` ${r.reason}` : ''}`;
  $('#explain-verdict').className = verdict;
  $('#explain-query').textContent = `${r.from ?? q.from} (${r.src ?? '?'}) \u2192 ${r.to ?? q.to} (${r.dst ?? '?'}) ${q.protocol}${r.port != null ? ` port ${r.port}` : ''}`;
  $('#explain-why').textContent = r.why || '';
  $('#explain-steps').replaceChildren(...(r.steps || []).map((step) => h('li', {}, step)));
}

window.addEventListener('hashchange', route);
route();
