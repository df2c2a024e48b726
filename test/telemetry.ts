import assert from 'node:assert/strict';
// In-process telemetry for the agent's tests: the OpenTelemetry SDK's real tracer and meter
// providers, with spans kept in memory and metrics read on demand (no export interval).
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';

export function inMemoryTelemetry(name: string) {
  const exporter = new InMemorySpanExporter();
  const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer(name);
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 3_600_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  return {
    exporter,
    tracer,
    reader,
    meterProvider,
    meter: meterProvider.getMeter(name),
    /** Finished spans with this name. */
    spans: (spanName: string) => exporter.getFinishedSpans().filter((s) => s.name === spanName),
    /** One metric as collected now (gauges report what they saw since the previous collection). */
    async metric<T extends MetricData = MetricData>(metricName: string): Promise<T> {
      const { resourceMetrics } = await reader.collect();
      return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === metricName) as T;
    },
    /** Several metrics from one collection (gauges observed together report once per collection). */
    async metrics<T extends MetricData = MetricData>(...names: string[]): Promise<Array<T | undefined>> {
      const all = (await reader.collect()).resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
      return names.map((n) => all.find((m) => m.descriptor.name === n) as T | undefined);
    },
  };
}

/** Context propagation across awaits, as the SDK sets it up, so spans find their parents. */
export function enableContext(): void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

/** A plain timer: tasks that wait on it end in timer order, which the behaviour tests compare. */
export const tick = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * At least `ms` of performance.now() time. A timer alone may end sooner by that clock: it counts
 * from the loop's time, which is read once per turn, so a timer set late in a long turn starts
 * from an earlier instant.
 */
export function sleep(ms: number): Promise<void> {
  const until = performance.now() + ms;
  return new Promise((resolve) => {
    const check = () => {
      const left = until - performance.now();
      if (left <= 0) resolve();
      else setTimeout(check, Math.ceil(left));
    };
    setTimeout(check, ms);
  });
}
export const durationMs = (s: ReadableSpan) => s.duration[0] * 1000 + s.duration[1] / 1e6;

/**
 * A wait of at least `least` ms (a `sleep` never ends early; a millisecond for the step between
 * clocks) and at most `most`, a bound the test measured itself: both hold however slow the
 * machine, where a fixed tolerance around the expected time does not.
 */
export function assertWaited(ms: number, least: number, most: number, what: string): void {
  assert.ok(ms >= least - 1, `${what}: ${ms.toFixed(1)} ms, expected at least ${least}`);
  assert.ok(ms <= most + 1, `${what}: ${ms.toFixed(1)} ms, more than the ${most.toFixed(1)} ms the test saw pass`);
}
