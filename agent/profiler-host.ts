// The loop profiler's main-thread side: it starts and ends profiles when the watchdog thread
// asks (between two callbacks, timing each), and turns what that thread reports into metrics;
// its failures go through the agent's safety path.
import { console as inspectorConsole } from 'node:inspector';
import { performance } from 'node:perf_hooks';
import type { Meter } from '@opentelemetry/api';
import {
  PROFILER_COMMAND,
  PROFILER_METRICS,
  PROFILER_OUTCOME,
  PROFILER_OUTCOMES,
  PROFILER_REASON,
  PROFILER_STATE,
  PROFILER_STATES,
  type ProfilerState,
} from '../common/conventions';
import { PAUSE_BUCKETS_S } from '../common/buckets';
import { report } from './safety';
import type { ProfilerCommandMessage, ProfilerDone, ProfilerMessage } from './watchdog-protocol';

/**
 * The loop's utilization as the profiler samples it. While V8's profiler runs, libuv under-counts
 * the loop's idle time (the sampling signals interrupt its poll, and the time polled until then
 * is dropped), so the event-loop metrics take it from here instead: the share of busy samples in
 * the windows that ended since they last asked (the last window's if none did).
 */
export class SampledUtilization {
  private busySeconds = 0;
  private seconds = 0;
  private last: number | undefined;
  /** Whether the profiler sampled since the last take(). */
  private sampledSince = false;
  private sampling = false;

  setSampling(on: boolean): void {
    this.sampling = on;
    if (on) this.sampledSince = true;
  }

  add(busy: number, seconds: number): void {
    this.busySeconds += busy * seconds;
    this.seconds += seconds;
    this.sampledSince = true;
  }

  /** The sampled utilization since the last call, or undefined when libuv's own figure holds. */
  take(): number | undefined {
    const sampled = this.sampledSince;
    this.sampledSince = this.sampling;
    if (!sampled) return undefined;
    if (this.seconds > 0) this.last = this.busySeconds / this.seconds;
    this.busySeconds = this.seconds = 0;
    return this.last;
  }
}

export class ProfilerHost {
  private rate = 0;
  private state: ProfilerState = PROFILER_STATES.idle;
  private readonly backoffs;
  private readonly profiles;
  private readonly pauses;

  constructor(
    meter: Meter,
    private readonly reply: (m: ProfilerDone) => void,
    private readonly sampled?: SampledUtilization,
  ) {
    meter
      .createObservableGauge(PROFILER_METRICS.rate, {
        description: 'Samples per second the loop profiler asks of V8 now (0: not sampling)',
        unit: '{sample}/s',
      })
      .addCallback((result) => result.observe(this.rate));
    // Every state, 1 for the one in force: a series per state that never goes stale.
    const states = Object.values(PROFILER_STATES).map((state) => ({ state, attributes: { [PROFILER_STATE]: state } }));
    meter
      .createObservableGauge(PROFILER_METRICS.state, {
        description: 'What the loop profiler is doing: 1 for the state in force, 0 for the others',
        unit: '1',
      })
      .addCallback((result) => {
        for (const s of states) result.observe(s.state === this.state ? 1 : 0, s.attributes);
      });
    this.backoffs = meter.createCounter(PROFILER_METRICS.backoffs, {
      description: 'Times the loop profiler lowered its rate or stopped to spare the loop',
      unit: '{backoff}',
    });
    this.profiles = meter.createCounter(PROFILER_METRICS.profiles, {
      description: 'Loop profiles by what became of them',
      unit: '{profile}',
    });
    this.pauses = meter.createHistogram(PROFILER_METRICS.pause, {
      description: "Main-thread time of the loop profiler's starts, relays and stops",
      unit: 's',
      advice: { explicitBucketBoundaries: PAUSE_BUCKETS_S },
    });
  }

  onMessage(m: ProfilerMessage): void {
    switch (m.type) {
      case 'profiler-command':
        this.run(m);
        break;
      case 'profiler-state':
        this.rate = m.hz;
        this.state = m.state;
        this.sampled?.setSampling(m.hz > 0);
        break;
      case 'profile-utilization':
        this.sampled?.add(m.busy, m.seconds);
        break;
      case 'profiler-backoff':
        this.backoffs.add(1, { [PROFILER_REASON]: m.reason });
        break;
      case 'profile':
        this.profiles.add(1, { [PROFILER_OUTCOME]: m.outcome });
        if (m.outcome === PROFILER_OUTCOMES.failed) report('loop profile export', new Error(m.error));
        break;
      case 'profiler-error':
        report('loop profiler', new Error(m.error));
        break;
    }
  }

  /**
   * The inspector's console (not the app's, which may be replaced) reaches the profiler of every
   * session that enabled it: the watchdog thread's.
   */
  private run(m: ProfilerCommandMessage): void {
    const t0 = performance.now();
    let error: string | undefined;
    try {
      if (m.start) inspectorConsole.profile(m.start);
      if (m.end) inspectorConsole.profileEnd(m.end);
    } catch (err) {
      error = (err as Error).message;
    }
    const ms = performance.now() - t0;
    this.pauses.record(ms / 1000, { [PROFILER_COMMAND]: m.command });
    this.reply({ type: 'profiler-done', id: m.id, ms, error });
  }
}
