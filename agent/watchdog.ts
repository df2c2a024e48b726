// Main-thread side of blocking-episode detection: the heartbeat the watchdog thread watches,
// and the span and metrics made from each episode it reports. The watchdog thread also reads the
// app's source maps (for every position the agent reports, see source-mapper.ts).
import { join } from 'node:path';
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
import type { FromWatchdog, EpisodeMessage, WatchdogData } from './watchdog-protocol';
import { BLOCK_BUCKETS_S } from '../common/buckets';

const ACTIVE_SPAN_KEY = 'stallscope.activeSpan';

/** hrtime nanoseconds to epoch milliseconds, for span times. */
function hrToEpochMs(hr: bigint): number {
  return performance.timeOrigin + performance.now() - Number(process.hrtime.bigint() - hr) / 1e6;
}

export interface WatchdogOptions {
  thresholdMs: number;
  maxPerMinute: number;
  /** Whether to detect blocking episodes (else the thread only serves source maps). */
  watch: boolean;
  /** Whether to map positions through source maps. */
  sourceMaps: boolean;
}

/** Below this share of one CPU, a block with JavaScript innermost was the machine's doing. */
const STARVED_CPU_RATIO = 0.25;

export class Watchdog {
  private worker: Worker | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly beat: BigInt64Array;
  private readonly heartbeat = new SharedArrayBuffer(16);
  private stopped = false;
  private mapper: SourceMapper | undefined;

  constructor(
    private readonly options: WatchdogOptions,
    private readonly tracer: Tracer,
    private readonly meter: Meter,
  ) {
    this.beat = new BigInt64Array(this.heartbeat);
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
      thresholdMs: this.options.thresholdMs,
      pollMs,
      maxPerMinute: this.options.maxPerMinute,
      activeSpanExpression: `globalThis[Symbol.for(${JSON.stringify(ACTIVE_SPAN_KEY)})]()`,
      watch: this.options.watch,
    };
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
      } catch (err) {
        report('watchdog', err);
      }
    });
    worker.on('error', (err) => report('watchdog thread', err));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    // Armed only once the app has started, so that loading it is never reported as blocking.
    whenStarted(() => {
      if (this.stopped || !this.options.watch) return;
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
    Atomics.store(this.beat, 0, process.hrtime.bigint());
    Atomics.add(this.beat, 1, 1n);
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
    if (this.mapper && activeSourceMapper() === this.mapper) setActiveSourceMapper(undefined);
    void this.worker?.terminate();
  }
}
