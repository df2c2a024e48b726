// The telemetry names every part agrees on: the agent emits them, the collector and the
// dashboard query them. docs/conventions.md explains each; change both together.

/** `stallscope.kind` on every span the agent makes, so spans can be classified without parsing names. */
export const KIND = 'stallscope.kind';
export const KINDS = {
  loopBlock: 'loop-block',
  syncCall: 'sync-call',
  /** Python agent: asyncio.run() or run_until_complete() called inside a running loop. */
  nestedLoop: 'nested-loop',
  /** A contended acquisition that waited over the threshold (or failed). */
  lockWait: 'lock-wait',
  /** A lock held too long while others wait, reported while still held. */
  lockHeld: 'lock-held',
  /** A libuv threadpool operation that waited for a thread, from submission to its estimated start. */
  threadpoolWait: 'threadpool-wait',
  /** One worker-pool task from submission to its result, under the span that submitted it. */
  poolTask: 'pool-task',
} as const;
export type AgentKind = (typeof KINDS)[keyof typeof KINDS];
/** Every `stallscope.kind` the agent puts on its spans. */
export const AGENT_KINDS: readonly AgentKind[] = Object.values(KINDS);
export const isAgentKind = (v: string): v is AgentKind => (AGENT_KINDS as readonly string[]).includes(v);

/** Span names of the agent's spans (sync calls are named by their API instead). */
export const SPAN_NAMES = {
  loopBlock: 'event loop blocked',
  nestedLoop: 'nested event loop',
  lockWait: 'lock wait',
  lockHeld: 'lock held too long',
  threadpoolWait: 'threadpool wait',
  poolTask: 'pool task',
} as const;

/** On `stallscope.agent.errors`: the part of the agent that failed. */
export const AGENT_COMPONENT = 'stallscope.agent.component';

// OpenTelemetry semantic-convention attributes (code.*).
export const CODE_FUNCTION = 'code.function.name';
export const CODE_FILE = 'code.file.path';
export const CODE_LINE = 'code.line.number';
export const CODE_COLUMN = 'code.column.number';
export const CODE_STACKTRACE = 'code.stacktrace';
// Where the code.* frame ran, when a source map moved code.* to the source the user wrote.
export const CODE_GENERATED_FILE = 'stallscope.code.generated.file.path';
export const CODE_GENERATED_LINE = 'stallscope.code.generated.line.number';
export const CODE_GENERATED_COLUMN = 'stallscope.code.generated.column.number';
export const CODE_GENERATED_STACKTRACE = 'stallscope.code.generated.stacktrace';
/** On stallscope.sourcemap.unusable: `missing`, `invalid` or `too-large`. */
export const SOURCEMAP_PROBLEM = 'stallscope.sourcemap.problem';

// Blocking episodes.
export const BLOCK_THRESHOLD_MS = 'stallscope.block.threshold_ms';
export const BLOCK_CAPTURED = 'stallscope.block.stack_captured';
export const BLOCK_CAPTURE_ERROR = 'stallscope.block.capture_error';
export const BLOCK_AFTER_CAPTURE_MS = 'stallscope.block.after_capture_ms';
/**
 * Whose code was running when the loop blocked: `app` (a frame of user code is on the stack),
 * `dependency` (only node_modules below Node's own), `telemetry` (the agent or OpenTelemetry, e.g.
 * an exporter serialising a batch), `runtime` (Node's own frames only).
 */
export const BLOCK_ORIGIN = 'stallscope.block.origin';
/** Process CPU time over wall time while the block was watched (absent when too short to tell). */
export const BLOCK_CPU_RATIO = 'stallscope.block.cpu_ratio';
/**
 * The process hardly ran while JavaScript was on the stack: the machine (CPU starvation), not this
 * code, held the loop up. Findings leave such episodes out.
 */
export const BLOCK_STARVED = 'stallscope.block.starved';
export const BLOCK_ORIGINS = {
  app: 'app',
  dependency: 'dependency',
  telemetry: 'telemetry',
  runtime: 'runtime',
} as const;
export type BlockOrigin = (typeof BLOCK_ORIGINS)[keyof typeof BLOCK_ORIGINS];

// Blocking synchronous calls.
export const SYNC_API = 'stallscope.sync.api';
export const SYNC_BYTES = 'stallscope.sync.bytes';
/** On stallscope.sync.time and .calls: the call site, `fn (file:line)`, or one of SYNC_SITES. */
export const SYNC_SITE = 'stallscope.sync.site';
export const SYNC_SITES = { fast: '(fast calls)', other: '(other)' } as const;

/** Loop CPU profiles (pprof), posted to the OTLP endpoint's PROFILE_PATH; see docs/conventions.md. */
export const PROFILE_PATH = '/v1/profiles/pprof';
export const PROFILE_TIMESTAMP_LABEL = 'timestamp';
export const PROFILE_REQUESTED_HZ = 'stallscope.profile.requested_hz';
/** A pprof Mapping's filename: whose code a location is (the BLOCK_ORIGINS). */
export const PROFILE_ORIGINS = BLOCK_ORIGINS;
/**
 * The OpenTelemetry resource attribute both agents set (unless the environment does), so that a
 * process's profiles, spans and metrics can be told from its replicas'.
 */
export const SERVICE_INSTANCE_ID = 'service.instance.id';
/** What the profiler is doing, on stallscope.profiler.state (see docs/conventions.md, Loop CPU profiles). */
export const PROFILER_STATE = 'stallscope.profiler.state';
export const PROFILER_STATES = {
  /** At the requested rate. */
  sampling: 'sampling',
  /** Backed off to a lower rate (a reason says why). */
  reduced: 'reduced',
  /** Backed off completely: not sampling although the loop is busy. */
  paused: 'paused',
  /** Not sampling because the loop has nothing to do. */
  idle: 'idle',
  /** The inspector cannot reach the main thread. */
  unavailable: 'unavailable',
} as const;
export type ProfilerState = (typeof PROFILER_STATES)[keyof typeof PROFILER_STATES];
/** Why the profiler backed off: the loop had no headroom, or profiling's own measured pauses were too long. */
export const PROFILER_REASON = 'stallscope.profiler.reason';
export const PROFILER_REASONS = { saturated: 'saturated', cost: 'cost' } as const;
export type ProfilerReason = (typeof PROFILER_REASONS)[keyof typeof PROFILER_REASONS];
/** On stallscope.profiler.profiles: what became of a window's profile. */
export const PROFILER_OUTCOME = 'stallscope.profiler.outcome';
export const PROFILER_OUTCOMES = { sent: 'sent', failed: 'failed', dropped: 'dropped' } as const;
export type ProfilerOutcome = (typeof PROFILER_OUTCOMES)[keyof typeof PROFILER_OUTCOMES];
/** On stallscope.profiler.pause: the profiler command that held the main thread. */
export const PROFILER_COMMAND = 'stallscope.profiler.command';
export const PROFILER_COMMANDS = { start: 'start', boundary: 'boundary', stop: 'stop' } as const;
export type ProfilerCommand = (typeof PROFILER_COMMANDS)[keyof typeof PROFILER_COMMANDS];
export const PROFILER_METRICS = {
  /** The sampling rate in force (0 when not sampling). */
  rate: 'stallscope.profiler.rate',
  /** One series per PROFILER_STATES value: 1 for the state in force, 0 for the others. */
  state: 'stallscope.profiler.state',
  backoffs: 'stallscope.profiler.backoffs',
  profiles: 'stallscope.profiler.profiles',
  /** Main-thread time a profiler command took, measured from the watchdog thread (an upper bound). */
  pause: 'stallscope.profiler.pause',
} as const;

/** Python agent, on nested-loop spans: `asyncio.run` or `loop.run_until_complete`. */
export const NESTED_API = 'stallscope.nested.api';

export const METRICS = {
  // OpenTelemetry semantic conventions for the Node.js runtime (seconds, and a ratio).
  loopDelayPrefix: 'nodejs.eventloop.delay.',
  loopUtilization: 'nodejs.eventloop.utilization',
  loopTime: 'nodejs.eventloop.time',
  loopState: 'nodejs.eventloop.state',
  // Ours.
  blocks: 'stallscope.eventloop.blocks',
  blockDuration: 'stallscope.eventloop.block.duration',
  syncDuration: 'stallscope.sync.duration',
  syncTime: 'stallscope.sync.time',
  syncCalls: 'stallscope.sync.calls',
  agentErrors: 'stallscope.agent.errors',
  /** Generated files whose source map could not be used (each counted once). */
  sourceMapsUnusable: 'stallscope.sourcemap.unusable',
} as const;

/** The delay statistics emitted as nodejs.eventloop.delay.<stat>. */
export const LOOP_DELAY_STATS = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const;

/** Attribute on stallscope.eventloop.blocks: false when the rate limit dropped the episode's span. */
export const BLOCK_REPORTED = 'stallscope.block.reported';

// Locks (spans of kinds lock-wait and lock-held).
export const LOCK_NAME = 'stallscope.lock.name';
export const LOCK_TYPE = 'stallscope.lock.type';
export const LOCK_OUTCOME = 'stallscope.lock.outcome';
export const LOCK_CONTENDED = 'stallscope.lock.contended';
export const LOCK_QUEUE_DEPTH = 'stallscope.lock.queue_depth';
export const LOCK_ACQUIRE_SITE = 'stallscope.lock.acquire_site';
export const LOCK_HOLDER_SITE = 'stallscope.lock.holder_site';
/** lock-wait: the holds the wait was charged to, most charged first (up to 5, then `(other)`). */
export const LOCK_HOLDER_SITES = 'stallscope.lock.holder_sites';
/** lock-wait: the ms charged to each of LOCK_HOLDER_SITES, in the same order. */
export const LOCK_HOLDER_MS = 'stallscope.lock.holder_ms';
/** lock-wait: the part of the wait no hold covered (the lock was free, the waiter not yet resumed). */
export const LOCK_HANDOFF_MS = 'stallscope.lock.handoff_ms';
/** Holder sites that are not code: see docs/conventions.md (Lock blame). */
export const LOCK_SITES = { handoff: '(handoff)', unknown: '(unknown)', other: '(other)' } as const;
/** The generated file:line of the acquire and holder sites, where a source map moved them. */
export const LOCK_ACQUIRE_GENERATED_SITE = 'stallscope.lock.acquire_generated_site';
export const LOCK_HOLDER_GENERATED_SITE = 'stallscope.lock.holder_generated_site';
export const LOCK_HOLDER_TRACE = 'stallscope.lock.holder_trace_id';
export const LOCK_HOLDER_SPAN = 'stallscope.lock.holder_span_id';
export const LOCK_HELD_MS = 'stallscope.lock.held_ms';
export const LOCK_WAITERS = 'stallscope.lock.waiters';
export const LOCK_METRICS = {
  waitTime: 'stallscope.lock.wait_time',
  holdTime: 'stallscope.lock.hold_time',
  acquisitions: 'stallscope.lock.acquisitions',
  pending: 'stallscope.lock.pending_requests',
  /** Wait charged to the holds that caused it, by holder site and waiter site (seconds). */
  waitCaused: 'stallscope.lock.wait_caused',
  /** Requests waiting now (at the export), and how long the oldest of them has waited (s). */
  waiting: 'stallscope.lock.waiting',
  oldestWait: 'stallscope.lock.oldest_wait',
} as const;

// libuv threadpool (spans of kind threadpool-wait).
export const THREADPOOL_CATEGORY = 'stallscope.threadpool.category';
export const THREADPOOL_OP = 'stallscope.threadpool.op';
export const THREADPOOL_SIZE = 'stallscope.threadpool.size';
export const THREADPOOL_IN_FLIGHT = 'stallscope.threadpool.in_flight';
export const THREADPOOL_RUN_MS = 'stallscope.threadpool.run_ms';
export const THREADPOOL_AHEAD = 'stallscope.threadpool.ahead';
export const THREADPOOL_METRICS = {
  queueWait: 'stallscope.threadpool.queue_wait',
  canaryWait: 'stallscope.threadpool.canary_wait',
  inFlight: 'stallscope.threadpool.in_flight',
  size: 'stallscope.threadpool.size',
} as const;

// Worker pools: Piscina, workerpool (spans of kind pool-task).
export const POOL_NAME = 'stallscope.pool.name';
export const POOL_TYPE = 'stallscope.pool.type';
export const POOL_TASK = 'stallscope.pool.task';
export const POOL_OUTCOME = 'stallscope.pool.outcome';
export const POOL_QUEUE_WAIT_MS = 'stallscope.pool.queue_wait_ms';
export const POOL_RUN_MS = 'stallscope.pool.run_ms';
export const POOL_METRICS = {
  queueWait: 'stallscope.pool.queue_wait',
  runTime: 'stallscope.pool.run_time',
  queueSize: 'stallscope.pool.queue_size',
  threads: 'stallscope.pool.threads',
  /** Python agent: a ThreadPoolExecutor's max_workers. */
  maxThreads: 'stallscope.pool.max_threads',
} as const;

// HTTP server requests (OpenTelemetry semantic conventions, and the older names the HTTP
// instrumentation still emits by default).
export const HTTP_METHOD = 'http.request.method';
export const HTTP_ROUTE = 'http.route';
export const HTTP_STATUS = 'http.response.status_code';
export const URL_PATH = 'url.path';
export const URL_SCHEME = 'url.scheme';
export const ERROR_TYPE = 'error.type';
export const HTTP_METHOD_OLD = 'http.method';
export const HTTP_TARGET_OLD = 'http.target';
/**
 * Lean request mode, for a server that gives no route template (plain node:http): the path with
 * its ids folded (`/orders/:id`), on the request metrics and the exported server spans.
 */
export const HTTP_PATH_ROUTE = 'stallscope.http.path_route';
export const HTTP_METRICS = {
  /** Semantic conventions: every request's duration (s), by method, route and status. */
  serverDuration: 'http.server.request.duration',
} as const;
/**
 * Lean request mode: every request's time by cause (s), per method and route: the stalls the
 * agent saw inside it (`stallscope.cause.kind` one of the routes breakdown's kinds, with
 * `stallscope.cause.what`), the rest as `unattributed`; the causes add up to the durations.
 */
export const REQUEST_METRICS = {
  time: 'stallscope.request.time',
} as const;
export const CAUSE_KIND = 'stallscope.cause.kind';
export const CAUSE_WHAT = 'stallscope.cause.what';
/** Lean request mode: why a request's server span was exported (only stalled or slow ones are). */
export const REQUEST_EXPORTED = 'stallscope.request.exported';
export const REQUEST_EXPORT_REASONS = {
  /** An agent span over its threshold inside it (a blocking episode, a lock wait, a queue). */
  stalled: 'stalled',
  /** In flight while the event loop was blocked (by another request's code, or by none). */
  loopBlocked: 'loop-blocked',
  /** It held a lock that made another request wait. */
  lockHolder: 'lock-holder',
  /** Slower than STALLSCOPE_SLOW_REQUEST_MS. */
  slow: 'slow',
} as const;
export type RequestExportReason = (typeof REQUEST_EXPORT_REASONS)[keyof typeof REQUEST_EXPORT_REASONS];

/** The kinds of finding the collector derives (GET /api/findings), as the dashboard and the CLI show them. */
export const FINDING_KINDS = [
  'loop-blocked',
  'loop-saturated',
  'sync-call',
  'lock-contention',
  'shared-lock',
  'lock-held',
  'threadpool-saturated',
  'pool-queueing',
  'slowed-by-others',
] as const;

/** What alert rules can measure; docs/alerts.md says how each is computed and in what unit. */
export const ALERT_SIGNALS = [
  'lock-wait-p95',
  'lock-wait-p99',
  'lock-wait-total',
  'lock-queue',
  'loop-delay-p99',
  'loop-delay-max',
  'blocking-episodes',
  'threadpool-canary-wait',
  'pool-queue-wait',
  'finding',
] as const;
