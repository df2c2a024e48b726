// End to end: real services started with the agent flag send to a real collector; the tests
// read the blocking and sync-call spans back through the query API.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { FIXTURES, eventually, getJson, startServer, waitForOutput, type TestServer } from './helpers';
import {
  REGISTER,
  agentEnv,
  call,
  markLine,
  startApp,
  stop,
  traceWith,
  withAgentApp,
  type App,
  type SpanJson,
} from './agent-apps';
import { packageRoot } from '../common/package-root';
import {
  BLOCK_ORIGIN,
  CODE_FILE,
  CODE_FUNCTION,
  CODE_LINE,
  KIND,
  LOCK_ACQUIRE_SITE,
  LOCK_HOLDER_SPAN,
  LOCK_HOLDER_TRACE,
  LOCK_NAME,
  LOCK_TYPE,
  POOL_NAME,
  POOL_QUEUE_WAIT_MS,
  POOL_TASK,
  POOL_TYPE,
  SPAN_NAMES,
  SYNC_API,
  SYNC_BYTES,
  THREADPOOL_OP,
} from '../common/conventions';

/** Asserts the span descends from the request's SERVER span, itself the child of the test's parent. */
function assertInRequest(spans: SpanJson[], span: SpanJson, parentId: string): void {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  let cur: SpanJson | undefined = span;
  const chain: string[] = [];
  while (cur && cur.kind !== 2) {
    chain.push(cur.name);
    cur = cur.parentSpanId ? byId.get(cur.parentSpanId) : undefined;
  }
  assert.ok(cur, `no SERVER span above "${span.name}" (chain: ${chain.join(' <- ')})`);
  assert.equal(cur.parentSpanId, parentId);
}

describe('agent attached with --require to an express app', () => {
  let server: TestServer;
  let app: App;
  before(async () => {
    server = await startServer();
    app = await startApp(
      ['--require', REGISTER, 'blocking-app.js'],
      agentEnv(server, 'blocking-app', { BIG_JSON_ITEMS: '300000' }),
    );
  });
  after(async () => {
    await stop(app);
    await server.close();
    assert.doesNotMatch(
      app.stderr(),
      /already been initialized|stallscope:/,
      'the agent must not print warnings into a healthy host',
    );
  });

  it('reports a busy loop as one blocking span under the request, naming function, file and line', async () => {
    const { traceId, parentId } = await call(app, '/busy?ms=300');
    const spans = await traceWith(server, traceId, SPAN_NAMES.loopBlock);
    const blocks = spans.filter((s) => s.name === SPAN_NAMES.loopBlock);
    assert.equal(blocks.length, 1);
    const block = blocks[0];
    assertInRequest(spans, block, parentId);
    assert.equal(block.attributes[KIND], 'loop-block');
    assert.equal(block.attributes[CODE_FUNCTION], 'spinFor');
    assert.equal(block.attributes[CODE_FILE], join(FIXTURES, 'blocking-app.js'));
    assert.equal(block.attributes[CODE_LINE], markLine('blocking-app.js', 'spin'));
    assert.ok(block.durationMs >= 290 && block.durationMs < 400, `duration ${block.durationMs} ms for a 300 ms block`);
    assert.match(block.attributes['code.stacktrace'], /at spinFor \(.*blocking-app\.js:\d+:\d+\)/);
  });

  it("says whose code blocked, and makes findings of a dependency's episodes but not of the telemetry's own", async () => {
    const { traceId } = await call(app, '/busy?ms=150');
    const [busy] = (await traceWith(server, traceId, SPAN_NAMES.loopBlock)).filter(
      (s) => s.name === SPAN_NAMES.loopBlock,
    );
    assert.equal(busy.attributes[BLOCK_ORIGIN], 'app');
    // A dependency called through an instrumentation's wrapper is still the dependency's.
    for (const who of ['telemetry', 'dependency', 'telemetry', 'wrapped']) {
      await call(app, `/later?who=${who}&ms=300`);
      await new Promise((r) => setTimeout(r, 400));
    }
    const episodes = async (fn: string) =>
      eventually(
        async () => {
          const { body } = await getJson(
            `${server.api}/api/traces?service=blocking-app&kind=loop-block&attribute=${CODE_FUNCTION}=${fn}`,
          );
          return body.length === 2 ? body : undefined;
        },
        10_000,
        `two episodes in ${fn}`,
      );
    for (const [fn, origin] of [
      ['serializeBatch', 'telemetry'],
      ['compressAll', 'dependency'],
    ]) {
      for (const t of await episodes(fn)) {
        const { body } = await getJson(`${server.api}/api/traces/${t.traceId}`);
        const episode = (body.spans as SpanJson[]).find((s) => s.attributes[CODE_FUNCTION] === fn);
        assert.equal(episode?.attributes[BLOCK_ORIGIN], origin, fn);
      }
    }
    const { body: findings } = await getJson(`${server.api}/api/findings?service=blocking-app&kind=loop-blocked`);
    const fns = findings.map((f: { location?: { function: string } }) => f.location?.function);
    assert.ok(fns.includes('compressAll'), JSON.stringify(findings));
    assert.ok(!fns.includes('serializeBatch'), "the telemetry's own work is not blamed on the app");
    assert.match(
      findings.find((f: { location?: { function: string } }) => f.location?.function === 'compressAll').title,
      /\(slow-dependency\)$/,
    );
  });

  it('reports readFileSync blocked on a slow pipe, as an episode and as a sync call', async () => {
    const fifo = join(server.dir, 'slow.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const pending = call(app, `/read?path=${encodeURIComponent(fifo)}`);
    // Opening for writing completes once the app has opened the pipe: from then on it is blocked.
    const writer = await open(fifo, 'w');
    await new Promise((r) => setTimeout(r, 300));
    await writer.write(Buffer.alloc(64 * 1024, 1));
    await writer.close();
    const { traceId, parentId, body } = await pending;
    assert.equal(body, String(64 * 1024));
    const spans = await traceWith(server, traceId, 'fs.readFileSync');
    const sync = spans.find((s) => s.name === 'fs.readFileSync')!;
    assertInRequest(spans, sync, parentId);
    assert.equal(sync.attributes[KIND], 'sync-call');
    assert.equal(sync.attributes[SYNC_API], 'fs.readFileSync');
    assert.equal(sync.attributes[CODE_FUNCTION], 'readBig');
    assert.equal(sync.attributes[CODE_LINE], markLine('blocking-app.js', 'read'));
    assert.ok(sync.durationMs >= 290 && sync.durationMs < 500, `sync call lasted ${sync.durationMs} ms`);
    const withBlock = await traceWith(server, traceId, SPAN_NAMES.loopBlock);
    const block = withBlock.find((s) => s.name === SPAN_NAMES.loopBlock)!;
    assertInRequest(withBlock, block, parentId);
    assert.equal(block.attributes[CODE_FUNCTION], 'readBig');
    assert.equal(block.attributes[CODE_LINE], markLine('blocking-app.js', 'read'));
    assert.ok(block.durationMs >= 290 && block.durationMs < 500, `episode lasted ${block.durationMs} ms`);
  });

  it('reports JSON.parse of a large string with its size and call site', async () => {
    const { traceId, parentId } = await call(app, '/parse');
    const spans = await traceWith(server, traceId, 'JSON.parse');
    const sync = spans.find((s) => s.name === 'JSON.parse')!;
    assertInRequest(spans, sync, parentId);
    assert.equal(sync.attributes[CODE_FUNCTION], 'parseBig');
    assert.equal(sync.attributes[CODE_LINE], markLine('blocking-app.js', 'parse'));
    assert.ok(sync.attributes[SYNC_BYTES] > 10_000_000, `payload ${sync.attributes[SYNC_BYTES]}`);
    if (sync.durationMs >= 60) {
      const block = (await traceWith(server, traceId, SPAN_NAMES.loopBlock)).find(
        (s) => s.name === SPAN_NAMES.loopBlock,
      )!;
      assert.equal(block.attributes[CODE_FUNCTION], 'parseBig');
    }
  });

  it('leaves fast requests without blocking or sync-call spans', async () => {
    const { traceId } = await call(app, '/fast');
    const spans = await traceWith(server, traceId, 'GET /fast');
    assert.deepEqual(
      spans.filter((s) => s.attributes[KIND]).map((s) => s.name),
      [],
    );
  });

  it('exports the event-loop metrics under the semantic-convention names', async () => {
    const names = [
      'nodejs.eventloop.delay.p99',
      'nodejs.eventloop.delay.max',
      'nodejs.eventloop.utilization',
      'stallscope.eventloop.blocks',
    ];
    for (const name of names) {
      await eventually(
        async () => {
          const { body } = await getJson(`${server.api}/api/metrics?name=${name}&service=blocking-app&since=5m`);
          return body.series?.length ? true : undefined;
        },
        10_000,
        name,
      );
    }
    const max = await getJson(
      `${server.api}/api/metrics?name=nodejs.eventloop.delay.max&service=blocking-app&since=5m`,
    );
    const worst = Math.max(...max.body.series[0].steps.map((s: { max?: number }) => s.max ?? 0));
    assert.ok(worst >= 0.25, `the loop delay max (${worst} s) must show the 300 ms block`);
    assert.equal(max.body.unit, 's');
  });
});

describe('agent attached with --import to an ESM app', () => {
  it('reports the block with the ESM file and the http server span as parent, and works with --inspect open', async () => {
    for (const extra of [[], ['--inspect=127.0.0.1:0']]) {
      await withAgentApp([...extra, '--import', REGISTER, 'esm-app.mjs'], 'esm-app', async (server, app) => {
        const { traceId, parentId } = await call(app, '/busy');
        const spans = await traceWith(server, traceId, SPAN_NAMES.loopBlock);
        const block = spans.find((s) => s.name === SPAN_NAMES.loopBlock)!;
        assertInRequest(spans, block, parentId);
        assert.equal(block.attributes[CODE_FUNCTION], 'crunch');
        assert.equal(block.attributes[CODE_FILE], join(FIXTURES, 'esm-app.mjs'));
        assert.equal(block.attributes[CODE_LINE], markLine('esm-app.mjs', 'crunch'));
      });
    }
  });
});

describe('agent tracking an async-mutex in an ESM app', () => {
  it('reports the second request waiting for the lock the first one holds', async () => {
    await withAgentApp(['--import', REGISTER, 'lock-app.mjs'], 'lock-app', async (server, app) => {
      const [a, b] = await Promise.all([call(app, '/'), call(app, '/')]);
      const waited = await eventually(
        async () => {
          for (const traceId of [a.traceId, b.traceId]) {
            const { status, body } = await getJson(`${server.api}/api/traces/${traceId}`);
            const span = status === 200 ? body.spans.find((s: SpanJson) => s.name === SPAN_NAMES.lockWait) : undefined;
            if (span) return { span: span as SpanJson, traceId };
          }
          return undefined;
        },
        10_000,
        'a lock wait span',
      );
      const other = waited.traceId === a.traceId ? b.traceId : a.traceId;
      const holderTrace = await traceWith(server, other, 'GET');
      assert.equal(waited.span.attributes[LOCK_NAME], `lock-app.mjs:${markLine('lock-app.mjs', 'ledger')}`);
      assert.match(
        String(waited.span.attributes[LOCK_ACQUIRE_SITE]),
        new RegExp(` \\(lock-app\\.mjs:${markLine('lock-app.mjs', 'acquire')}\\)$`),
      );
      assert.equal(waited.span.attributes[LOCK_HOLDER_TRACE], other);
      assert.ok(holderTrace.some((s) => s.spanId === waited.span.attributes[LOCK_HOLDER_SPAN]));
      assert.ok(waited.span.durationMs >= 80 && waited.span.durationMs < 200, `waited ${waited.span.durationMs} ms`);
    });
  });
});

describe('agent on lock and offload libraries imported as ES modules', () => {
  it('reports queueing on async-lock, p-limit, p-queue, Piscina, workerpool and the libuv threadpool', async () => {
    await withAgentApp(['--import', REGISTER, 'offload-app.mjs'], 'offload-app', async (server, app) => {
      const spanIn = async (path: string, name: string, match: (s: SpanJson) => boolean) => {
        const calls = await Promise.all([call(app, path), call(app, path)]);
        return eventually(
          async () => {
            for (const { traceId } of calls) {
              const { status, body } = await getJson(`${server.api}/api/traces/${traceId}`);
              const found =
                status === 200 ? (body.spans as SpanJson[]).find((s) => s.name === name && match(s)) : undefined;
              if (found) return found;
            }
            return undefined;
          },
          10_000,
          `a "${name}" span for ${path}`,
        );
      };
      const waited = (s: SpanJson) => s.durationMs > 40;
      const keyed = await spanIn('/keyed', SPAN_NAMES.lockWait, waited);
      assert.equal(keyed.attributes[LOCK_NAME], 'account:7');
      assert.equal(keyed.attributes[LOCK_TYPE], 'async-lock');
      const limit = await spanIn('/limit', SPAN_NAMES.lockWait, waited);
      assert.equal(limit.attributes[LOCK_NAME], `offload-app.mjs:${markLine('offload-app.mjs', 'limit')}`);
      assert.equal(limit.attributes[LOCK_TYPE], 'p-limit');
      const queue = await spanIn('/queue', SPAN_NAMES.lockWait, waited);
      assert.equal(queue.attributes[LOCK_NAME], `offload-app.mjs:${markLine('offload-app.mjs', 'queue')}`);
      assert.equal(queue.attributes[LOCK_TYPE], 'p-queue');
      const piscina = await spanIn('/piscina', SPAN_NAMES.poolTask, (s) => s.attributes[POOL_QUEUE_WAIT_MS] > 40);
      assert.equal(piscina.attributes[POOL_TYPE], 'piscina');
      assert.equal(piscina.attributes[POOL_NAME], 'piscina-worker.js');
      const wp = await spanIn('/workerpool', SPAN_NAMES.poolTask, (s) => s.attributes[POOL_QUEUE_WAIT_MS] > 40);
      assert.equal(wp.attributes[POOL_TASK], 'spin');
      assert.equal(wp.attributes[POOL_NAME], 'workerpool-worker.js');
      const pool = await spanIn('/pbkdf2', SPAN_NAMES.threadpoolWait, () => true);
      assert.equal(pool.attributes[THREADPOOL_OP], 'PBKDF2REQUEST');
      assert.match(pool.attributes[CODE_FILE], /offload-app\.mjs$/);
      assert.equal(app.stderr(), '', 'no warnings from the agent');
    });
  });
});

describe('agent and the libuv threadpool size', () => {
  it('makes no pool work before the app starts, so UV_THREADPOOL_SIZE set in code still counts', async () => {
    const env = {
      ...process.env,
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
      STALLSCOPE_INDEX: join(packageRoot(), 'dist', 'agent', 'index.js'),
    };
    const child = spawn(process.execPath, ['threadpool-size.js'], {
      cwd: FIXTURES,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [, json] = await waitForOutput(child, /(\{"statDone".*\})/);
      assert.equal(
        (JSON.parse(json) as { statDone: boolean }).statDone,
        true,
        'an fs.stat waited behind five blocked reads: the pool has fewer than 8 threads',
      );
    } finally {
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  });
});

describe('agent during start-up', () => {
  it('does not report a slow synchronous ESM start-up as blocking', async () => {
    await withAgentApp(['--import', REGISTER, 'esm-startup.mjs'], 'slow-start', async (server, app) => {
      const { traceId } = await call(app, '/');
      await traceWith(server, traceId, 'GET');
      await new Promise((r) => setTimeout(r, 300));
      const found = await getJson(`${server.api}/api/traces?service=slow-start&limit=50`);
      const names = found.body.map((t: { matched: { name: string } }) => t.matched.name);
      assert.deepEqual(names, ['GET'], `start-up was reported: ${names.join(', ')}`);
    });
  });
});

describe('agent in a short-lived process', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.close();
  });

  const run = (args: string[], env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; out: string; err: string; ms: number }>((resolve) => {
      const t0 = Date.now();
      const child = spawn(process.execPath, args, { cwd: FIXTURES, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('exit', (code) => {
        clearTimeout(killer);
        resolve({ code, out, err, ms: Date.now() - t0 });
      });
    });

  it('exits on its own when its work is done, after flushing its spans', async () => {
    const r = await run(['--require', REGISTER, 'short-lived.js'], agentEnv(server, 'short-lived'));
    assert.equal(r.code, 0, r.err);
    assert.ok(r.ms < 10_000, `took ${r.ms} ms to exit`);
    const traces = await getJson(`${server.api}/api/traces?service=short-lived`);
    assert.ok(traces.body.length >= 1, 'the spans of a process that ended on its own were not flushed');
  });

  it('gives the app its errors and values unchanged', async () => {
    const plain = await run(['short-lived.js'], { ...process.env, THROW_AT_END: '1' });
    const withAgent = await run(['--require', REGISTER, 'short-lived.js'], {
      ...agentEnv(server, 'short-lived'),
      THROW_AT_END: '1',
    });
    assert.equal(withAgent.out, plain.out);
    assert.equal(withAgent.code, plain.code);
    assert.equal(plain.code, 1);
    assert.match(withAgent.err, /Error: boom at the end\n\s+at Immediate\.<anonymous> \(.*short-lived\.js:\d+:\d+\)/);
    const results = JSON.parse(withAgent.out);
    assert.deepEqual(results.read, ['ENOENT', 'open', '/nonexistent/stallscope']);
    assert.deepEqual(results.lengths, [2, 2, 3, 'readFileSync']);
  });

  it('attaches by package name, as users write it', async () => {
    mkdirSync(join(server.dir, 'app', 'node_modules'), { recursive: true });
    symlinkSync(packageRoot(), join(server.dir, 'app', 'node_modules', 'stallscope'));
    copyFileSync(join(FIXTURES, 'short-lived.js'), join(server.dir, 'app', 'short-lived.js'));
    const child = spawnSync(process.execPath, ['--import', 'stallscope/agent', 'short-lived.js'], {
      cwd: join(server.dir, 'app'),
      env: agentEnv(server, 'by-name'),
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(child.status, 0, child.stderr);
    await eventually(
      async () => ((await getJson(`${server.api}/api/traces?service=by-name`)).body.length ? true : undefined),
      5000,
      'spans from by-name',
    );
  });

  it('does nothing when OTEL_SDK_DISABLED is set', async () => {
    const r = await run(
      ['--require', REGISTER, 'short-lived.js'],
      agentEnv(server, 'disabled-app', { OTEL_SDK_DISABLED: 'true' }),
    );
    assert.equal(r.code, 0);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal((await getJson(`${server.api}/api/traces?service=disabled-app`)).body.length, 0);
  });

  it('warns once and keeps going on a bad setting', async () => {
    const r = await run(
      ['--require', REGISTER, 'short-lived.js'],
      agentEnv(server, 'bad-setting', { STALLSCOPE_BLOCK_THRESHOLD_MS: 'soon' }),
    );
    assert.equal(r.code, 0);
    assert.equal(r.err.match(/STALLSCOPE_BLOCK_THRESHOLD_MS="soon" is not a number/g)?.length, 1, r.err);
  });
});

describe('agent started from code in an app with its own OpenTelemetry SDK', () => {
  it("adds its spans to the app's provider instead of starting a second SDK", async () => {
    const server = await startServer();
    try {
      const child = spawn(process.execPath, ['own-sdk.js'], {
        cwd: FIXTURES,
        env: {
          ...process.env,
          COLLECTOR: server.otlp,
          STALLSCOPE_INDEX: join(packageRoot(), 'dist', 'agent', 'index.js'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise((r) => child.once('exit', r));
      assert.equal(code, 0, err);
      const result = JSON.parse(out);
      assert.equal(result.ownsSdk, false);
      const spans = await traceWith(server, result.traceId, SPAN_NAMES.loopBlock);
      const block = spans.find((s) => s.name === SPAN_NAMES.loopBlock)!;
      assert.equal(block.parentSpanId, result.spanId);
      assert.equal(block.attributes[CODE_FUNCTION], 'grind');
      assert.equal(block.attributes[CODE_LINE], markLine('own-sdk.js', 'grind'));
      assert.deepEqual(
        (await getJson(`${server.api}/api/services`)).body.map((s: { service: string }) => s.service),
        ['own-sdk'],
      );
    } finally {
      await server.close();
    }
  });
});
