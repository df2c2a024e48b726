// Shared by every page: the header (navigation, time range, service, auto-refresh), the page's
// state in its query string, JSON fetching, and builders for tables, charts and empty states.
// Every value shown comes from other programs: it only ever enters the page as text (el() never
// parses markup), so a span name like <img onerror=...> stays a string.

const COMMON = ['service', 'since', 'from', 'to', 'refresh'];
const RANGES = [
  ['15m', 'Last 15 minutes'],
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['custom', 'Custom…'],
];
const PAGES = [
  ['/', 'Overview'],
  ['/routes', 'Routes'],
  ['/locks', 'Locks'],
  ['/blocking', 'Blocking'],
  ['/profile', 'Profile'],
  ['/offload', 'Offload'],
  ['/traces', 'Traces'],
  ['/alerts', 'Alerts'],
];

export const params = () => new URLSearchParams(location.search);

/** The page's state with some values changed (null removes one); the URL is the state. */
export function withParams(changes, path = location.pathname) {
  const p = params();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') p.delete(k);
    else p.set(k, v);
  }
  const q = p.toString();
  return q ? `${path}?${q}` : path;
}

/** The common parameters (service, time range) for links to other pages. */
export function carried(extra = {}) {
  const p = new URLSearchParams();
  for (const k of COMMON) if (params().has(k)) p.set(k, params().get(k));
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined) p.set(k, v);
  return p;
}

export function link(path, extra = {}) {
  const q = carried(extra).toString();
  return q ? `${path}?${q}` : path;
}

/** An element; children are nodes or strings (inserted as text, never as markup). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Names past this many characters are cut in the layout. */
const LONG_NAME = 80;

/**
 * A name from the data, cut to one line with an ellipsis when long (a 10 kB lock name must not
 * make the page 200,000 px wide); the whole name stays in the text (select and copy it) and in
 * the title (hover over it).
 */
export function cut(text) {
  const s = String(text ?? '');
  return s.length > LONG_NAME ? el('span', { class: 'cut', title: s }, s) : s;
}

export function fmtMs(value) {
  const ms = value === null || value === undefined || value === '' ? NaN : Number(value);
  if (Number.isNaN(ms)) return '–';
  if (ms === 0) return '0';
  if (ms >= 60_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(1)} ms`;
  return `${(ms * 1000).toFixed(0)} µs`;
}

export const fmtPct = (value) => {
  const x = value === null || value === undefined ? NaN : Number(value);
  return Number.isNaN(x) ? '–' : `${x.toFixed(x < 10 ? 1 : 0)}%`;
};
/** A time: the clock alone when it is today, else with the date. */
export function fmtTime(t) {
  const d = new Date(t);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}
export const fmtCount = (value) => {
  const n = value === null || value === undefined ? NaN : Number(value);
  return Number.isNaN(n) ? '–' : Math.round(n).toLocaleString();
};

/** GET /api/...; a 401 means the token is missing: go to the sign-in page. */
export async function api(path, extra = {}) {
  const p = carried(extra);
  p.delete('refresh');
  if (p.get('since') === 'custom') p.delete('since');
  if (!p.has('since') && !p.has('from')) p.set('since', '1h');
  const res = await fetch(`${path}?${p}`, { headers: { accept: 'application/json' } });
  if (res.status === 401) {
    location.href = '/login';
    throw new Error('sign in first');
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `${res.status} from ${path}`);
  return body;
}

export function empty(text) {
  return el('p', { class: 'empty' }, text);
}

export function section(title, ...children) {
  return el('section', { class: 'card' }, el('h2', {}, title), ...children);
}

/**
 * A table sortable by every column. columns: [{ key, label, format?, value?, link?, numeric? }];
 * the sort column and direction live in the URL (sort=key, dir=asc|desc).
 */
export function table(
  columns,
  rows,
  { id = 'table', emptyText = 'Nothing in this window.', sortable = true, defaultSort } = {},
) {
  if (!rows.length) return empty(emptyText);
  const p = params();
  const sortKey = sortable ? (p.get(`${id}.sort`) ?? defaultSort?.key) : undefined;
  const dir = p.get(`${id}.dir`) ?? defaultSort?.dir ?? 'desc';
  const col = columns.find((c) => c.key === sortKey);
  const value = (c, r) => (c.value ? c.value(r) : r[c.key]);
  const sorted = col
    ? [...rows].sort((a, b) => {
        const x = value(col, a);
        const y = value(col, b);
        const cmp =
          typeof x === 'number' && typeof y === 'number' ? x - y : String(x ?? '').localeCompare(String(y ?? ''));
        return dir === 'asc' ? cmp : -cmp;
      })
    : rows;
  const head = el(
    'tr',
    {},
    columns.map((c) => {
      const active = c.key === sortKey;
      const next = active && dir === 'desc' ? 'asc' : 'desc';
      const label = `${c.label}${active ? (dir === 'desc' ? ' ▼' : ' ▲') : ''}`;
      return el(
        'th',
        {
          class: c.numeric ? 'num' : undefined,
          'aria-sort': active ? (dir === 'desc' ? 'descending' : 'ascending') : undefined,
        },
        sortable
          ? el(
              'a',
              { href: withParams({ [`${id}.sort`]: c.key, [`${id}.dir`]: next }), dataset: { sort: c.key } },
              label,
            )
          : label,
      );
    }),
  );
  const body = sorted.map((r) =>
    el(
      'tr',
      {},
      columns.map((c) => {
        const raw = c.format ? c.format(value(c, r), r) : value(c, r);
        const shown = typeof raw === 'string' ? cut(raw) : raw;
        const content = c.link ? el('a', { href: c.link(r) }, shown ?? '') : (shown ?? '');
        return el('td', { class: c.numeric ? 'num' : undefined, title: c.title ? c.title(r) : undefined }, content);
      }),
    ),
  );
  return el('table', { id, class: 'data' }, el('thead', {}, head), el('tbody', {}, body));
}

const PALETTE = [
  '#2563eb',
  '#dc2626',
  '#16a34a',
  '#d97706',
  '#7c3aed',
  '#0891b2',
  '#db2777',
  '#4b5563',
  '#65a30d',
  '#9333ea',
];
export const color = (i) => PALETTE[i % PALETTE.length];

/** A legend in the page (not on the canvas), so the names can be read, copied and searched. */
function legend(names) {
  return el(
    'ul',
    { class: 'legend' },
    names.map((n, i) => el('li', {}, el('span', { class: `swatch c${i % PALETTE.length}` }), cut(n))),
  );
}

const charts = new Set();
/** A chart made by a page itself, destroyed with the others when the page is drawn again. */
export const registerChart = (chart) => charts.add(chart);

/** Series drawn in one chart at most; the rest are summed up in the note under it. */
const MAX_SERIES = 8;

/** The top series by their total, and how many more there were. */
function topSeries(series) {
  const total = (s) => s.values.reduce((a, v) => a + (v ?? 0), 0);
  const ranked = [...series].sort((a, b) => total(b) - total(a));
  return { shown: ranked.slice(0, MAX_SERIES), hidden: ranked.length - MAX_SERIES };
}

/** A duration axis in the unit that reads best at its scale. */
function durationTicks(max) {
  const [div, unit] = max >= 120_000 ? [60_000, 'min'] : max >= 2000 ? [1000, 's'] : [1, 'ms'];
  return { callback: (v) => `${+(v / div).toFixed(div === 1 ? 0 : 1)} ${unit}` };
}

/**
 * A chart over time: data { times, series: [{ name, service, values }] }. kind 'line' or
 * 'stacked' (areas). Returns the element to insert (canvas plus legend), or an empty state. The
 * x axis starts at the first data point when the window starts long before it (and says so);
 * at most MAX_SERIES series are drawn, the biggest.
 */
export function timeChart(
  data,
  { kind = 'line', unit = 'ms', label = (s) => s.name, emptyText = 'No data in this window.', yMax } = {},
) {
  if (!data || !data.series.length || data.series.every((s) => s.values.every((v) => v === null || v === 0)))
    return empty(emptyText);
  const { shown, hidden } = topSeries(data.series);
  // Steps before the first value: drop them, so the data is not squeezed against the right edge.
  const first = Math.min(...shown.map((s) => s.values.findIndex((v) => v !== null && v !== 0)).filter((i) => i >= 0));
  const from = first > 2 ? first - 1 : 0;
  const times = data.times.slice(from);
  const series = shown.map((s) => ({ ...s, values: s.values.slice(from) }));
  const notes = [];
  if (from > 0)
    notes.push(
      `Data from ${new Date(times[0]).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: nothing earlier in the window.`,
    );
  if (hidden > 0) notes.push(`${hidden} smaller series not drawn: pick a service above to see its own.`);
  const canvas = el('canvas', { role: 'img', 'aria-label': series.map(label).join(', ') });
  const wrap = el(
    'div',
    { class: 'chart' },
    el('div', { class: 'canvas-box' }, canvas),
    legend(series.map(label)),
    notes.length ? el('p', { class: 'chart-note' }, notes.join(' ')) : null,
  );
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  const chart = new window.Chart(canvas, {
    type: 'line',
    data: {
      labels: times.map((t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
      datasets: series.map((s, i) => ({
        label: label(s),
        data: s.values,
        borderColor: color(i),
        backgroundColor: `${color(i)}55`,
        fill: kind === 'stacked',
        // A series with few points (a short burst in a long window) is drawn as dots, or it would not show.
        pointRadius: s.values.filter((v) => v !== null && v !== 0).length < 10 ? 3 : 0,
        borderWidth: 1.5,
        spanGaps: true,
        tension: 0.2,
      })),
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (c) =>
              `${c.dataset.label}: ${unit === 'ms' ? fmtMs(c.parsed.y) : `${c.parsed.y.toFixed(1)} ${unit}`}`,
          },
        },
      },
      scales: {
        y: {
          stacked: kind === 'stacked',
          beginAtZero: true,
          max: yMax,
          ticks: unit === 'ms' ? durationTicks(max) : { callback: (v) => `${v} ${unit}` },
        },
        x: { ticks: { maxTicksLimit: 8 } },
      },
    },
  });
  charts.add(chart);
  return wrap;
}

/** A histogram from bucket counts: bars labelled by upper bound. */
export function histogramChart(h, { emptyText = 'No observations in this window.' } = {}) {
  if (!h || !h.count) return empty(emptyText);
  const labels = h.counts.map((_, i) =>
    i < h.boundsMs.length ? `≤ ${fmtMs(h.boundsMs[i])}` : `> ${fmtMs(h.boundsMs[h.boundsMs.length - 1])}`,
  );
  const canvas = el('canvas', { role: 'img', 'aria-label': 'histogram' });
  const chart = new window.Chart(canvas, {
    type: 'bar',
    data: { labels, datasets: [{ label: 'count', data: h.counts, backgroundColor: color(0) }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true } },
    },
  });
  charts.add(chart);
  return el(
    'div',
    { class: 'chart' },
    el('div', { class: 'canvas-box' }, canvas),
    legend([`${fmtCount(h.count)} observations`]),
  );
}

/** A time parameter as the API takes it (ISO 8601 or epoch milliseconds), or null if it is neither. */
function parseTime(v) {
  if (!v) return null;
  const d = new Date(/^\d+$/.test(v) ? Number(v) : v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** The local time a datetime-local input shows and takes (it has no time zone). */
function toLocalInput(d) {
  return d ? new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : '';
}

/**
 * Builds the header, then renders the page; re-renders on refresh. render(main) fills main.
 * Pages with a form the user types into pass { refresh: false }: a redraw would wipe the form.
 */
export async function page(title, render, { refresh: autoRefresh = true } = {}) {
  document.title = `${title} · stallscope`;
  const p = params();
  const main = el('main', { id: 'main' });
  const services = el(
    'select',
    {
      id: 'service',
      'aria-label': 'Service',
      onchange: (e) => (location.href = withParams({ service: e.target.value || null })),
    },
    el('option', { value: '' }, 'All services'),
  );
  const since = p.get('from') || p.get('to') ? 'custom' : (p.get('since') ?? '1h');
  const rangeSelect = el(
    'select',
    {
      id: 'range',
      'aria-label': 'Time range',
      onchange: (e) => {
        if (e.target.value === 'custom') custom.hidden = false;
        else location.href = withParams({ since: e.target.value, from: null, to: null });
      },
    },
    // A range from a shared link that the menu does not list is shown as it is.
    [...RANGES, ...(RANGES.some(([v]) => v === since) ? [] : [[since, `Last ${since}`]])].map(([v, l]) =>
      el('option', { value: v, selected: v === since }, l),
    ),
  );
  const fromInput = el('input', {
    type: 'datetime-local',
    name: 'from',
    value: toLocalInput(parseTime(p.get('from'))),
    'aria-label': 'From',
  });
  const toInput = el('input', {
    type: 'datetime-local',
    name: 'to',
    value: toLocalInput(parseTime(p.get('to'))),
    'aria-label': 'To',
  });
  const custom = el(
    'form',
    {
      class: 'custom',
      hidden: since !== 'custom',
      onsubmit: (e) => {
        e.preventDefault();
        // A datetime-local value is local time: Date reads it as such.
        const iso = (v) => (v && !Number.isNaN(new Date(v).getTime()) ? new Date(v).toISOString() : null);
        location.href = withParams({ since: null, from: iso(fromInput.value), to: iso(toInput.value) });
      },
    },
    fromInput,
    toInput,
    el('button', { type: 'submit' }, 'Apply'),
  );
  const refresh = el('input', {
    type: 'checkbox',
    id: 'refresh',
    disabled: !autoRefresh,
    checked: autoRefresh && p.get('refresh') !== 'off',
    onchange: (e) => history.replaceState(null, '', withParams({ refresh: e.target.checked ? null : 'off' })),
  });
  const nav = el(
    'nav',
    {},
    PAGES.map(([path, label]) =>
      el(
        'a',
        {
          href: link(path),
          class:
            location.pathname === path || (path !== '/' && location.pathname.startsWith(path)) ? 'active' : undefined,
        },
        label,
      ),
    ),
  );
  const alertBadge = el('a', { id: 'alert-badge', class: 'alert-badge', href: link('/alerts'), hidden: true });
  const healthBadge = el('span', { id: 'health-badge', class: 'health-badge', role: 'status', hidden: true });
  const header = el(
    'header',
    {},
    el('a', { class: 'brand', href: link('/') }, 'stallscope'),
    nav,
    alertBadge,
    healthBadge,
    el(
      'div',
      { class: 'controls' },
      services,
      rangeSelect,
      custom,
      el('label', { class: 'refresh' }, refresh, 'Auto-refresh'),
    ),
  );
  document.body.replaceChildren(header, main);
  fetch('/api/services')
    .then((r) => (r.ok ? r.json() : []))
    .then((list) => {
      const chosen = p.get('service');
      const names = list.map((s) => s.service);
      // A service from a shared link that has no data now still filters: show it as chosen.
      if (chosen && !names.includes(chosen)) names.push(chosen);
      for (const name of names) services.append(el('option', { value: name, selected: name === chosen }, name));
    })
    .catch(() => undefined);

  const showAlerts = () =>
    fetch('/api/alerts/summary')
      .then((r) => (r.ok ? r.json() : null))
      .then((a) => {
        if (!a) return;
        alertBadge.hidden = !a.firing && !a.pending;
        alertBadge.className = `alert-badge${a.firing ? ' firing' : ''}`;
        alertBadge.textContent = [a.firing ? `${a.firing} firing` : '', a.pending ? `${a.pending} pending` : '']
          .filter(Boolean)
          .join(' · ');
      })
      .catch(() => undefined);
  // The collector refusing data (a full disk, a locked database...) is said on every page.
  const showHealth = () =>
    fetch('/healthz')
      .then((r) => r.json())
      .then((h) => {
        healthBadge.hidden = h.status === 'ok';
        const cause = h.writer?.state !== 'ok' ? h.writer?.reason : 'memory budget in use';
        healthBadge.textContent = `Ingest refused: ${cause}`;
        healthBadge.title = (h.reasons ?? []).join('\n');
      })
      .catch(() => undefined);
  const draw = async () => {
    void showAlerts();
    void showHealth();
    for (const c of charts) c.destroy();
    charts.clear();
    const content = el('div', { class: 'content' });
    try {
      await render(content);
    } catch (err) {
      content.replaceChildren(el('p', { class: 'error', role: 'alert' }, `Could not load: ${err.message}`));
    }
    main.replaceChildren(el('h1', { title }, title), content);
    document.body.dataset.ready = 'true';
  };
  await draw();
  // Auto-refresh only for windows that end now: a custom window does not move.
  setInterval(() => {
    if (refresh.checked && !params().get('to') && document.visibilityState === 'visible') void draw();
    else {
      void showAlerts();
      void showHealth();
    }
  }, 30_000);
}

export const traceLink = (traceId, spanId, text = 'trace') =>
  el('a', { href: link('/trace', { id: traceId, span: spanId }), class: 'trace-link' }, text);

const LOCK_FINDINGS = ['lock-contention', 'shared-lock', 'lock-held'];
const FINDING_PAGES = {
  'loop-blocked': '/blocking',
  'sync-call': '/blocking',
  'loop-saturated': '/profile',
  'threadpool-saturated': '/offload',
  'pool-queueing': '/offload',
};

/** Milliseconds in the page's window, for bars of time lost against it. */
function windowMs() {
  const p = params();
  const to = p.get('to') ? Date.parse(p.get('to')) : Date.now();
  const from = p.get('from') ? Date.parse(p.get('from')) : to - (parseSince(p.get('since')) ?? 3_600_000);
  return Math.max(1, to - from);
}

function parseSince(text) {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text ?? '');
  return m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2]] : undefined;
}

/** A tiny line of a series (null gaps skipped), for tables. */
export function sparkline(values, { max, title } = {}) {
  const canvas = el('canvas', { class: 'spark', width: 120, height: 24, role: 'img', title });
  const points = values.map((v, i) => [i, v]).filter(([, v]) => v !== null && v !== undefined);
  if (!points.length) return el('span', { class: 'spark-empty' }, '–');
  const top = max ?? Math.max(...points.map(([, v]) => v), 1e-9);
  requestAnimationFrame(() => {
    const ctx = canvas.getContext('2d');
    ctx.strokeStyle = '#2563eb';
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(([i, v], n) => {
      const x = values.length > 1 ? (i / (values.length - 1)) * 118 + 1 : 60;
      const y = 23 - (Math.min(v, top) / top) * 21;
      if (n === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    // Too few points for a line: dots.
    if (points.length < 3) {
      ctx.fillStyle = '#2563eb';
      for (const [i, v] of points) {
        const x = values.length > 1 ? (i / (values.length - 1)) * 118 + 1 : 60;
        ctx.fillRect(x - 1.5, 23 - (Math.min(v, top) / top) * 21 - 1.5, 3, 3);
      }
    }
  });
  return canvas;
}

/** A bar of `ms` against the window, with the figure beside it. */
export function lostBar(ms) {
  const share = Math.min(1, ms / windowMs());
  const fill = el('span', { class: 'bar-fill' });
  fill.style.width = `${Math.max(1, Math.round(share * 100))}%`;
  return el(
    'span',
    { class: 'lost', title: `${fmtMs(ms)} lost in a ${fmtMs(windowMs())} window` },
    el('span', { class: 'bar' }, fill),
    fmtMs(ms),
  );
}

/** The findings for the page's window and service, of some kinds (all when none given). */
export const getFindings = (kinds, extra = {}) => api('/api/findings', { kind: kinds?.join(','), ...extra });

/** Where a finding's evidence is: the lock's page, the route's, or the page of its kind. */
function findingHref(f) {
  if (LOCK_FINDINGS.includes(f.kind)) return link('/lock', { name: f.resource, service: f.service });
  if (f.kind === 'slowed-by-others') return link('/routes', { route: f.resource, service: f.service });
  return link(FINDING_PAGES[f.kind], { service: f.service });
}

/** An alert rule that would catch this finding again, a little under what it cost now. */
function ruleFor(f) {
  const name = `${f.kind} in ${f.service}`.replace(/[^\w .:/-]+/g, ' ').slice(0, 80);
  const resource =
    f.resource ?? (f.location ? `${f.location.function} (${f.location.file}:${f.location.line})` : undefined);
  return [
    `  - name: ${JSON.stringify(name)}`,
    '    signal: finding',
    `    kind: ${f.kind}`,
    `    service: ${JSON.stringify(f.service)}`,
    resource ? `    resource: ${JSON.stringify(resource)}` : null,
    `    above: ${Math.max(1, Math.floor(f.impactMs * 0.9))}ms`,
    '    window: 5m',
    '    for: 1m',
    `    severity: ${f.severity}`,
  ]
    .filter(Boolean)
    .join('\n');
}

/** A rule on a lock's p95 wait, a little under what it is now. */
export function lockRule(l) {
  return [
    `  - name: ${JSON.stringify(`slow lock ${l.lock}`.slice(0, 80))}`,
    '    signal: lock-wait-p95',
    `    service: ${JSON.stringify(l.service)}`,
    `    resource: ${JSON.stringify(l.lock)}`,
    `    above: ${Math.max(1, Math.floor((l.waitP95Ms ?? 1) * 0.9))}ms`,
    '    window: 5m',
    '    for: 1m',
    '    severity: warning',
    '    annotations: { summary: "{{resource}} on {{service}}: wait p95 {{value}}" }',
  ].join('\n');
}

/** A link to the Alerts page with a rule drafted in its editor. */
export const alertOn = (rule) =>
  el('a', { href: link('/alerts', { draft: rule }), class: 'alert-on' }, 'Alert on this');

function findingItem(f) {
  const where = f.location
    ? `${f.location.function ? `${f.location.function} ` : ''}${f.location.file}:${f.location.line}`
    : null;
  return el(
    'li',
    { class: `finding ${f.severity}`, dataset: { kind: f.kind, service: f.service } },
    el(
      'details',
      {},
      el(
        'summary',
        { class: 'finding-head' },
        el('span', { class: `severity ${f.severity}` }, f.severity),
        el('span', { class: 'finding-title' }, cut(f.title)),
        el('span', { class: 'finding-meta' }, f.service),
        lostBar(f.impactMs),
        where ? el('code', { class: 'finding-where' }, cut(where)) : null,
      ),
      el('p', { class: 'finding-detail' }, f.detail),
      el(
        'div',
        { class: 'finding-traces' },
        el('a', { href: findingHref(f) }, 'Evidence'),
        f.traceIds.length ? ' · Examples: ' : '',
        f.traceIds.map((id, i) => traceLink(id, undefined, `trace ${i + 1}`)),
        ' · ',
        alertOn(ruleFor(f)),
      ),
    ),
  );
}

/** Findings, most costly first: what costs time, where, and the fix. */
export function findingsSection(
  list,
  emptyText = 'No findings in this window: nothing costs time over the thresholds.',
) {
  return section(
    `Findings (${list.length})`,
    list.length ? el('ol', { class: 'findings' }, list.map(findingItem)) : empty(emptyText),
  );
}
