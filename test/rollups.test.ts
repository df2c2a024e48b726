// The dashboard's rollups: kept at ingest from real OTLP requests, and rebuilt from the stored
// spans and points when an older database is upgraded (the two must agree).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { startServer } from './helpers';
import { migrate } from '../db/schema';
import { LockRollup } from '../db/lock-rollup';
import { NS_PER_MINUTE } from '../common/time';

const NOW = BigInt(Date.now()) * 1_000_000n;
const attr = (key: string, value: string | number | boolean) => ({
  key,
  value:
    typeof value === 'string'
      ? { stringValue: value }
      : typeof value === 'boolean'
        ? { boolValue: value }
        : { doubleValue: value },
});

function spansBody(): string {
  const span = (i: number, attrs: unknown[], durMs: number) => ({
    traceId: `${i.toString(16).padStart(2, '0')}`.repeat(16),
    spanId: `${(i + 1).toString(16).padStart(2, '0')}`.repeat(8),
    name: 'lock wait',
    kind: 1,
    startTimeUnixNano: String(NOW - BigInt(i) * 1_000_000_000n),
    endTimeUnixNano: String(NOW - BigInt(i) * 1_000_000_000n + BigInt(durMs) * 1_000_000n),
    attributes: attrs,
  });
  const wait = (i: number, lock: string, waiter: string, holder: string, ms: number) =>
    span(
      i,
      [
        attr('stallscope.kind', 'lock-wait'),
        attr('stallscope.lock.name', lock),
        attr('stallscope.lock.acquire_site', waiter),
        attr('stallscope.lock.holder_site', holder),
      ],
      ms,
    );
  const block = (i: number, fn: string, ms: number) =>
    span(
      i,
      [
        attr('stallscope.kind', 'loop-block'),
        attr('code.function.name', fn),
        attr('code.file.path', '/app/x.js'),
        attr('code.line.number', 7),
      ],
      ms,
    );
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', 'svc')] },
        scopeSpans: [
          {
            spans: [
              wait(1, 'orders', 'a.js:1', 'b.js:2', 30),
              wait(2, 'orders', 'a.js:1', 'b.js:2', 50),
              wait(3, 'orders', 'c.js:3', 'b.js:2', 20),
              block(4, 'render', 120),
              block(5, 'render', 80),
            ],
          },
        ],
      },
    ],
  });
}

/** Three exports of one lock's cumulative metrics, a minute apart. */
function metricsBody(): string {
  const start = String(NOW - 600_000_000_000n);
  const point = (t: number, extra: Record<string, unknown>) => ({
    startTimeUnixNano: start,
    timeUnixNano: String(NOW - BigInt(3 - t) * 60_000_000_000n),
    ...extra,
  });
  const attrs = (more: unknown[] = []) => [
    attr('stallscope.lock.name', 'orders'),
    attr('stallscope.lock.type', 'async-mutex.Mutex'),
    ...more,
  ];
  const bounds = [0.001, 0.01, 0.1, 1];
  return JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: [attr('service.name', 'svc')] },
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'stallscope.lock.acquisitions',
                sum: {
                  aggregationTemporality: 2,
                  isMonotonic: true,
                  dataPoints: [0, 1, 2].map((t) =>
                    point(t, {
                      asInt: String(100 * (t + 1)),
                      attributes: attrs([attr('stallscope.lock.contended', false)]),
                    }),
                  ),
                },
              },
              {
                name: 'stallscope.lock.acquisitions',
                sum: {
                  aggregationTemporality: 2,
                  isMonotonic: true,
                  dataPoints: [0, 1, 2].map((t) =>
                    point(t, {
                      asInt: String(10 * (t + 1)),
                      attributes: attrs([attr('stallscope.lock.contended', true)]),
                    }),
                  ),
                },
              },
              {
                name: 'stallscope.lock.wait_time',
                histogram: {
                  aggregationTemporality: 2,
                  dataPoints: [0, 1, 2].map((t) =>
                    point(t, {
                      count: String(10 * (t + 1)),
                      sum: 0.02 * (t + 1),
                      explicitBounds: bounds,
                      bucketCounts: ['0', String(5 * (t + 1)), String(5 * (t + 1)), '0', '0'],
                      attributes: attrs([attr('stallscope.lock.outcome', 'granted')]),
                    }),
                  ),
                },
              },
              // Who made whom wait: a(1) waited on b(2) 10 ms per export, c(3) on b(2) 5 ms.
              ...[
                ['a (a.js:1)', 0.01],
                ['c (c.js:3)', 0.005],
              ].map(([waiter, perExport]) => ({
                name: 'stallscope.lock.wait_caused',
                sum: {
                  aggregationTemporality: 2,
                  isMonotonic: true,
                  dataPoints: [0, 1, 2].map((t) =>
                    point(t, {
                      asDouble: (perExport as number) * (t + 1),
                      attributes: attrs([
                        attr('stallscope.lock.holder_site', 'b (b.js:2)'),
                        attr('stallscope.lock.acquire_site', waiter as string),
                      ]),
                    }),
                  ),
                },
              })),
            ],
          },
        ],
      },
    ],
  });
}

// A fixed window, so that both reads cover the same time.
const WINDOW = `from=${new Date(Number(NOW / 1_000_000n) - 3_600_000).toISOString()}&to=${new Date(Number(NOW / 1_000_000n) + 60_000).toISOString()}`;
const post = (url: string, body: string) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('dashboard rollups', () => {
  it('are kept at ingest, and rebuilt the same from the data when an older database is upgraded', async () => {
    const server = await startServer();
    let ingested: unknown;
    try {
      assert.equal((await post(`${server.otlp}/v1/traces`, spansBody())).status, 200);
      assert.equal((await post(`${server.otlp}/v1/metrics`, metricsBody())).status, 200);
      const get = async (path: string) => (await fetch(`${server.api}${path}`)).json();
      const snapshot = async () => ({
        lock: await get(`/api/dash/lock?name=orders&${WINDOW}`),
        locks: await get(`/api/dash/locks?${WINDOW}`),
        blocking: await get(`/api/dash/blocking?${WINDOW}`),
      });
      ingested = await snapshot();
      const s = ingested as {
        lock: { pairs: Array<{ waiterSite: string; holderSite: string; totalMs: number }>; acquireSites: unknown[] };
        locks: { locks: Array<{ lock: string; acquisitions: number; contended: number }> };
        blocking: { episodes: Array<{ key: string; count: number; maxMs: number }> };
      };
      // The first export of each stream is its baseline: two exports' increase each.
      assert.deepEqual(
        s.lock.pairs.map((p) => `${p.waiterSite} on ${p.holderSite}: ${Math.round(p.totalMs)}`),
        ['a (a.js:1) on b (b.js:2): 20', 'c (c.js:3) on b (b.js:2): 10'],
      );
      assert.deepEqual(
        s.blocking.episodes.map((e) => [e.key, e.count, Math.round(e.maxMs)]),
        [['render (/app/x.js:7)', 2, 120]],
      );
      // The first export only sets each stream's baseline (the process had started before).
      const orders = s.locks.locks.find((l) => l.lock === 'orders')!;
      assert.equal(orders.acquisitions, 220);
      assert.equal(orders.contended, 20);

      // The same database as an older stallscope left it: no agent columns, no rollups.
      await server.running.close();
      const db = new Database(server.dbPath);
      db.exec(`DROP TABLE span_rollup; DROP TABLE lock_blame_rollup; DROP TABLE lock_rollup; DROP TABLE profiles; DROP TABLE profile_stacks; DROP TABLE profile_samples; DROP TABLE profile_rollup; DROP TABLE request_breakdown; DROP TABLE route_rollup; DROP INDEX spans_server_end; DROP TABLE alert_instances; DROP TABLE alert_history; DROP INDEX spans_agent_service;
        DROP INDEX spans_agent; DROP INDEX spans_agent_key; DROP INDEX spans_agent_slow; DROP INDEX metric_points_name_time;
        ALTER TABLE spans DROP COLUMN agent_kind; ALTER TABLE spans DROP COLUMN agent_key; PRAGMA user_version = 1;`);
      db.close();
      const again = await startServer({ dbPath: server.dbPath });
      try {
        const get2 = async (path: string) => (await fetch(`${again.api}${path}`)).json();
        const upgraded = {
          lock: await get2(`/api/dash/lock?name=orders&${WINDOW}`),
          locks: await get2(`/api/dash/locks?${WINDOW}`),
          blocking: await get2(`/api/dash/blocking?${WINDOW}`),
        };
        assert.deepEqual(upgraded, ingested);
      } finally {
        await again.close();
      }
    } finally {
      await server.close().catch(() => undefined);
    }
  });
});

describe('lock rollup arithmetic', () => {
  const point = (timeMin: number, value: number, startMin: number) => ({
    name: 'stallscope.lock.acquisitions',
    description: null,
    unit: null,
    type: 'sum' as const,
    temporality: 2,
    monotonic: true,
    startNs: BigInt(startMin) * NS_PER_MINUTE,
    timeNs: BigInt(timeMin) * NS_PER_MINUTE,
    value,
    count: null,
    sum: null,
    min: null,
    max: null,
    buckets: null,
    attributes: JSON.stringify({
      'stallscope.lock.name': 'l',
      'stallscope.lock.type': 't',
      'stallscope.lock.contended': false,
    }),
    resource: 0,
    scopeName: null,
  });
  const total = (db: Database.Database) =>
    (db.prepare('SELECT data FROM lock_rollup WHERE size = 1').all() as Array<{ data: string }>).reduce(
      (a, r) => a + (JSON.parse(r.data) as { acquisitions: number }).acquisitions,
      0,
    );

  it('counts late and repeated points once, a restart in full, and a stream born after the writer from zero', () => {
    const db = new Database(':memory:');
    migrate(db);
    const rollup = new LockRollup(db, 100n * NS_PER_MINUTE);
    // Began before the writer: its first point is a baseline.
    for (const [t, v] of [
      [101, 100],
      [102, 300],
      [101, 100], // an exporter's retry of an old point
      [102, 200], // lower within the same life: late, ignored
      [103, 350],
    ] as const)
      rollup.add(point(t, v, 50), 'svc', 1);
    rollup.add(point(104, 40, 104), 'svc', 1); // restarted: all of it is new
    rollup.add(point(105, 7, 105), 'svc', 2); // another instance, born after the writer started
    rollup.flush();
    assert.equal(total(db), 250 + 40 + 7);
    db.close();
  });
});
