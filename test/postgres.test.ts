// What is PostgreSQL's own: a URL that is wrong or a server that cannot be reached stops `serve`
// with one line (never the password, nor at start); collectors starting together migrate once; a
// database lost mid-run answers OTLP with 503 and Retry-After, health says so, and both recover;
// retention drops whole days of partitions.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { eventually, getJson, queryDb, startServer, waitForOutput, type TestServer } from './helpers';
import { PG_SCHEMA_VERSION } from '../db/pg/schema';
import { startPostgres, type PgServer } from './postgres';
import { partitionName } from '../db/pg/partitions';

const CLI = join(__dirname, '..', 'cli', 'main.js');
const NS_PER_DAY = 86_400_000_000_000n;
const nowNs = () => BigInt(Date.now()) * 1_000_000n;
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');

function spans(service: string, list: Array<{ id: number; startNs: bigint; name?: string }>) {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeSpans: [
          {
            spans: list.map((s) => ({
              traceId: hex(s.id, 32),
              spanId: hex(s.id, 16),
              name: s.name ?? 'op',
              kind: 1,
              startTimeUnixNano: String(s.startNs),
              endTimeUnixNano: String(s.startNs + 1000n),
            })),
          },
        ],
      },
    ],
  });
}

const post = (server: TestServer, body: string) =>
  fetch(`${server.otlp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

/** `stallscope serve` with these arguments: its exit status and what it printed. */
function serve(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, 'serve', '--otlp-port', '0', '--port', '0', ...args],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

let pg: PgServer;
before(async () => {
  pg = await startPostgres();
});
after(() => pg?.stop());

describe('serve on a database it cannot use', () => {
  it('exits 1 with one line naming host, port and reason, and never the password', async () => {
    const refused = await serve(['--db', `postgres://app:s3cr%3At@127.0.0.1:${pg.port + 1}/stallscope`]);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `stallscope: cannot connect to PostgreSQL at 127.0.0.1:${pg.port + 1} (database "stallscope", user "app"): ` +
        'connection refused (is the server running and listening on that port?)\n',
    );
    // A database that does not exist, named through STALLSCOPE_DB.
    const missing = await serve([], { STALLSCOPE_DB: `postgres://postgres:hunter2@127.0.0.1:${pg.port}/nope` });
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      new RegExp(`^stallscope: cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${pg.port} .*"nope".*does not exist`),
    );
    assert.equal(missing.stderr.split('\n').length, 2, missing.stderr);
    for (const out of [refused, missing]) assert.doesNotMatch(out.stderr + out.stdout, /s3cr|hunter2/);
  });

  it('exits 2 for a URL that names no database, or is not a URL', async () => {
    const none = await serve(['--db', 'postgres://app:pw with space@db.example:5432']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^stallscope: --db: postgres:\/\/app@db\.example:5432.*: name the database/);
    const bad = await serve(['--db', 'postgres://app:pw with space@[::1']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a valid PostgreSQL URL/);
    for (const out of [none, bad]) assert.doesNotMatch(out.stderr, /pw with space/);
  });
});

describe('serve on PostgreSQL', () => {
  it('prints the database without its password when it starts', async () => {
    const db = await pg.createDatabase();
    const withPassword = db.replace('postgres@', 'postgres:t0psecret@');
    const child = spawn(process.execPath, [CLI, 'serve', '--db', withPassword, '--otlp-port', '0', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    try {
      const [line] = await waitForOutput(child, /collecting OTLP.*\n/);
      assert.ok(line.includes(`database ${db},`), line);
      assert.doesNotMatch(line + stderr, /t0psecret/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('migrates once when several collectors start together on a new database', async () => {
    const dbPath = await pg.createDatabase();
    const servers = await Promise.all([1, 2, 3].map(() => startServer({ dbPath, engine: 'postgres' })));
    try {
      const versions = await queryDb<{ version: number }>(
        dbPath,
        'SELECT version FROM stallscope_schema ORDER BY version',
      );
      // Every migration once.
      assert.deepEqual(
        versions.map((v) => v.version),
        Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1),
      );
      // And all three write to it.
      for (const [i, s] of servers.entries())
        assert.equal((await post(s, spans('together', [{ id: 50 + i, startNs: nowNs() }]))).status, 200);
      const [n] = await queryDb<{ n: string }>(dbPath, "SELECT count(*) AS n FROM spans WHERE service = 'together'");
      assert.equal(Number(n.n), 3);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});

describe('a database lost mid-run', () => {
  it('answers 503 with Retry-After and says so in health while it is gone, and recovers when it returns', async () => {
    const server = await startServer({ dbPath: await pg.createDatabase(), engine: 'postgres' });
    try {
      assert.equal((await post(server, spans('outage', [{ id: 1, startNs: nowNs() }]))).status, 200);
      pg.down();
      try {
        const refused = await post(server, spans('outage', [{ id: 2, startNs: nowNs() }]));
        assert.equal(refused.status, 503);
        assert.ok(Number(refused.headers.get('retry-after')) >= 1);
        const health = await eventually(
          async () => {
            const h = await getJson<{ status: string; writer: { reason: string } }>(`${server.api}/healthz`);
            return h.status === 503 ? h.body : undefined;
          },
          10_000,
          'health to say the database is gone',
        );
        assert.equal(health.writer.reason, 'database unreachable');
      } finally {
        pg.up();
      }
      // The exporter's retry goes through once the database is back.
      await eventually(
        async () =>
          (await post(server, spans('outage', [{ id: 2, startNs: nowNs() }]))).status === 200 ? true : undefined,
        20_000,
        'a write to succeed again',
      );
      await eventually(
        async () => ((await fetch(`${server.api}/healthz`)).status === 200 ? true : undefined),
        20_000,
        'health to recover',
      );
      const traces = await getJson<unknown[]>(`${server.api}/api/traces?service=outage&since=1h`);
      assert.equal(traces.body.length, 2);
    } finally {
      await server.close();
    }
  });
});

describe('retention on PostgreSQL', () => {
  it('drops the partitions of whole days past the window and deletes the older rows of the rest', async () => {
    const dbPath = await pg.createDatabase();
    const server = await startServer({
      dbPath,
      engine: 'postgres',
      store: { retentionMs: 2 * 86_400_000, retentionIntervalMs: 3_600_000, retentionBatchSize: 2 },
    });
    try {
      const now = nowNs();
      const today = now / NS_PER_DAY;
      // Ten days ago is outside the partitions made (the default partition holds it).
      const ages: Array<[string, bigint]> = [
        ['ten-days', 10n * NS_PER_DAY],
        ['three-days', 3n * NS_PER_DAY],
        ['just-expired', 2n * NS_PER_DAY + 60_000_000_000n],
        ['one-day', NS_PER_DAY],
        ['now', 0n],
      ];
      const list = ages.flatMap(([name, age], i) =>
        [0, 1, 2].map((j) => ({ id: 100 * (i + 1) + j, startNs: now - age, name })),
      );
      assert.equal((await post(server, spans('retained', list))).status, 200);
      const partitions = async () =>
        (
          await queryDb<{ name: string }>(
            dbPath,
            "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'spans'::regclass",
          )
        ).map((r) => r.name);
      const threeDaysAgo = partitionName('spans', today - 3n);
      assert.ok((await partitions()).includes(threeDaysAgo), `${await partitions()}`);
      const rowsOf = async (table: string) =>
        Number((await queryDb<{ n: string }>(dbPath, `SELECT count(*) AS n FROM ${table}`))[0].n);
      assert.equal(await rowsOf('spans_default'), 3);

      const store = server.running.collector.store;
      const done = new Promise<{ spans: number }>((resolve) => {
        const off = store.onRetention((e) => {
          off();
          resolve(e.deleted);
        });
      });
      store.runRetention();
      assert.equal((await done).spans, 9);
      const left = await partitions();
      assert.ok(!left.includes(threeDaysAgo), `${left}`);
      assert.ok(left.includes(partitionName('spans', today)));
      assert.equal(await rowsOf('spans_default'), 0);
      const names = await queryDb<{ name: string }>(dbPath, 'SELECT DISTINCT name FROM spans ORDER BY name');
      assert.deepEqual(
        names.map((r) => r.name),
        ['now', 'one-day'],
      );
    } finally {
      await server.close();
    }
  });
});
