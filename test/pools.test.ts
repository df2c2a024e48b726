// Worker-pool tracking on real Piscina and workerpool pools in this process, with a real tracer
// provider (in-memory exporter) and a real meter provider read by collect().
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { durationMs, enableContext, inMemoryTelemetry, sleep } from './telemetry';
import { PoolTracker } from '../agent/offload/pool-tracker';
import { PiscinaInstrumentation } from '../agent/offload/piscina';
import { WorkerpoolInstrumentation } from '../agent/offload/workerpool';
import {
  POOL_METRICS,
  POOL_NAME,
  POOL_OUTCOME,
  POOL_QUEUE_WAIT_MS,
  POOL_RUN_MS,
  POOL_TASK,
  POOL_TYPE,
  SPAN_NAMES,
} from '../common/conventions';
import { FIXTURES } from './helpers';
import { fullGc } from './gc';
import { getEventListeners } from 'node:events';

const { exporter, tracer, meter, meterProvider, spans, metric } = inMemoryTelemetry('pools-test');
const tracker = new PoolTracker(tracer, meter);
// Enabled on construction, so they patch the modules required below.
new PiscinaInstrumentation();
new WorkerpoolInstrumentation();

// Loaded after the instrumentations are enabled, as an app's require() would be.
const load = createRequire(__filename);
const Piscina = load('piscina') as typeof import('piscina').Piscina;
const workerpool = load('workerpool') as typeof import('workerpool');

const TASK_MS = 60;
const tasks = () => spans(SPAN_NAMES.poolTask);
const near = (actual: number, expected: number, what: string, slack = 30) =>
  assert.ok(Math.abs(actual - expected) < slack, `${what}: ${actual} ms, expected ~${expected}`);

before(() => {
  enableContext();
  tracker.start();
});
after(async () => {
  tracker.stop();
  await meterProvider.shutdown();
});

/** Four tasks submitted at once under one request span; resolves with the tasks' results. */
async function burst(run: () => Promise<unknown>): Promise<{ results: unknown[]; spanId: string }> {
  return tracer.startActiveSpan('request', async (span) => {
    const results = await Promise.all([run(), run(), run(), run()]);
    span.end();
    return { results, spanId: span.spanContext().spanId };
  });
}

function assertQueuedOneByOne(spans: ReadableSpan[], spanId: string): void {
  const sorted = spans.sort(
    (a, b) => (a.attributes[POOL_QUEUE_WAIT_MS] as number) - (b.attributes[POOL_QUEUE_WAIT_MS] as number),
  );
  assert.equal(sorted.length, 4);
  sorted.forEach((s, i) => {
    near(s.attributes[POOL_QUEUE_WAIT_MS] as number, i * TASK_MS, `task ${i} queue wait`);
    near(s.attributes[POOL_RUN_MS] as number, TASK_MS, `task ${i} run time`, 25);
    near(durationMs(s), (i + 1) * TASK_MS, `task ${i} span`);
    assert.equal(s.attributes[POOL_OUTCOME], 'completed');
    assert.equal(s.parentSpanContext?.spanId, spanId, 'child of the submitting span');
  });
}

describe('Piscina tracking', () => {
  const filename = join(FIXTURES, 'piscina-worker.js');
  let pool: InstanceType<typeof Piscina>;
  before(async () => {
    pool = new Piscina({ filename, minThreads: 1, maxThreads: 1 });
    await pool.run({ ms: 1 }); // the thread is up: its start-up is not a task's run time
  });
  after(() => pool.destroy());

  it('shows queue waits growing per task on a pool of one thread', async () => {
    exporter.reset();
    const { results, spanId } = await burst(() => pool.run({ ms: TASK_MS }));
    assert.deepEqual(results, [TASK_MS * 2, TASK_MS * 2, TASK_MS * 2, TASK_MS * 2]);
    const spans = tasks();
    assertQueuedOneByOne(spans, spanId);
    assert.equal(spans[0].attributes[POOL_NAME], 'test/fixtures/piscina-worker.js');
    assert.equal(spans[0].attributes[POOL_TYPE], 'piscina');
    const wait = await metric<HistogramMetricData>(POOL_METRICS.queueWait);
    const point = wait.dataPoints.find((p) => p.attributes[POOL_TYPE] === 'piscina')!;
    assert.equal(point.value.count, 5);
    assert.ok(point.value.max! > (TASK_MS * 2.5) / 1000, `max wait ${point.value.max}`);
  });

  it('lets a destroyed pool go, and leaves no listener on a long-lived signal', async () => {
    const shutdown = new AbortController();
    let other: InstanceType<typeof Piscina> | undefined = new Piscina({ filename, minThreads: 1, maxThreads: 1 });
    for (let i = 0; i < 12; i++) await other.run({ ms: 1 }, { signal: shutdown.signal });
    assert.equal(getEventListeners(shutdown.signal, 'abort').length, 0);
    const gone = new WeakRef(other);
    await other.destroy();
    other = undefined;
    await fullGc();
    assert.equal(gone.deref(), undefined, 'the destroyed pool is still reachable');
  });

  it('records tasks the pool refuses outright', async () => {
    exporter.reset();
    const small = new Piscina({ filename, minThreads: 1, maxThreads: 1, maxQueue: 1 });
    try {
      const runs = [1, 2, 3, 4].map(() => small.run({ ms: 20 }));
      const settled = await Promise.allSettled(runs);
      assert.ok(
        settled.some((s) => s.status === 'rejected'),
        'the queue limit refused some',
      );
      const outcomes = tasks().map((s) => s.attributes[POOL_OUTCOME]);
      assert.equal(outcomes.length, 4);
      assert.equal(
        outcomes.filter((o) => o === 'rejected').length,
        settled.filter((s) => s.status === 'rejected').length,
      );
    } finally {
      await small.destroy();
    }
  });

  it('records errors and tasks aborted while queued, and passes both to the app unchanged', async () => {
    exporter.reset();
    const failing = pool.run({ error: 'bad input' });
    const controller = new AbortController();
    const aborted = pool.run({ ms: 50 }, { signal: controller.signal });
    const checked = Promise.all([
      assert.rejects(failing, /bad input/),
      assert.rejects(aborted, (err: Error) => err.name === 'AbortError'),
    ]);
    controller.abort();
    await checked;
    await sleep(10);
    const outcomes = tasks()
      .map((s) => s.attributes[POOL_OUTCOME])
      .sort();
    assert.deepEqual(outcomes, ['cancelled', 'error']);
  });
});

describe('workerpool tracking', () => {
  const script = join(FIXTURES, 'workerpool-worker.js');
  let pool: ReturnType<typeof workerpool.pool>;
  before(async () => {
    pool = workerpool.pool(script, { maxWorkers: 1, workerType: 'thread' });
    await pool.exec('spin', [1]);
  });
  after(() => pool.terminate());

  it('shows queue waits growing per task on a pool of one worker', async () => {
    exporter.reset();
    const { results, spanId } = await burst(() => pool.exec('spin', [TASK_MS]));
    assert.deepEqual(results, [TASK_MS * 2, TASK_MS * 2, TASK_MS * 2, TASK_MS * 2]);
    const spans = tasks();
    assertQueuedOneByOne(spans, spanId);
    assert.equal(spans[0].attributes[POOL_TASK], 'spin');
    assert.equal(spans[0].attributes[POOL_TYPE], 'workerpool');
    assert.match(String(spans[0].attributes[POOL_NAME]), /workerpool-worker\.js$/);
  });

  it('names inline functions, and records errors, timeouts and cancels', async () => {
    exporter.reset();
    const inline = workerpool.pool({ maxWorkers: 1, workerType: 'thread' });
    try {
      assert.equal(
        await inline.exec(
          function double(n: number) {
            return n * 2;
          },
          [21],
        ),
        42,
      );
    } finally {
      await inline.terminate();
    }
    await assert.rejects(pool.exec('fail', ['broken']), /broken/);
    await assert.rejects(pool.exec('spin', [500]).timeout(30), (err: Error) => err.name === 'TimeoutError');
    const queued = pool.exec('spin', [10]);
    const cancelled = pool.exec('spin', [10]);
    cancelled.cancel();
    await assert.rejects(cancelled, (err: Error) => err.name === 'CancellationError');
    await queued;
    const byTask = tasks().map((s) => `${s.attributes[POOL_TASK]}:${s.attributes[POOL_OUTCOME]}`);
    assert.deepEqual(byTask.sort(), [
      'double:completed',
      'fail:error',
      'spin:cancelled',
      'spin:completed',
      'spin:timeout',
    ]);
  });
});
