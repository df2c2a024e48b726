// @ts-check
// One lock: its wait and hold histograms, who made others wait and who waited (each wait charged
// to the holds that ran during it), and the slowest waits, each linking to its trace.
import {
  api,
  el,
  empty,
  findingsSection,
  fmtMs,
  fmtTime,
  getFindings,
  histogramChart,
  page,
  params,
  section,
  table,
  timeChart,
  traceLink,
} from './app.js';

const name = params().get('name') ?? '';

/** Holder sites that are not code, in words. */
const SITE_WORDS = {
  '(handoff)': 'handoff (free, the waiter not resumed yet)',
  '(unknown)': 'unknown (held before the lock was hot)',
  '(other)': 'other sites',
};
const siteText = (v) => SITE_WORDS[v] ?? v;
page(`Lock ${name}`, async (main) => {
  if (!name) {
    main.append(empty('No lock chosen: open one from the Locks page.'));
    return;
  }
  const [l, findings] = await Promise.all([
    api('/api/dash/lock', { name }),
    getFindings(['lock-contention', 'shared-lock', 'lock-held'], { resource: name }),
  ]);
  const shared = findings.some((f) => f.kind === 'shared-lock');
  const parts = [
    findingsSection(findings, 'This lock costs no time over the thresholds in this window.'),
    el(
      'div',
      { class: 'grid2' },
      section('Wait time', histogramChart(l.wait, { emptyText: 'Nobody waited for this lock in this window.' })),
      section('Hold time', histogramChart(l.hold, { emptyText: 'No hold of this lock ended in this window.' })),
    ),
    section('Wait over time', timeChart(l.chart, { label: (s) => `${s.service} ${s.name}` })),
    el(
      'div',
      { class: 'grid2' },
      section(
        'Time others waited because this code held the lock',
        table(
          [
            { key: 'site', label: 'Holder', format: siteText },
            { key: 'totalMs', label: 'Others waited', numeric: true, format: fmtMs },
          ],
          l.holders,
          { id: 'holders', defaultSort: { key: 'totalMs', dir: 'desc' }, emptyText: 'Nobody waited in this window.' },
        ),
      ),
      section(
        'Where it was waited for',
        table(
          [
            { key: 'site', label: 'Waiter (acquire site)' },
            { key: 'totalMs', label: 'Waited', numeric: true, format: fmtMs },
          ],
          l.acquireSites,
          { id: 'sites', defaultSort: { key: 'totalMs', dir: 'desc' } },
        ),
      ),
    ),
    section(
      'Who waited on whom',
      el(
        'p',
        { class: 'lead' },
        shared
          ? 'Code at one place waits while code at another holds the lock: if the two touch different data, one lock is serialising them; give each its own.'
          : 'Each wait is charged to the holds that ran during it, exactly: a row is how long waiters at one site waited while holders at another held the lock.',
      ),
      table(
        [
          { key: 'waiterSite', label: 'Waiter (acquire site)' },
          { key: 'holderSite', label: 'Holder', format: siteText },
          { key: 'totalMs', label: 'Waited', numeric: true, format: fmtMs },
        ],
        l.pairs,
        {
          id: 'pairs',
          defaultSort: { key: 'totalMs', dir: 'desc' },
          emptyText: 'No wait in this window.',
        },
      ),
    ),
    section(
      'Slowest waits',
      table(
        [
          { key: 'start', label: 'When', format: fmtTime },
          { key: 'service', label: 'Service' },
          { key: 'durationMs', label: 'Waited', numeric: true, format: fmtMs },
          { key: 'outcome', label: 'Outcome', value: (r) => r.attributes['stallscope.lock.outcome'] },
          { key: 'site', label: 'Acquired at', value: (r) => r.attributes['stallscope.lock.acquire_site'] },
          { key: 'traceId', label: '', format: (_, r) => traceLink(r.traceId, r.spanId) },
        ],
        l.slowest,
        { id: 'slowest', sortable: false },
      ),
    ),
    l.held.length
      ? section(
          'Held too long',
          table(
            [
              { key: 'start', label: 'Since', format: fmtTime },
              {
                key: 'held',
                label: 'Held',
                numeric: true,
                value: (r) => r.attributes['stallscope.lock.held_ms'],
                format: fmtMs,
              },
              {
                key: 'waiters',
                label: 'Waiters',
                numeric: true,
                value: (r) => r.attributes['stallscope.lock.waiters'],
              },
              {
                key: 'holder',
                label: 'Holder site',
                value: (r) => r.attributes['stallscope.lock.holder_site'] ?? 'unknown',
              },
              { key: 'traceId', label: '', format: (_, r) => traceLink(r.traceId, r.spanId) },
            ],
            l.held,
            { id: 'held', sortable: false },
          ),
        )
      : null,
  ];
  main.append(...parts.filter(Boolean));
});
