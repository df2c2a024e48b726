// Routes: for each route, where its requests' time went, including the time other requests took
// from it (the loop blocked or busy with their work, a lock they held). One stacked bar per route
// by kind of cause, the causes in a table; a route opens its slowest requests, each broken down.
import {
  api,
  el,
  empty,
  findingsSection,
  fmtCount,
  fmtMs,
  fmtPct,
  getFindings,
  link,
  page,
  params,
  registerChart,
  section,
  table,
  traceLink,
} from './app.js';

/** Kinds of cause in words, in the order the bars stack them, with their colours. */
const KINDS = [
  ['own-cpu', 'its own CPU', '#d9663f'],
  ['own-blocking', 'its own blocking', '#b23a1e'],
  ['own-sync', 'its own sync calls', '#e08a5a'],
  ['loop-wait', 'waiting for the loop (other work)', '#7c3aed'],
  ['loop-busy', 'the loop busy (code of no known route)', '#a78bfa'],
  ['lock-wait', 'lock waits', '#2563eb'],
  ['threadpool-wait', 'threadpool queueing', '#0891b2'],
  ['pool-queue', 'worker-pool queue', '#16a34a'],
  ['pool-run', 'worker-pool run', '#86efac'],
  ['outgoing-call', 'outgoing calls', '#ca8a04'],
  ['unattributed', 'unattributed', '#cbd5e1'],
];
const WORDS = Object.fromEntries(KINDS.map(([k, w]) => [k, w]));

function byKind(r) {
  const m = Object.fromEntries(KINDS.map(([k]) => [k, 0]));
  for (const c of r.causes) m[c.kind] = (m[c.kind] ?? 0) + c.ms;
  return m;
}

function stackedBars(routes) {
  const shown = routes.slice(0, 12);
  const canvas = el('canvas', { role: 'img', 'aria-label': 'time per route by cause' });
  const box = el('div', { class: 'canvas-box bars' }, canvas);
  box.style.height = `${Math.max(160, 34 * shown.length + 60)}px`;
  const sums = shown.map(byKind);
  registerChart(
    new window.Chart(canvas, {
      type: 'bar',
      data: {
        labels: shown.map((r) => r.route),
        datasets: KINDS.filter(([k]) => sums.some((s) => s[k] > 0)).map(([k, words, colour]) => ({
          label: words,
          data: sums.map((s) => s[k]),
          backgroundColor: colour,
        })),
      },
      options: {
        indexAxis: 'y',
        animation: false,
        maintainAspectRatio: false,
        plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmtMs(c.parsed.x)}` } } },
        scales: {
          x: {
            stacked: true,
            title: { display: true, text: 'time over the window' },
            ticks: { callback: (v) => fmtMs(v) },
          },
          y: { stacked: true },
        },
      },
    }),
  );
  return el('div', { class: 'chart' }, box);
}

const causeColumns = [
  { key: 'kind', label: 'Cause', format: (v) => WORDS[v] ?? v },
  { key: 'what', label: 'What' },
  { key: 'ms', label: 'Time', numeric: true, format: fmtMs },
  { key: 'share', label: 'Share', numeric: true, format: (v) => fmtPct(100 * v) },
];

async function routePage(main, service, route) {
  const [r, findings] = await Promise.all([
    api('/api/dash/route', { service, route }),
    getFindings(['slowed-by-others', 'loop-blocked', 'loop-saturated', 'lock-contention', 'shared-lock']),
  ]);
  if (!r.route) {
    main.append(empty('No request of this route was broken down in this window.'));
    return;
  }
  const related = findings.filter(
    (f) => f.service === service && (f.resource === route || f.slows?.some((s) => s.route === route)),
  );
  main.append(
    el('p', {}, el('a', { href: link('/routes') }, '← All routes')),
    findingsSection(related, 'No finding costs this route time in this window.'),
    section(
      `${route} on ${service}`,
      el(
        'p',
        { class: 'lead' },
        `${fmtCount(r.route.requests)} requests, ${fmtMs(r.route.totalMs)} in all; p50 ${fmtMs(r.route.p50Ms)}, p95 ${fmtMs(r.route.p95Ms)}, p99 ${fmtMs(r.route.p99Ms)}.`,
      ),
      stackedBars([r.route]),
      table(causeColumns, r.route.causes, { id: 'causes', defaultSort: { key: 'ms', dir: 'desc' } }),
    ),
    section(
      'Slowest requests',
      el(
        'div',
        { class: 'requests' },
        r.slowest.map((q) =>
          el(
            'details',
            { class: 'group' },
            el(
              'summary',
              {},
              el('span', { class: 'what' }, new Date(q.start).toLocaleTimeString()),
              el('span', {}, fmtMs(q.durationMs)),
              el('span', {}, q.causes[0] ? `${WORDS[q.causes[0].kind]}: ${q.causes[0].what}` : ''),
              traceLink(q.traceId, q.spanId),
            ),
            table(
              causeColumns.filter((c) => c.key !== 'share'),
              q.causes,
              { id: `req-${q.spanId}`, sortable: false },
            ),
          ),
        ),
      ),
    ),
  );
}

page('Routes', async (main) => {
  const p = params();
  if (p.get('route') && p.get('service')) return routePage(main, p.get('service'), p.get('route'));
  const [{ routes }, findings] = await Promise.all([api('/api/dash/routes'), getFindings(['slowed-by-others'])]);
  main.append(
    findingsSection(findings, 'No route loses most of its time to other routes in this window.'),
    section(
      'Where each route’s time went',
      el(
        'p',
        { class: 'lead' },
        'Every request broken down along its critical path: what it waited for (locks, pools, calls), what it did itself, and the time other requests took from it by holding the event loop. Computed from the requests traced (with a sampler, the sampled ones), about a minute after they end.',
      ),
      routes.length ? stackedBars(routes) : empty('No request was broken down in this window.'),
    ),
    section(
      'Routes',
      table(
        [
          { key: 'route', label: 'Route', link: (r) => link('/routes', { route: r.route, service: r.service }) },
          { key: 'service', label: 'Service' },
          { key: 'requests', label: 'Requests', numeric: true, format: fmtCount },
          { key: 'p50Ms', label: 'p50', numeric: true, format: fmtMs },
          { key: 'p95Ms', label: 'p95', numeric: true, format: fmtMs },
          { key: 'p99Ms', label: 'p99', numeric: true, format: fmtMs },
          { key: 'totalMs', label: 'Total', numeric: true, format: fmtMs },
          {
            key: 'top',
            label: 'Most time to',
            value: (r) => (r.causes[0] ? `${WORDS[r.causes[0].kind]}: ${r.causes[0].what}` : ''),
          },
        ],
        routes,
        { id: 'routes', defaultSort: { key: 'totalMs', dir: 'desc' }, emptyText: 'No request in this window.' },
      ),
    ),
  );
});
