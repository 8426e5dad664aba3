// SPDX-License-Identifier: Apache-2.0
// The atshub operator console: plain DOM, no framework, no inline script
// (the page's CSP forbids it). Every call goes to the daemon's admin API
// (/admin/...), authenticated by the session cookie; state changes send the
// session's X-CSRF-Token. Text is always set with textContent, never HTML.

let csrf = null;
let timer = null;        // the current view's next poll (a setTimeout)
let viewToken = 0;       // bumps on every navigation: late answers are dropped

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || ('HTTP ' + status));
    this.status = status;
    this.code = code || 'error';
  }
}

async function api(method, path, body) {
  return (await apiRaw(method, path, body)).data;
}

// Every row of an admin list: the daemon answers a page at a time (at most
// 1000 rows, next_cursor for the page after), so that a list of 50,000
// connections never sits whole in its memory.
async function apiAll(path) {
  let j = await apiRaw('GET', path);
  let rows = j.data || [];
  while (typeof j.next_cursor === 'string') {
    j = await apiRaw('GET', path + (path.includes('?') ? '&' : '?') + 'cursor=' + encodeURIComponent(j.next_cursor));
    rows = rows.concat(j.data || []);
  }
  return rows;
}

// The rows a list view shows at once.
const PAGE = 100;

// One page of an admin list for the view at `hash`: the page its ?cursor=
// names (none: the first), and links to the first page and the next.
async function listPage(path, q, hash) {
  const cursor = q.get('cursor') || '';
  const j = await apiRaw('GET', path + (path.includes('?') ? '&' : '?') + 'limit=' + PAGE +
    (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
  const next = typeof j.next_cursor === 'string' ? j.next_cursor : null;
  const nav = cursor || next ? h('p', { class: 'pager' },
    cursor ? h('a', { href: hash, id: 'page-first' }, 'First page') : null,
    cursor && next ? ' · ' : null,
    next ? h('a', { href: hash + '?cursor=' + encodeURIComponent(next), id: 'page-next' }, 'Next page') : null) : null;
  return { list: j.data || [], nav };
}

// The whole answer ({"data", ...}: the event log adds next_cursor, has_more).
async function apiRaw(method, path, body) {
  const opt = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method !== 'GET') {
    opt.headers['X-CSRF-Token'] = csrf || '';
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opt);
  let j = {};
  try { j = await r.json(); } catch (e) { j = {}; }
  if (!r.ok) {
    const e = j.error || {};
    if (r.status === 401) showLoggedOut(e.message);
    throw new ApiError(r.status, e.code, e.message);
  }
  return j;
}

// h('tag', {attr: v, onclick: fn}, child...): an element; children are
// nodes or text.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of kids.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function status(text, bad) {
  const s = document.getElementById('status');
  s.textContent = text || '';
  s.className = bad ? 'error' : '';
}

function fail(e) {
  status((e.code ? e.code + ': ' : '') + e.message, true);
}

function showLoggedOut(msg) {
  clearTimeout(timer);
  timer = null;
  viewToken++; // a view's answers still on their way draw nothing now
  const v = document.getElementById('view');
  v.replaceChildren(h('h2', {}, 'Not logged in'),
    h('p', {}, msg || 'Your session has ended.'),
    h('p', {}, 'Run ', h('code', {}, 'atshub console'), ' on the daemon\'s machine and open the link it prints.'));
  document.body.dataset.ready = 'logged-out';
}

function table(headers, rows, cls) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: cls || 'cards' },
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', class: x.num ? 'num' : null }, x.label || x)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c, i) => {
        const hd = headers[i];
        return h('td', { 'data-label': hd.label || hd, class: hd.num ? 'num' : null }, c);
      }))))));
}

// A button that asks "Confirm?" in place before running fn.
function confirmButton(label, question, fn) {
  const wrap = h('span', { class: 'actions' });
  const first = h('button', { type: 'button', class: 'danger', onclick: () => {
    const yes = h('button', { type: 'button', class: 'danger', onclick: async () => {
      yes.disabled = true;
      try { await fn(); } catch (e) { fail(e); }
    } }, 'Yes, ' + label.toLowerCase());
    const no = h('button', { type: 'button', onclick: () => { wrap.replaceChildren(first); first.focus(); } }, 'Cancel');
    wrap.replaceChildren(h('span', {}, question + ' '), yes, no);
    no.focus();
  } }, label);
  wrap.append(first);
  return wrap;
}

// Polls a view while it is current (tok === viewToken): load() again
// delay(result) ms after each answer, never two at once (the admin listener
// has one thread, and an older answer must not redraw over a newer one).
// after(result) schedules the next poll; now() polls at once (after an
// action), or right after the poll under way.
function poller(tok, load, delay) {
  let busy = false, again = false;
  const p = {
    after(result) {
      if (tok !== viewToken) return;
      clearTimeout(timer);
      timer = setTimeout(() => { timer = null; p.now(); }, delay(result));
    },
    async now() {
      if (tok !== viewToken) return;
      if (busy) { again = true; return; }
      clearTimeout(timer);
      timer = null;
      busy = true;
      let result;
      try { result = await load(); } catch (e) { if (tok === viewToken) fail(e); } finally { busy = false; }
      if (again) { again = false; return p.now(); }
      p.after(result);
    },
  };
  return p;
}

// A secret shown once, at the top of the page, before the page reloads
// anything (a reload that fails must not lose it): it leaves with "Done"
// or the next navigation. Shown even when the operator left the view
// while the secret was on its way: it exists nowhere else.
function showOnce(title, pairs) {
  document.getElementById('once-slot').replaceChildren(onceBox(title, pairs));
}

function onceBox(title, pairs) {
  const box = h('div', { class: 'once', id: 'once', role: 'alert' },
    h('p', {}, h('strong', {}, title), ' Copy it now: it is shown once and atshub keeps no readable copy.'),
    pairs.map(([k, v]) => h('p', {}, k + ': ', h('code', { class: 'once-secret', id: 'once-secret' }, v))),
    h('button', { type: 'button', id: 'once-done', onclick: () => box.remove() }, 'Done, hide it'));
  return box;
}

// ---- views ---------------------------------------------------------------

const views = {};

views.overview = async (v, tok) => {
  const draw = async () => {
    const d = await api('GET', '/admin/recent');
    if (tok !== viewToken) return;
    const charts = h('div', { class: 'charts' });
    charts.append(chartFigure('Sync records per minute', [{ cls: 'rec', values: d.sync_records, name: 'records' }]));
    for (const t of d.tenants) {
      charts.append(chartFigure('Tenant ' + t.tenant + ': requests and errors per minute',
        [{ cls: 'req', values: t.requests, name: 'requests' }, { cls: 'err', values: t.errors, name: 'errors' }]));
    }
    if (d.tenants.length === 0) charts.append(h('p', { class: 'muted' }, 'No tenant has called the API in the last hour.'));
    v.replaceChildren(h('h2', {}, 'Overview: the last hour'), charts,
      h('p', { class: 'legend' }, 'Counted by this daemon since it started, per minute; the newest minute is on the right.'));
  };
  await draw();
  poller(tok, draw, () => 10000).after();
};

// Bars for each series, side by side per minute, drawn as inline SVG.
function chartFigure(title, series) {
  const W = 300, H = 100, n = series[0].values.length;
  const peak = Math.max(0, ...series.flatMap((s) => s.values));
  const max = Math.max(1, peak);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H + 2}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const total = series.map((s) => s.name + ' ' + s.values.reduce((a, b) => a + b, 0)).join(', ');
  svg.setAttribute('aria-label', `${title}: in the last hour ${total}; peak ${peak} per minute`);
  const bw = W / n / series.length;
  series.forEach((s, si) => {
    s.values.forEach((val, i) => {
      if (val <= 0) return;
      const r = document.createElementNS(ns, 'rect');
      const hh = Math.max(1, (val / max) * H);
      r.setAttribute('x', String(i * (W / n) + si * bw));
      r.setAttribute('y', String(H - hh));
      r.setAttribute('width', String(Math.max(0.5, bw - 0.3)));
      r.setAttribute('height', String(hh));
      r.setAttribute('class', s.cls);
      const t = document.createElementNS(ns, 'title');
      t.textContent = `${s.name}: ${val} (${n - i - 1} min ago)`;
      r.append(t);
      svg.append(r);
    });
  });
  const axis = document.createElementNS(ns, 'line');
  axis.setAttribute('x1', '0'); axis.setAttribute('x2', String(W));
  axis.setAttribute('y1', String(H + 1)); axis.setAttribute('y2', String(H + 1));
  axis.setAttribute('class', 'axis');
  svg.append(axis);
  return h('figure', {}, h('figcaption', {}, title), svg,
    h('p', { class: 'legend' }, total + ' (peak ' + peak + '/min)'));
}

views.tenants = async (v, tok, q) => {
  const { list, nav } = await listPage('/admin/tenants', q, '#/tenants');
  if (tok !== viewToken) return;
  const input = h('input', { id: 'tenant-name', name: 'name', required: true, pattern: '[A-Za-z0-9_.\\-]{1,64}', autocomplete: 'off' });
  const form = h('form', { class: 'row', id: 'tenant-add', onsubmit: async (ev) => {
    ev.preventDefault();
    let r;
    try {
      r = await api('POST', '/admin/tenants', { name: input.value });
    } catch (e) { fail(e); return; }
    // The key first: it has no rotate, and a list that fails to reload
    // (or a view left meanwhile) must not take it away.
    showOnce('Tenant ' + r.tenant + ' added.', [['API key', r.api_key]]);
    status('Tenant ' + r.tenant + ' added.');
    try { await views.tenants(v, tok, q); } catch (e) { if (tok === viewToken) fail(e); }
  } }, h('label', {}, 'New tenant name', input), h('button', { type: 'submit', class: 'primary' }, 'Add tenant'));
  v.replaceChildren(h('h2', {}, 'Tenants'), form,
    table(['Name', 'Created', 'Actions'], list.map((t) => [
      t.name, t.created_at || '',
      h('span', { class: 'actions' },
        h('a', { href: '#/connections?tenant=' + encodeURIComponent(t.name) }, 'Connections'),
        confirmButton('Remove', `Remove ${t.name} with its connections and records?`, async () => {
          await api('DELETE', '/admin/tenants/' + encodeURIComponent(t.name));
          status('Tenant ' + t.name + ' removed.');
          await views.tenants(v, tok, q);
        }))])),
    nav,
    h('p', { class: 'legend' }, 'CLI: atshub tenant add NAME | list | remove NAME'));
};

async function settingsForm(plugin, current, onsubmit, submitLabel) {
  const p = (await api('GET', '/admin/plugins?settings=' + encodeURIComponent(plugin)))[0];
  const fields = [];
  for (const s of p.settings) {
    if (s.generated) continue; // made by the host, shown once, changed by "Rotate"
    const id = 'set-' + s.key;
    const help = (s.help || '') + (s.default !== null && s.default !== undefined ? ` (default: ${s.default})` : '');
    let input;
    if (s.secret) {
      input = h('input', { id, name: s.key, type: 'password', autocomplete: 'new-password',
        required: s.required && !current, placeholder: current ? 'unchanged unless you type a new value' : '',
        'aria-describedby': id + '-help' });
    } else {
      const val = current && typeof current[s.key] === 'string' ? current[s.key] : '';
      input = h('input', { id, name: s.key, type: s.type === 'url' ? 'url' : 'text', value: val,
        required: s.required && !current, placeholder: s.default || '', 'aria-describedby': id + '-help' });
    }
    fields.push({ s, input });
  }
  const form = h('form', { class: 'stack', id: 'settings-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const settings = {};
    for (const { s, input } of fields) {
      if (input.value !== '') settings[s.key] = input.value;
      else if (current && !s.secret && typeof current[s.key] === 'string' && current[s.key] !== '') settings[s.key] = '';
    }
    await onsubmit(settings, form);
    for (const { s, input } of fields) if (s.secret) input.value = '';
  } }, fields.map(({ s, input }) => h('label', { for: input.id },
    s.key + (s.required ? ' (required)' : '') + (s.secret ? ' (secret)' : ''), input,
    h('span', { class: 'help', id: input.id + '-help' }, s.help ? (s.help + (s.default ? ` Default: ${s.default}.` : '')) : (s.default ? `Default: ${s.default}.` : '')))),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, submitLabel)));
  return { form, plugin: p };
}

views.connections = async (v, tok, q) => {
  const tenants = await apiAll('/admin/tenants');
  const plugins = await api('GET', '/admin/plugins');
  if (tok !== viewToken) return;
  const tenant = q.get('tenant') || (tenants[0] && tenants[0].name) || '';
  const known = tenants.some((t) => t.name === tenant);
  const tsel = h('select', { id: 'conn-tenant', onchange: () => { location.hash = '#/connections?tenant=' + encodeURIComponent(tsel.value); } },
    known ? null : h('option', { value: '', selected: true, disabled: true }, 'choose a tenant'),
    tenants.map((t) => h('option', { value: t.name, selected: t.name === tenant }, t.name)));
  if (!tenant) {
    v.replaceChildren(h('h2', {}, 'Connections'), h('p', {}, 'Add a tenant first: ', h('a', { href: '#/tenants' }, 'Tenants'), '.'));
    return;
  }
  let list;
  try {
    list = await apiAll('/admin/connections?tenant=' + encodeURIComponent(tenant));
  } catch (e) {
    // No such tenant (a mistyped or stale link): say so, and offer the others.
    if (e.status !== 404 || tok !== viewToken) throw e;
    v.replaceChildren(h('h2', {}, 'Connections'),
      h('p', { class: 'error', id: 'conn-error', role: 'alert' }, `${e.code}: ${e.message}`),
      h('form', { class: 'row', onsubmit: (ev) => ev.preventDefault() }, h('label', { for: 'conn-tenant' }, 'Tenant', tsel)));
    return;
  }
  if (tok !== viewToken) return;
  const base = '/admin/connections/' + encodeURIComponent(tenant) + '/';
  const editor = h('div', { id: 'conn-editor' });
  const reload = () => views.connections(v, tok, q);
  const rows = list.map((c) => {
    const path = base + encodeURIComponent(c.name);
    const settings = Object.entries(c.settings || {}).map(([k, val]) => h('div', {}, h('code', {}, k), ' = ', String(val)));
    return [c.name, c.plugin,
      h('span', { class: c.enabled ? 'ok' : 'bad', 'data-enabled': String(c.enabled) }, c.enabled ? 'enabled' : 'disabled'),
      h('div', {}, settings),
      h('span', { class: 'actions' },
        h('button', { type: 'button', 'data-action': c.enabled ? 'disable' : 'enable', 'data-connection': c.name, onclick: async () => {
          try {
            await api('POST', path + (c.enabled ? '/disable' : '/enable'));
            status(`${tenant}/${c.name} ${c.enabled ? 'disabled' : 'enabled'}.`);
            await reload();
          } catch (e) { fail(e); }
        } }, c.enabled ? 'Disable' : 'Enable'),
        h('button', { type: 'button', onclick: async () => {
          try {
            const { form, plugin } = await settingsForm(c.plugin, c.settings, async (settings) => {
              try {
                await api('PATCH', path, { settings });
                status(`Settings of ${tenant}/${c.name} saved.`);
                await reload();
              } catch (e) { fail(e); }
            }, 'Save settings');
            const gen = plugin.settings.filter((s) => s.generated);
            editor.replaceChildren(h('h3', {}, `Edit ${tenant}/${c.name} (${c.plugin})`), form,
              gen.length ? h('div', { class: 'actions' }, gen.map((s) => confirmButton('Rotate ' + s.key,
                `Replace ${s.key}? The old value stops working.`, async () => {
                  const r = await api('POST', path + '/rotate', { key: s.key });
                  showOnce(`New ${s.key} for ${tenant}/${c.name}.`, [[s.key, r[s.key]]]);
                }))) : null);
            form.querySelector('input')?.focus();
          } catch (e) { fail(e); }
        } }, 'Edit'),
        confirmButton('Remove', `Remove ${c.name}?`, async () => {
          await api('DELETE', path);
          status(`${tenant}/${c.name} removed.`);
          await reload();
        }))];
  });
  // The add form: the plugin's settings table decides the fields.
  const psel = h('select', { id: 'conn-plugin', name: 'plugin' }, plugins.map((p) => h('option', { value: p.name }, p.name)));
  const cname = h('input', { id: 'conn-name', name: 'name', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9_.\\-]{1,64}' });
  const addSlot = h('div', { id: 'conn-add-fields' });
  const showAdd = async () => {
    const { form } = await settingsForm(psel.value, null, async (settings) => {
      let r;
      try {
        r = await api('POST', '/admin/connections', { tenant, plugin: psel.value, name: cname.value, settings });
      } catch (e) { fail(e); return; }
      // Generated secrets first, whatever the reload below does.
      const gen = Object.entries(r).filter(([k]) => !['tenant', 'connection', 'plugin', 'id'].includes(k));
      if (gen.length) showOnce(`Connection ${tenant}/${r.connection} added.`, gen);
      status(`Connection ${tenant}/${r.connection} added.`);
      try { await reload(); } catch (e) { if (tok === viewToken) fail(e); }
    }, 'Add connection');
    form.prepend(h('label', { for: 'conn-name' }, 'Connection name (required)', cname));
    addSlot.replaceChildren(form);
  };
  psel.addEventListener('change', () => showAdd().catch(fail));
  v.replaceChildren(h('h2', {}, 'Connections'),
    h('form', { class: 'row', onsubmit: (e) => e.preventDefault() }, h('label', { for: 'conn-tenant' }, 'Tenant', tsel)),
    list.length ? table(['Name', 'Plugin', 'State', 'Settings', 'Actions'], rows) : h('p', { class: 'muted' }, 'No connection yet.'),
    editor,
    h('h3', {}, 'Add a connection to ' + tenant),
    h('form', { class: 'row', onsubmit: (e) => e.preventDefault() }, h('label', { for: 'conn-plugin' }, 'Plugin', psel)),
    addSlot,
    h('p', { class: 'legend' }, 'CLI: atshub connection add TENANT PLUGIN NAME --set KEY=VALUE | set | enable | disable | rotate | remove'));
  await showAdd();
};

views.plugins = async (v, tok) => {
  const list = await api('GET', '/admin/plugins');
  if (tok !== viewToken) return;
  const result = h('div', { id: 'reload-result', role: 'status' });
  const caps = list.length ? Object.keys(list[0].coverage) : [];
  const rows = list.map((p) => {
    const path = h('input', { id: 'reload-path-' + p.name, name: 'path', placeholder: 'configured path', 'aria-label': 'Path of the new ' + p.name + ' .so (optional)' });
    const form = h('form', { class: 'row', 'data-plugin': p.name, onsubmit: async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector('button');
      btn.disabled = true;
      try {
        const r = await api('POST', '/admin/plugins/' + encodeURIComponent(p.name) + '/reload', path.value ? { path: path.value } : {});
        await views.plugins(v, tok);
        document.getElementById('reload-result').replaceChildren(h('p', { class: 'ok', 'data-generation': r.generation },
          `${r.plugin} reloaded: generation ${r.generation} (was ${r.previous_generation}), version ${r.version}, from ${r.path}.`));
      } catch (e) {
        btn.disabled = false;
        result.replaceChildren(h('p', { class: 'error' }, `${p.name} not reloaded (${e.code}): ${e.message}. The previous generation keeps serving.`));
      }
    } }, path, h('button', { type: 'submit' }, 'Reload'));
    const proc = p.process ? `${p.process.state}, ${p.process.processes} process(es), ${p.process.restarts} restarts, ${p.process.crashes} crashes` : '';
    return [p.name, p.version, h('span', { 'data-plugin-generation': p.name }, String(p.generation)), p.isolation + (proc ? ': ' + proc : ''), String(p.inflight), h('code', {}, p.path), form];
  });
  const cov = h('div', { class: 'table-wrap' }, h('table', { class: 'cov' },
    h('caption', { class: 'legend' }, 'Operations served / operations of the capability'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Capability'), list.map((p) => h('th', { scope: 'col' }, p.name)))),
    h('tbody', {}, caps.map((c) => h('tr', {}, h('th', { scope: 'row' }, c), list.map((p) => {
      const [a, b] = p.coverage[c].split('/').map(Number);
      return h('td', { class: a === 0 ? 'none' : (a === b ? 'full' : 'part') }, p.coverage[c]);
    }))))));
  v.replaceChildren(h('h2', {}, 'Plugins'), result,
    table(['Name', 'Version', 'Generation', 'Isolation', 'In flight', 'Path', 'Reload'], rows),
    h('h3', {}, 'Capability coverage'), cov,
    h('p', { class: 'legend' }, 'CLI: atshub plugins, atshub plugin reload NAME [--path FILE.so]'));
};

function syncState(s) {
  if (s.running || (s.scheduled && s.scheduled.running)) return h('span', { class: 'warn', 'data-state': 'running' }, 'running');
  if (!s.last && s.scheduled) {
    return s.scheduled.ok ? h('span', { class: 'ok', 'data-state': 'scheduled-done' }, 'done (scheduled)')
      : h('span', { class: 'bad', 'data-state': 'scheduled-failed' }, 'failed (scheduled)');
  }
  if (!s.last) return h('span', { class: 'muted', 'data-state': 'never' }, 'not synced yet');
  return s.last.ok ? h('span', { class: 'ok', 'data-state': 'done' }, 'done')
    : h('span', { class: 'bad', 'data-state': 'failed' }, 'failed');
}

views.syncs = async (v, tok, q) => {
  let p = null; // the poller, once the first answer is drawn
  const draw = async () => {
    // A page at a time, and only it polled: 50,000 connections are 500
    // pages, not one list.
    const { list, nav } = await listPage('/admin/syncs', q, '#/syncs');
    if (tok !== viewToken) return false;
    const rows = list.map((s) => {
      const l = s.last || {};
      const types = (l.types || []).map((t) => h('div', {}, t.type + ': ',
        t.done ? h('progress', { max: 1, value: 1, 'aria-label': t.type + ' done' }) : h('progress', { 'aria-label': t.type + ' in progress' }),
        ` ${t.records} records, ${t.pages} pages` + (t.failed ? ' (failed)' : '')));
      return [s.tenant + '/' + s.connection, s.plugin, s.enabled ? 'enabled' : 'disabled', syncState(s),
        h('div', { 'data-sync': s.tenant + '/' + s.connection, 'data-records': String(l.records || 0), 'data-state': s.running ? 'running' : (s.last ? (l.ok ? 'done' : 'failed') : 'never') }, types),
        l.started_at || '', l.finished_at || '', String(l.records || 0), String(l.retries || 0),
        h('div', {}, l.error ? h('span', { class: 'bad' }, l.error) : '',
          s.scheduled ? h('div', { class: 'legend' }, `scheduled, ${s.scheduled.updated_at}: ` +
            (s.scheduled.running ? 'running, ' : (s.scheduled.ok ? 'ok, ' : 'failed, ')) +
            `${s.scheduled.records} records, ${s.scheduled.retries} retries`) : null),
        s.schedule_interval_s ? `every ${s.schedule_interval_s} s` + (s.next_pass ? `; next pass ${s.next_pass}` : '') : 'on demand',
        h('button', { type: 'button', 'data-sync-now': s.tenant + '/' + s.connection, disabled: s.running || !s.enabled, onclick: async () => {
          try {
            await api('POST', '/admin/syncs/' + encodeURIComponent(s.tenant) + '/' + encodeURIComponent(s.connection));
            status(`Sync of ${s.tenant}/${s.connection} started.`);
            if (p) await p.now();
          } catch (e) { fail(e); }
        } }, 'Sync now')];
    });
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.syncNow : null;
    v.replaceChildren(h('h2', {}, 'Syncs'),
      list.length ? table([ 'Connection', 'Plugin', 'Enabled', 'State', 'Progress', 'Started', 'Finished', { label: 'Records', num: true }, { label: 'Retries', num: true }, 'Error', 'Schedule (next run)', 'Action'], rows)
        : h('p', { class: 'muted' }, 'No connection yet.'),
      nav,
      h('p', { class: 'legend' }, 'Runs started here ("Sync now") and the scheduler\'s latest runs on this daemon; atshub sync shows its own progress. CLI: atshub sync TENANT CONNECTION'));
    if (focused) v.querySelector(`[data-sync-now="${CSS.escape(focused)}"]`)?.focus();
    return list.some((s) => s.running || (s.scheduled && s.scheduled.running));
  };
  // Every second while a sync runs, every 10 s otherwise (a scheduled run
  // shows within that; "Sync now" polls at once).
  const running = await draw();
  p = poller(tok, draw, (busy) => (busy ? 1000 : 10000));
  p.after(running);
};

views.log = async (v, tok, q) => {
  const f = {};
  for (const k of ['tenant', 'source', 'action', 'status', 'since', 'until', 'limit']) f[k] = q.get(k) || '';
  const inputs = {
    tenant: h('input', { id: 'log-tenant', name: 'tenant', value: f.tenant }),
    source: h('input', { id: 'log-source', name: 'source', value: f.source }),
    action: h('select', { id: 'log-action', name: 'action' }, ['', 'REQUEST', 'RESPONSE', 'ERROR', 'ERROR_SUPPRESSED', 'OUTBOUND', 'OUTBOUND_ERROR'].map((a) => h('option', { value: a, selected: a === f.action }, a || 'any'))),
    status: h('input', { id: 'log-status', name: 'status', value: f.status, inputmode: 'numeric', size: 4 }),
    since: h('input', { id: 'log-since', name: 'since', value: f.since, placeholder: 'YYYY-MM-DD' }),
    until: h('input', { id: 'log-until', name: 'until', value: f.until, placeholder: 'YYYY-MM-DD' }),
    limit: h('input', { id: 'log-limit', name: 'limit', value: f.limit || '100', inputmode: 'numeric', size: 5 }),
  };
  const form = h('form', { class: 'row', id: 'log-filter', onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, el] of Object.entries(inputs)) if (el.value) p.set(k, el.value);
    location.hash = '#/log?' + p.toString();
  } }, Object.entries(inputs).map(([k, el]) => h('label', { for: el.id }, k, el)),
  h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  const p = new URLSearchParams();
  for (const [k, val] of Object.entries(f)) if (val) p.set(k, val);
  const list = await api('GET', '/admin/log?' + p.toString());
  if (tok !== viewToken) return;
  v.replaceChildren(h('h2', {}, 'Integration log'), form,
    h('p', { id: 'log-count', 'data-count': String(list.length) }, `${list.length} entries, newest first.`),
    table(['At', 'Tenant', 'Source', 'Action', { label: 'Status', num: true }, { label: 'Seconds', num: true }, 'Method', 'Path'],
      list.map((e) => [e.at, e.tenant || '', e.source, e.action, h('span', { 'data-status': String(e.status) }, String(e.status)),
        Number(e.processing_time).toFixed(4), e.method || '', e.path || ''])),
    h('p', { class: 'legend' }, 'CLI: atshub log [--tenant T] [--source S] [--action A] [--status N] [--since T] [--until T] [--limit N]'));
};

views.webhooks = async (v, tok, q) => {
  const tenants = await apiAll('/admin/tenants');
  // A page of endpoints at a time, as the tenants and syncs views.
  const { list, nav } = await listPage('/admin/webhooks', q, '#/webhooks');
  if (tok !== viewToken) return;
  const names = Object.fromEntries(tenants.map((t) => [t.id, t.name]));
  const detail = h('div', { id: 'deliveries' });
  const showDeliveries = async (w) => {
    const d = await api('GET', '/admin/webhooks/' + w.id + '/deliveries');
    detail.replaceChildren(h('h3', {}, `Deliveries to endpoint ${w.id} (${w.url}), newest first`),
      d.length ? table(['Event', 'Type', 'Status', { label: 'Attempts', num: true }, { label: 'Last HTTP status', num: true }, 'Last error', 'Next attempt', 'Delivered'],
        d.map((x) => [x.event_id, x.type || '', h('span', { class: x.status === 'delivered' ? 'ok' : (x.status === 'failed' ? 'bad' : 'warn') }, x.status),
          String(x.attempts), String(x.last_status || ''), x.last_error || '', x.next_at || '', x.delivered_at || '']))
        : h('p', { class: 'muted' }, 'No delivery yet.'),
      w.enabled ? null : h('p', {}, 'This endpoint is disabled: "Resume" sends its failed delivery again, then the rest in order.'));
  };
  const rows = list.map((w) => [String(w.id), names[w.tenant_id] || String(w.tenant_id), h('code', {}, w.url), w.types,
    h('span', { class: w.enabled ? 'ok' : 'bad' }, w.enabled ? 'enabled' : 'disabled' + (w.disabled_at ? ' since ' + w.disabled_at : '')),
    String(w.failures),
    h('span', { class: 'actions' },
      h('button', { type: 'button', onclick: () => showDeliveries(w).catch(fail) }, 'Deliveries'),
      // An endpoint still enabled but failing waits out its backoff before
      // the next try of its failed delivery: this tries it now (the same
      // call as resuming; deliveries go in order, so the failed one is next).
      w.enabled && w.failures > 0 ? h('button', { type: 'button', onclick: async () => {
        try {
          await api('POST', `/admin/webhooks/${w.id}/enable`);
          status(`Endpoint ${w.id}: its failed delivery is retried now.`);
          await views.webhooks(v, tok, q);
        } catch (e) { fail(e); }
      } }, 'Retry now') : null,
      h('button', { type: 'button', onclick: async () => {
        try {
          await api('POST', `/admin/webhooks/${w.id}/${w.enabled ? 'disable' : 'enable'}`);
          status(`Endpoint ${w.id} ${w.enabled ? 'disabled' : 'resumed: its failed delivery is retried first'}.`);
          await views.webhooks(v, tok, q);
        } catch (e) { fail(e); }
      } }, w.enabled ? 'Disable' : 'Resume (retry)'))]);
  v.replaceChildren(h('h2', {}, 'Webhooks to the product'),
    list.length ? table(['Id', 'Tenant', 'URL', 'Events', 'State', { label: 'Failures in a row', num: true }, 'Actions'], rows)
      : h('p', { class: 'muted' }, 'No webhook endpoint. Tenants add them with POST /v1/webhooks; operators with atshub webhook add.'),
    nav,
    detail,
    h('p', { class: 'legend' }, 'CLI: atshub webhook add TENANT URL | list | enable ID (resume, or retry now) | disable ID | deliveries ID'));
};

views.events = async (v, tok, q) => {
  const tenants = await apiAll('/admin/tenants');
  if (tok !== viewToken) return;
  const tenant = q.get('tenant') || (tenants[0] && tenants[0].name) || '';
  const after = q.get('after') || '0';
  const types = q.get('types') || '';
  if (!tenant) {
    v.replaceChildren(h('h2', {}, 'Events'), h('p', {}, 'No tenant yet.'));
    return;
  }
  const tsel = h('select', { id: 'ev-tenant', name: 'tenant' }, tenants.map((t) => h('option', { value: t.name, selected: t.name === tenant }, t.name)));
  const tin = h('input', { id: 'ev-types', name: 'types', value: types, placeholder: 'application.*,job.created' });
  const form = h('form', { class: 'row', onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({ tenant: tsel.value });
    if (tin.value) p.set('types', tin.value);
    location.hash = '#/events?' + p.toString();
  } }, h('label', { for: 'ev-tenant' }, 'Tenant', tsel), h('label', { for: 'ev-types' }, 'Types', tin),
  h('button', { type: 'submit', class: 'primary' }, 'Show'));
  const p = new URLSearchParams({ tenant, after, limit: '100' });
  if (types) p.set('types', types);
  const r = await apiRaw('GET', '/admin/events?' + p.toString());
  if (tok !== viewToken) return;
  const next = new URLSearchParams({ tenant, after: r.next_cursor });
  if (types) next.set('types', types);
  v.replaceChildren(h('h2', {}, 'Events'), form,
    h('p', {}, `${r.data.length} events after cursor ${after}, oldest first.`),
    table(['Cursor', 'Id', 'Type', 'Time', 'Data'], r.data.map((e) => [String(e.cursor), e.id, e.type, e.timestamp,
      h('code', {}, JSON.stringify(e.data).slice(0, 300))])),
    r.has_more ? h('p', {}, h('a', { href: '#/events?' + next.toString() }, 'Next page')) : null,
    h('p', { class: 'legend' }, 'The tenant reads the same log at GET /v1/events.'));
};

// ---- routing ---------------------------------------------------------------

async function route() {
  clearTimeout(timer);
  timer = null;
  const tok = ++viewToken;
  const hash = location.hash || '#/overview';
  const [path, query] = hash.slice(2).split('?');
  const name = views[path] ? path : 'overview';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === '#/' + name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = 'atshub console: ' + name;
  status('');
  const v = document.getElementById('view');
  v.replaceChildren(h('p', {}, 'Loading…'));
  document.getElementById('once-slot').replaceChildren(); // a secret shown once leaves too
  document.body.dataset.ready = 'loading';
  try {
    await views[name](v, tok, new URLSearchParams(query || ''));
    if (tok === viewToken) document.body.dataset.ready = name;
  } catch (e) {
    if (tok === viewToken && e.status !== 401) {
      fail(e);
      document.body.dataset.ready = name;
    }
  }
}

async function start() {
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api('POST', '/console/logout'); } catch (e) { /* logged out anyway */ }
    csrf = null;
    showLoggedOut('You logged out.');
  });
  try {
    const s = await api('GET', '/console/session');
    csrf = s.csrf;
  } catch (e) {
    if (e.status !== 401) fail(e);
    return;
  }
  window.addEventListener('hashchange', () => {
    route();
    document.getElementById('main').focus({ preventScroll: true });
  });
  route();
}

start();
