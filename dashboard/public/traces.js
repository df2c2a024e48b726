// Traces: search by service, name, duration, what happened in them (a blocking episode, a lock
// wait...) and an attribute; each result opens its waterfall.
import { api, el, fmtCount, fmtMs, fmtTime, link, page, params, section, table, withParams } from './app.js';

const KINDS = [
  ['', 'anything'],
  ['loop-block', 'a blocked event loop'],
  ['lock-wait', 'a lock wait'],
  ['sync-call', 'a blocking sync call'],
  ['threadpool-wait', 'a threadpool wait'],
  ['pool-task', 'a worker-pool task'],
];

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
    const traces = await api('/api/traces', { ...query, limit: 50 });
    main.append(
      section('Search', form),
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
          traces,
          { id: 'traces', emptyText: 'No trace matches in this window.' },
        ),
      ),
    );
  },
  { refresh: false },
);
