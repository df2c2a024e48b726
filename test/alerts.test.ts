// Alerts end to end: rules files (every mistake named with its line), a rule on a real lock's wait
// p95 going pending, firing and resolved as a real agent-instrumented app starts and stops
// contending, Alertmanager-shaped webhooks to a real HTTP receiver, a restart in the middle, and
// receivers that fail or hang.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAlertRules } from '../collector/alert-rules';
import { ConfigError } from '../collector/config-file';
import type { AlertInstance, AlertTransition } from '../common/types';
import { packageRoot } from '../common/package-root';
import { REGISTER, agentEnv, startApp, stop, type App } from './agent-apps';
import {
  ENGINES,
  eventually,
  getJson,
  newDatabase,
  startServer,
  tempDir,
  type Engine,
  type TestServer,
} from './helpers';

const CLI = join(packageRoot(), 'dist', 'cli', 'main.js');

interface Received {
  path: string;
  body: any;
  at: number;
}

/** A webhook receiver: records what it gets; each path answers as `behaviour` says. */
async function startReceiver(behaviour: (path: string, n: number) => 'ok' | 'fail' | 'hang' = () => 'ok') {
  const received: Received[] = [];
  const attempts = new Map<string, number>();
  const hanging: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      const path = req.url ?? '';
      const n = (attempts.get(path) ?? 0) + 1;
      attempts.set(path, n);
      const what = behaviour(path, n);
      if (what === 'hang') return void hanging.push(res);
      if (what === 'fail') return void res.writeHead(500).end('down');
      received.push({ path, body: JSON.parse(text), at: Date.now() });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    received,
    attempts,
    close: () =>
      new Promise<void>((r) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const alertsOf = async (server: TestServer) =>
  (
    await getJson<{ alerts: AlertInstance[]; history: AlertTransition[]; lastEvalMs: number }>(
      `${server.api}/api/alerts`,
    )
  ).body;

describe('alert rules file', () => {
  const good = `
interval: 5s
receivers:
  - name: ops
    url: http://127.0.0.1:9/hook
    timeout: 2s
    headers: { Authorization: Bearer x }
rules:
  - name: hot ledger
    signal: lock-wait-p95
    service: "shop*"
    resource: ledger
    above: 50ms
    window: 2m
    for: 30s
    severity: critical
    labels: { team: payments }
    annotations: { summary: "{{resource}} waits {{value}} at p95 ({{threshold}})" }
    receivers: [ops]
  - name: blocked loops
    signal: blocking-episodes
    above: 3
`;

  it('reads rules and receivers with their defaults', () => {
    const r = parseAlertRules(good, 'rules.yaml');
    assert.equal(r.intervalMs, 5000);
    assert.deepEqual(r.receivers, [
      { name: 'ops', url: 'http://127.0.0.1:9/hook', timeoutMs: 2000, headers: { Authorization: 'Bearer x' } },
    ]);
    const [hot, blocked] = r.rules;
    assert.deepEqual(
      {
        op: hot.op,
        threshold: hot.threshold,
        windowMs: hot.windowMs,
        forMs: hot.forMs,
        service: hot.service,
        resource: hot.resource,
        line: hot.line,
      },
      { op: '>', threshold: 50, windowMs: 120_000, forMs: 30_000, service: 'shop*', resource: 'ledger', line: 9 },
    );
    assert.deepEqual(
      {
        threshold: blocked.threshold,
        windowMs: blocked.windowMs,
        forMs: blocked.forMs,
        severity: blocked.severity,
        noData: blocked.noData,
        receivers: blocked.receivers,
      },
      { threshold: 3, windowMs: 300_000, forMs: 0, severity: 'warning', noData: 'ok', receivers: [] },
    );
  });

  it('names the file, the line and the reason for every mistake', () => {
    const lines = good.split('\n');
    const edit = (line: number, text: string) => [...lines.slice(0, line - 1), text, ...lines.slice(line)].join('\n');
    const cases: Array<[string, RegExp]> = [
      [
        edit(10, '    signal: lock-wait-p50'),
        /^r\.yaml:10: rule "hot ledger": unknown signal "lock-wait-p50"; use one of lock-wait-p95, /,
      ],
      [
        edit(13, '    above: 50'),
        /^r\.yaml:13: rule "hot ledger": above \(lock-wait-p95 is a duration\): expected a duration with a unit/,
      ],
      [
        edit(14, '    below: 10ms\n    window: 2m'),
        /^r\.yaml:9: rule "hot ledger": give one threshold, above or below$/,
      ],
      [edit(15, '    for: soon'), /^r\.yaml:15: rule "hot ledger": for: "soon" is not a duration/],
      [edit(16, '    severity: page'), /^r\.yaml:16: rule "hot ledger": severity "page": use warning or critical$/],
      [edit(17, '    labels: { 1team: payments }'), /^r\.yaml:17: rule "hot ledger": label name "1team"/],
      [
        edit(18, '    annotations: { summary: "{{lock}} is slow" }'),
        /^r\.yaml:18: rule "hot ledger": annotation summary quotes \{\{lock\}\}; it can quote \{\{rule\}\}, /,
      ],
      [
        edit(19, '    receivers: [pager]'),
        /^r\.yaml:19: rule "hot ledger": no receiver named "pager"; the receivers are ops$/,
      ],
      [
        edit(5, '    url: ftp://example/hook'),
        /^r\.yaml:5: receiver ops: url "ftp:\/\/example\/hook" is not an http or https URL$/,
      ],
      [
        edit(22, '    above: 3\n    resource: x'),
        /^r\.yaml:23: rule "blocked loops": blocking-episodes is per service; resource applies to /,
      ],
      [
        edit(22, '    above: many'),
        /^r\.yaml:22: rule "blocked loops": above: blocking-episodes is a count; expected a number, 0 or more$/,
      ],
      [edit(20, '  - name: hot ledger'), /^r\.yaml:20: rule "hot ledger" is defined twice$/],
      [edit(14, '    windw: 2m'), /^r\.yaml:14: rule "hot ledger": unknown setting "windw"; it takes name, signal, /],
      [edit(2, 'interval: 500ms'), /^r\.yaml:2: interval: at least 1s$/],
      [edit(11, '    service: [shop'), /^r\.yaml:\d+: /],
      ['rules:\n  - signal: finding\n    above: 1s\n', /^r\.yaml:2: rules\[0\]: needs a name$/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseAlertRules(text, 'r.yaml'),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
        `${message}`,
      );
    }
  });

  it('keeps stallscope serve from starting on a bad file, naming the line', () => {
    const dir = tempDir();
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, 'rules:\n  - name: x\n    signal: loop-delay-p99\n    above: fast\n');
    const r = spawnSync(
      process.execPath,
      [CLI, 'serve', '--rules', file, '--port', '0', '--otlp-port', '0', '--db', join(dir, 'x.db')],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^stallscope: ${file}:4: rule "x": above \\(loop-delay-p99 is a duration\\): "fast" is not a duration`,
      ),
    );
  });
});

for (const engine of ENGINES)
  describe(`alerts on a real lock (${engine})`, { timeout: 180_000 }, () => realLock(engine));

function realLock(engine: Engine): void {
  let server: TestServer;
  let app: App;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const dir = tempDir();
  let dbPath: string;
  const rulesFile = join(dir, 'rules.yaml');
  const log: string[] = [];
  let load: { stop: () => Promise<void> } | undefined;

  /** `clients` callers in a loop on the app (each request holds its lock for 100 ms). */
  const drive = (clients: number) => {
    let stopped = false;
    const loops = Array.from({ length: clients }, async () => {
      while (!stopped)
        await fetch(`http://127.0.0.1:${app.port}/`)
          .then((r) => r.text())
          .catch(() => undefined);
    });
    return {
      stop: async () => {
        stopped = true;
        await Promise.all(loops);
      },
    };
  };

  const serverAt = (otlpPort: number) => startServer({ dbPath, engine, rulesFile, otlpPort, log: (l) => log.push(l) });

  before(async () => {
    dbPath = await newDatabase(engine, dir);
    receiver = await startReceiver();
    writeFileSync(
      rulesFile,
      `interval: 1s
receivers:
  - name: hook
    url: ${receiver.url('/hook')}
rules:
  - name: ledger-slow
    signal: lock-wait-p95
    resource: "lock-app.mjs:*"
    above: 30ms
    window: 4s
    for: 2s
    severity: critical
    labels: { team: payments }
    annotations: { summary: "{{resource}} waits {{value}} at p95 ({{threshold}})" }
    receivers: [hook]
`,
    );
    server = await serverAt(0);
    app = await startApp(
      ['--import', REGISTER, 'lock-app.mjs'],
      agentEnv(server, 'ledger', { OTEL_METRIC_EXPORT_INTERVAL: '500' }),
    );
  });

  after(async () => {
    await load?.stop();
    if (app) await stop(app);
    await server?.close();
    await receiver?.close();
  });

  it('goes pending, then firing, and the receiver gets the Alertmanager payload', async () => {
    load = drive(3);
    const seen = new Set<string>();
    const firing = await eventually(
      async () => {
        const a = (await alertsOf(server)).alerts.find((x) => x.rule === 'ledger-slow');
        if (a) seen.add(a.state);
        return a?.state === 'firing' ? a : undefined;
      },
      30_000,
      'the alert to fire',
    );
    assert.ok(seen.has('pending'), `states seen: ${[...seen]}`);
    assert.ok(firing.firedAtMs! - firing.activeSinceMs >= 2000, 'fired only after holding for 2 s');
    const history = (await alertsOf(server)).history.filter((h) => h.rule === 'ledger-slow').reverse();
    assert.deepEqual(
      history.slice(0, 2).map((h) => `${h.from}->${h.to}`),
      ['inactive->pending', 'pending->firing'],
    );

    const got = await eventually(
      async () => receiver.received.find((r) => r.body.status === 'firing'),
      10_000,
      'a firing notification',
    );
    const b = got.body;
    assert.equal(b.version, '4');
    assert.equal(b.receiver, 'hook');
    assert.match(b.externalURL, /^http:\/\/127\.0\.0\.1:\d+\/alerts$/);
    assert.equal(b.alerts.length, 1);
    const alert = b.alerts[0];
    assert.deepEqual(alert.labels, {
      alertname: 'ledger-slow',
      severity: 'critical',
      service: 'ledger',
      resource: firing.labels.resource,
      team: 'payments',
    });
    assert.match(firing.labels.resource, /^lock-app\.mjs:\d+$/);
    assert.match(alert.annotations.summary, /^lock-app\.mjs:\d+ waits \d+ ms at p95 \(> 30 ms\)$/);
    assert.equal(alert.status, 'firing');
    assert.equal(alert.startsAt, new Date(firing.firedAtMs!).toISOString());
    assert.equal(alert.endsAt, '0001-01-01T00:00:00Z');
    assert.equal(alert.fingerprint, firing.fingerprint);
    assert.deepEqual(b.commonLabels, alert.labels);
    assert.ok(
      log.some((l) => /alert "ledger-slow" \{.*\} firing -> hook: delivered/.test(l)),
      log.join('\n'),
    );
  });

  it('keeps its state across a restart without notifying again', async () => {
    await eventually(
      async () =>
        (await alertsOf(server)).alerts.find((a) => a.rule === 'ledger-slow')?.notifiedState === 'firing'
          ? true
          : undefined,
      10_000,
      'the delivery to be recorded',
    );
    const before = receiver.received.length;
    const otlpPort = server.running.collector.otlpPort;
    await server.close();
    server = await serverAt(otlpPort);
    const restartedAt = Date.now();
    // Several evaluations on the restarted server, still under contention.
    await eventually(
      async () => ((await alertsOf(server)).lastEvalMs > restartedAt + 3000 ? true : undefined),
      15_000,
      'evaluations after the restart',
    );
    const a = (await alertsOf(server)).alerts.find((x) => x.rule === 'ledger-slow');
    assert.equal(a?.state, 'firing');
    assert.equal(receiver.received.length, before, 'no second notification');
  });

  it('resolves when the contention stops, and says so to the receiver', async () => {
    await load!.stop();
    // One caller at a time: the lock is still used, nobody waits.
    load = drive(1);
    const resolved = await eventually(
      async () => (await alertsOf(server)).alerts.find((a) => a.rule === 'ledger-slow' && a.state === 'resolved'),
      30_000,
      'the alert to resolve',
    );
    const got = await eventually(
      async () => receiver.received.find((r) => r.body.status === 'resolved'),
      10_000,
      'a resolved notification',
    );
    assert.equal(got.body.alerts[0].endsAt, new Date(resolved.resolvedAtMs!).toISOString());
    assert.equal(receiver.received.filter((r) => r.body.status === 'firing').length, 1);
    const out = await new Promise<string>((resolve) =>
      execFile(process.execPath, [CLI, 'alerts', '--url', server.api], { encoding: 'utf8' }, (_e, stdout) =>
        resolve(stdout),
      ),
    );
    assert.match(out, /^RESOLVED +ledger-slow +critical .*service=ledger resource=lock-app\.mjs:\d+ team=payments/m);
    assert.match(out, /ledger-slow .*pending -> firing/);
  });
}

describe('alert receivers that fail or hang', { timeout: 60_000 }, () => {
  it('retries a failing receiver, and a hanging one delays neither evaluation, ingest nor the others', async () => {
    const receiver = await startReceiver((path, n) =>
      path === '/flaky' && n <= 2 ? 'fail' : path === '/hang' ? 'hang' : 'ok',
    );
    const dir = tempDir();
    const rulesFile = join(dir, 'rules.yaml');
    // No service sends anything: a rule whose no-data policy is alerting fires at once.
    writeFileSync(
      rulesFile,
      `interval: 1s
receivers:
  - { name: flaky, url: "${receiver.url('/flaky')}" }
  - { name: hang, url: "${receiver.url('/hang')}", timeout: 20s }
  - { name: good, url: "${receiver.url('/good')}" }
rules:
  - { name: silent, signal: loop-delay-p99, service: nobody, above: 1s, no-data: alerting, receivers: [flaky, hang, good] }
`,
    );
    const log: string[] = [];
    const server = await startServer({
      dbPath: join(dir, 'a.db'),
      rulesFile,
      log: (l) => log.push(l),
      alertRetry: { maxAttempts: 5, backoffMs: 100, maxBackoffMs: 400 },
    });
    try {
      const good = await eventually(
        async () => receiver.received.find((r) => r.path === '/good'),
        10_000,
        'the good receiver',
      );
      assert.deepEqual(good.body.alerts[0].labels, { alertname: 'silent', severity: 'warning', nodata: 'true' });
      const flaky = await eventually(
        async () => receiver.received.find((r) => r.path === '/flaky'),
        10_000,
        'the flaky receiver, after retries',
      );
      assert.equal(receiver.attempts.get('/flaky'), 3);
      assert.ok(
        log.some((l) => /silent.* firing -> flaky: HTTP 500; attempt 1 of 5, retrying in 100 ms/.test(l)),
        log.join('\n'),
      );
      assert.ok(flaky.at - good.at < 5000);
      // The hanging receiver holds its request open; evaluation goes on and ingest answers.
      assert.equal(receiver.attempts.get('/hang'), 1);
      const evalBefore = (await alertsOf(server)).lastEvalMs;
      await eventually(
        async () => ((await alertsOf(server)).lastEvalMs >= evalBefore + 2000 ? true : undefined),
        10_000,
        'evaluations to go on',
      );
      const started = Date.now();
      const res = await fetch(`${server.otlp}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"resourceSpans":[]}',
      });
      assert.equal(res.status, 200);
      assert.ok(Date.now() - started < 2000);
      // One notification per receiver: the firing alert is not sent again while it waits.
      assert.equal(receiver.received.filter((r) => r.path === '/good').length, 1);
    } finally {
      await server.close();
      await receiver.close();
    }
  });

  it('validates rules edited through the API the same way, and saves good ones to the file', async () => {
    const dir = tempDir();
    const dbPath = join(dir, 'edit.db');
    const server = await startServer({ dbPath, log: () => undefined });
    try {
      const put = (text: string) =>
        fetch(`${server.api}/api/alerts/rules`, {
          method: 'PUT',
          headers: { 'content-type': 'application/yaml' },
          body: text,
        });
      const bad = await put('rules:\n  - name: x\n    signal: loop-delay-p99\n    above: 1s\n    for: later\n');
      assert.equal(bad.status, 400);
      assert.match(
        ((await bad.json()) as { error: string }).error,
        /rules\.yaml:5: rule "x": for: "later" is not a duration/,
      );
      const text = 'rules:\n  - name: slow loop\n    signal: loop-delay-p99\n    above: 200ms\n';
      const ok = await put(text);
      assert.equal(ok.status, 200);
      const file = join(dir, 'edit.rules.yaml');
      assert.equal(readFileSync(file, 'utf8'), text);
      const status = (await getJson(`${server.api}/api/alerts`)).body;
      assert.deepEqual(
        status.rules.map((r: { name: string }) => r.name),
        ['slow loop'],
      );
      assert.equal(status.text, text);
      // A cross-site form cannot send a PUT without a preflight; POST is not an endpoint.
      assert.equal((await fetch(`${server.api}/api/alerts/rules`, { method: 'POST', body: text })).status, 404);
    } finally {
      await server.close();
    }
  });
});
