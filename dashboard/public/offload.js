// @ts-check
// Offload: the libuv threadpool (canary wait, in-flight work against its size, operations that
// queued) and worker pools (queue wait against run time).
import { api, el, findingsSection, fmtCount, fmtMs, getFindings, page, section, table, timeChart } from './app.js';

page('Offload', async (main) => {
  const [o, findings] = await Promise.all([
    api('/api/dash/offload'),
    getFindings(['threadpool-saturated', 'pool-queueing']),
  ]);
  const inFlight = { times: o.inFlight.times, series: [...o.inFlight.series, ...o.size.series] };
  const pools = {
    times: o.poolWait.times,
    series: [
      ...o.poolWait.series.map((s) => ({ ...s, name: `${s.name} queue wait` })),
      ...o.poolRun.series.map((s) => ({ ...s, name: `${s.name} run time` })),
    ],
  };
  main.append(
    findingsSection(findings, 'No thread pool costs time over the thresholds in this window.'),
    el(
      'div',
      { class: 'grid2' },
      section(
        'Threadpool canary wait',
        el(
          'p',
          { class: 'lead' },
          'How long a tiny fs.stat took: the wait new threadpool work would see (plus the loop’s own delay).',
        ),
        timeChart(o.canary, { label: (s) => `${s.service} canary` }),
      ),
      section(
        'Threadpool in flight vs size',
        el(
          'p',
          { class: 'lead' },
          'Operations in flight by kind against UV_THREADPOOL_SIZE: above the size, work queues.',
        ),
        timeChart(inFlight, { unit: 'operations', label: (s) => `${s.service} ${s.name}` }),
      ),
    ),
    section(
      'Threadpool operations that queued',
      table(
        [
          { key: 'key', label: 'Operation' },
          { key: 'service', label: 'Service' },
          { key: 'count', label: 'Queued', numeric: true, format: fmtCount },
          { key: 'totalMs', label: 'Total wait', numeric: true, format: fmtMs },
          { key: 'maxMs', label: 'Max wait', numeric: true, format: fmtMs },
        ],
        o.threadpoolWaits,
        {
          id: 'threadpool',
          defaultSort: { key: 'totalMs', dir: 'desc' },
          emptyText: 'No threadpool operation waited over the threshold in this window.',
        },
      ),
    ),
    section(
      'Worker pools: queue wait vs run time',
      el(
        'p',
        { class: 'lead' },
        'Average per step. Tasks that wait longer than they run need more threads, or less work.',
      ),
      timeChart(pools, { label: (s) => `${s.service} ${s.name}`, emptyText: 'No worker-pool tasks in this window.' }),
    ),
    section(
      'Worker pools',
      table(
        [
          { key: 'key', label: 'Pool' },
          { key: 'service', label: 'Service' },
          { key: 'count', label: 'Tasks', numeric: true, format: fmtCount },
          { key: 'totalMs', label: 'Total (wait + run)', numeric: true, format: fmtMs },
          { key: 'maxMs', label: 'Slowest', numeric: true, format: fmtMs },
        ],
        o.pools,
        {
          id: 'pools',
          defaultSort: { key: 'totalMs', dir: 'desc' },
          emptyText: 'No worker-pool tasks in this window.',
        },
      ),
    ),
  );
});
