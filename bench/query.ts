// bench/query: how fast the dashboard's API answers on a big database. Generates a database of
// BENCH_SPANS spans (5 million by default) over the last 24 hours, through the collector's own
// writer (so the rollups are what ingest makes), with the agent's metrics for two services, then
// serves it and times every dashboard call for 15 minutes, 1 hour and 24 hours, against the
// health check (the HTTP round trip alone) measured in the same run. `--engine postgres` does the
// same on PostgreSQL: on `--db postgres://...` (a database of its own, empty), or on a throwaway
// server started as the tests do (test/postgres.ts), generated through the PostgreSQL writer.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openWriteConnection } from '../db/connection';
import { migrate } from '../db/schema';
import { BatchWriter } from '../db/writer';
import { serve } from '../cli/serve';
import { parseLocation } from '../db/location';
import { openPgEngine } from '../db/pg/engine';
import { startPostgres } from '../test/postgres';
import type { MetricPointRow, RequestBreakdown, RouteCause, SpanRow, WriteBatch } from '../common/types';
import { criticalPath } from '../collector/routes/critical-path';
import { agentSpan } from '../common/agent-spans';

const SPANS = Number(process.env.BENCH_SPANS ?? 5_000_000);
const CALLS = Number(process.env.BENCH_CALLS ?? 20);
const BATCH = 5000;
const DAY_NS = 86_400_000_000_000n;
const SERVICES = ['checkout', 'catalog'];
const LOCKS = Array.from({ length: 20 }, (_, i) => (i < 10 ? `app/orders.js:${10 + i}` : `tenant:${i}`));
const FUNCTIONS = ['renderInvoice', 'hashPassword', 'parseCatalog', 'compressReport', 'buildIndex'];

const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
let seed = 42;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

/** One trace: an HTTP server span, two children, and now and then an agent span. */
function traceSpans(t: number, startNs: bigint, resource: number): SpanRow[] {
  const traceId = hex(t, 32);
  const root = hex(t * 4 + 1, 16);
  const dur = BigInt(Math.floor(5e6 + rand() * 200e6));
  const row = (
    i: number,
    name: string,
    attrs: Record<string, unknown>,
    s: bigint,
    d: bigint,
    parent: string | null,
  ): SpanRow => ({
    traceId,
    spanId: hex(t * 4 + i, 16),
    parentSpanId: parent,
    traceState: null,
    flags: 1,
    name,
    kind: i === 1 ? 2 : 1,
    startNs: s,
    endNs: s + d,
    statusCode: rand() < 0.01 ? 2 : 0,
    statusMessage: null,
    attributes: JSON.stringify(attrs),
    events: null,
    links: null,
    resource,
    scopeName: 'bench',
    scopeVersion: null,
    agent: agentSpan(attrs as never),
  });
  const route = `/api/${['orders', 'items', 'users', 'search'][t % 4]}`;
  const spans = [
    row(
      1,
      `GET ${route}`,
      { 'http.request.method': 'GET', 'http.route': route, 'http.response.status_code': 200 },
      startNs,
      dur,
      null,
    ),
    row(2, 'db query', { 'db.system': 'postgresql' }, startNs + 1000n, dur / 3n, root),
  ];
  const r = rand();
  if (r < 0.03) {
    const lock = LOCKS[Math.floor(rand() * rand() * LOCKS.length)];
    spans.push(
      row(
        3,
        'lock wait',
        {
          'stallscope.kind': 'lock-wait',
          'stallscope.lock.name': lock,
          'stallscope.lock.type': 'async-mutex.Mutex',
          'stallscope.lock.outcome': 'granted',
          'stallscope.lock.acquire_site': `app/${route.slice(5)}.js:${20 + (t % 5)}`,
          'stallscope.lock.holder_site': `app/jobs.js:${30 + (t % 3)}`,
        },
        startNs + 2000n,
        dur / 2n,
        root,
      ),
    );
  } else if (r < 0.04) {
    const fn = FUNCTIONS[t % FUNCTIONS.length];
    spans.push(
      row(
        3,
        'event loop blocked',
        {
          'stallscope.kind': 'loop-block',
          'code.function.name': fn,
          'code.file.path': `/srv/app/${fn}.js`,
          'code.line.number': 12,
          'code.stacktrace': `    at ${fn} (/srv/app/${fn}.js:12:3)`,
        },
        startNs + 3000n,
        dur / 2n,
        root,
      ),
    );
  } else if (r < 0.05) {
    spans.push(
      row(
        3,
        'fs.readFileSync',
        {
          'stallscope.kind': 'sync-call',
          'stallscope.sync.api': 'fs.readFileSync',
          'code.function.name': 'loadTemplate',
          'code.file.path': '/srv/app/views.js',
          'code.line.number': 40,
        },
        startNs + 4000n,
        dur / 4n,
        root,
      ),
    );
  } else {
    spans.push(row(3, 'cache get', { 'db.system': 'redis' }, startNs + 5000n, dur / 10n, root));
  }
  return spans;
}

/**
 * The trace's request broken down as the routes job stores it (the bench times reading
 * breakdowns, not making them): its child span's time by kind, the rest its own CPU.
 */
function breakdownOf(spans: SpanRow[]): RequestBreakdown {
  const [root, query, third] = spans;
  const ms = (x: SpanRow) => Number(x.endNs - x.startNs) / 1e6;
  const attrs = JSON.parse(third.attributes) as Record<string, string>;
  const kind = attrs['stallscope.kind'];
  const causes: RouteCause[] = [{ kind: 'outgoing-call', what: 'db query', ms: ms(query) }];
  if (kind === 'lock-wait')
    causes.push({
      kind: 'lock-wait',
      what: `lock ${attrs['stallscope.lock.name']}, held by ${attrs['stallscope.lock.holder_site']}`,
      ms: ms(third),
    });
  else if (kind === 'loop-block') causes.push({ kind: 'own-blocking', what: third.name, ms: ms(third) });
  else if (kind === 'sync-call') causes.push({ kind: 'own-sync', what: attrs['stallscope.sync.api'], ms: ms(third) });
  else causes.push({ kind: 'outgoing-call', what: third.name, ms: ms(third) });
  const total = ms(root);
  const rest = total - causes.reduce((a, c) => a + c.ms, 0);
  if (rest > 0) causes.push({ kind: 'own-cpu', what: 'its own code', ms: rest });
  return {
    traceId: root.traceId,
    spanId: root.spanId,
    service: SERVICES[root.resource],
    instance: 'bench-1',
    route: root.name,
    startNs: root.startNs,
    durationNs: root.endNs - root.startNs,
    causes,
  };
}

/** Critical paths of traces of 10,000 spans, wide (one parent) and deep (a chain): ms each. */
function criticalPathTimes(): { wide: number; deep: number } {
  const span = (id: number, parent: number | null, start: number, end: number) => ({
    spanId: `s${id}`,
    parentSpanId: parent === null ? null : `s${parent}`,
    startNs: BigInt(start),
    endNs: BigInt(end),
  });
  const wide = [span(0, null, 0, 1e7)];
  for (let i = 1; i < 10_000; i++) wide.push(span(i, 0, i * 900, i * 900 + 5000));
  const deep = [span(0, null, 0, 1e7)];
  for (let i = 1; i < 10_000; i++) deep.push(span(i, i - 1, i, 1e7 - i));
  const best = (spans: ReturnType<typeof span>[]) => {
    let min = Infinity;
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now();
      criticalPath(spans[0], spans);
      min = Math.min(min, performance.now() - t0);
    }
    return min;
  };
  return { wide: best(wide), deep: best(deep) };
}

/** The agent's metrics, one export a minute per service: loop delay, every lock, pools, canary. */
function minutePoints(minute: number, resource: number, nowNs: bigint): MetricPointRow[] {
  const time = nowNs - DAY_NS + BigInt(minute) * 60_000_000_000n;
  const start = nowNs - DAY_NS;
  const base = {
    description: null,
    unit: 's',
    startNs: start,
    timeNs: time,
    value: null,
    count: null,
    sum: null,
    min: null,
    max: null,
    buckets: null,
    resource,
    scopeName: 'stallscope',
  };
  const gauge = (name: string, value: number, attributes = '{}'): MetricPointRow => ({
    ...base,
    name,
    type: 'gauge',
    temporality: 0,
    monotonic: false,
    value,
    attributes,
  });
  const points: MetricPointRow[] = [
    gauge('nodejs.eventloop.delay.p99', 0.01 + rand() * 0.05),
    gauge('nodejs.eventloop.delay.max', 0.02 + rand() * 0.2),
    gauge('nodejs.eventloop.utilization', rand()),
  ];
  const bounds = [0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  LOCKS.forEach((lock, i) => {
    const attrs = (extra: Record<string, unknown> = {}) =>
      JSON.stringify({ 'stallscope.lock.name': lock, 'stallscope.lock.type': 'async-mutex.Mutex', ...extra });
    const n = (minute + 1) * (10 + i);
    const counts = bounds.map((_, j) => Math.floor(n / (j + 2))).concat([0]);
    const histogram = (name: string, extra: Record<string, unknown> = {}): MetricPointRow => ({
      ...base,
      name,
      type: 'histogram',
      temporality: 2,
      monotonic: true,
      count: counts.reduce((a, b) => a + b, 0),
      sum: n * 0.01,
      min: 0,
      max: 0.3,
      buckets: JSON.stringify({ bounds, counts }),
      attributes: attrs(extra),
    });
    points.push(
      {
        ...base,
        name: 'stallscope.lock.acquisitions',
        type: 'sum',
        temporality: 2,
        monotonic: true,
        unit: '{acquisition}',
        value: n * 10,
        attributes: attrs({ 'stallscope.lock.contended': false }),
      },
      {
        ...base,
        name: 'stallscope.lock.acquisitions',
        type: 'sum',
        temporality: 2,
        monotonic: true,
        unit: '{acquisition}',
        value: n,
        attributes: attrs({ 'stallscope.lock.contended': true }),
      },
      histogram('stallscope.lock.wait_time', { 'stallscope.lock.outcome': 'granted' }),
      histogram('stallscope.lock.hold_time'),
      gauge('stallscope.lock.pending_requests', Math.floor(rand() * 8), attrs()),
    );
  });
  // Two worker pools and the threadpool canary: the histograms the findings read.
  const cumulative = (name: string, n: number, attributes: string): MetricPointRow => {
    const counts = bounds.map((_, j) => Math.floor(n / (j + 2))).concat([0]);
    return {
      ...base,
      name,
      type: 'histogram',
      temporality: 2,
      monotonic: true,
      count: counts.reduce((a, b) => a + b, 0),
      sum: n * 0.02,
      min: 0,
      max: 0.5,
      buckets: JSON.stringify({ bounds, counts }),
      attributes,
    };
  };
  for (const pool of ['workers/resize.js', 'workers/pdf.js']) {
    const attrs = JSON.stringify({ 'stallscope.pool.name': pool, 'stallscope.pool.type': 'piscina' });
    points.push(
      cumulative('stallscope.pool.queue_wait', (minute + 1) * 40, attrs),
      cumulative('stallscope.pool.run_time', (minute + 1) * 40, attrs),
    );
  }
  points.push(cumulative('stallscope.threadpool.canary_wait', (minute + 1) * 120, '{}'));
  return points;
}

/** Writes groups of batches in one transaction each, as the collector's writer thread does. */
interface Sink {
  write(batch: WriteBatch): Promise<void>;
  /** Closes it; the size of what was written, in bytes. */
  close(): Promise<number>;
}

function sqliteSink(path: string): Sink {
  const db = openWriteConnection(path);
  migrate(db);
  const writer = new BatchWriter(db);
  return {
    write: async (b) => writer.write([b]),
    async close() {
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
      return statSync(path).size;
    },
  };
}

async function pgSink(url: string): Promise<Sink> {
  const location = parseLocation(url);
  if (location.engine !== 'postgres') throw new Error(`not a PostgreSQL URL: ${url}`);
  const engine = await openPgEngine(location, 0);
  return {
    write: (b) => engine.write([b]),
    async close() {
      await engine.close();
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      const { rows } = await c.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n');
      await c.end();
      return Number(rows[0].n);
    },
  };
}

async function generate(sink: Sink): Promise<{ seconds: number; bytes: number }> {
  const t0 = performance.now();
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  const traces = Math.ceil(SPANS / 3);
  const resources = SERVICES.map((service) => ({ service, attributes: JSON.stringify({ 'service.name': service }) }));
  const empty = (): WriteBatch => ({ resources, spans: [], points: [], logs: [], requests: [] });
  let batch = empty();
  for (let t = 0; t < traces; t++) {
    const start = nowNs - DAY_NS + (DAY_NS * BigInt(t)) / BigInt(traces);
    const spans = traceSpans(t, start, t % SERVICES.length);
    batch.spans.push(...spans);
    batch.requests!.push(breakdownOf(spans));
    if (batch.spans.length >= BATCH) {
      await sink.write(batch);
      batch = empty();
    }
  }
  for (let m = 0; m < 1440; m++)
    for (let r = 0; r < SERVICES.length; r++) batch.points.push(...minutePoints(m, r, nowNs));
  await sink.write(batch);
  const bytes = await sink.close();
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

async function time(url: string): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b);
}

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { engine: { type: 'string', default: 'sqlite' }, db: { type: 'string' } } });
  if (values.engine !== 'sqlite' && values.engine !== 'postgres') throw new Error('--engine: sqlite or postgres');
  const dir = mkdtempSync(join(tmpdir(), 'stallscope-bench-query-'));
  const server = values.engine === 'postgres' && !values.db ? await startPostgres({ durable: true }) : undefined;
  const path = values.engine === 'sqlite' ? join(dir, 'bench.db') : (values.db ?? (await server!.createDatabase()));
  try {
    const g = await generate(values.engine === 'sqlite' ? sqliteSink(path) : await pgSink(path));
    process.stdout.write(
      `bench/query on ${values.engine}: ${SPANS.toLocaleString()} spans over 24 h and the agent's metrics for ${SERVICES.length} services (${LOCKS.length} locks); generated through the collector's writer in ${g.seconds.toFixed(0)} s, ${(g.bytes / 2 ** 20).toFixed(0)} MiB\n`,
    );
    const running = await serve({ store: { path, retentionMs: 0 }, host: '127.0.0.1', otlpPort: 0, port: 0 });
    const api = `http://127.0.0.1:${running.dashboard.port}`;
    try {
      const base = await time(`${api}/healthz`);
      process.stdout.write(
        `baseline (health check round trip): p50 ${pct(base, 0.5).toFixed(1)} ms, p95 ${pct(base, 0.95).toFixed(1)} ms; ${CALLS} calls each, target p95 < 100 ms\n`,
      );
      let worst = 0;
      for (const since of ['15m', '1h', '24h']) {
        for (const path of [
          '/api/dash/overview',
          '/api/dash/locks',
          `/api/dash/lock?name=${encodeURIComponent(LOCKS[0])}&`,
          '/api/dash/blocking',
          `/api/dash/blocking/group?key=${encodeURIComponent('renderInvoice (/srv/app/renderInvoice.js:12)')}&`,
          '/api/dash/offload',
          '/api/dash/routes',
          `/api/dash/route?service=checkout&route=${encodeURIComponent('GET /api/orders')}&`,
          '/api/traces?kind=lock-wait&',
          '/api/traces?minDuration=150ms&',
          '/api/findings?',
          '/api/alerts/summary?',
        ]) {
          const url = `${api}${path}${/[?&]$/.test(path) ? '' : '?'}since=${since}`;
          const ms = await time(url);
          worst = Math.max(worst, pct(ms, 0.95));
          process.stdout.write(
            `  ${since.padEnd(4)} ${path.replace(/[?&]$/, '').padEnd(70)} p50 ${pct(ms, 0.5).toFixed(1).padStart(6)} ms  p95 ${pct(ms, 0.95).toFixed(1).padStart(6)} ms  (x${(pct(ms, 0.95) / pct(base, 0.95)).toFixed(1)} of the baseline)\n`,
          );
        }
      }
      process.stdout.write(`worst p95: ${worst.toFixed(1)} ms (target < 100 ms)\n`);
      const cp = criticalPathTimes();
      process.stdout.write(
        `critical path of a 10,000-span trace: wide ${cp.wide.toFixed(1)} ms, deep ${cp.deep.toFixed(1)} ms (target < 50 ms)\n`,
      );
    } finally {
      await running.close();
    }
  } finally {
    server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench/query failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
