// bench/ingest: OTLP/HTTP ingest rate of the collector (protobuf and JSON) against the raw
// better-sqlite3 insert rate of the same rows into the same schema, then the same on PostgreSQL
// (one collector, and two collectors on one database) against the raw rate of the engine's own
// writer (COPY) into the same tables, all measured in one run. The collectors run in their own
// processes (as `stallscope serve`); the clients run here over loopback with keep-alive, and a
// request counts only once its 200 came back, which the collector sends after the commit.
// PostgreSQL: `--db postgres://user@host:port/db` names a server on which the bench may create
// (and drops) databases of its own; without it a throwaway server is started as the tests do
// (test/postgres.ts), with fsync on.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { TraceRequest } from '../collector/otlp/proto';
import { normalizeTraces } from '../collector/otlp/normalize';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openWriteConnection } from '../db/connection';
import { BatchWriter } from '../db/writer';
import { parseLocation } from '../db/location';
import { openPgEngine } from '../db/pg/engine';
import { startPostgres, type PgServer } from '../test/postgres';

const SPANS_PER_REQUEST = Number(process.env.BENCH_SPANS_PER_REQUEST ?? 512);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 400);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const CLI = join(__dirname, '..', 'cli', 'main.js');

const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');

/** A request body in OTLP's JSON shape (ids in hex): realistic HTTP server/client spans. */
function jsonRequest(r: number): Record<string, unknown> {
  const base = BigInt(Date.now()) * 1_000_000n;
  const spans = [];
  for (let i = 0; i < SPANS_PER_REQUEST; i++) {
    const trace = Math.floor(i / 8);
    const start = base + BigInt(i) * 1000n;
    spans.push({
      traceId: hex(r, 16) + hex(trace + 1, 16),
      spanId: hex(r * 100_000 + i + 1, 16),
      parentSpanId: i % 8 === 0 ? '' : hex(r * 100_000 + i - (i % 8) + 1, 16),
      name: i % 8 === 0 ? 'GET /api/orders/:id' : 'SELECT orders',
      kind: i % 8 === 0 ? 2 : 3,
      startTimeUnixNano: start.toString(),
      endTimeUnixNano: (start + 2_345_678n).toString(),
      attributes: [
        { key: 'http.request.method', value: { stringValue: 'GET' } },
        { key: 'http.route', value: { stringValue: '/api/orders/:id' } },
        { key: 'url.path', value: { stringValue: `/api/orders/${r * 1000 + i}` } },
        { key: 'http.response.status_code', value: { intValue: 200 } },
        { key: 'server.address', value: { stringValue: 'orders.internal' } },
        { key: 'network.peer.port', value: { intValue: 54_000 + (i % 100) } },
        { key: 'db.system', value: { stringValue: 'postgresql' } },
        { key: 'stallscope.sample', value: { doubleValue: i / 3 } },
      ],
      status: { code: i % 50 === 0 ? 2 : 0 },
    });
  }
  return {
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'bench-orders' } },
            { key: 'service.version', value: { stringValue: '1.4.2' } },
            { key: 'host.name', value: { stringValue: 'bench-host' } },
          ],
        },
        scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http', version: '0.219.0' }, spans }],
      },
    ],
  };
}

/** The same request for protobuf: protobufjs wants ids as bytes and times as decimal strings. */
function toProtobuf(req: Record<string, unknown>): Buffer {
  const copy = JSON.parse(JSON.stringify(req), (key, value) =>
    (key === 'traceId' || key === 'spanId' || key === 'parentSpanId') && typeof value === 'string'
      ? Buffer.from(value, 'hex')
      : value,
  );
  return Buffer.from(TraceRequest.encode(TraceRequest.fromObject(copy)).finish());
}

interface RunResult {
  spansPerSec: number;
  p50: number;
  p99: number;
  refused: number;
}

async function startCollector(dbPath: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--db', dbPath, '--otlp-port', '0', '--port', '0', '--retention', '0'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /collecting OTLP on http:\/\/[\d.]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`collector exited (${code})`)));
  });
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Sends REQUESTS bodies, the i-th to ports[i % ports.length] (a load balancer's round robin). */
async function load(ports: number[], bodies: Buffer[], contentType: string): Promise<RunResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  let next = 0;
  let refused = 0;
  let acked = 0;
  const send = (body: Buffer, port: number) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/traces',
          method: 'POST',
          agent,
          headers: { 'content-type': contentType, 'content-length': body.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const worker = async () => {
    while (next < REQUESTS) {
      const n = next++;
      const body = bodies[n % bodies.length];
      const t0 = process.hrtime.bigint();
      const status = await send(body, ports[n % ports.length]);
      if (status === 200) {
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        acked += SPANS_PER_REQUEST;
      } else {
        refused++;
        next--; // a refused request is retried, as an exporter would
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return { spansPerSec: acked / seconds, p50: q(0.5), p99: q(0.99), refused };
}

function rawInsertRate(dbPath: string, requests: Record<string, unknown>[]): number {
  const db = openWriteConnection(dbPath);
  const writer = new BatchWriter(db);
  const batches = requests.map((r) => normalizeTraces(r, 'json').batch);
  let rows = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const b = batches[i % batches.length];
    writer.write([b]);
    rows += b.spans.length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  return rows / seconds;
}

/** The engine's own writer (COPY, the rollups, one transaction per request), without HTTP or decoding. */
async function rawPgRate(url: string, requests: Record<string, unknown>[]): Promise<number> {
  const location = parseLocation(url);
  if (location.engine !== 'postgres') throw new Error(`not a PostgreSQL URL: ${url}`);
  const engine = await openPgEngine(location, 0);
  const batches = requests.map((r) => normalizeTraces(r, 'json').batch);
  let rows = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const b = batches[i % batches.length];
    await engine.write([b]);
    rows += b.spans.length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await engine.close();
  return rows / seconds;
}

/** Fresh databases on a PostgreSQL server: on the throwaway one, or made (and dropped) on `--db`'s. */
async function pgDatabases(given: string | undefined): Promise<{ create(): Promise<string>; close(): Promise<void> }> {
  if (!given) {
    const server: PgServer = await startPostgres({ durable: true });
    return { create: () => server.createDatabase(), close: async () => server.stop() };
  }
  const admin = new pg.Client({ connectionString: given });
  await admin.connect();
  const made: string[] = [];
  return {
    async create() {
      const name = `stallscope_bench_${process.pid}_${made.length + 1}`;
      await admin.query(`CREATE DATABASE ${name}`);
      made.push(name);
      const url = new URL(given);
      url.pathname = `/${name}`;
      return url.href;
    },
    async close() {
      for (const name of made) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { db: { type: 'string' } } });
  const dir = mkdtempSync(join(tmpdir(), 'stallscope-bench-'));
  try {
    process.stdout.write(
      `bench/ingest: ${REQUESTS} requests x ${SPANS_PER_REQUEST} spans, ${CONCURRENCY} concurrent clients, 2 cores\n`,
    );
    const distinct = Math.min(REQUESTS, 100);
    const jsonBodies = Array.from({ length: distinct }, (_, r) => jsonRequest(r + 1));
    const protoBodies = jsonBodies.map(toProtobuf);
    const jsonBuffers = jsonBodies.map((b) => Buffer.from(JSON.stringify(b)));

    const raw = rawInsertRate(join(dir, 'raw.db'), jsonBodies);

    const results: Array<[string, RunResult]> = [];
    for (const [name, bodies, type] of [
      ['protobuf', protoBodies, 'application/x-protobuf'],
      ['json', jsonBuffers, 'application/json'],
    ] as const) {
      const collector = await startCollector(join(dir, `${name}.db`));
      try {
        await load([collector.port], bodies.slice(0, 4), type); // warm-up: JIT and page cache
        results.push([name, await load([collector.port], bodies, type)]);
      } finally {
        await collector.stop();
      }
    }

    // PostgreSQL: the raw writer, then one and two collectors (protobuf) on fresh databases.
    let pgResults: { raw: number; runs: Array<[number, RunResult]> } | undefined;
    let databases: Awaited<ReturnType<typeof pgDatabases>> | undefined;
    try {
      databases = await pgDatabases(values.db);
    } catch (err) {
      process.stdout.write(`PostgreSQL skipped: ${(err as Error).message}\n`);
    }
    if (databases) {
      try {
        const raw = await rawPgRate(await databases.create(), jsonBodies);
        const runs: Array<[number, RunResult]> = [];
        for (const n of [1, 2]) {
          const url = await databases.create();
          const collectors = await Promise.all(Array.from({ length: n }, () => startCollector(url)));
          try {
            const ports = collectors.map((c) => c.port);
            await load(ports, protoBodies.slice(0, 4), 'application/x-protobuf');
            runs.push([n, await load(ports, protoBodies, 'application/x-protobuf')]);
          } finally {
            await Promise.all(collectors.map((c) => c.stop()));
          }
        }
        pgResults = { raw, runs };
      } finally {
        await databases.close();
      }
    }

    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    process.stdout.write(
      `raw better-sqlite3 insert (same rows, same schema, 1 transaction per request): ${fmt(raw)} spans/s\n`,
    );
    for (const [name, r] of results) {
      process.stdout.write(
        `OTLP/HTTP ${name.padEnd(8)} ${fmt(r.spansPerSec).padStart(9)} spans/s  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  ` +
          `ratio to raw ${(r.spansPerSec / raw).toFixed(2)}  refused ${r.refused}\n`,
      );
    }
    const proto = results[0][1];
    process.stdout.write(
      `targets: protobuf >= 60,000 spans/s: ${proto.spansPerSec >= 60_000 ? 'met' : 'MISSED'}; ` +
        `>= 40% of raw: ${proto.spansPerSec / raw >= 0.4 ? 'met' : 'MISSED'}\n`,
    );
    if (pgResults) {
      process.stdout.write(
        `raw PostgreSQL write (the engine's writer: COPY and rollups, same rows, 1 transaction per request): ${fmt(pgResults.raw)} spans/s\n`,
      );
      for (const [n, r] of pgResults.runs)
        process.stdout.write(
          `OTLP/HTTP protobuf on PostgreSQL, ${n} collector${n > 1 ? 's' : ' '} ${fmt(r.spansPerSec).padStart(9)} spans/s  ` +
            `p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  ratio to raw ${(r.spansPerSec / pgResults.raw).toFixed(2)}  ` +
            `refused ${r.refused}\n`,
        );
      const one = pgResults.runs[0][1];
      process.stdout.write(
        `PostgreSQL against SQLite (protobuf, 1 collector): ${(one.spansPerSec / proto.spansPerSec).toFixed(2)}; ` +
          `target >= 0.5 of the raw PostgreSQL write: ${one.spansPerSec / pgResults.raw >= 0.5 ? 'met' : 'MISSED'}\n`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench/ingest failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
