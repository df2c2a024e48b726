// One lock: its wait and hold histograms, where it is acquired, who waited on whom, and the
// slowest waits, each linking to its trace.
import {
  api,
  el,
  empty,
  findingsSection,
  fmtCount,
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
    section(
      'Who waited on whom',
      el(
        'p',
        { class: 'lead' },
        shared
          ? 'Waiters at one place queue behind holders at another: if these are unrelated code paths, one lock is serialising them; consider one lock per resource.'
          : 'Each row: where the waiting request acquired the lock, and where the holder it queued behind had acquired it.',
      ),
      table(
        [
          { key: 'waiterSite', label: 'Waiter (acquire site)' },
          {
            key: 'holderSite',
            label: 'Holder (its acquire site)',
            format: (v) => v || 'unknown (the lock was not hot yet)',
          },
          { key: 'count', label: 'Waits', numeric: true, format: fmtCount },
          { key: 'totalMs', label: 'Total', numeric: true, format: fmtMs },
          { key: 'maxMs', label: 'Max', numeric: true, format: fmtMs },
        ],
        l.pairs,
        {
          id: 'pairs',
          defaultSort: { key: 'totalMs', dir: 'desc' },
          emptyText: 'No wait of 1 ms or more in this window.',
        },
      ),
    ),
    section(
      'Acquire sites',
      table(
        [
          { key: 'site', label: 'Site' },
          { key: 'count', label: 'Waits', numeric: true, format: fmtCount },
          { key: 'totalMs', label: 'Total wait', numeric: true, format: fmtMs },
        ],
        l.acquireSites,
        { id: 'sites', defaultSort: { key: 'totalMs', dir: 'desc' } },
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
