// Event-loop lag and utilization under the OpenTelemetry semantic-convention names
// (nodejs.eventloop.*). Each export reports the interval since the previous one.
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Meter } from '@opentelemetry/api';
import { LOOP_DELAY_STATS, METRICS } from '../common/conventions';
import type { SampledUtilization } from './profiler-host';
import { report } from './safety';

const RESOLUTION_MS = 10;

export class LoopMetrics {
  private readonly histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor(
    private readonly meter: Meter,
    /** The loop profiler's figure, which holds while it samples (libuv's does not then). */
    private readonly sampled?: SampledUtilization,
  ) {}

  start(): void {
    this.histogram.enable();
    const gauges = LOOP_DELAY_STATS.map((stat) =>
      this.meter.createObservableGauge(`${METRICS.loopDelayPrefix}${stat}`, {
        description: `Event loop delay: ${stat}`,
        unit: 's',
      }),
    );
    const utilization = this.meter.createObservableGauge(METRICS.loopUtilization, {
      description: 'Share of time the event loop was busy since the previous export',
      unit: '1',
    });
    const time = this.meter.createObservableCounter(METRICS.loopTime, {
      description: 'Time the event loop spent active and idle',
      unit: 's',
    });
    let previous: EventLoopUtilization = performance.eventLoopUtilization();
    this.meter.addBatchObservableCallback(
      (result) => {
        try {
          const h = this.histogram;
          if (h.count > 0) {
            // Every sample includes the sampling resolution itself; only the excess is delay.
            const excess = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1000;
            const values: Record<(typeof LOOP_DELAY_STATS)[number], number> = {
              min: excess(h.min),
              max: excess(h.max),
              mean: excess(h.mean),
              stddev: h.stddev / 1e9,
              p50: excess(h.percentile(50)),
              p90: excess(h.percentile(90)),
              p99: excess(h.percentile(99)),
            };
            LOOP_DELAY_STATS.forEach((stat, i) => result.observe(gauges[i], values[stat]));
            h.reset();
          }
          const now = performance.eventLoopUtilization();
          result.observe(
            utilization,
            this.sampled?.take() ?? performance.eventLoopUtilization(now, previous).utilization,
          );
          previous = now;
          result.observe(time, now.active / 1000, { [METRICS.loopState]: 'active' });
          result.observe(time, now.idle / 1000, { [METRICS.loopState]: 'idle' });
        } catch (err) {
          report('event-loop metrics', err);
        }
      },
      [...gauges, utilization, time],
    );
  }

  stop(): void {
    this.histogram.disable();
  }
}
