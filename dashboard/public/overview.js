// Overview: where each service loses time, at a glance.
import {
  api,
  cut,
  el,
  empty,
  findingsSection,
  fmtMs,
  fmtPct,
  fmtTime,
  getFindings,
  link,
  lostBar,
  page,
  section,
  sparkline,
  table,
  timeChart,
  traceLink,
} from './app.js';

const P99 = 'nodejs.eventloop.delay.p99';
const ELU = 'nodejs.eventloop.utilization';

page('Overview', async (main) => {
  const [o, findings, alerts] = await Promise.all([
    api('/api/dash/overview'),
    getFindings(),
    api('/api/alerts', { since: '1h', limit: 1 }),
  ]);
  const lag = { times: o.loop.times, series: o.loop.series.filter((s) => s.name !== ELU) };
  const elu = {
    times: o.loop.times,
    series: o.loop.series
      .filter((s) => s.name === ELU)
      .map((s) => ({ ...s, values: s.values.map((v) => (v === null ? null : v * 100)) })),
  };
  main.append(
    section(
      'Services',
      table(
        [
          {
            key: 'state',
            label: 'State',
            value: (r) => ['critical', 'warning', 'fine'].indexOf(r.state),
            format: (_, r) => el('span', { class: `state state-${r.state}` }, r.state),
          },
          { key: 'service', label: 'Service', link: (r) => link(location.pathname, { service: r.service }) },
          { key: 'lostMs', label: 'Time lost', numeric: true, format: (v) => lostBar(v) },
          {
            key: 'worst',
            label: 'Worst finding',
            value: (r) => r.worst?.title ?? '',
            format: (v, r) => (r.worst ? cut(v) : el('span', { class: 'muted' }, 'nothing over the thresholds')),
          },
          {
            key: 'p99',
            label: 'Loop delay p99',
            value: (r) => Math.max(0, ...r.loopP99Ms.filter((v) => v !== null)),
            format: (v, r) =>
              el('span', { class: 'spark-cell' }, sparkline(r.loopP99Ms, { title: 'loop delay p99' }), fmtMs(v)),
          },
          {
            key: 'elu',
            label: 'Loop busy',
            value: (r) => Math.max(0, ...r.utilization.filter((v) => v !== null)),
            format: (v, r) =>
              el(
                'span',
                { class: 'spark-cell' },
                sparkline(r.utilization, { max: 1, title: 'utilization' }),
                fmtPct(100 * v),
              ),
          },
        ],
        o.services,
        {
          id: 'services',
          defaultSort: { key: 'state', dir: 'asc' },
          emptyText: 'No service sent data in this window.',
        },
      ),
    ),
    findingsSection(findings),
    el(
      'div',
      { class: 'grid2' },
      section(
        'Event-loop delay',
        el(
          'p',
          { class: 'lead' },
          'How late the loop ran its work (p99 and max per service). High values mean requests waited for the loop.',
        ),
        timeChart(lag, { label: (s) => `${s.service} ${s.name === P99 ? 'p99' : 'max'}` }),
      ),
      section(
        'Event-loop utilization',
        el('p', { class: 'lead' }, 'Share of time the loop was busy. Near 100% the service is saturated.'),
        timeChart(elu, { unit: '%', yMax: 100, label: (s) => s.service }),
      ),
      section(
        'Top contended locks',
        table(
          [
            { key: 'lock', label: 'Lock', link: (r) => link('/lock', { name: r.lock }) },
            { key: 'service', label: 'Service' },
            { key: 'totalWaitMs', label: 'Total wait', numeric: true, format: fmtMs },
            { key: 'waitP95Ms', label: 'Wait p95', numeric: true, format: fmtMs },
            { key: 'contendedPct', label: 'Contended', numeric: true, format: fmtPct },
          ],
          o.locks.filter((l) => l.totalWaitMs > 0),
          { id: 'locks', sortable: false, emptyText: 'No lock was waited for in this window.' },
        ),
      ),
      section(
        'Latest blocking episodes',
        o.latestEpisodes.length
          ? table(
              [
                { key: 'start', label: 'When', format: fmtTime },
                { key: 'service', label: 'Service' },
                { key: 'key', label: 'Blocked in' },
                { key: 'durationMs', label: 'Blocked', numeric: true, format: fmtMs },
                { key: 'traceId', label: '', format: (_, r) => traceLink(r.traceId, r.spanId) },
              ],
              o.latestEpisodes,
              { id: 'episodes', sortable: false },
            )
          : empty('The event loop was not blocked over the threshold in this window.'),
      ),
      section(
        'Thread offload',
        el(
          'p',
          { class: 'lead' },
          'Wait a tiny libuv threadpool task would see (the canary), and worker-pool queue waits.',
        ),
        timeChart(o.offload.canary, { label: (s) => `${s.service} threadpool canary` }),
        timeChart(o.offload.poolWait, {
          label: (s) => `${s.service} ${s.name} queue wait`,
          emptyText: 'No worker-pool tasks in this window.',
        }),
      ),
      section(
        'Alerts',
        alerts.alerts.some((a) => a.state !== 'resolved')
          ? table(
              [
                { key: 'state', label: 'State' },
                { key: 'rule', label: 'Rule', link: () => link('/alerts') },
                { key: 'service', label: 'Service', value: (a) => a.labels.service ?? '' },
                { key: 'resource', label: 'Resource', value: (a) => a.labels.resource ?? '' },
                { key: 'summary', label: 'Summary', value: (a) => a.annotations.summary ?? '' },
              ],
              alerts.alerts.filter((a) => a.state !== 'resolved'),
              { id: 'overview-alerts', sortable: false },
            )
          : empty(
              alerts.rules.length
                ? 'No alert is pending or firing.'
                : 'No alert rules yet: add them on the Alerts page.',
            ),
      ),
    ),
  );
});
