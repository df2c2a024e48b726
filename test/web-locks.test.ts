// Web Locks (navigator.locks) tracking. The API exists from Node 24.5 only: on older runtimes
// these tests are skipped, and .ci/run runs this file again on Node 24 from the npm registry.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LockTracker } from '../agent/locks/tracker';
import { WebLocksInstrumentation } from '../agent/locks/web-locks';
import { assertWaited, durationMs, enableContext, inMemoryTelemetry, sleep } from './telemetry';
import { LOCK_HOLDER_SPAN, LOCK_METRICS, LOCK_NAME, LOCK_OUTCOME, LOCK_TYPE, SPAN_NAMES } from '../common/conventions';

interface LockManager {
  request(name: string, ...rest: unknown[]): Promise<unknown>;
}
const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
const skip = locks ? false : `navigator.locks is not in Node ${process.version} (it is from 24.5)`;

const { exporter, tracer, meter, spans, metric } = inMemoryTelemetry('web-locks-test');
const tracker = new LockTracker({ waitThresholdMs: 1, heldThresholdMs: 5000 }, tracer, meter);
const instrumentation = new WebLocksInstrumentation();
const waits = () => spans(SPAN_NAMES.lockWait);

before(() => {
  enableContext();
  tracker.start();
  instrumentation.start();
});
after(() => {
  instrumentation.stop();
  tracker.stop();
});

describe('Web Locks tracking', { skip }, () => {
  it('measures waits per lock name and names the holder', async () => {
    const started = performance.now();
    exporter.reset();
    const [first, holderSpan] = tracer.startActiveSpan('holder', (span) => {
      const p = locks!.request('ledger', () => sleep(40).then(() => 'one'));
      span.end();
      return [p, span.spanContext().spanId] as const;
    });
    const second = locks!.request('ledger', () => 'two');
    const other = locks!.request('inventory', () => 'free');
    assert.deepEqual(await Promise.all([first, second, other]), ['one', 'two', 'free']);
    const elapsed = performance.now() - started;
    const [span, ...rest] = waits();
    assert.equal(rest.length, 0);
    assert.equal(span.attributes[LOCK_NAME], 'ledger');
    assert.equal(span.attributes[LOCK_TYPE], 'web-locks');
    assert.equal(span.attributes[LOCK_OUTCOME], 'granted');
    assert.equal(span.attributes[LOCK_HOLDER_SPAN], holderSpan);
    assertWaited(durationMs(span), 40, elapsed, 'the second request');
  });

  it('records ifAvailable refusals and aborted requests, and changes no results', async () => {
    exporter.reset();
    const holding = locks!.request('jobs', () => sleep(30));
    const refused = locks!.request('jobs', { ifAvailable: true }, (lock: unknown) => lock);
    const controller = new AbortController();
    const aborted = locks!.request('jobs', { signal: controller.signal }, () => 'never');
    const checked = assert.rejects(aborted, (err: Error) => err.name === 'AbortError');
    await sleep(5);
    controller.abort();
    await checked;
    assert.equal(await refused, null);
    await holding;
    assert.deepEqual(
      waits()
        .map((s) => s.attributes[LOCK_OUTCOME])
        .sort(),
      ['cancelled'],
    );
    const wait = await metric(LOCK_METRICS.waitTime);
    const jobs = wait.dataPoints
      .filter((p) => p.attributes[LOCK_NAME] === 'jobs')
      .map((p) => p.attributes[LOCK_OUTCOME]);
    assert.deepEqual(jobs.sort(), ['cancelled', 'timeout']);
  });
});
