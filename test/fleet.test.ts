// Collectors on one PostgreSQL database, as behind a load balancer: what one receives the
// other reads exactly; ingesting at once through both loses and duplicates nothing and finds what
// one collector finds from the same data; alerting runs on one of them at a time, and is handed
// over without a second webhook when that one is killed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { eventually, getJson, queryDb, startServer, tempDir, waitForOutput, type TestServer } from './helpers';
import { sharedPostgres } from './postgres';
import type { AlertInstance, Finding, SpanView } from '../common/types';

type Attr = { key: string; value: Record<string, unknown> };
const attr = (key: string, value: string | number | boolean): Attr => ({
  key,
  value:
    typeof value === 'string'
      ? { stringValue: value }
      : typeof value === 'boolean'
        ? { boolValue: value }
        : { intValue: String(value) },
});
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0');
const NS_PER_MS = 1_000_000n;
const CLI = join(__dirname, '..', 'cli', 'main.js');

const post = (server: TestServer, path: string, body: unknown) =>
  fetch(`${server.otlp}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

const traces = (service: string, spans: unknown[]) => ({
  resourceSpans: [{ resource: { attributes: [attr('service.name', service)] }, scopeSpans: [{ spans }] }],
});

/** A webhook receiver that keeps what it was sent. */
async function startReceiver() {
  const received: Array<{ status: string; alerts: unknown[] }> = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      received.push(JSON.parse(text));
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    received,
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('collectors sharing one PostgreSQL database', { timeout: 180_000 }, () => {
  const dir = tempDir();
  const rulesFile = join(dir, 'rules.yaml');
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let url: string;
  let a: TestServer;
  let b: TestServer;
  /** The first collector, in a process of its own (to be killed): it takes the lease. */
  let first: ChildProcess;
  const open: TestServer[] = [];
  const collector = async (dbPath: string, rules = rulesFile) => {
    const s = await startServer({
      engine: 'postgres',
      dbPath,
      rulesFile: rules,
      store: { pg: { leaseIntervalMs: 200 } },
    });
    open.push(s);
    return s;
  };

  before(async () => {
    receiver = await startReceiver();
    writeFileSync(
      rulesFile,
      `interval: 1s
receivers:
  - name: hook
    url: ${receiver.url}
rules:
  - name: ledger-waits
    signal: lock-wait-total
    resource: ledger
    above: 1ms
    window: 10m
    for: 1s
    receivers: [hook]
`,
    );
    url = await (await sharedPostgres()).createDatabase();
    first = spawn(
      process.execPath,
      [CLI, 'serve', '--db', url, '--rules', rulesFile, '--otlp-port', '0', '--port', '0'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await waitForOutput(first, /collecting OTLP/);
    // Started together, as a fleet's are: the schema is made once.
    [a, b] = await Promise.all([collector(url), collector(url)]);
  });

  after(async () => {
    if (first.exitCode === null && first.signalCode === null) first.kill('SIGKILL');
    for (const s of open) await s.close().catch(() => undefined);
    await receiver?.close();
  });

  it('read back through one exactly what was posted to the other: ids, ns times, 64-bit attributes', async () => {
    const traceId = hex(0xfeed, 32);
    const start = (BigInt(Date.now()) - 1000n) * NS_PER_MS + 123_457n; // not a double
    const span = {
      traceId,
      spanId: hex(0xbeef, 16),
      name: 'GET /exact',
      kind: 2,
      startTimeUnixNano: String(start),
      endTimeUnixNano: String(start + 987_654_321n),
      attributes: [
        { key: 'big', value: { intValue: '9223372036854775807' } },
        { key: 'negative', value: { intValue: '-9007199254740993' } },
      ],
    };
    assert.equal((await post(a, '/v1/traces', traces('exact', [span]))).status, 200);
    const { status, body } = await getJson<{ spans: SpanView[] }>(`${b.api}/api/traces/${traceId}`);
    assert.equal(status, 200);
    const [s] = body.spans;
    assert.equal(s.spanId, span.spanId);
    assert.equal(s.startTimeUnixNano, String(start));
    assert.equal(s.endTimeUnixNano, String(start + 987_654_321n));
    assert.deepEqual(s.attributes, { big: '9223372036854775807', negative: '-9007199254740993' });
  });

  it('ingesting through both at once loses and duplicates nothing, and finds what one collector finds', async () => {
    const nowMs = Date.now();
    const base = BigInt(nowMs - 120_000) * NS_PER_MS;
    // 48 requests of 25 spans; every fifth a blocking episode of its own length (no ties).
    const requests = Array.from({ length: 48 }, (_, r) =>
      traces(
        'fleet',
        Array.from({ length: 25 }, (_, i) => {
          const n = r * 25 + i;
          const ms = i % 5 === 0 ? 100 + n : 1 + (n % 7);
          const startNs = base + BigInt(n) * 50n * NS_PER_MS;
          const agent =
            i % 5 === 0
              ? [
                  attr('stallscope.kind', 'loop-block'),
                  attr('stallscope.block.origin', 'app'),
                  attr('code.function.name', r % 2 ? 'render' : 'checksum'),
                  attr('code.file.path', '/srv/app.js'),
                  attr('code.line.number', r % 2 ? 12 : 40),
                ]
              : [];
          return {
            traceId: hex(r + 1, 32),
            spanId: hex(i + 1, 16),
            name: agent.length ? 'event loop blocked' : 'op',
            kind: 1,
            startTimeUnixNano: String(startNs),
            endTimeUnixNano: String(startNs + BigInt(ms) * NS_PER_MS),
            attributes: agent,
          };
        }),
      ),
    );
    // One process's lock stream: cumulative exports 5 s apart, one after another (as an exporter
    // sends them), each to the next collector in turn.
    const lock = [attr('stallscope.lock.name', 'ledger'), attr('stallscope.lock.type', 'async-mutex.Mutex')];
    const streamStart = String(base - 60_000n * NS_PER_MS);
    const exports = Array.from({ length: 12 }, (_, i) => {
      const t = String(base + BigInt(i) * 5000n * NS_PER_MS);
      const sum = (contended: boolean, per: number) => ({
        aggregationTemporality: 2,
        isMonotonic: true,
        dataPoints: [
          {
            startTimeUnixNano: streamStart,
            timeUnixNano: t,
            asInt: String(per * (i + 1)),
            attributes: [...lock, attr('stallscope.lock.contended', contended)],
          },
        ],
      });
      return {
        resourceMetrics: [
          {
            resource: { attributes: [attr('service.name', 'fleet'), attr('service.instance.id', 'p1')] },
            scopeMetrics: [
              {
                metrics: [
                  { name: 'stallscope.lock.acquisitions', sum: sum(false, 7) },
                  { name: 'stallscope.lock.acquisitions', sum: sum(true, 3) },
                  {
                    name: 'stallscope.lock.wait_time',
                    histogram: {
                      aggregationTemporality: 2,
                      dataPoints: [
                        {
                          startTimeUnixNano: streamStart,
                          timeUnixNano: t,
                          count: String(3 * (i + 1)),
                          sum: 0.012 * (i + 1),
                          explicitBounds: [0.001, 0.005, 0.01],
                          bucketCounts: ['0', String(3 * (i + 1)), '0', '0'],
                          attributes: [...lock, attr('stallscope.lock.outcome', 'granted')],
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
      };
    });

    const fleet = [a, b];
    const spansSent = requests.length * 25;
    // Four senders at once over both collectors, while the lock stream alternates between them.
    let next = 0;
    const senders = Array.from({ length: 4 }, async () => {
      for (let r = next++; r < requests.length; r = next++)
        assert.equal((await post(fleet[r % 2], '/v1/traces', requests[r])).status, 200);
    });
    const stream = (async () => {
      for (const [i, e] of exports.entries()) assert.equal((await post(fleet[i % 2], '/v1/metrics', e)).status, 200);
    })();
    await Promise.all([...senders, stream]);

    const [counts] = await queryDb<{ n: string; distinct: string }>(
      url,
      `SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS distinct FROM spans WHERE service = 'fleet'`,
    );
    assert.equal(Number(counts.n), spansSent);
    assert.equal(Number(counts.distinct), spansSent);

    // The same data, in order, through a single collector on a database of its own (no rules:
    // the webhook hears from the fleet only).
    const noRules = join(dir, 'none.yaml');
    writeFileSync(noRules, '');
    const single = await collector(await (await sharedPostgres()).createDatabase(), noRules);
    for (const r of requests) assert.equal((await post(single, '/v1/traces', r)).status, 200);
    for (const e of exports) assert.equal((await post(single, '/v1/metrics', e)).status, 200);

    const window = `from=${nowMs - 180_000}&to=${nowMs + 60_000}`;
    const read = async (s: TestServer) => ({
      findings: (await getJson<Finding[]>(`${s.api}/api/findings?service=fleet&${window}`)).body,
      locks: (await getJson(`${s.api}/api/dash/locks?service=fleet&${window}`)).body.locks,
      blocking: (await getJson(`${s.api}/api/dash/blocking?service=fleet&${window}`)).body,
    });
    const [fromA, fromB, alone] = [await read(a), await read(b), await read(single)];
    assert.ok(fromA.findings.length >= 1, JSON.stringify(fromA.findings));
    const ledger = fromA.locks.find((l: { lock: string }) => l.lock === 'ledger');
    // The first export is the stream's baseline: eleven exports' increase, whichever collector took each.
    assert.equal(ledger.acquisitions, 110);
    assert.equal(ledger.contended, 33);
    assert.deepEqual(fromA, fromB);
    assert.deepEqual(fromA, alone);
  });

  it('alerting runs on one collector at a time, and passes on without a second webhook when it is killed', async () => {
    // The first collector holds the lease: neither of the others leads.
    assert.deepEqual(await Promise.all([a, b].map((s) => s.running.collector.store.leader())), [false, false]);
    const firing = await eventually(
      async () => receiver.received.find((r) => r.status === 'firing'),
      20_000,
      'a firing notification',
    );
    assert.equal(firing.alerts.length, 1);
    // The others show the leader's state.
    for (const s of [a, b]) {
      const state = await eventually(
        async () =>
          (await getJson<{ alerts: AlertInstance[] }>(`${s.api}/api/alerts`)).body.alerts.find(
            (x) => x.rule === 'ledger-waits' && x.state === 'firing',
          ),
        10_000,
        'a follower to show the firing alert',
      );
      assert.equal(state.notifiedState, 'firing');
    }

    first.kill('SIGKILL');
    const leader = await eventually(
      async () => {
        const leads = await Promise.all([a, b].map((s) => s.running.collector.store.leader()));
        return leads.filter((l) => l).length === 1 ? [a, b][leads.indexOf(true)] : undefined;
      },
      10_000,
      'one of the others to take the lease',
    );
    // Several evaluations on the new leader: the alert is still firing, and nobody is told twice.
    const evaluated = Date.now();
    await eventually(
      async () => {
        const { body } = await getJson<{ alerts: AlertInstance[] }>(`${leader.api}/api/alerts`);
        const x = body.alerts.find((i) => i.rule === 'ledger-waits' && i.state === 'firing');
        return x && x.lastEvalMs > evaluated + 2000 ? x : undefined;
      },
      15_000,
      'evaluations on the new leader',
    );
    assert.equal(receiver.received.filter((r) => r.status === 'firing').length, 1);
  });
});
