// Findings end to end: the example services of `npm run demo`, each with the agent attached and
// driven by the demo's own load, against a real collector. Each must produce exactly its expected
// kinds of finding, naming the right function, line or resource; the healthy control none. Also
// the thresholds file (errors name the line; values take effect) and `stallscope findings`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICES, startDemo, type Demo } from '../examples/demo';
import { defaultThresholds, loadFindingsConfig, parseFindingsConfig } from '../collector/findings-config';
import { ConfigError } from '../collector/config-file';
import type { Finding } from '../common/types';
import { packageRoot } from '../common/package-root';
import { ENGINES, eventually, getJson, newDatabase, startServer, tempDir } from './helpers';
import { markLine } from './agent-apps';

const EXAMPLES = join(packageRoot(), 'examples', 'services');
const CLI = join(packageRoot(), 'dist', 'cli', 'main.js');
const line = (file: string, mark: string) => markLine(file, mark, EXAMPLES);
const MIN_LOAD_MS = 30_000;
const site = (file: string, mark: string) => `examples/services/${file}:${line(file, mark)}`;

describe('findings thresholds file', () => {
  it('overrides the defaults it names and keeps the rest', () => {
    const th = parseFindingsConfig(
      'loop-blocked:\n  min-total: 2s\n  min-count: 5\npool-queueing:\n  min-wait-to-run: 2.5\n',
      'f.yaml',
    );
    assert.equal(th['loop-blocked']['min-total'], 2000);
    assert.equal(th['loop-blocked']['min-count'], 5);
    assert.equal(th['pool-queueing']['min-wait-to-run'], 2.5);
    assert.equal(th['sync-call']['min-total'], defaultThresholds()['sync-call']['min-total']);
    // JSON is YAML too.
    assert.equal(parseFindingsConfig('{"lock-held": {"min-held": "250ms"}}', 'f.json')['lock-held']['min-held'], 250);
    assert.deepEqual(parseFindingsConfig('', 'empty.yaml'), defaultThresholds());
  });

  it('names the file, the line and the reason for every mistake', () => {
    const cases: Array<[string, RegExp]> = [
      [
        'loop-blocked:\n  min-total: 2s\nlock-hot:\n  min-p95: 1s\n',
        /^f\.yaml:3: unknown finding kind "lock-hot"; the kinds are loop-blocked, /,
      ],
      [
        'lock-contention:\n  min-p95: 20ms\n  max-p95: 1s\n',
        /^f\.yaml:3: lock-contention: unknown threshold "max-p95"; it has min-total-wait, min-p95, critical-p95$/,
      ],
      [
        'sync-call:\n\n  min-total: 200\n',
        /^f\.yaml:3: sync-call\.min-total \(time in one call site over the window\): expected a duration with a unit, e\.g\. 250ms or 2s$/,
      ],
      ['sync-call:\n  min-total: 20 parsecs\n', /^f\.yaml:2: sync-call\.min-total .*"20 parsecs" is not a duration/],
      [
        'shared-lock:\n  min-cross-share: 1.5\n',
        /^f\.yaml:2: shared-lock\.min-cross-share .*: expected a number from 0 to 1$/,
      ],
      ['loop-blocked:\n  min-count: -1\n', /^f\.yaml:2: .*expected a whole number, 0 or more$/],
      ['loop-blocked: 5\n', /^f\.yaml:1: loop-blocked: the thresholds .*: expected a mapping/],
      ['- loop-blocked\n', /^f\.yaml:1: the finding kinds.*expected a mapping/],
      ['loop-blocked:\n  min-total: 1s\n  min-total: 2s\n', /^f\.yaml:3: Map keys must be unique/],
      ['loop-blocked:\n  min-total: [1s\n', /^f\.yaml:\d: /],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseFindingsConfig(text, 'f.yaml'),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
        text,
      );
    }
    assert.throws(
      () => loadFindingsConfig('/nonexistent/findings.yaml'),
      (err: Error) =>
        err instanceof ConfigError && /^\/nonexistent\/findings\.yaml: cannot read it: ENOENT/.test(err.message),
    );
  });

  it('stops stallscope serve before it starts, naming the line', () => {
    const file = join(tempDir(), 'findings.yaml');
    writeFileSync(file, '# thresholds\nlock-held:\n  min-held: soon\n');
    const r = spawnSync(
      process.execPath,
      [CLI, 'serve', '--findings', file, '--port', '0', '--otlp-port', '0', '--db', join(tempDir(), 'x.db')],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr.trim(),
      `stallscope: ${file}:3: lock-held.min-held (how long a lock was held while others waited): "soon" is not a duration; use a number and a unit (ms, s, m, h, d, w), e.g. 15m or 7d`,
    );
  });
});

for (const engine of ENGINES)
  describe(`findings from odd agent data (${engine})`, () => {
    it('survive missing attributes, and leave out starved and runtime episodes', async () => {
      const server = await startServer({ engine });
      try {
        const now = BigInt(Date.now()) * 1_000_000n;
        const attr = (key: string, value: string | number | boolean) => ({
          key,
          value:
            typeof value === 'string'
              ? { stringValue: value }
              : typeof value === 'boolean'
                ? { boolValue: value }
                : { intValue: String(value) },
        });
        let id = 0;
        const span = (ms: number, attributes: unknown[]) => {
          id++;
          return {
            traceId: id.toString(16).padStart(32, '0'),
            spanId: id.toString(16).padStart(16, '0'),
            name: 'x',
            kind: 1,
            startTimeUnixNano: String(now - BigInt(id) * 2_000_000_000n),
            endTimeUnixNano: String(now - BigInt(id) * 2_000_000_000n + BigInt(ms) * 1_000_000n),
            attributes,
          };
        };
        const at = (fn: string, line: number) => [
          attr('code.function.name', fn),
          attr('code.file.path', '/srv/app.js'),
          attr('code.line.number', line),
        ];
        const spans = [
          // A sync call whose API is missing (an older or foreign agent).
          ...[1, 2, 3].map(() => span(300, [attr('stallscope.kind', 'sync-call'), ...at('load', 5)])),
          // Episodes while the process was starved of CPU, and ones in Node's internals only.
          ...[1, 2, 3].map(() =>
            span(600, [
              attr('stallscope.kind', 'loop-block'),
              attr('stallscope.block.starved', true),
              attr('stallscope.block.origin', 'app'),
              ...at('handler', 9),
            ]),
          ),
          ...[1, 2, 3].map(() =>
            span(600, [
              attr('stallscope.kind', 'loop-block'),
              attr('stallscope.block.origin', 'runtime'),
              ...at('processTimers', 1),
            ]),
          ),
          // Episodes with no stack at all.
          ...[1, 2, 3].map(() =>
            span(600, [attr('stallscope.kind', 'loop-block'), attr('stallscope.block.stack_captured', false)]),
          ),
        ];
        const res = await fetch(`${server.otlp}/v1/traces`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            resourceSpans: [{ resource: { attributes: [attr('service.name', 'odd')] }, scopeSpans: [{ spans }] }],
          }),
        });
        assert.equal(res.status, 200);
        const { status, body } = await getJson<Finding[]>(`${server.api}/api/findings?service=odd&since=1h`);
        assert.equal(status, 200, JSON.stringify(body));
        assert.deepEqual(
          body.map((f) => `${f.kind} ${f.location?.function}`),
          ['sync-call load'],
        );
        assert.match(body[0].detail, /^a blocking call at load \(\/srv\/app\.js:5\) ran 3 times/);
      } finally {
        await server.close();
      }
    });
  });

// The demo on each engine: its findings come from the same read model whatever stores the data.
for (const engine of ENGINES)
  describe(`findings from the example services (${engine})`, { timeout: 240_000 }, () => {
    let demo: Demo;
    const dir = tempDir();
    let dbPath = join(dir, 'demo.db');
    let startedAt = 0;
    let window = '';
    const byService = new Map<string, Finding[]>();

    before(async () => {
      dbPath = await newDatabase(engine, dir);
      startedAt = Date.now();
      demo = await startDemo({
        port: 0,
        otlpPort: 0,
        dbPath,
        // Faster exports and an earlier held-lock report than the demo's, so the test takes less time.
        env: {
          OTEL_METRIC_EXPORT_INTERVAL: '1000',
          OTEL_BSP_SCHEDULE_DELAY: '500',
          STALLSCOPE_LOCK_HELD_THRESHOLD_MS: '4000',
        },
      });
      // Until every service shows each of its expected kinds, and for at least 30 s of load, so that
      // the healthy control has had time to raise a false alarm.
      let missing: string[] = [];
      await eventually(
        async () => {
          const { body } = await getJson<Finding[]>(`${demo.dashboard}/api/findings?since=10m`);
          byService.clear();
          for (const f of body) byService.set(f.service, [...(byService.get(f.service) ?? []), f]);
          missing = SERVICES.flatMap((s) =>
            s.expected.filter((k) => !byService.get(s.name)?.some((f) => f.kind === k)).map((k) => `${s.name} ${k}`),
          );
          return missing.length === 0 && Date.now() - startedAt >= MIN_LOAD_MS ? true : undefined;
        },
        150_000,
        'every expected finding',
      ).catch((err: Error) => Promise.reject(new Error(`${err.message}; still missing: ${missing.join(', ')}`)));
      // From here on every check reads this one window, so that they agree.
      window = `from=${new Date(startedAt - 60_000).toISOString()}&to=${new Date().toISOString()}`;
      const { body } = await getJson<Finding[]>(`${demo.dashboard}/api/findings?${window}`);
      byService.clear();
      for (const f of body) byService.set(f.service, [...(byService.get(f.service) ?? []), f]);
    });

    after(async () => {
      await demo?.stop();
    });

    const only = (service: string, kind: string) => {
      const found = byService.get(service)?.filter((f) => f.kind === kind) ?? [];
      assert.ok(found.length >= 1, `${service}: no ${kind} finding`);
      return found[0];
    };

    it('gives each example service exactly its expected kinds, and the healthy control none', () => {
      for (const s of SERVICES) {
        const kinds = [...new Set((byService.get(s.name) ?? []).map((f) => f.kind))].sort();
        assert.deepEqual(kinds, [...s.expected].sort(), `${s.name}: ${JSON.stringify(byService.get(s.name), null, 1)}`);
      }
    });

    it('names the blocking function and the sync call site', () => {
      const blocked = only('catalog', 'loop-blocked');
      assert.equal(blocked.location?.function, 'rankProducts');
      assert.equal(blocked.location?.file, join(EXAMPLES, 'catalog.js'));
      assert.equal(blocked.location?.line, line('catalog.js', 'rank-loop'));
      assert.ok(blocked.impactMs >= 500 && blocked.count >= 2, JSON.stringify(blocked));

      const sync = only('catalog', 'sync-call');
      assert.equal(sync.location?.function, 'hashPassword');
      assert.equal(sync.location?.line, line('catalog.js', 'pbkdf2-sync'));
      assert.match(sync.title, /^crypto\.pbkdf2Sync /);
      assert.match(sync.detail, /Use crypto\.pbkdf2\(\)/);
    });

    it("fires the demo's alert rules into its own webhook receiver", async () => {
      await eventually(
        async () =>
          demo.alerts.some((a) => a.status === 'firing' && a.alertname === 'wallet ledger slow') ? true : undefined,
        30_000,
        'the wallet alert firing',
      );
    });

    it('tells a lock shared by unrelated code from a never-released one and from a hot one', () => {
      const shared = only('wallet', 'shared-lock');
      assert.equal(shared.resource, site('wallet.js', 'ledger-lock'));
      // Transfers wait for order numbers, or the other way round.
      assert.match(
        shared.detail,
        new RegExp(`${site('wallet.js', 'transfer-acquire')}|${site('wallet.js', 'order-acquire')}`),
      );
      assert.ok(shared.figures.crossSiteShare >= 0.3, JSON.stringify(shared.figures));

      const held = only('wallet', 'lock-held');
      assert.equal(held.resource, site('wallet.js', 'statement-lock'));
      // Reported again while it stays held: at 4 s, 8 s, 16 s...
      assert.ok(
        held.figures.heldMs >= 8000 && held.figures.waiters >= 1 && held.figures.reports >= 2,
        JSON.stringify(held.figures),
      );

      const sessions = only('sessions', 'lock-contention');
      assert.equal(sessions.resource, 'session-store');
      assert.equal(sessions.location?.line, line('sessions.js', 'session-acquire'));
      assert.ok(
        sessions.figures.waitP95Ms >= 20 && sessions.figures.waitP95Ms <= sessions.figures.waitMaxMs,
        JSON.stringify(sessions.figures),
      );

      const limiter = only('crawler', 'lock-contention');
      assert.equal(limiter.resource, site('crawler.mjs', 'fetch-limit'));
      assert.match(limiter.detail, /It is a limiter/);
    });

    it("names the Python service's blocking function, hot lock and time.sleep the same way", () => {
      const blocked = only('inventory', 'loop-blocked');
      assert.equal(blocked.location?.function, 'recount');
      assert.equal(blocked.location?.file, join(EXAMPLES, 'inventory.py'));
      assert.equal(blocked.location?.line, line('inventory.py', 'recount'));
      assert.match(blocked.detail, /ProcessPoolExecutor/);
      const lock = only('inventory', 'lock-contention');
      assert.equal(lock.resource, site('inventory.py', 'stock-lock'));
      assert.match(lock.detail, /\(asyncio\.Lock\)/);
      const sleep = only('inventory', 'sync-call');
      assert.equal(sleep.location?.function, 'write_audit');
      assert.equal(sleep.location?.line, line('inventory.py', 'audit-sleep'));
      assert.match(sleep.detail, /Use await asyncio\.sleep\(\)/);
    });

    it('names what filled the threadpool and what waited, and the pool whose tasks queue', () => {
      const pool = only('crawler', 'threadpool-saturated');
      assert.match(pool.title, /by crypto\.pbkdf2$/);
      assert.equal(pool.location?.file, join(EXAMPLES, 'crawler.mjs'));
      assert.equal(pool.location?.line, line('crawler.mjs', 'sign-page'));
      assert.match(pool.detail, /dns\.lookup \(GETADDRINFOREQWRAP\) \d/);

      const queueing = only('images', 'pool-queueing');
      assert.equal(queueing.resource, 'examples/services/resize-worker.js');
      assert.ok(queueing.figures.meanWaitMs > queueing.figures.meanRunMs, JSON.stringify(queueing.figures));
    });

    it('ranks by time lost and links to stored example traces', async () => {
      const { body } = await getJson<Finding[]>(`${demo.dashboard}/api/findings?${window}`);
      for (let i = 1; i < body.length; i++) assert.ok(body[i - 1].impactMs >= body[i].impactMs);
      for (const f of body) {
        assert.ok(f.traceIds.length >= 1, `${f.kind} ${f.service}: no example trace`);
        const { status } = await getJson(`${demo.dashboard}/api/traces/${f.traceIds[0]}`);
        assert.equal(status, 200, `${f.kind} ${f.service}: trace ${f.traceIds[0]} not stored`);
      }
      const filtered = await getJson<Finding[]>(
        `${demo.dashboard}/api/findings?${window}&service=wallet&kind=lock-held,shared-lock`,
      );
      assert.deepEqual(filtered.body.map((f) => f.kind).sort(), ['lock-held', 'shared-lock']);
      const bad = await getJson(`${demo.dashboard}/api/findings?kind=slow`);
      assert.equal(bad.status, 400);
      assert.match(bad.body.error, /^kind: "slow" is not a finding kind/);
    });

    it('prints them in a terminal and gates a pipeline with --fail-on', async () => {
      // Asynchronously: the collector answering it runs in this process.
      const cli = (...args: string[]) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          execFile(
            process.execPath,
            [CLI, 'findings', ...args],
            { encoding: 'utf8', timeout: 30_000 },
            (err, stdout, stderr) =>
              resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
          );
        });
      const ours = (...args: string[]) => cli('--url', demo.dashboard, '--since', '10m', ...args);
      const text = await ours();
      assert.equal(text.status, 0, text.stderr);
      assert.match(
        text.stdout,
        /^(WARNING|CRITICAL) +catalog +Event loop blocked in rankProducts +\[loop-blocked, [\d.]+ m?s lost\]$/m,
      );
      assert.match(
        text.stdout,
        new RegExp(`at rankProducts ${join(EXAMPLES, 'catalog.js')}:${line('catalog.js', 'rank-loop')}`),
      );
      assert.equal((await ours('--fail-on', 'warning')).status, 3);
      const json = await ours('--json', '--service', 'wallet');
      assert.deepEqual((JSON.parse(json.stdout) as Finding[]).map((f) => f.kind).sort(), ['lock-held', 'shared-lock']);
      const healthy = await ours('--service', 'healthy', '--fail-on', 'warning');
      assert.equal(healthy.status, 0);
      assert.equal(healthy.stdout, 'No findings for healthy in the last 10m.\n');
      const unreachable = await cli('--url', 'http://127.0.0.1:9');
      assert.equal(unreachable.status, 1);
      assert.match(
        unreachable.stderr,
        /^stallscope: cannot reach http:\/\/127\.0\.0\.1:9: .*is 'stallscope serve' running there\?/,
      );
    });

    it('applies thresholds from a file: raised ones silence their kind', async () => {
      await demo.stop();
      const server = await startServer({
        dbPath,
        engine,
        findingThresholds: parseFindingsConfig('loop-blocked:\n  min-total: 1h\n', 'f.yaml'),
      });
      try {
        const from = new Date(startedAt - 60_000).toISOString();
        const { body } = await getJson<Finding[]>(`${server.api}/api/findings?service=catalog&from=${from}`);
        assert.deepEqual(
          body.map((f) => f.kind),
          ['sync-call'],
        );
      } finally {
        await server.close();
      }
    });
  });
