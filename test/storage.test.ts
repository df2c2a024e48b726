// Storage guarantees: acknowledged spans survive SIGKILL, retention deletes exactly what is
// older than the window, a full write queue answers 503 with Retry-After (and health says so).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { getJson, startServer, tempDir, waitForOutput } from './helpers';

const CLI = join(__dirname, '..', 'cli', 'main.js');
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');

function request(
  spans: Array<{ traceId: string; spanId: string; startNs: bigint; name?: string }>,
  service = 'storage',
) {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeSpans: [
          {
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              name: s.name ?? 'op',
              kind: 1,
              startTimeUnixNano: s.startNs.toString(),
              endTimeUnixNano: (s.startNs + 1000n).toString(),
              attributes: [{ key: 'payload', value: { stringValue: 'x'.repeat(200) } }],
            })),
          },
        ],
      },
    ],
  });
}

function post(otlp: string, body: string) {
  return fetch(`${otlp}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
}

const nowNs = () => BigInt(Date.now()) * 1_000_000n;

describe('durability', () => {
  it('keeps every acknowledged span after the collector is killed with SIGKILL mid-stream', async () => {
    const dir = tempDir();
    const dbPath = join(dir, 'kill.db');
    const child = spawn(process.execPath, [CLI, 'serve', '--db', dbPath, '--otlp-port', '0', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const otlp = (await waitForOutput(child, /collecting OTLP on (http:\/\/[\d.:]+)/))[1];
    const acked: string[] = [];
    let sent = 0;
    let inFlight = 0;
    let stop = false;
    const client = async (c: number) => {
      for (let r = 0; !stop; r++) {
        const spans = Array.from({ length: 50 }, (_, i) => ({
          traceId: hex(c * 1_000_000 + r + 1, 32),
          spanId: hex(i + 1, 16),
          startNs: nowNs(),
        }));
        sent += spans.length;
        inFlight++;
        try {
          const res = await post(otlp, request(spans));
          await res.arrayBuffer();
          if (res.status === 200) acked.push(...spans.map((s) => s.traceId + s.spanId));
        } catch {
          return; // the connection died with the process
        } finally {
          inFlight--;
        }
      }
    };
    const clients = [0, 1, 2, 3].map(client);
    await new Promise((r) => setTimeout(r, 1500));
    const inFlightAtKill = inFlight;
    child.kill('SIGKILL');
    stop = true;
    await Promise.all(clients);
    assert.ok(acked.length > 1000, `only ${acked.length} spans were acknowledged before the kill`);
    assert.ok(inFlightAtKill > 0, 'no export was in flight when the process died');
    assert.ok(sent >= acked.length);

    // Restart on the same file (recovering the WAL), then check every acknowledged span.
    const server = await startServer({ dbPath });
    try {
      const db = new Database(dbPath, { readonly: true });
      const stored = new Set(db.prepare('SELECT trace_id || span_id AS id FROM spans').pluck().all() as string[]);
      db.close();
      const missing = acked.filter((id) => !stored.has(id));
      assert.equal(missing.length, 0, `${missing.length} of ${acked.length} acknowledged spans were lost`);
      const services = await getJson(`${server.api}/api/services`);
      assert.equal(services.body[0].service, 'storage');
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('retention', () => {
  it('deletes exactly the spans, points and logs older than the window, in small batches', async () => {
    const day = 86_400_000_000_000n;
    const minute = 60_000_000_000n;
    const server = await startServer({
      store: { retentionMs: 7 * 86_400_000, retentionIntervalMs: 3_600_000, retentionBatchSize: 3 },
    });
    try {
      const now = nowNs();
      const ages: Array<[string, bigint]> = [
        ['ancient', 30n * day],
        ['eight-days', 8n * day],
        ['just-expired', 7n * day + minute],
        ['just-kept', 7n * day - minute],
        ['recent', minute],
      ];
      const spans = ages.flatMap(([name, age], i) =>
        // Several spans per age so that the 3-row batches have to repeat.
        Array.from({ length: 4 }, (_, j) => ({
          traceId: hex(1000 + i, 32),
          spanId: hex(j + 1, 16),
          startNs: now - age,
          name,
        })),
      );
      assert.equal((await post(server.otlp, request(spans, 'retained'))).status, 200);
      const points = JSON.stringify({
        resourceMetrics: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'retained' } }] },
            scopeMetrics: [
              {
                metrics: [
                  {
                    name: 'loop.lag',
                    gauge: {
                      dataPoints: ages.map(([, age]) => ({ timeUnixNano: (now - age).toString(), asDouble: 1.5 })),
                    },
                  },
                ],
              },
            ],
          },
        ],
      });
      const mres = await fetch(`${server.otlp}/v1/metrics`, {
        method: 'POST',
        body: points,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(mres.status, 200);

      const store = server.running.collector.store;
      const done = new Promise<{ spans: number; points: number }>((resolve) => {
        const off = store.onRetention((e) => {
          off();
          resolve(e.deleted);
        });
      });
      store.runRetention();
      const deleted = await done;
      assert.equal(deleted.spans, 12);
      assert.equal(deleted.points, 3);

      const db = new Database(server.dbPath, { readonly: true });
      const left = db.prepare('SELECT DISTINCT name FROM spans ORDER BY name').pluck().all();
      const pointsLeft = db.prepare('SELECT count(*) FROM metric_points').pluck().get();
      db.close();
      assert.deepEqual(left, ['just-kept', 'recent']);
      assert.equal(pointsLeft, 2);
    } finally {
      await server.close();
    }
  });
});

describe('metric series', () => {
  it('differences each instance of a service on its own and adds the increases up', async () => {
    const server = await startServer();
    try {
      const start = nowNs() - 60_000_000_000n;
      const instance = (id: string, values: number[]) => ({
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'replicated' } },
            { key: 'service.instance.id', value: { stringValue: id } },
          ],
        },
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'requests',
                sum: {
                  aggregationTemporality: 2,
                  isMonotonic: true,
                  dataPoints: values.map((v, i) => ({
                    startTimeUnixNano: start.toString(),
                    timeUnixNano: (start + BigInt(i + 1) * 1_000_000_000n).toString(),
                    asInt: String(v),
                  })),
                },
              },
            ],
          },
        ],
      });
      // Interleaved in one request, as two replicas' exports land side by side.
      const body = JSON.stringify({
        resourceMetrics: [instance('a', [1000, 1010, 1020]), instance('b', [50, 55, 60])],
      });
      const res = await fetch(`${server.otlp}/v1/metrics`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 200);
      const from = Number(start / 1_000_000n) - 1000;
      const m = await getJson(
        `${server.api}/api/metrics?name=requests&service=replicated&from=${from}&to=${from + 120_000}&step=1h`,
      );
      const increase = m.body.series
        .flatMap((s: { steps: Array<{ increase?: number }> }) => s.steps)
        .reduce((a: number, s: { increase?: number }) => a + (s.increase ?? 0), 0);
      // Started inside the window, so each counter's whole value counts: 1020 + 60.
      assert.equal(increase, 1080);
    } finally {
      await server.close();
    }
  });
});

describe('backpressure', () => {
  it('answers 503 with Retry-After while the write queue is full, then commits what it queued', async () => {
    const server = await startServer({ store: { maxQueuedRows: 10 } });
    // Another connection holds the write lock, so the writer thread cannot commit.
    const blocker = new Database(server.dbPath);
    blocker.exec('BEGIN IMMEDIATE');
    try {
      const batch = (n: number) =>
        request(
          Array.from({ length: 5 }, (_, i) => ({
            traceId: hex(5000 + n, 32),
            spanId: hex(i + 1, 16),
            startNs: nowNs(),
          })),
        );
      const first = post(server.otlp, batch(1));
      const second = post(server.otlp, batch(2));
      await new Promise((r) => setTimeout(r, 200));
      const third = await post(server.otlp, batch(3));
      assert.equal(third.status, 503);
      assert.equal(third.headers.get('retry-after'), '1');
      assert.match(((await third.json()) as { message: string }).message, /write queue is full/);
      // Health says ingest is being refused, and why.
      const health = await fetch(`${server.api}/healthz`);
      assert.equal(health.status, 503);
      const h = (await health.json()) as { status: string; writer: { reason: string }; reasons: string[] };
      assert.equal(h.status, 'degraded');
      assert.equal(h.writer.reason, 'backlog over the limit');
      assert.match(h.reasons[0], /^backlog over the limit: the write queue is full \(10 rows waiting/);
      blocker.exec('COMMIT');
      assert.equal((await first).status, 200);
      assert.equal((await second).status, 200);
      assert.equal((await post(server.otlp, batch(3))).status, 200);
      const traces = await getJson(`${server.api}/api/traces?service=storage&limit=10`);
      assert.equal(traces.body.length, 3);
    } finally {
      if (blocker.inTransaction) blocker.exec('ROLLBACK');
      blocker.close();
      await server.close();
    }
  });
});
