// The sync-call wrappers in this very process, with a real tracer provider and the SDK's
// in-memory exporter: behaviour is preserved, slow calls become spans under the active span.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { SyncCallWatcher } from '../agent/sync-calls';
import { whenStarted } from '../agent/startup';
import { resolveConfig, DEFAULTS } from '../agent/config';
import type { SumMetricData } from '@opentelemetry/sdk-metrics';
import { CODE_FILE, CODE_FUNCTION, KIND, METRICS, SYNC_API, SYNC_BYTES, SYNC_SITE } from '../common/conventions';
import { inMemoryTelemetry } from './telemetry';

const originals = {
  readFileSync: fs.readFileSync,
  parse: JSON.parse,
  stringify: JSON.stringify,
  pbkdf2Sync: crypto.pbkdf2Sync,
};
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('sync-calls-test');
let watcher: SyncCallWatcher;

/** The start-up detector's timer does not hold the loop open; the test must, while it waits. */
async function started(): Promise<void> {
  const hold = setInterval(() => undefined, 1000);
  await new Promise<void>((r) => whenStarted(r));
  clearInterval(hold);
}

before(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  watcher = new SyncCallWatcher({ thresholdMs: 5, jsonSizeThreshold: 1000 }, tracer, metrics.getMeter('test'));
  watcher.start();
  await started(); // the watcher arms once the app has started
});
after(() => {
  watcher.stop();
});

function deriveKeySlowly(): Buffer {
  return crypto.pbkdf2Sync('secret', 'salt', 400_000, 32, 'sha256');
}

describe('sync-call wrappers', () => {
  it('are installed and keep name, length and attached properties', () => {
    assert.notEqual(fs.readFileSync, originals.readFileSync);
    assert.equal(fs.readFileSync.name, 'readFileSync');
    assert.equal(fs.readFileSync.length, originals.readFileSync.length);
    assert.equal(JSON.stringify.length, originals.stringify.length);
    assert.equal(typeof fs.realpathSync.native, 'function');
  });

  it('return the same values and throw the same errors', () => {
    assert.deepEqual(fs.readFileSync(__filename), originals.readFileSync(__filename));
    const reviver = function (this: unknown, key: string, value: unknown) {
      return key === 'n' ? (value as number) * 2 : value;
    };
    assert.deepEqual(JSON.parse('{"n": 21, "s": "x"}', reviver), { n: 42, s: 'x' });
    const value = { b: [1, { c: 'd' }], a: new Date(0) };
    assert.equal(JSON.stringify(value, ['b', 'c'], '\t'), originals.stringify(value, ['b', 'c'], '\t'));
    assert.equal(JSON.stringify(undefined), undefined);
    assert.throws(
      () => fs.readFileSync('/nonexistent/x'),
      (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.syscall === 'open',
    );
    assert.throws(() => JSON.parse('{bad'), SyntaxError);
  });

  it('are what ESM named imports of the builtin see', async () => {
    const esm = await import('node:fs');
    assert.equal(esm.readFileSync, fs.readFileSync);
  });

  it('turn a slow call into a span under the active span, naming the call site', () => {
    exporter.reset();
    const parent = tracer.startSpan('handler');
    context.with(trace.setSpan(context.active(), parent), () => deriveKeySlowly());
    parent.end();
    const span = exporter.getFinishedSpans().find((s) => s.name === 'crypto.pbkdf2Sync');
    assert.ok(span, 'no span for a slow pbkdf2Sync');
    assert.equal(span.parentSpanContext?.spanId, parent.spanContext().spanId);
    assert.equal(span.attributes[KIND], 'sync-call');
    assert.equal(span.attributes[SYNC_API], 'crypto.pbkdf2Sync');
    assert.equal(span.attributes[CODE_FUNCTION], 'deriveKeySlowly');
    assert.equal(span.attributes[CODE_FILE], __filename);
  });

  it('ignore fast calls and small JSON, and measure large JSON with its size', () => {
    exporter.reset();
    fs.statSync(__filename);
    JSON.parse('{"small": true}');
    assert.deepEqual(
      exporter.getFinishedSpans().map((s) => s.name),
      [],
    );
    const big = originals.stringify(Array.from({ length: 400_000 }, (_, i) => ({ i, s: 'abcdefgh' })));
    JSON.parse(big);
    const span = exporter.getFinishedSpans().find((s) => s.name === 'JSON.parse');
    assert.ok(span, 'parsing 14 MB takes well over the 5 ms threshold');
    assert.equal(span.attributes[SYNC_BYTES], big.length);
  });

  it('leave a late require() alone: its reads and its top-level calls are loading code', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'stallscope-lazy-'));
    const file = join(dir, 'lazy.js');
    // A module that derives a key at load time, well over the 5 ms threshold.
    fs.writeFileSync(file, "module.exports = require('node:crypto').pbkdf2Sync('a', 'b', 200000, 32, 'sha256');");
    exporter.reset();
    try {
      require(file);
      assert.deepEqual(
        exporter.getFinishedSpans().map((s) => s.attributes[SYNC_API]),
        [],
      );
      // The same call made by the app, not while loading, is one.
      crypto.pbkdf2Sync('a', 'b', 200000, 32, 'sha256');
      assert.deepEqual(
        exporter.getFinishedSpans().map((s) => s.attributes[SYNC_API]),
        ['crypto.pbkdf2Sync'],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('time only the outermost call when one watched call makes others', async () => {
    watcher.stop();
    const everything = new SyncCallWatcher(
      { thresholdMs: 0, jsonSizeThreshold: 1000 },
      tracer,
      metrics.getMeter('test'),
    );
    everything.start();
    await started();
    try {
      exporter.reset();
      fs.readFileSync(__filename); // opens, reads and closes through fs.openSync/readSync/closeSync
      assert.deepEqual(
        exporter.getFinishedSpans().map((s) => s.name),
        ['fs.readFileSync'],
      );
    } finally {
      everything.stop();
    }
  });

  it('count every call per API and call site, fast ones together without a stack', async () => {
    watcher.stop();
    const t = inMemoryTelemetry('sync-totals');
    const counting = new SyncCallWatcher({ thresholdMs: 50, jsonSizeThreshold: 1000 }, t.tracer, t.meter);
    counting.start();
    await started();
    try {
      const pause = new Int32Array(new SharedArrayBuffer(4));
      const waitBriefly = () => Atomics.wait(pause, 0, 0, 3);
      for (let i = 0; i < 5; i++) waitBriefly();
      for (let i = 0; i < 20; i++) fs.statSync(__filename);
      const [time, calls] = await t.metrics<SumMetricData>(METRICS.syncTime, METRICS.syncCalls);
      const point = (m: SumMetricData | undefined, api: string, site: RegExp) =>
        m?.dataPoints.filter((p) => p.attributes[SYNC_API] === api && site.test(String(p.attributes[SYNC_SITE])));
      const here = /^waitBriefly \((dist\/)?test\/sync-calls\.test\.[jt]s:\d+\)$/;
      const waited = point(time, 'Atomics.wait', here);
      assert.equal(waited?.length, 1, JSON.stringify(time?.dataPoints.map((p) => p.attributes)));
      assert.ok(waited[0].value >= 0.015 && waited[0].value < 0.1, `5 waits of 3 ms took ${waited[0].value} s`);
      assert.equal(point(calls, 'Atomics.wait', here)?.[0].value, 5);
      // No span: every call was under the span threshold.
      assert.deepEqual(t.spans('Atomics.wait'), []);
      const fast = point(calls, 'fs.statSync', /^\(fast calls\)$/);
      assert.ok(fast?.length === 1 && fast[0].value >= 18, JSON.stringify(calls?.dataPoints));
    } finally {
      counting.stop();
    }
  });

  it('restore the originals on stop', () => {
    watcher.stop();
    assert.equal(fs.readFileSync, originals.readFileSync);
    assert.equal(JSON.parse, originals.parse);
    assert.equal(crypto.pbkdf2Sync, originals.pbkdf2Sync);
  });
});

describe('agent settings', () => {
  it('check options from code like environment variables, naming each bad one', () => {
    const warnings: string[] = [];
    const cfg = resolveConfig(
      { STALLSCOPE_SYNC_THRESHOLD_MS: '25', STALLSCOPE_WATCHDOG: 'maybe' },
      {
        blockThresholdMs: 0,
        maxBlockSpansPerMinute: undefined,
        jsonSizeThreshold: 5000,
        loopMetrics: 'no' as unknown as boolean,
      },
      (m) => warnings.push(m),
    );
    assert.equal(cfg.blockThresholdMs, DEFAULTS.blockThresholdMs);
    assert.equal(cfg.maxBlockSpansPerMinute, DEFAULTS.maxBlockSpansPerMinute);
    assert.equal(cfg.syncThresholdMs, 25);
    assert.equal(cfg.jsonSizeThreshold, 5000);
    assert.equal(cfg.watchdog, true);
    assert.equal(cfg.loopMetrics, true);
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.match(warnings.join('\n'), /blockThresholdMs=0 is not a number >= 20/);
    assert.match(warnings.join('\n'), /STALLSCOPE_WATCHDOG="maybe"/);
  });

  it('enable and disable library instrumentations by name, as OpenTelemetry Node does', () => {
    const warnings: string[] = [];
    const narrowed = resolveConfig(
      {
        OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http, async-lock,piscina,bogus',
        OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'piscina',
      },
      {},
      (m) => warnings.push(m),
    );
    assert.deepEqual(narrowed.instrumentations, ['http', 'async-lock']);
    assert.deepEqual(warnings, [
      'OTEL_NODE_ENABLED_INSTRUMENTATIONS: unknown instrumentation "bogus" (known: http, express, async-mutex, async-lock, p-limit, p-queue, web-locks, piscina, workerpool)',
    ]);
    const fromCode = resolveConfig(
      { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'p-queue' },
      { instrumentations: ['p-limit'] },
      (m) => warnings.push(m),
    );
    assert.deepEqual(fromCode.instrumentations, ['p-limit']);
    assert.ok(
      !resolveConfig(
        { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'p-queue,web-locks' },
        {},
        () => undefined,
      ).instrumentations.includes('web-locks'),
    );
  });
});
