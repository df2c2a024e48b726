// Locks: every lock resource, sortable, and the wait time of the top ones over time.
import {
  alertOn,
  api,
  el,
  findingsSection,
  fmtCount,
  fmtMs,
  fmtPct,
  getFindings,
  link,
  lockRule,
  page,
  section,
  table,
  timeChart,
} from './app.js';

page('Locks', async (main) => {
  const [{ locks, chart }, findings] = await Promise.all([
    api('/api/dash/locks', { top: 5 }),
    getFindings(['lock-contention', 'shared-lock', 'lock-held']),
  ]);
  main.append(
    findingsSection(findings, 'No lock costs time over the thresholds in this window.'),
    section(
      'Wait time per lock (top 5, stacked)',
      el(
        'p',
        { class: 'lead' },
        'Time requests spent waiting for each lock, per step. Waits of 1 ms or more are counted here.',
      ),
      timeChart(chart, {
        kind: 'stacked',
        label: (s) => s.name,
        emptyText: 'No lock wait of 1 ms or more in this window.',
      }),
    ),
    section(
      'Lock resources',
      el(
        'p',
        { class: 'lead' },
        'A lock is named by nameLock(), its key, or the line that created it. Click a lock for who waited on whom.',
      ),
      table(
        [
          {
            key: 'lock',
            label: 'Lock',
            link: (r) => link('/lock', { name: r.lock }),
            title: (r) => `${r.lock} (${r.type})`,
          },
          { key: 'service', label: 'Service' },
          {
            key: 'waitingNow',
            label: 'Waiting now',
            numeric: true,
            value: (r) => r.waitingNow * (r.oldestWaitMs ?? 0) + r.waitingNow,
            format: (_, r) =>
              r.waitingNow
                ? el(
                    'span',
                    { class: r.oldestWaitMs > 5000 ? 'stuck' : undefined },
                    `${fmtCount(r.waitingNow)}, oldest ${fmtMs(r.oldestWaitMs)}`,
                  )
                : '0',
          },
          { key: 'acquisitions', label: 'Acquisitions', numeric: true, format: fmtCount },
          { key: 'contendedPct', label: 'Contended', numeric: true, format: fmtPct },
          { key: 'totalWaitMs', label: 'Total wait', numeric: true, format: fmtMs },
          { key: 'waitP95Ms', label: 'Wait p95', numeric: true, format: fmtMs },
          { key: 'waitP99Ms', label: 'Wait p99', numeric: true, format: fmtMs },
          { key: 'waitMaxMs', label: 'Wait max', numeric: true, format: fmtMs },
          { key: 'holdP95Ms', label: 'Hold p95', numeric: true, format: fmtMs },
          { key: 'maxQueue', label: 'Max queue', numeric: true, format: fmtCount },
          { key: 'timeouts', label: 'Timeouts', numeric: true, format: fmtCount },
          { key: 'alert', label: '', value: () => '', format: (_, r) => alertOn(lockRule(r)) },
        ],
        locks,
        {
          id: 'locks',
          defaultSort: { key: 'totalWaitMs', dir: 'desc' },
          emptyText: 'No lock was acquired in this window (or no service runs the agent with lock tracking).',
        },
      ),
    ),
  );
});
