// The read model: windows of any length are exact for lock statistics, and the Locks page and a
// lock alert read the same numbers for the same window.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ENGINES, eventually, getJson, startServer, type Engine } from './helpers';
import { REGISTER, agentEnv, startApp, stop } from './agent-apps';
import { SPAN_NAMES } from '../common/conventions';
import { rollupRanges } from '../db/read/ranges';
import { signalValues } from '../collector/alert-signals';
import { NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND } from '../common/time';
import type { AlertRule, LocksPage, SpanView, TraceSummary } from '../common/types';

const attr = (key: string, value: string | boolean) => ({
  key,
  value: typeof value === 'string' ? { stringValue: value } : { boolValue: value },
});

describe('lock windows', () => {
  const now = ((BigInt(Date.now()) * 1_000_000n) / NS_PER_HOUR) * NS_PER_HOUR + 50n * NS_PER_MINUTE;

  it('read the partial minutes at the ends from single exports, whole minutes and hours from their rows', () => {
    // From hh-2:59:07 to hh:49:47: the hour hh-1 is whole, and both ends are within two hours.
    const from = now - 111n * NS_PER_MINUTE + 7n * NS_PER_SECOND;
    const to = now - 13n * NS_PER_SECOND;
    const ranges = rollupRanges({ fromNs: from, toNs: to, stepNs: to - from }, now);
    // Single exports for the two cut minutes, then minutes and an hour in between, nothing twice.
    assert.deepEqual(
      ranges.map((r) => r.size),
      [0, 0, 60, 1],
    );
    const covered = ranges
      .map((r) => (r.size === 0 ? r.to - r.from : (r.to - r.from) * BigInt(r.size) * NS_PER_MINUTE))
      .reduce((a, b) => a + b, 0n);
    assert.equal(covered, to - from);
  });

  it('widen windows older than the single exports to whole minutes', () => {
    const from = now - 5n * NS_PER_HOUR + 7n * NS_PER_SECOND;
    const to = now - 4n * NS_PER_HOUR + 7n * NS_PER_SECOND;
    const ranges = rollupRanges({ fromNs: from, toNs: to, stepNs: to - from }, now);
    assert.ok(ranges.every((r) => r.size !== 0));
    assert.equal(ranges[ranges.length - 1].to * NS_PER_MINUTE >= to, true);
  });

  it('a window inside one minute reads single exports only', () => {
    const from = now - 50n * NS_PER_SECOND;
    const to = now - 40n * NS_PER_SECOND;
    assert.deepEqual(rollupRanges({ fromNs: from, toNs: to, stepNs: 1n }, now), [{ size: 0, from, to }]);
  });
});

for (const engine of ENGINES) describe(`reads (${engine})`, () => reads(engine));

function reads(engine: Engine): void {
  describe('lock statistics over a short window', () => {
    it('count exactly the exports inside it, the same on the Locks page and in an alert', async () => {
      const server = await startServer({ engine });
      try {
        const nowMs = Date.now();
        const NOW = BigInt(nowMs) * 1_000_000n;
        // Eighteen exports 10 s apart of a stream that began before the collector: the first is a
        // baseline, each later one adds 10 acquisitions (2 contended) and 2 waits of 3 ms.
        const times = Array.from({ length: 18 }, (_, i) => NOW - BigInt(17 - i) * 10n * NS_PER_SECOND);
        const start = String(NOW - 10n * NS_PER_MINUTE);
        const lock = [attr('stallscope.lock.name', 'ledger'), attr('stallscope.lock.type', 'async-mutex.Mutex')];
        const sum = (contended: boolean, per: number) => ({
          aggregationTemporality: 2,
          isMonotonic: true,
          dataPoints: times.map((t, i) => ({
            startTimeUnixNano: start,
            timeUnixNano: String(t),
            asInt: String(per * (i + 1)),
            attributes: [...lock, attr('stallscope.lock.contended', contended)],
          })),
        });
        const body = {
          resourceMetrics: [
            {
              resource: { attributes: [attr('service.name', 'shop')] },
              scopeMetrics: [
                {
                  metrics: [
                    { name: 'stallscope.lock.acquisitions', sum: sum(false, 8) },
                    { name: 'stallscope.lock.acquisitions', sum: sum(true, 2) },
                    {
                      name: 'stallscope.lock.wait_time',
                      histogram: {
                        aggregationTemporality: 2,
                        dataPoints: times.map((t, i) => ({
                          startTimeUnixNano: start,
                          timeUnixNano: String(t),
                          count: String(2 * (i + 1)),
                          sum: 0.006 * (i + 1),
                          explicitBounds: [0.001, 0.005, 0.01],
                          bucketCounts: ['0', String(2 * (i + 1)), '0', '0'],
                          attributes: [...lock, attr('stallscope.lock.outcome', 'granted')],
                        })),
                      },
                    },
                  ],
                },
              ],
            },
          ],
        };
        const res = await fetch(`${server.otlp}/v1/metrics`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        assert.equal(res.status, 200);

        // 53 s holding the exports at -95 s ... -45 s: five of them, whatever minute they fall in.
        const fromMs = nowMs - 95_500;
        const toMs = nowMs - 42_500;
        const page = await getJson<LocksPage>(`${server.api}/api/dash/locks?from=${fromMs}&to=${toMs}&service=shop`);
        assert.equal(page.status, 200);
        const row = page.body.locks.find((l) => l.lock === 'ledger')!;
        assert.equal(row.acquisitions, 50);
        assert.equal(row.contended, 10);
        assert.ok(Math.abs(row.totalWaitMs - 30) < 1e-6, `total wait ${row.totalWaitMs}`);

        const rule = (signal: AlertRule['signal']) =>
          ({ name: signal, signal, op: '>', threshold: 0, windowMs: toMs - fromMs }) as AlertRule;
        const read = server.running.collector.store.read;
        const noFindings = async () => [];
        const [total] = await signalValues(rule('lock-wait-total'), read, noFindings, toMs);
        const [p95] = await signalValues(rule('lock-wait-p95'), read, noFindings, toMs);
        assert.equal(total.resource, 'ledger');
        assert.equal(total.value, row.totalWaitMs);
        assert.equal(p95.value, row.waitP95Ms);
      } finally {
        await server.close();
      }
    });
  });

  describe('histogram metrics over a window', () => {
    it('count a cumulative life from its first point in the window, a restart and a later start in full, deltas as sent', async () => {
      const server = await startServer({ engine });
      try {
        const NOW = BigInt(Date.now()) * 1_000_000n;
        const at = (s: number) => NOW - BigInt(s) * NS_PER_SECOND;
        // Every wait 100 ms, unless `mean` says otherwise.
        const point = (start: bigint, t: number, count: number, pool: string, mean = 0.1) => ({
          startTimeUnixNano: String(start),
          timeUnixNano: String(at(t)),
          count: String(count),
          sum: count * mean,
          explicitBounds: [0.1],
          bucketCounts: [String(count), '0'],
          attributes: [attr('stallscope.pool.name', pool)],
        });
        const cumulative = (dataPoints: unknown[]) => ({
          name: 'stallscope.pool.queue_wait',
          histogram: { aggregationTemporality: 2, dataPoints },
        });
        const body = {
          resourceMetrics: [
            {
              resource: { attributes: [attr('service.name', 'shop')] },
              scopeMetrics: [
                {
                  metrics: [
                    // Began an hour ago: 10 at the window's first point, 20 at its last; then restarted,
                    // with 3 waits of 500 ms.
                    cumulative([
                      point(at(3600), 280, 10, 'a'),
                      point(at(3600), 220, 12, 'a'),
                      point(at(3600), 160, 15, 'a'),
                      point(at(3600), 100, 20, 'a'),
                      point(at(70), 40, 3, 'a', 0.5),
                    ]),
                    // Began inside the window: all of it.
                    cumulative([point(at(250), 200, 4, 'b'), point(at(250), 50, 9, 'b')]),
                    {
                      name: 'stallscope.pool.queue_wait',
                      histogram: {
                        aggregationTemporality: 1,
                        dataPoints: [point(at(190), 180, 2, 'c'), point(at(130), 120, 5, 'c')],
                      },
                    },
                  ],
                },
              ],
            },
          ],
        };
        const res = await fetch(`${server.otlp}/v1/metrics`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        assert.equal(res.status, 200);
        const read = server.running.collector.store.read;
        // 300 s back to now, in two steps of 150 s: [-300, -150) and [-150, 0).
        const w = { service: 'shop', fromNs: at(300), toNs: NOW, stepNs: 150n * NS_PER_SECOND };
        const totals = await read.histogramTotals('stallscope.pool.queue_wait', w);
        const total = (pool: string) => totals.find((t) => t.attributes['stallscope.pool.name'] === pool);
        assert.deepEqual(
          ['a', 'b', 'c'].map((p) => [p, total(p)?.count, Math.round((total(p)?.sum ?? 0) * 10)]),
          [
            ['a', 13, 25],
            ['b', 9, 9],
            ['c', 7, 7],
          ],
        );
        // Per step: a's first has 5 waits of 100 ms (15 - 10); its second 5 more and the restart's
        // 3 of 500 ms: (0.5 + 1.5) s over 8 waits.
        const chart = await read.meanChart('stallscope.pool.queue_wait', w, (a) => String(a['stallscope.pool.name']));
        const a = chart.series.find((s) => s.name === 'a')!;
        assert.deepEqual(
          a.values.map((v) => (v === null ? null : Math.round(v))),
          [100, 250],
        );
      } finally {
        await server.close();
      }
    });
  });

  describe('lock percentiles from exponential histograms', () => {
    it('give a p95 within a few percent of the exact p95 of the same waits', async () => {
      const server = await startServer({ engine });
      try {
        const app = await startApp(
          ['--import', REGISTER, 'ledger-app.mjs'],
          agentEnv(server, 'p95', { LOCK_LIB: 'async-mutex' }),
        );
        try {
          // Closed-loop clients on one mutex: waits from nothing to some tens of ms. A count, not a
          // time: every request's trace must fit in one page of the traces API below.
          await Promise.all(
            Array.from({ length: 8 }, async (_, c) => {
              for (let i = c; i < c + 100; i++) await fetch(`http://127.0.0.1:${app.port}/${i % 2 ? 'pay' : 'order'}`);
            }),
          );
        } finally {
          await stop(app);
        }
        const row = await eventually(
          async () =>
            (await getJson<LocksPage>(`${server.api}/api/dash/locks?service=p95&since=15m`)).body.locks.find(
              (l) => l.acquisitions > 100,
            ),
          10_000,
          'the lock in the locks table',
        );
        // Every wait over the span threshold (1 ms) is a span with its exact length; the shorter
        // contended ones and the uncontended acquisitions count as waits of (about) zero.
        const traces = await getJson<TraceSummary[]>(
          `${server.api}/api/traces?service=p95&kind=lock-wait&limit=1000&since=15m`,
        );
        assert.ok(traces.body.length < 1000, 'more traces than one page: the exact p95 would miss some');
        const waits: number[] = [];
        for (const t of traces.body) {
          const { body } = await getJson<{ spans: SpanView[] }>(`${server.api}/api/traces/${t.traceId}`);
          for (const s of body.spans) if (s.name === SPAN_NAMES.lockWait) waits.push(s.durationMs);
        }
        assert.ok(waits.length > 50, `${waits.length} waits`);
        const all = [...waits, ...new Array<number>(Math.max(0, row.acquisitions - waits.length)).fill(0)].sort(
          (a, b) => a - b,
        );
        const exact = all[Math.ceil(0.95 * all.length) - 1];
        assert.ok(Math.abs(row.waitP95Ms! - exact) <= 0.06 * exact, `p95 ${row.waitP95Ms} ms, exact ${exact} ms`);
      } finally {
        await server.close();
      }
    });
  });
}
