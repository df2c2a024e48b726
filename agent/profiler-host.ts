// The loop profiler's main-thread side: it starts and ends profiles when the watchdog thread
// asks (between two callbacks, timing each), and turns what that thread reports into metrics;
// its failures go through the agent's safety path.
import { console as inspectorConsole } from 'node:inspector';
import { performance } from 'node:perf_hooks';
import type { Attributes, Meter } from '@opentelemetry/api';
import {
  PROFILER_COMMAND,
  PROFILER_METRICS,
  PROFILER_OUTCOME,
  PROFILER_OUTCOMES,
  PROFILER_REASON,
  PROFILER_STATE,
  PROFILER_STATES,
} from '../common/conventions';
import { PAUSE_BUCKETS_S } from '../common/buckets';
import { report } from './safety';
import type { ProfilerCommandMessage, ProfilerDone, ProfilerMessage } from './watchdog-protocol';

export class ProfilerHost {
  private rate = 0;
  private stateAttributes: Attributes = { [PROFILER_STATE]: PROFILER_STATES.idle };
  private readonly backoffs;
  private readonly profiles;
  private readonly pauses;

  constructor(
    meter: Meter,
    private readonly reply: (m: ProfilerDone) => void,
  ) {
    meter
      .createObservableGauge(PROFILER_METRICS.rate, {
        description: 'Samples per second the loop profiler asks of V8 now (0: not sampling), and why',
        unit: '{sample}/s',
      })
      .addCallback((result) => result.observe(this.rate, this.stateAttributes));
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
        this.stateAttributes = m.reason
          ? { [PROFILER_STATE]: m.state, [PROFILER_REASON]: m.reason }
          : { [PROFILER_STATE]: m.state };
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
