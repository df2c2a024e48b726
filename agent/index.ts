// The stallscope agent. `start()` sets up the OpenTelemetry Node SDK (unless the app already
// registered its own tracer provider, in which case stallscope adds to that one), the library
// instrumentations (HTTP and express, or in lean request mode stallscope's own HTTP server
// instrumentation; the lock libraries, the worker pools) and the detectors: event-loop metrics,
// the blocking-episode watchdog and the loop CPU profiler on its thread, worker-pool tracking,
// lock tracking and Web Locks, the libuv threadpool monitor, and sync-call timing. Each can be
// switched off.
import { randomUUID } from 'node:crypto';
import { isMainThread } from 'node:worker_threads';
import { metrics, trace, type Tracer, type Meter } from '@opentelemetry/api';
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
  type Resource,
} from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { AlwaysOnSampler } from '@opentelemetry/sdk-trace-base';
import { AggregationType, type ViewOptions } from '@opentelemetry/sdk-metrics';
import { registerInstrumentations, type Instrumentation } from '@opentelemetry/instrumentation';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { ExpressInstrumentation } from '@opentelemetry/instrumentation-express';
import {
  LOCK_METRICS,
  METRICS,
  POOL_METRICS,
  PROFILE_PATH,
  SERVICE_INSTANCE_ID,
  THREADPOOL_METRICS,
} from '../common/conventions';
import { otlpTarget, resolveConfig, type AgentConfig, type InstrumentationName } from './config';
import { LoopMetrics } from './loop-metrics';
import { SampledUtilization } from './profiler-host';
import { SyncCallWatcher } from './sync-calls';
import { Watchdog } from './watchdog';
import { activeSourceMapper } from './source-mapper';
import { LockTracker } from './locks/tracker';
import { AsyncMutexInstrumentation, LOCK_NAME_KEY } from './locks/async-mutex';
import { AsyncLockInstrumentation } from './locks/async-lock';
import { PLimitInstrumentation, PQueueInstrumentation } from './locks/limiters';
import { WebLocksInstrumentation } from './locks/web-locks';
import { ThreadpoolMonitor } from './offload/threadpool';
import { PoolTracker } from './offload/pool-tracker';
import { PiscinaInstrumentation } from './offload/piscina';
import { WorkerpoolInstrumentation } from './offload/workerpool';
import { LeanHttpInstrumentation } from './requests/lean-http';
import { report, setErrorCounter, warnOnce } from './safety';

export type { AgentConfig } from './config';
export { Mutex, Semaphore, LockTimeoutError, type AcquireOptions, type Release } from './locks/named';

/**
 * Names a lock for stallscope (otherwise it is named by the file:line that created it).
 * Returns the lock, so it can wrap a constructor: `const orders = nameLock(new Mutex(), 'orders')`.
 */
export function nameLock<T extends object>(lock: T, name: string): T {
  try {
    const target = lock as Record<string | symbol, unknown>;
    target[LOCK_NAME_KEY] = name;
    const inner = target._semaphore as Record<string | symbol, unknown> | undefined;
    if (inner && typeof inner === 'object') inner[LOCK_NAME_KEY] = name;
  } catch (err) {
    report('nameLock', err);
  }
  return lock;
}

export interface StallscopeAgent {
  readonly config: AgentConfig;
  /** Whether stallscope started its own OpenTelemetry SDK (false: it joined the app's). */
  readonly ownsSdk: boolean;
  /** Stops the detectors and, if the agent owns the SDK, flushes and shuts it down. */
  shutdown(): Promise<void>;
}

const INSTANCE = Symbol.for('stallscope.agent');
const VERSION = '0.1.0';
const FLUSH_ON_SIGNAL_MS = 2000;
const FLUSH_ON_EXIT_MS = 2000;
const SETTLE_MAPS_MS = 500;

type Global = typeof globalThis & { [INSTANCE]?: StallscopeAgent };

function registeredTracerProvider(): object {
  const provider = trace.getTracerProvider() as { getDelegate?: () => object };
  return provider.getDelegate?.() ?? provider;
}

function hasOwnTracerProvider(): boolean {
  return registeredTracerProvider().constructor.name !== 'NoopTracerProvider';
}

/**
 * The resource the SDK puts on everything, as `key=value` text for the loop profiles. The SDK
 * has no public getter: its tracer provider keeps it in `_resource`; failing that, what the
 * environment says (service name and OTEL_RESOURCE_ATTRIBUTES, through the default resource).
 */
async function sdkResourceAttributes(): Promise<Record<string, string>> {
  const held = (registeredTracerProvider() as { _resource?: Resource })._resource;
  const resource =
    held && typeof held.merge === 'function'
      ? held
      : defaultResource().merge(detectResources({ detectors: [envDetector] }));
  await resource.waitForAsyncAttributes?.();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(resource.attributes)) {
    if (v !== undefined && v !== null) out[k] = Array.isArray(v) ? v.join(',') : String(v);
  }
  return out;
}

/** Starts the agent once per process; later calls return the running instance. */
/**
 * Waits, holds, queue waits and run times as base-2 exponential histograms: their percentiles are
 * within a few percent of exact at any range, where fixed buckets only give their edges. (An app
 * with its own SDK keeps the explicit buckets the instruments advise.)
 */
// Not the hold time: it is recorded on every acquisition, and the SDK's exponential aggregation
// costs about 3.5 µs a record there (an uncontended acquire+release went from 1.1 to 4.8 µs); its
// explicit buckets serve the hold p95 well enough. Waits are recorded only when contended.
const DURATION_VIEWS: ViewOptions[] = [
  LOCK_METRICS.waitTime,
  THREADPOOL_METRICS.queueWait,
  THREADPOOL_METRICS.canaryWait,
  POOL_METRICS.queueWait,
  POOL_METRICS.runTime,
].map((instrumentName) => ({
  instrumentName,
  aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160 } },
}));

export function start(options: Partial<AgentConfig> = {}): StallscopeAgent {
  const g = globalThis as Global;
  if (g[INSTANCE]) return g[INSTANCE];
  const config = resolveConfig(process.env, options, warnOnce);
  const inert: StallscopeAgent = { config, ownsSdk: false, shutdown: async () => undefined };
  if (config.disabled) return (g[INSTANCE] = inert);
  if (!isMainThread) {
    warnOnce('the agent runs on the main thread only; start() in a worker thread does nothing');
    return (g[INSTANCE] = inert);
  }
  try {
    const agent = startDetectors(config);
    g[INSTANCE] = agent;
    return agent;
  } catch (err) {
    warnOnce(`agent disabled: ${(err as Error).message}`);
    return (g[INSTANCE] = inert);
  }
}

function startDetectors(config: AgentConfig): StallscopeAgent {
  const wanted = (name: InstrumentationName) => config.instrumentations.includes(name);
  const lean = config.requests === 'lean';
  const libraries: Array<[InstrumentationName, boolean, () => Instrumentation]> = [
    // Lean: stallscope's own server instrumentation (a span only for a request that stalled).
    [
      'http',
      true,
      () => (lean ? new LeanHttpInstrumentation({ slowRequestMs: config.slowRequestMs }) : new HttpInstrumentation()),
    ],
    ['express', !lean, () => new ExpressInstrumentation()],
    ['async-mutex', config.locks, () => new AsyncMutexInstrumentation()],
    ['async-lock', config.locks, () => new AsyncLockInstrumentation()],
    ['p-limit', config.locks, () => new PLimitInstrumentation()],
    ['p-queue', config.locks, () => new PQueueInstrumentation()],
    ['piscina', config.pools, () => new PiscinaInstrumentation()],
    ['workerpool', config.pools, () => new WorkerpoolInstrumentation()],
  ];
  const instrumentations = libraries.filter(([name, on]) => on && wanted(name)).map(([, , create]) => create());
  let sdk: NodeSDK | undefined;
  if (hasOwnTracerProvider()) {
    registerInstrumentations({ instrumentations });
  } else {
    // service.instance.id tells this process's profiles, spans and metrics from its replicas'
    // (OTEL_RESOURCE_ATTRIBUTES still wins: detected attributes are merged over this one).
    const resource = defaultResource().merge(resourceFromAttributes({ [SERVICE_INSTANCE_ID]: randomUUID() }));
    // Lean: the agent decides which requests are exported (those that stalled), so a ratio
    // sampler would only drop stalls; its spans are always sampled.
    sdk = new NodeSDK({
      instrumentations,
      resource,
      views: DURATION_VIEWS,
      ...(lean ? { sampler: new AlwaysOnSampler() } : {}),
    });
    sdk.start();
  }
  const tracer: Tracer = trace.getTracer('stallscope', VERSION);
  const meter: Meter = metrics.getMeter('stallscope', VERSION);
  setErrorCounter(meter.createCounter(METRICS.agentErrors, { description: 'Failures inside the stallscope agent' }));

  const stops: Array<() => void> = [];
  /** A detector made and started inside a guard (a failure is reported, never thrown), stopped at shutdown. */
  const run = (name: string, make: () => { start(): void; stop(): void }) => {
    try {
      const detector = make();
      detector.start();
      stops.push(() => detector.stop());
    } catch (err) {
      report(name, err);
    }
  };
  const target = config.profileHz > 0 ? otlpTarget(process.env, PROFILE_PATH, warnOnce) : undefined;
  const sampled = target ? new SampledUtilization() : undefined;
  if (config.loopMetrics) run('event-loop metrics', () => new LoopMetrics(meter, sampled));
  // The watchdog's thread also reads source maps and runs the loop profiler, so it runs for any.
  if (config.watchdog || config.sourceMaps || target)
    run('watchdog', () => {
      const profile = target && { hz: config.profileHz, windowMs: config.profileWindowMs, target };
      return new Watchdog(
        {
          watch: config.watchdog,
          thresholdMs: config.blockThresholdMs,
          maxPerMinute: config.maxBlockSpansPerMinute,
          sourceMaps: config.sourceMaps,
          profile,
          resource: profile && sdkResourceAttributes(),
          sampled,
        },
        tracer,
        meter,
      );
    });
  if (config.pools) run('pool tracking', () => new PoolTracker(tracer, meter));
  if (config.locks) {
    run(
      'lock tracking',
      () =>
        new LockTracker(
          {
            waitThresholdMs: config.lockWaitThresholdMs,
            heldThresholdMs: config.lockHeldThresholdMs,
            keyNames: config.lockKeyNames,
          },
          tracer,
          meter,
        ),
    );
    if (wanted('web-locks')) run('web locks', () => new WebLocksInstrumentation());
  }
  if (config.threadpool) {
    run(
      'threadpool monitor',
      () =>
        new ThreadpoolMonitor(
          { waitThresholdMs: config.threadpoolWaitThresholdMs, canaryIntervalMs: config.threadpoolCanaryMs },
          tracer,
          meter,
        ),
    );
  }
  if (config.syncCalls)
    run(
      'sync-call watcher',
      () =>
        new SyncCallWatcher(
          { thresholdMs: config.syncThresholdMs, jsonSizeThreshold: config.jsonSizeThreshold },
          tracer,
          meter,
        ),
    );

  let shutdown: Promise<void> | undefined;
  const agent: StallscopeAgent = {
    config,
    ownsSdk: sdk !== undefined,
    shutdown() {
      shutdown ??= (async () => {
        // Spans waiting for a source map are recorded before the exporters flush.
        await activeSourceMapper()
          ?.settle(SETTLE_MAPS_MS)
          .catch((err: unknown) => report('source maps', err));
        for (const stop of stops.reverse()) {
          try {
            stop();
          } catch (err) {
            report('shutdown', err);
          }
        }
        await sdk?.shutdown().catch((err: unknown) => report('sdk shutdown', err));
      })();
      return shutdown;
    },
  };
  if (sdk) flushOnExit(agent);
  return agent;
}

/**
 * Exports what is buffered when the process ends on its own, and on SIGTERM/SIGINT when the app
 * has no handler of its own (the signal is then re-raised, so the process ends as it would have).
 * The flush is bounded: an unreachable collector delays the exit by at most FLUSH_ON_EXIT_MS.
 */
function flushOnExit(agent: StallscopeAgent): void {
  process.once('beforeExit', () => {
    // beforeExit means the process was ending with process.exitCode; process.exit() keeps it.
    const bound = setTimeout(() => process.exit(), FLUSH_ON_EXIT_MS);
    bound.unref();
    void agent.shutdown().finally(() => clearTimeout(bound));
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return; // the app decides what its signals do
      const timer = setTimeout(reraise, FLUSH_ON_SIGNAL_MS);
      function reraise() {
        clearTimeout(timer);
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
      agent.shutdown().then(reraise, reraise);
    };
    process.on(signal, onSignal);
  }
}
