// Main-thread side of the watchdog thread: the heartbeat it watches, the span and metrics made
// from each blocking episode it reports, and (when the loop profiler runs there) the loop's
// utilization in the heartbeat and the profiler's reports. The watchdog thread also reads the
// app's source maps (for every position the agent reports, see source-mapper.ts).
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ROOT_CONTEXT, SpanKind, context, trace, type Meter, type Tracer } from '@opentelemetry/api';
import {
  BLOCK_AFTER_CAPTURE_MS,
  BLOCK_CAPTURED,
  BLOCK_CAPTURE_ERROR,
  BLOCK_CPU_RATIO,
  BLOCK_ORIGIN,
  BLOCK_REPORTED,
  BLOCK_STARVED,
  BLOCK_THRESHOLD_MS,
  KIND,
  KINDS,
  METRICS,
  REQUEST_EXPORT_REASONS,
  SOURCEMAP_PROBLEM,
  SPAN_NAMES,
} from '../common/conventions';
import { codeAttributes, originOf, isMappable } from './stack';
import { SourceMapper, setActiveSourceMapper, activeSourceMapper } from './source-mapper';
import { report, warnOnce } from './safety';
import { whenStarted } from './startup';
import { caughtBlocking, cpuUs, loopClock, resetLoopClock, turned } from './loop-clock';
import { leanRequestOf, spanContextOf } from './requests/lean-request';
import { ProfilerHost, type SampledUtilization } from './profiler-host';
import {
  BEAT,
  BEAT_SLOTS,
  type EpisodeMessage,
  type FromWatchdog,
  type ProfilerSettings,
  type ToWatchdog,
  type WatchdogData,
} from './watchdog-protocol';
import { BLOCK_BUCKETS_S } from '../common/buckets';

const ACTIVE_SPAN_KEY = 'stallscope.activeSpan';

/** hrtime nanoseconds to epoch milliseconds, for span times. */
function hrToEpochMs(hr: bigint): number {
  return performance.timeOrigin + performance.now() - Number(process.hrtime.bigint() - hr) / 1e6;
}

export interface WatchdogOptions {
  /** Whether blocking episodes are watched (the thread may be there for source maps or the profiler alone). */
  watch: boolean;
  thresholdMs: number;
  maxPerMinute: number;
  /** Whether to map positions through source maps. */
  sourceMaps: boolean;
  profile?: ProfilerSettings;
  /** The resource the profiles describe (the SDK's), when known. */
  resource?: Promise<Record<string, string>>;
  /** Where the loop's sampled utilization goes (for the event-loop metrics). */
  sampled?: SampledUtilization;
}

/** At exit, how long the main thread waits for the profiler to let go of it. */
const EXIT_RELEASE_MS = 100;
// Taken before the sync-call watcher wraps it: the exit handshake is the agent's, not the app's.
const atomicsWait = Atomics.wait;

/** Below this share of one CPU, a block with JavaScript innermost was the machine's doing. */
const STARVED_CPU_RATIO = 0.25;

export class Watchdog {
  private worker: Worker | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly beat: BigInt64Array;
  private readonly heartbeat = new SharedArrayBuffer(BEAT_SLOTS * 8);
  private stopped = false;
  private readonly profiling: boolean;
  private mapper: SourceMapper | undefined;

  constructor(
    private readonly options: WatchdogOptions,
    private readonly tracer: Tracer,
    private readonly meter: Meter,
  ) {
    this.beat = new BigInt64Array(this.heartbeat);
    this.profiling = options.profile !== undefined;
  }

  /**
   * A connected inspector session makes process.exit() and a fatal exception print "Waiting for
   * the debugger to disconnect...": the profiler's is let go of first (a natural exit stops the
   * worker before that check).
   */
  private readonly onExit = () => {
    try {
      if (Atomics.load(this.beat, BEAT.profilerConnected) !== 1n) return;
      this.send({ type: 'release' });
      atomicsWait(this.beat, BEAT.profilerConnected, 1n, EXIT_RELEASE_MS);
    } catch {
      // exiting anyway
    }
  };

  private send(m: ToWatchdog): void {
    this.worker?.postMessage(m);
  }

  start(): void {
    // A getter the watchdog evaluates while the main thread is paused inside the blocking code.
    Object.defineProperty(globalThis, Symbol.for(ACTIVE_SPAN_KEY), {
      value: () => {
        const ctx = context.active();
        caughtBlocking(leanRequestOf(ctx));
        const sc = spanContextOf(ctx, REQUEST_EXPORT_REASONS.stalled);
        return sc ? `${sc.traceId}:${sc.spanId}:${sc.traceFlags}` : '';
      },
      configurable: true,
    });
    const blocks = this.meter.createCounter(METRICS.blocks, {
      description: 'Event-loop blocking episodes over the threshold',
      unit: '{episode}',
    });
    const durations = this.meter.createHistogram(METRICS.blockDuration, {
      description: 'Duration of event-loop blocking episodes',
      unit: 's',
      advice: { explicitBucketBoundaries: BLOCK_BUCKETS_S },
    });
    // The beat interval bounds how precisely an episode's start and end are known.
    const pollMs = Math.max(2, Math.min(10, this.options.thresholdMs / 10));
    const data: WatchdogData = {
      heartbeat: this.heartbeat,
      watch: this.options.watch,
      thresholdMs: this.options.thresholdMs,
      pollMs,
      maxPerMinute: this.options.maxPerMinute,
      activeSpanExpression: `globalThis[Symbol.for(${JSON.stringify(ACTIVE_SPAN_KEY)})]()`,
      profile: this.options.profile,
    };
    const profiler = this.profiling
      ? new ProfilerHost(this.meter, (m) => this.send(m), this.options.sampled)
      : undefined;
    const worker = new Worker(join(__dirname, 'watchdog-worker.js'), {
      workerData: data,
      name: 'stallscope-watchdog',
      // Not the host's --require/--import flags: the agent must not load itself into its own thread.
      execArgv: [],
    });
    this.worker = worker;
    if (this.options.sourceMaps) this.startSourceMaps(worker);
    worker.on('message', (m: FromWatchdog) => {
      try {
        if (m.type === 'unavailable') warnOnce(`blocking stacks are unavailable: ${m.reason}`);
        else if (m.type === 'episode') this.onEpisode(m, blocks, durations);
        else if (m.type === 'map') this.mapper?.loaded(m.file, m.load);
        else if (m.type !== 'ready') profiler?.onMessage(m);
      } catch (err) {
        report('watchdog', err);
      }
    });
    worker.on('error', (err) => report('watchdog thread', err));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    if (this.profiling) {
      process.on('exit', this.onExit);
      this.options.resource?.then(
        (attributes) => this.send({ type: 'resource', attributes }),
        (err: unknown) => report('loop profiler resource', err),
      );
    }
    // Armed only once the app has started, so that loading it is never reported as blocking.
    whenStarted(() => {
      if (this.stopped || !(this.options.watch || this.profiling)) return;
      loopClock.thresholdMs = this.options.thresholdMs;
      this.stamp();
      this.timer = setInterval(() => this.stamp(), pollMs);
      this.timer.unref();
    });
  }

  private startSourceMaps(worker: Worker): void {
    const unusable = this.meter.createCounter(METRICS.sourceMapsUnusable, {
      description: 'Generated files whose source map could not be used (their generated positions are reported)',
      unit: '{file}',
    });
    const problems = new Set<string>();
    this.mapper = new SourceMapper({
      ask: (file) => worker.postMessage({ type: 'load-map', file }),
      unusable: (file, problem, detail) => {
        unusable.add(1, { [SOURCEMAP_PROBLEM]: problem });
        // One warning per kind of problem: a broken build can break every map at once.
        if (problems.has(problem)) return;
        problems.add(problem);
        warnOnce(`the source map of ${file} cannot be used (${detail}); its generated positions are reported`);
      },
    });
    setActiveSourceMapper(this.mapper);
    // The entry script is the one file sure to be on the app's stacks (a bundle: all of it).
    const main = process.argv[1];
    if (main && isMappable(main)) this.mapper.lookAt(main);
  }

  /** Time first, then the count: a reader that sees the new count also sees the new time. */
  private stamp(): void {
    if (this.profiling)
      Atomics.store(this.beat, BEAT.active, BigInt(Math.round(performance.eventLoopUtilization().active * 1000)));
    Atomics.store(this.beat, BEAT.time, process.hrtime.bigint());
    Atomics.add(this.beat, BEAT.count, 1n);
    turned(performance.now(), cpuUs());
  }

  private onEpisode(
    m: EpisodeMessage,
    blocks: ReturnType<Meter['createCounter']>,
    durations: ReturnType<Meter['createHistogram']>,
  ): void {
    const seconds = Number(m.endHr - m.startHr) / 1e9;
    blocks.add(1, { [BLOCK_REPORTED]: m.reported });
    durations.record(seconds);
    if (!m.reported) return;
    const record = () => {
      try {
        this.episodeSpan(m);
      } catch (err) {
        report('watchdog', err);
      }
    };
    if (this.mapper && m.frames?.length) this.mapper.whenReady(m.frames, record);
    else record();
  }

  private episodeSpan(m: EpisodeMessage): void {
    const frames = m.frames && this.mapper ? this.mapper.map(m.frames) : m.frames;
    let parent = ROOT_CONTEXT;
    if (m.activeSpan) {
      const [traceId, spanId, flags] = m.activeSpan.split(':');
      parent = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: Number(flags) || 0, isRemote: false });
    }
    const attributes: Record<string, string | number | boolean> = {
      [KIND]: KINDS.loopBlock,
      [BLOCK_THRESHOLD_MS]: this.options.thresholdMs,
      [BLOCK_CAPTURED]: Boolean(frames?.length),
    };
    if (frames?.length) Object.assign(attributes, codeAttributes(frames), { [BLOCK_ORIGIN]: originOf(frames) });
    if (m.cpuRatio !== undefined) {
      attributes[BLOCK_CPU_RATIO] = m.cpuRatio;
      // Blocked in a native call (a sync read, a child process) the process waits too, but then
      // Node's own frame is innermost; JavaScript innermost with no CPU used means it never ran.
      const inner = frames?.[0];
      attributes[BLOCK_STARVED] =
        m.cpuRatio < STARVED_CPU_RATIO && inner !== undefined && inner.file !== '' && !inner.file.startsWith('node:');
    }
    if (m.error) attributes[BLOCK_CAPTURE_ERROR] = m.error;
    if (m.capturedHr !== undefined) attributes[BLOCK_AFTER_CAPTURE_MS] = Number(m.endHr - m.capturedHr) / 1e6;
    const span = this.tracer.startSpan(
      SPAN_NAMES.loopBlock,
      { kind: SpanKind.INTERNAL, startTime: hrToEpochMs(m.startHr), attributes },
      parent,
    );
    span.end(hrToEpochMs(m.endHr));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    resetLoopClock();
    if (this.profiling) {
      process.off('exit', this.onExit);
      this.onExit();
    }
    if (this.mapper && activeSourceMapper() === this.mapper) setActiveSourceMapper(undefined);
    void this.worker?.terminate();
  }
}
