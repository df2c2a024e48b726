// Concurrency limiters (p-limit 7, p-queue 9: ES modules) tracked as semaphores, in this
// process: the ESM loader hook is registered here the way the agent's entry does it, then the
// libraries are imported. Real tracer and meter providers with in-memory exporters.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { getEventListeners } from 'node:events';
import { pathToFileURL } from 'node:url';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { assertWaited, durationMs, enableContext, inMemoryTelemetry, sleep, tick } from './telemetry';
import { LockTracker, captureLockStack } from '../agent/locks/tracker';
import { siteOf } from '../agent/sites';
import { PLimitInstrumentation, PQueueInstrumentation } from '../agent/locks/limiters';
import { nameLock } from '../agent/index';
import {
  LOCK_HOLDER_SPAN,
  LOCK_METRICS,
  LOCK_NAME,
  LOCK_OUTCOME,
  LOCK_QUEUE_DEPTH,
  LOCK_TYPE,
  SPAN_NAMES,
} from '../common/conventions';

const { exporter, tracer, meter, meterProvider, spans, metric } = inMemoryTelemetry('limiters-test');
const tracker = new LockTracker({ waitThresholdMs: 1, heldThresholdMs: 5000 }, tracer, meter);
register('@opentelemetry/instrumentation/hook.mjs', pathToFileURL(__filename));
const pLimitInstrumentation = new PLimitInstrumentation();
const pQueueInstrumentation = new PQueueInstrumentation();

type PLimitModule = typeof import('p-limit', { with: { 'resolution-mode': 'import' } });
type PQueueModule = typeof import('p-queue', { with: { 'resolution-mode': 'import' } });
// A dynamic import the compiler leaves alone (CommonJS output would turn import() into require()).
const importEsm = new Function('specifier', 'return import(specifier)') as <T>(specifier: string) => Promise<T>;
// The namespaces, read at each use as an ES module's live bindings would be: disabling the
// instrumentation puts the originals back.
let pLimitModule: PLimitModule;
let pQueueModule: PQueueModule;
const pLimit: PLimitModule['default'] = (...args) => pLimitModule.default(...args);
const limitFunction: PLimitModule['limitFunction'] = (...args) => pLimitModule.limitFunction(...args);

const waits = () => spans(SPAN_NAMES.lockWait);
function here(): string {
  return siteOf(captureLockStack(here));
}

before(async () => {
  enableContext();
  tracker.start();
  pLimitModule = await importEsm<PLimitModule>('p-limit');
  pQueueModule = await importEsm<PQueueModule>('p-queue');
});
after(async () => {
  tracker.stop();
  await meterProvider.shutdown();
});

/**
 * Six 30 ms tasks on two slots, queued from `queuedAt` to `queuedBy`, each noting when it started.
 * The four that waited did so for 30, 30, 60 and 60 ms of the first task's run at least, less
 * what of it had passed when they were queued (a `sleep` never ends early), and never longer than
 * the time from queueing to the task's start, however slow the machine.
 */
function assertTwoSlots(
  spans: ReadableSpan[],
  name: string,
  type: string,
  [queuedAt, queuedBy]: [number, number],
  starts: number[],
): void {
  const sorted = spans.sort((a, b) => durationMs(a) - durationMs(b));
  assert.equal(sorted.length, 4, sorted.map((s) => durationMs(s).toFixed(1)).join(', '));
  const first = Math.min(...starts);
  const queuedFor = starts
    .map((t) => t - queuedAt)
    .sort((a, b) => a - b)
    .slice(2);
  sorted.forEach((s, i) => {
    const least = first + (i < 2 ? 30 : 60) - queuedBy - 1;
    assert.ok(durationMs(s) >= least, `wait ${i}: ${durationMs(s)} ms, expected at least ${least}`);
    assert.ok(
      durationMs(s) <= queuedFor[i] + 1,
      `wait ${i}: ${durationMs(s)} ms, the task started after ${queuedFor[i]}`,
    );
    assert.equal(s.attributes[LOCK_NAME], name);
    assert.equal(s.attributes[LOCK_TYPE], type);
    assert.equal(s.attributes[LOCK_OUTCOME], 'granted');
  });
  assert.deepEqual(sorted.map((s) => s.attributes[LOCK_QUEUE_DEPTH]).sort(), [0, 1, 2, 3]);
}

describe('p-limit tracking', () => {
  it('shows a p-limit(2) queue with the expected waits, named by its creation line', async () => {
    exporter.reset();
    const [limit, site] = [pLimitModule.default(2), here()];
    const [queuedAt, starts] = [performance.now(), [] as number[]];
    const tasks = [1, 2, 3, 4, 5, 6].map((n) =>
      limit(async (x: number) => (starts.push(performance.now()), await sleep(30), x * n), 10),
    );
    const queuedBy = performance.now();
    assert.deepEqual(await Promise.all(tasks), [10, 20, 30, 40, 50, 60]);
    assertTwoSlots(waits(), site, 'p-limit', [queuedAt, queuedBy], starts);
    assert.equal(limit.activeCount, 0);
    assert.equal(limit.pendingCount, 0);
    assert.equal(limit.concurrency, 2);
  });

  it('names the holder a waiter queued behind, and records a cleared queue as cancelled', async () => {
    exporter.reset();
    const started = performance.now();
    const limit = nameLock(pLimit({ concurrency: 1, rejectOnClear: true }), 'exports');
    const [holder, holderSpan] = tracer.startActiveSpan('holder', (span) => {
      const p = limit(() => sleep(20));
      span.end();
      return [p, span.spanContext().spanId] as const;
    });
    const waiter = limit(() => sleep(40).then(() => 'waited'));
    await holder;
    const dropped = limit(() => 'never');
    await sleep(5);
    limit.clearQueue();
    await assert.rejects(dropped, (err: Error) => err.name === 'AbortError');
    assert.equal(await waiter, 'waited');
    const elapsed = performance.now() - started;
    const byOutcome = new Map(waits().map((s) => [s.attributes[LOCK_OUTCOME], s]));
    assert.deepEqual([...byOutcome.keys()].sort(), ['cancelled', 'granted']);
    assert.equal(byOutcome.get('granted')!.attributes[LOCK_HOLDER_SPAN], holderSpan);
    assertWaited(durationMs(byOutcome.get('granted')!), 20, elapsed - 40, 'the waiter');
  });

  it('tracks map() and limitFunction()', async () => {
    exporter.reset();
    const limit = nameLock(pLimit(1), 'mapped');
    assert.deepEqual(await limit.map([1, 2, 3], async (x: number) => (await sleep(10), x * 2)), [2, 4, 6]);
    const limited = limitFunction(async (x: number) => (await sleep(10), x + 1), { concurrency: 1 });
    assert.deepEqual(await Promise.all([limited(1), limited(2)]), [2, 3]);
    const names = waits().map((s) => String(s.attributes[LOCK_NAME]));
    assert.deepEqual(names.filter((n) => n === 'mapped').length, 2);
    assert.equal(names.filter((n) => n !== 'mapped').length, 1);
    assert.match(
      names.find((n) => n !== 'mapped')!,
      /limiters\.test\.js:\d+$/,
    );
  });

  it('changes no behaviour: values, errors and order with and without tracking', async () => {
    const scenario = async () => {
      const log: string[] = [];
      const limit = pLimit(2);
      const tasks = [3, 1, 2, 4].map((n) =>
        limit(async () => {
          log.push(`start ${n}`);
          await tick(n * 4);
          log.push(`end ${n}`);
          if (n === 4) throw new Error('four');
          return n;
        }),
      );
      const settled = await Promise.allSettled(tasks);
      log.push(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message)).join(','));
      log.push(String(await limit(() => 'sync value')));
      await limit(() => {
        throw new Error('sync throw');
      }).catch((e: Error) => log.push(e.message));
      log.push(`${limit.activeCount} ${limit.pendingCount}`);
      return log;
    };
    const tracked = await scenario();
    pLimitInstrumentation.disable();
    try {
      assert.ok(!Object.getOwnPropertySymbols(pLimitModule.default).length, 'the original p-limit is back');
      assert.deepEqual(tracked, await scenario());
    } finally {
      pLimitInstrumentation.enable();
    }
    assert.equal(tracked[tracked.length - 4], '3,1,2,four');
  });
});

describe('p-queue tracking', () => {
  it('shows a concurrency-2 queue with the expected waits, named by its creation line', async () => {
    exporter.reset();
    const [queue, site] = [new pQueueModule.default({ concurrency: 2 }), here()];
    const [queuedAt, starts] = [performance.now(), [] as number[]];
    const tasks = [1, 2, 3, 4, 5, 6].map((n) =>
      queue.add(async () => (starts.push(performance.now()), await sleep(30), n)),
    );
    const queuedBy = performance.now();
    assert.deepEqual(await Promise.all(tasks), [1, 2, 3, 4, 5, 6]);
    assertTwoSlots(waits(), site, 'p-queue', [queuedAt, queuedBy], starts);
    assert.equal(queue.size, 0);
    assert.equal(queue.pending, 0);
  });

  it('records tasks aborted while queued and a cleared queue as cancelled', async () => {
    exporter.reset();
    const queue = nameLock(new pQueueModule.default({ concurrency: 1 }), 'uploads');
    const running = queue.add(() => sleep(30));
    const controller = new AbortController();
    const aborted = queue.add(() => 'never', { signal: controller.signal });
    const cleared = queue.add(() => 'never either');
    await sleep(5);
    controller.abort();
    await assert.rejects(aborted, (err: Error) => err.name === 'AbortError');
    await sleep(5);
    queue.clear();
    await running;
    void cleared; // p-queue leaves a cleared task's promise pending
    const outcomes = waits().map((s) => `${s.attributes[LOCK_NAME]} ${s.attributes[LOCK_OUTCOME]}`);
    assert.deepEqual(outcomes.sort(), ['uploads cancelled', 'uploads cancelled']);
    const acquisitions = await metric(LOCK_METRICS.acquisitions);
    assert.ok(acquisitions.dataPoints.some((p) => p.attributes[LOCK_NAME] === 'uploads'));
  });

  it('leaves no listener on a long-lived signal, and no waiter for a task refused at once', async () => {
    const shutdown = new AbortController();
    const queue = nameLock(new pQueueModule.default({ concurrency: 1 }), 'long-lived-signal');
    await Promise.all(Array.from({ length: 12 }, () => queue.add(() => sleep(1), { signal: shutdown.signal })));
    assert.equal(getEventListeners(shutdown.signal, 'abort').length, 0);
    const aborted = AbortSignal.abort();
    await assert.rejects(
      queue.add(() => 'never', { signal: aborted }),
      (err: Error) => err.name === 'AbortError',
    );
    const pending = await metric(LOCK_METRICS.pending);
    await metric(LOCK_METRICS.pending); // the gauge reports the deepest queue since the previous collection
    const again = await metric(LOCK_METRICS.pending);
    assert.ok(pending.dataPoints.some((p) => p.attributes[LOCK_NAME] === 'long-lived-signal'));
    assert.equal(
      again.dataPoints.find((p) => p.attributes[LOCK_NAME] === 'long-lived-signal')?.value,
      0,
      'nothing is left waiting',
    );
  });

  it('changes no behaviour: values, errors, events and order with and without tracking', async () => {
    const scenario = async () => {
      const log: string[] = [];
      const queue = new pQueueModule.default({ concurrency: 2 });
      queue.on('completed', (v) => log.push(`completed ${String(v)}`));
      queue.on('error', (e: Error) => log.push(`error event ${e.message}`));
      const tasks = [3, 1, 2].map((n) =>
        queue.add(async () => {
          log.push(`start ${n}`);
          await tick(n * 4);
          if (n === 2) throw new Error('two');
          return n;
        }),
      );
      const settled = await Promise.allSettled(tasks);
      log.push(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message)).join(','));
      log.push(String(await queue.addAll([() => 'a', async () => 'b'])));
      await queue.onIdle();
      log.push(`${queue.size} ${queue.pending}`);
      return log;
    };
    const tracked = await scenario();
    pQueueInstrumentation.disable();
    try {
      assert.deepEqual(tracked, await scenario());
    } finally {
      pQueueInstrumentation.enable();
    }
    assert.ok(tracked.includes('3,1,two'), tracked.join(' | '));
  });
});
