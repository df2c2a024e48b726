// A TypeScript service as users ship it: compiled by tsc (external maps, run with
// --enable-source-maps), bundled by esbuild (one file, inline map, express and a package inside),
// and run by tsx (maps in memory only). With the agent attached, the blocking, sync-call and lock
// findings must name the .ts files and lines written, a package inside the bundle must be named as
// that package, and maps that cannot be used must leave the generated positions, without a crash.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2Sync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import {
  CODE_FILE,
  CODE_FUNCTION,
  CODE_GENERATED_FILE,
  CODE_GENERATED_LINE,
  CODE_LINE,
  KINDS,
  LOCK_ACQUIRE_GENERATED_SITE,
  LOCK_ACQUIRE_SITE,
  METRICS,
  SOURCEMAP_PROBLEM,
} from '../common/conventions';
import type { Finding, MetricSeries } from '../common/types';
import { packageRoot } from '../common/package-root';
import { FIXTURES, eventually, getJson, startServer, tempDir, type TestServer } from './helpers';
import {
  REGISTER,
  agentEnv,
  buildService,
  call,
  markLine,
  startApp,
  stop,
  type App,
  type SpanJson,
} from './agent-apps';

const SRC = join(FIXTURES, 'ts-service', 'src');
const BROKEN = join(FIXTURES, 'broken-maps');
const SLOW_DEPENDENCY = join(FIXTURES, 'node_modules', 'slow-dependency', 'index.js');
// The builds live in a temporary folder: their packages are found through NODE_PATH.
const NODE_PATH = [join(packageRoot(), 'node_modules'), join(FIXTURES, 'node_modules')].join(delimiter);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The agent's spans of one kind in a service, with their attributes. */
async function agentSpans(server: TestServer, service: string, kind: string, fn: string): Promise<SpanJson[]> {
  const { body } = await getJson(
    `${server.api}/api/traces?service=${service}&kind=${kind}&attribute=${CODE_FUNCTION}=${fn}`,
  );
  const spans: SpanJson[] = [];
  for (const t of body as Array<{ traceId: string }>) {
    const { body: trace } = await getJson(`${server.api}/api/traces/${t.traceId}`);
    spans.push(...(trace.spans as SpanJson[]).filter((s) => s.attributes[CODE_FUNCTION] === fn));
  }
  return spans;
}

describe('agent on a TypeScript service', { timeout: 240_000 }, () => {
  let server: TestServer;
  let built: { dist: string; bundle: string };
  /** pbkdf2 iterations for a sync call of about 120 ms here. */
  let iterations = 0;

  before(async () => {
    built = buildService(tempDir('stallscope-ts-'));
    const t0 = performance.now();
    pbkdf2Sync('secret', 'salt', 20_000, 32, 'sha256');
    iterations = Math.round((20_000 * 120) / (performance.now() - t0));
    server = await startServer();
  });
  after(async () => {
    await server?.close();
  });

  async function drive(app: App): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await call(app, '/busy?ms=250');
      await sleep(100);
    }
    for (let i = 0; i < 3; i++) await call(app, `/hash?iterations=${iterations}`);
    // Four at once on one lock held 250 ms: three wait each time.
    for (let i = 0; i < 2; i++) await Promise.all([1, 2, 3, 4].map(() => call(app, '/credit?ms=250')));
    for (let i = 0; i < 3; i++) {
      await call(app, '/later?ms=250');
      await sleep(400);
    }
  }

  const cases: Array<{ what: string; service: string; args: () => string[]; generated: () => [string, number?] }> = [
    {
      what: 'compiled by tsc, run with --enable-source-maps',
      service: 'ts-tsc',
      args: () => ['--enable-source-maps', '--require', REGISTER, join(built.dist, 'server.js')],
      generated: () => {
        const file = join(built.dist, 'rank.js');
        return [
          file,
          readFileSync(file, 'utf8')
            .split('\n')
            .findIndex((l) => l.includes('MARK:spin')) + 1,
        ];
      },
    },
    {
      what: 'bundled by esbuild with an inline map and its dependencies inside',
      service: 'ts-bundle',
      args: () => ['--require', REGISTER, built.bundle],
      generated: () => {
        // esbuild drops comments: the loop is the first one after the function's start.
        const lines = readFileSync(built.bundle, 'utf8').split('\n');
        const fn = lines.findIndex((l) => l.includes('function rankRows('));
        return [built.bundle, lines.findIndex((l, i) => i > fn && l.includes('while (')) + 1];
      },
    },
    {
      what: 'run by tsx, its maps in memory only',
      service: 'ts-tsx',
      args: () => ['--require', REGISTER, '--import', 'tsx', join(SRC, 'server.ts')],
      generated: () => [join(SRC, 'rank.ts')],
    },
  ];

  for (const c of cases) {
    it(`${c.what}: findings name the .ts lines`, async () => {
      const app = await startApp(c.args(), agentEnv(server, c.service, { NODE_PATH }));
      try {
        await drive(app);
        const wanted = ['loop-blocked', 'sync-call', 'lock-contention'];
        const findings = await eventually(
          async () => {
            const { body } = await getJson<Finding[]>(`${server.api}/api/findings?service=${c.service}`);
            const blocked = body.filter((f) => f.kind === 'loop-blocked').map((f) => f.location?.file);
            return wanted.every((k) => body.some((f) => f.kind === k)) &&
              blocked.includes(SLOW_DEPENDENCY) &&
              blocked.includes(join(SRC, 'rank.ts'))
              ? body
              : undefined;
          },
          30_000,
          `the findings of ${c.service}`,
        );
        const one = (kind: string, file: string) => {
          const f = findings.find((x) => x.kind === kind && x.location?.file === file);
          assert.ok(f, `${kind} in ${file}: ${JSON.stringify(findings, null, 1)}`);
          return f;
        };
        const spin = markLine('ts-service/src/rank.ts', 'spin');
        assert.deepEqual(one('loop-blocked', join(SRC, 'rank.ts')).location, {
          function: 'rankRows',
          file: join(SRC, 'rank.ts'),
          line: spin,
        });
        assert.equal(
          one('sync-call', join(SRC, 'server.ts')).location?.line,
          markLine('ts-service/src/server.ts', 'hash'),
        );
        const lock = one('lock-contention', join(SRC, 'server.ts'));
        assert.equal(lock.location?.line, markLine('ts-service/src/server.ts', 'acquire'));
        assert.equal(lock.resource, `ts-service/src/server.ts:${markLine('ts-service/src/server.ts', 'lock')}`);
        // The package's own function with nothing of the service on the stack, inside the bundle too.
        const dependency = one('loop-blocked', SLOW_DEPENDENCY);
        assert.match(dependency.title, /\(slow-dependency\)$/);

        // The generated position travels alongside the source one.
        const [block] = await agentSpans(server, c.service, KINDS.loopBlock, 'rankRows');
        assert.equal(block.attributes[CODE_LINE], spin);
        const [file, line] = c.generated();
        assert.equal(block.attributes[CODE_GENERATED_FILE], file);
        if (line !== undefined) assert.equal(block.attributes[CODE_GENERATED_LINE], line);
        else assert.notEqual(block.attributes[CODE_GENERATED_LINE], spin);
        const [wait] = await agentSpans(server, c.service, KINDS.lockWait, 'credit');
        assert.equal(
          wait.attributes[LOCK_ACQUIRE_SITE],
          lock.location && `credit (ts-service/src/server.ts:${lock.location.line})`,
        );
        assert.match(String(wait.attributes[LOCK_ACQUIRE_GENERATED_SITE]), /:\d+$/);
        assert.doesNotMatch(app.stderr(), /stallscope:/, 'no warnings for usable maps');
      } finally {
        await stop(app);
      }
    });
  }

  it('maps with the watchdog off (its thread then only reads maps), and not at all with STALLSCOPE_SOURCE_MAPS=false', async () => {
    const runs: Array<[string, Record<string, string>, string]> = [
      ['ts-no-watchdog', { STALLSCOPE_WATCHDOG: 'false' }, join(SRC, 'server.ts')],
      ['ts-no-maps', { STALLSCOPE_SOURCE_MAPS: 'false' }, join(built.dist, 'server.js')],
    ];
    for (const [service, env, file] of runs) {
      const app = await startApp(
        ['--require', REGISTER, join(built.dist, 'server.js')],
        agentEnv(server, service, { NODE_PATH, ...env }),
      );
      try {
        const [sync] = await eventually(
          async () => {
            await call(app, `/hash?iterations=${iterations}`);
            await sleep(300);
            const spans = await agentSpans(server, service, KINDS.syncCall, 'hashPassword');
            return spans.length ? spans : undefined;
          },
          10_000,
          `a sync call in ${service}`,
        );
        assert.equal(sync.attributes[CODE_FILE], file, service);
        assert.equal(sync.attributes[CODE_GENERATED_FILE] === undefined, service === 'ts-no-maps', service);
        if (service === 'ts-no-watchdog') {
          const { body } = await getJson(`${server.api}/api/traces?service=${service}&kind=${KINDS.loopBlock}`);
          assert.deepEqual(body, [], 'no blocking episodes without the watchdog');
        }
      } finally {
        await stop(app);
      }
    }
  });

  it('reports generated positions where a map is missing, garbage or covers nothing, and counts each map once', async () => {
    const app = await startApp(['--require', REGISTER, 'broken-maps/app.js'], agentEnv(server, 'broken-maps'));
    try {
      for (const who of ['nowhere', 'garbage', 'invalid', 'inline', 'uncovered']) {
        const fn = `spin_${who}`;
        const [block] = await eventually(
          async () => {
            await call(app, `/?who=${who}&ms=200`);
            await sleep(500);
            const spans = await agentSpans(server, 'broken-maps', KINDS.loopBlock, fn);
            return spans.length ? spans : undefined;
          },
          20_000,
          `an episode in ${fn}`,
        );
        assert.equal(block.attributes[CODE_FILE], join(BROKEN, `${who}.js`), who);
        assert.equal(block.attributes[CODE_LINE], markLine(`broken-maps/${who}.js`, 'spin'), who);
        assert.equal(block.attributes[CODE_GENERATED_FILE], undefined, who);
      }
      assert.equal((await call(app, '/?who=none')).body, 'no such module', 'the app goes on serving');
      // One warning per kind of problem, naming the first file.
      const warnings = app.stderr().match(/stallscope: the source map of .* cannot be used .*/g) ?? [];
      assert.deepEqual(
        warnings.map((w) => w.replace(/ \(.*\)/, '')),
        [
          `stallscope: the source map of ${join(BROKEN, 'nowhere.js')} cannot be used; its generated positions are reported`,
          `stallscope: the source map of ${join(BROKEN, 'garbage.js')} cannot be used; its generated positions are reported`,
        ],
      );
      const counts = await eventually(
        async () => {
          const { body } = await getJson(
            `${server.api}/api/metrics?name=${METRICS.sourceMapsUnusable}&service=broken-maps`,
          );
          const byProblem: Record<string, number> = {};
          for (const s of body.series as MetricSeries[])
            byProblem[String(s.attributes[SOURCEMAP_PROBLEM])] = s.steps.reduce((n, x) => n + (x.increase ?? 0), 0);
          return byProblem.missing === 1 && byProblem.invalid === 3 ? byProblem : undefined;
        },
        10_000,
        'unusable maps counted',
      );
      assert.deepEqual(counts, { missing: 1, invalid: 3 });
    } finally {
      await stop(app);
    }
  });
});
