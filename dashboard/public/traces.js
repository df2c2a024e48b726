// Traces: search by service, name, duration, what happened in them (a blocking episode, a lock
// wait...) and an attribute; each result opens its waterfall.
import {
  api,
  el,
  empty,
  fmtCount,
  fmtMs,
  fmtTime,
  link,
  page,
  params,
  registerChart,
  section,
  table,
  withParams,
} from './app.js';

const KINDS = [
  ['', 'anything'],
  ['loop-block', 'a blocked event loop'],
  ['lock-wait', 'a lock wait'],
  ['sync-call', 'a blocking sync call'],
  ['threadpool-wait', 'a threadpool wait'],
  ['pool-task', 'a worker-pool task'],
];

/** Traces by start and duration, as a scatter (Jaeger's view): the slow ones stand out. */
function scatter(traces) {
  if (!traces.length) return empty('No trace matches in this window.');
  const point = (t) => ({ x: Number(BigInt(t.startTimeUnixNano) / 1_000_000n), y: t.durationMs, t });
  const canvas = el('canvas', { role: 'img', 'aria-label': 'trace duration over time', id: 'trace-scatter' });
  const sets = [
    ['with a stall', traces.filter((t) => t.agentSpanCount > 0), '#d9663f'],
    ['others', traces.filter((t) => t.agentSpanCount === 0), '#2563eb'],
  ];
  const chart = new window.Chart(canvas, {
    type: 'scatter',
    data: {
      datasets: sets.map(([label, list, colour]) => ({
        label,
        data: list.map(point),
        backgroundColor: colour,
        pointRadius: 4,
      })),
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      onClick: (_, items) => {
        const hit = items[0] && chart.data.datasets[items[0].datasetIndex].data[items[0].index];
        if (hit) location.href = link('/trace', { id: hit.t.traceId });
      },
      plugins: {
        tooltip: {
          callbacks: { label: (c) => `${c.raw.t.rootName ?? c.raw.t.traceId.slice(0, 8)}: ${fmtMs(c.raw.y)}` },
        },
      },
      scales: {
        x: {
          type: 'linear',
          ticks: { callback: (v) => new Date(v).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) },
        },
        y: { beginAtZero: true, ticks: { callback: (v) => fmtMs(v) } },
      },
    },
  });
  registerChart(chart);
  return el('div', { class: 'chart' }, el('div', { class: 'canvas-box' }, canvas));
}

page(
  'Traces',
  async (main) => {
    const p = params();
    const field = (name, label, attrs = {}) =>
      el('label', {}, label, el('input', { name, value: p.get(name) ?? '', ...attrs }));
    const kind = el(
      'select',
      { name: 'kind' },
      KINDS.map(([v, l]) => el('option', { value: v, selected: (p.get('kind') ?? '') === v }, l)),
    );
    const form = el(
      'form',
      {
        class: 'search',
        onsubmit: (e) => {
          e.preventDefault();
          const f = new FormData(form);
          location.href = withParams(
            Object.fromEntries(['name', 'minDuration', 'kind', 'attribute'].map((k) => [k, f.get(k) || null])),
          );
        },
      },
      field('name', 'Span name'),
      field('minDuration', 'Min duration', { placeholder: 'e.g. 200ms' }),
      el('label', {}, 'Containing', kind),
      field('attribute', 'Attribute', { placeholder: 'http.route=/orders' }),
      el('button', { type: 'submit' }, 'Search'),
    );
    const query = {};
    for (const k of ['name', 'minDuration', 'kind', 'attribute']) if (p.get(k)) query[k] = p.get(k);
    const traces = await api('/api/traces', { ...query, limit: 200 });
    main.append(
      section('Search', form),
      section(
        'Duration over time',
        el('p', { class: 'lead' }, 'Each dot a trace; orange ones hold a stall the agent saw. Click one to open it.'),
        scatter(traces),
      ),
      section(
        'Traces',
        table(
          [
            {
              key: 'rootName',
              label: 'Trace',
              link: (r) => link('/trace', { id: r.traceId }),
              format: (v, r) => v ?? `(no root) ${r.traceId.slice(0, 8)}`,
            },
            { key: 'services', label: 'Services', value: (r) => r.services.join(', ') },
            {
              key: 'start',
              label: 'Start',
              value: (r) => Number(BigInt(r.startTimeUnixNano) / 1_000_000n),
              format: (v) => fmtTime(v),
            },
            { key: 'durationMs', label: 'Duration', numeric: true, format: fmtMs },
            { key: 'spanCount', label: 'Spans', numeric: true, format: fmtCount },
            { key: 'errorCount', label: 'Errors', numeric: true, format: fmtCount },
            {
              key: 'matched',
              label: 'Matched span',
              value: (r) => `${r.matched.name} (${fmtMs(r.matched.durationMs)})`,
            },
          ],
          traces.slice(0, 50),
          { id: 'traces', emptyText: 'No trace matches in this window.' },
        ),
      ),
    );
  },
  { refresh: false },
);
