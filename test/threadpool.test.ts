// The libuv threadpool monitor on real pool work (pbkdf2, dns.lookup, zlib, fs) in this process,
// with a real tracer provider (in-memory exporter) and a real meter provider read by collect().
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2, pbkdf2Sync } from 'node:crypto';
import { lookup } from 'node:dns';
import { promises as fsp, readFile, stat } from 'node:fs';
import { gunzip, gzip, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import type { HistogramMetricData, GaugeMetricData } from '@opentelemetry/sdk-metrics';
import { durationMs, enableContext, inMemoryTelemetry, sleep } from './telemetry';
import { ThreadpoolMonitor, threadpoolSize } from '../agent/offload/threadpool';
import {
  CODE_FILE,
  SPAN_NAMES,
  THREADPOOL_AHEAD,
  THREADPOOL_CATEGORY,
  THREADPOOL_IN_FLIGHT,
  THREADPOOL_METRICS,
  THREADPOOL_OP,
  THREADPOOL_SIZE,
} from '../common/conventions';

const { exporter, tracer, meter, meterProvider, spans, metric } = inMemoryTelemetry('threadpool-test');
const monitor = new ThreadpoolMonitor({ waitThresholdMs: 5, canaryIntervalMs: 20 }, tracer, meter);
const SIZE = threadpoolSize();

const hash = promisify(pbkdf2);
const poolWaits = () => spans(SPAN_NAMES.threadpoolWait);
/** Iterations for a pbkdf2 of about 40 ms on this machine. */
let iterations = 0;
const TASK_MS = 40;

before(async () => {
  enableContext();
  const t0 = performance.now();
  pbkdf2Sync('secret', 'salt', 20_000, 32, 'sha256');
  iterations = Math.round((20_000 * TASK_MS) / (performance.now() - t0));
  monitor.start();
  // It arms once this process has started (its loop idle for a moment), on unref'd timers.
  const keepAlive = setInterval(() => undefined, 1000);
  await monitor.armed;
  clearInterval(keepAlive);
});
after(async () => {
  monitor.stop();
  await meterProvider.shutdown();
});

describe('libuv threadpool monitor', () => {
  it(`shows ${SIZE * 4} pbkdf2 calls on a pool of ${SIZE} queueing in FIFO order, with their submitter and canary`, async () => {
    exporter.reset();
    await sleep(50); // a few idle canary readings first
    const idle = await metric<HistogramMetricData>(THREADPOOL_METRICS.canaryWait);
    const idleMax = idle.dataPoints[0].value.max!;
    // Completion times as the test sees them: with a FIFO queue, the kth queued call gets the
    // thread freed by the kth completion, whichever call that was (2 cores share 4 threads
    // unevenly, so the waves are not clean).
    const done: number[] = [];
    let submitted = 0;
    const spanId = await tracer.startActiveSpan('burst', async (span) => {
      submitted = performance.now();
      await Promise.all(
        Array.from({ length: SIZE * 4 }, () =>
          hash('secret', 'salt', iterations, 32, 'sha256').then(() => done.push(performance.now())),
        ),
      );
      span.end();
      return span.spanContext().spanId;
    });
    const spans = poolWaits().sort((a, b) => durationMs(a) - durationMs(b));
    assert.equal(spans.length, SIZE * 3, 'every call past the first wave waited');
    const measured = spans.map(durationMs);
    const expected = done
      .sort((a, b) => a - b)
      .slice(0, SIZE * 3)
      .map((t) => t - submitted);
    // The test sees a completion only when the loop runs its callback, behind the callbacks of the
    // calls done before it: a wait may read shorter than that by part of a call, never longer.
    measured.forEach((w, k) => {
      assert.ok(
        w <= expected[k] + 5 && w >= expected[k] - TASK_MS * 0.75,
        `queued call ${k} waited ${w} ms, expected ~${expected[k]} (${measured.map(Math.round).join(', ')} vs ${expected.map(Math.round).join(', ')})`,
      );
    });
    assert.ok(measured[SIZE * 3 - 1] > TASK_MS * 2, 'the last calls waited for three waves');
    for (const s of spans) {
      assert.equal(s.parentSpanContext?.spanId, spanId, 'child of the span that submitted it');
      assert.equal(s.attributes[THREADPOOL_OP], 'PBKDF2REQUEST');
      assert.equal(s.attributes[THREADPOOL_CATEGORY], 'crypto');
      assert.equal(s.attributes[THREADPOOL_SIZE], SIZE);
      assert.match(String(s.attributes[THREADPOOL_AHEAD]), /^PBKDF2REQUEST=\d+/);
      assert.ok((s.attributes[THREADPOOL_IN_FLIGHT] as number) >= SIZE);
      assert.match(String(s.attributes[CODE_FILE]), /threadpool\.test\.js$/);
    }
    const inFlight = await metric<GaugeMetricData>(THREADPOOL_METRICS.inFlight);
    const crypto = inFlight.dataPoints.find((p) => p.attributes[THREADPOOL_CATEGORY] === 'crypto');
    assert.equal(crypto?.value, SIZE * 4, 'peak in flight since the last export');
    const wait = await metric<HistogramMetricData>(THREADPOOL_METRICS.queueWait);
    const cryptoWait = wait.dataPoints.find((p) => p.attributes[THREADPOOL_CATEGORY] === 'crypto')!;
    assert.equal(cryptoWait.value.count, SIZE * 4);
    const canary = await metric<HistogramMetricData>(THREADPOOL_METRICS.canaryWait);
    assert.ok(
      canary.dataPoints[0].value.max! * 1000 > Math.max(measured[0], idleMax * 5000),
      `canary max ${canary.dataPoints[0].value.max! * 1000} ms during the burst, idle ${idleMax * 1000} ms`,
    );
  });

  it('names the work a dns.lookup queued behind', async () => {
    exporter.reset();
    const burst = Array.from({ length: SIZE }, () => hash('secret', 'salt', iterations, 32, 'sha256'));
    const address = await promisify(lookup)('localhost');
    await Promise.all(burst);
    assert.ok(address);
    // A loaded machine may also show a hash that waited for a thread the test's own work held.
    const span = poolWaits().find((s) => s.attributes[THREADPOOL_OP] === 'GETADDRINFOREQWRAP');
    assert.ok(
      span,
      poolWaits()
        .map((s) => String(s.attributes[THREADPOOL_OP]))
        .join(', '),
    );
    assert.equal(span.attributes[THREADPOOL_CATEGORY], 'dns');
    assert.equal(span.attributes[THREADPOOL_AHEAD], `PBKDF2REQUEST=${SIZE}`);
    assert.ok(durationMs(span) > TASK_MS * 0.5, `waited ${durationMs(span)} ms`);
  });

  it('counts zlib and fs work, and reports nothing while the pool keeps up', async () => {
    exporter.reset();
    await metric(THREADPOOL_METRICS.inFlight); // start a fresh peak
    const data = Buffer.alloc(256 * 1024, 'stallscope ');
    const zipped = await Promise.all(Array.from({ length: SIZE * 2 }, () => promisify(gzip)(data)));
    for (const z of zipped) assert.deepEqual(gunzipSync(z), data);
    const texts = await Promise.all(Array.from({ length: SIZE * 2 }, () => promisify(readFile)(__filename, 'utf8')));
    for (const t of texts) assert.match(t, /libuv threadpool monitor/);
    assert.match(await fsp.readFile(__filename, 'utf8'), /libuv threadpool monitor/); // not counted: no JavaScript callback
    const inFlight = await metric<GaugeMetricData>(THREADPOOL_METRICS.inFlight);
    for (const category of ['zlib', 'fs']) {
      const point = inFlight.dataPoints.find((p) => p.attributes[THREADPOOL_CATEGORY] === category);
      assert.ok(point && (point.value as number) >= 2, `${category} in flight ${String(point?.value)}`);
    }
    exporter.reset();
    for (let i = 0; i < 20; i++) await fsp.stat(__filename);
    await Promise.all(Array.from({ length: SIZE }, () => hash('secret', 'salt', 1000, 32, 'sha256')));
    assert.deepEqual(
      poolWaits().map((s) => s.attributes[THREADPOOL_OP]),
      [],
    );
  });

  it('does not take a blocked event loop for a full pool', async () => {
    exporter.reset();
    // Twice the threads of quick stats, then the loop blocks: their callbacks all run late.
    const stats = Array.from({ length: SIZE * 2 }, () => promisify(stat)(__filename));
    const end = performance.now() + 100;
    while (performance.now() < end);
    await Promise.all(stats);
    assert.deepEqual(
      poolWaits().map((s) => `${s.attributes[THREADPOOL_OP]} ${durationMs(s).toFixed(0)} ms`),
      [],
    );
  });

  it('forgets zlib jobs that fail, so later work is not modelled as queued behind them', async () => {
    exporter.reset();
    const corrupt = Buffer.from('not gzip at all, not even close');
    for (let i = 0; i < SIZE; i++) await assert.rejects(promisify(gunzip)(corrupt), /incorrect header check/);
    await Promise.all(Array.from({ length: SIZE - 1 }, () => promisify(stat)(__filename)));
    assert.deepEqual(
      poolWaits().map((s) => String(s.attributes[THREADPOOL_AHEAD])),
      [],
    );
  });
});
