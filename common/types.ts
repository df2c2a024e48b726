// Types shared by the collector, the storage layer and the dashboard. Everything that crosses a
// module boundary (or the writer thread's message port) is declared here and nowhere else.
import type { AgentKind, ALERT_SIGNALS, FINDING_KINDS } from './conventions';

/** An OTLP AnyValue flattened to plain JSON: bytes become base64 strings, kvlists objects. */
export type AttrValue = string | number | boolean | null | AttrValue[] | { [key: string]: AttrValue };
export type Attributes = Record<string, AttrValue>;

/** A resource as stored: one row per distinct (service, attributes) pair. */
export interface ResourceRow {
  service: string;
  /** JSON of the resource attributes with keys sorted, so equal resources compare equal. */
  attributes: string;
}

export interface SpanRow {
  traceId: string; // 32 lowercase hex chars
  spanId: string; // 16 lowercase hex chars
  parentSpanId: string | null;
  traceState: string | null;
  flags: number;
  name: string;
  kind: number; // OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer
  startNs: bigint;
  endNs: bigint;
  statusCode: number; // 0 unset, 1 ok, 2 error
  statusMessage: string | null;
  attributes: string; // JSON object
  events: string | null; // JSON array of { timeUnixNano, name, attributes }
  links: string | null; // JSON array of { traceId, spanId, traceState, attributes }
  /** Index into the batch's `resources`. */
  resource: number;
  scopeName: string | null;
  scopeVersion: string | null;
  /** For a span the stallscope agent made: what it is and what it groups under (see AgentSpan). */
  agent: AgentSpan | null;
}

/**
 * A stallscope agent span as the dashboard groups it: `kind` is its stallscope.kind, `key` the
 * thing it is about (the lock, the blocking function, the sync API and call site, the pool).
 */
export interface AgentSpan {
  kind: string;
  key: string;
}

export type MetricType = 'gauge' | 'sum' | 'histogram' | 'exponential_histogram' | 'summary';

export interface MetricPointRow {
  name: string;
  description: string | null;
  unit: string | null;
  type: MetricType;
  /** 0 unspecified (gauges, summaries), 1 delta, 2 cumulative. */
  temporality: number;
  monotonic: boolean;
  startNs: bigint | null;
  timeNs: bigint;
  /** Gauge and sum points: a bigint for int64 values, a number for doubles. */
  value: number | bigint | null;
  count: number | null;
  sum: number | null;
  min: number | null;
  max: number | null;
  /**
   * JSON. Histograms: { bounds, counts }; exponential histograms:
   * { scale, zeroCount, zeroThreshold, positive: { offset, counts }, negative }; summaries:
   * { quantiles: [[q, v], ...] }.
   */
  buckets: string | null;
  attributes: string; // JSON object, keys sorted: identifies the series within the metric
  resource: number;
  scopeName: string | null;
}

export interface LogRow {
  timeNs: bigint;
  observedNs: bigint | null;
  severityNumber: number;
  severityText: string | null;
  body: string | null; // JSON of the AnyValue
  attributes: string;
  traceId: string | null;
  spanId: string | null;
  eventName: string | null;
  resource: number;
  scopeName: string | null;
}

/** One frame of a profiled stack. */
export interface ProfileFrame {
  fn: string;
  file: string;
  line: number;
  /** Whose code: a PROFILE_ORIGINS value (app, dependency, telemetry, runtime). */
  origin: string;
}

/** One posted CPU profile of a process's event loop: its stacks (root first) and timed samples. */
export interface ProfileWrite {
  service: string;
  instance: string;
  resource: Record<string, string>;
  startNs: bigint;
  durationNs: bigint;
  /** The mean sampling interval measured by the agent. */
  periodNs: bigint;
  requestedHz: number | null;
  stacks: ProfileFrame[][];
  samples: Array<{ timeNs: bigint; stack: number; weightNs: bigint }>;
}

/** What a request's time went to (see collector/routes/breakdown.ts). */
export type RouteCauseKind =
  | 'own-cpu'
  | 'own-blocking'
  | 'own-sync'
  | 'loop-wait'
  | 'loop-busy'
  | 'lock-wait'
  | 'threadpool-wait'
  | 'pool-queue'
  | 'pool-run'
  | 'outgoing-call'
  | 'unattributed';

export interface RouteCause {
  kind: RouteCauseKind;
  /** The lock and its holder, the function with file:line (and the route it ran for), the pool, the call. */
  what: string;
  ms: number;
}

/** One request (an HTTP server span) and where its time went; the causes add up to its duration. */
export interface RequestBreakdown {
  traceId: string;
  spanId: string;
  service: string;
  instance: string;
  route: string;
  startNs: bigint;
  durationNs: bigint;
  causes: RouteCause[];
}

/** A span as the routes job reads it: what the critical path and the causes need. */
export interface JobSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: number;
  service: string;
  instance: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Attributes;
}

export interface RouteRow {
  service: string;
  route: string;
  requests: number;
  totalMs: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  causes: Array<RouteCause & { share: number }>;
}

/** A stored request breakdown as the Routes page shows it. */
export interface RequestView {
  traceId: string;
  spanId: string;
  service: string;
  instance: string;
  route: string;
  /** ISO 8601. */
  start: string;
  durationMs: number;
  causes: RouteCause[];
}

/** One decoded export request, ready to be written in a single transaction. */
export interface WriteBatch {
  resources: ResourceRow[];
  spans: SpanRow[];
  points: MetricPointRow[];
  logs: LogRow[];
  profiles?: ProfileWrite[];
  /** Request breakdowns computed by the collector itself (the routes job). */
  requests?: RequestBreakdown[];
}

// ---- query API shapes (what the collector's HTTP API returns) ----

export interface ServiceSummary {
  service: string;
  spanCount: number;
  firstSeen: string; // ISO 8601
  lastSeen: string;
}

export interface SpanView {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  traceState: string | null;
  service: string;
  name: string;
  kind: number;
  /** Exact nanoseconds since the epoch, as a decimal string (they exceed 2^53). */
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  durationMs: number;
  status: { code: number; message: string | null };
  attributes: Attributes;
  events: unknown[];
  links: unknown[];
  resource: Attributes;
  scope: { name: string | null; version: string | null };
}

export interface TraceSummary {
  traceId: string;
  rootService: string | null;
  rootName: string | null;
  startTimeUnixNano: string;
  durationMs: number;
  spanCount: number;
  errorCount: number;
  /** Spans the stallscope agent made in it (a blocked loop, a lock wait...). */
  agentSpanCount: number;
  services: string[];
  /** The newest span in the trace that matched the search filters. */
  matched: { spanId: string; name: string; service: string; durationMs: number };
}

export interface TraceSearch {
  service?: string;
  name?: string;
  minDurationNs?: bigint;
  fromNs?: bigint;
  toNs?: bigint;
  attribute?: { key: string; value: string };
  /** Only traces with an agent span of this stallscope.kind (a lock wait, a blocking episode...). */
  agentKind?: AgentKind;
  limit: number;
}

export interface MetricQuery {
  name: string;
  service?: string;
  fromNs: bigint;
  toNs: bigint;
  stepNs: bigint;
}

/** One step of a metric series. Gauges report min/max/avg/last; sums and histograms report
 * the increase within the step (cumulative points are differenced, resets detected). */
export interface MetricStep {
  time: string; // ISO 8601 start of the step
  min?: number;
  max?: number;
  avg?: number;
  last?: number;
  increase?: number;
  count?: number;
  sum?: number;
  bounds?: number[];
  bucketCounts?: number[];
}

export interface MetricSeries {
  service: string;
  attributes: Attributes;
  steps: MetricStep[];
}

export interface MetricResult {
  name: string;
  type: MetricType | null;
  unit: string | null;
  description: string | null;
  series: MetricSeries[];
}

// ---- the read model (db/read-model.ts): what pages, findings and alerts read ----

/** A time window of a read, optionally one service's, with the resolution of its charts. */
export interface Window {
  service?: string;
  fromNs: bigint;
  toNs: bigint;
  /** Chart resolution. */
  stepNs: bigint;
}

/** Agent spans of one kind and key in a window, from the per-minute rollups. */
export interface GroupRow {
  service: string;
  key: string;
  count: number;
  totalMs: number;
  maxMs: number;
}

/** One agent span as the pages and findings read it. */
export interface AgentSpanRow {
  traceId: string;
  spanId: string;
  service: string;
  key: string;
  /** ISO 8601. */
  start: string;
  durationMs: number;
  attributes: Attributes;
}

/** One lock over a window: the Locks page's row, and what lock alerts measure. */
export interface LockRow {
  service: string;
  lock: string;
  type: string;
  acquisitions: number;
  contended: number;
  contendedPct: number;
  totalWaitMs: number;
  waitP50Ms: number | null;
  waitP95Ms: number | null;
  waitP99Ms: number | null;
  waitMaxMs: number | null;
  holdP95Ms: number | null;
  maxQueue: number;
  timeouts: number;
  /** Requests waiting at the window's end, and how long the oldest of them had waited. */
  waitingNow: number;
  oldestWaitMs: number | null;
}

/** Wait at one lock charged to a holder site, by the waiter's acquire site (see lock blame). */
export interface LockPair {
  service: string;
  lock: string;
  waiterSite: string;
  /** A site, or `(handoff)`, `(unknown)`, `(other)`. */
  holderSite: string;
  totalMs: number;
}

/** A histogram over a window, in milliseconds. */
export interface HistogramView {
  count: number;
  sumMs: number;
  boundsMs: number[];
  counts: number[];
}

/** A chart's worth: one line (or stack) per name, a value per step. */
export interface Chart {
  times: string[];
  series: Array<{ name: string; service: string; values: Array<number | null> }>;
}

/** A histogram metric's count and sum (seconds) per service and attribute set. */
export interface HistogramTotal {
  service: string;
  attributes: Attributes;
  count: number;
  sum: number;
}

/** A profiled stack's weight over a window. */
export interface StackWeight {
  service: string;
  stackId: number;
  frames: ProfileFrame[];
  samples: number;
  weightMs: number;
}

export interface ProfileWindows {
  service: string;
  instances: number;
  windows: number;
  samples: number;
  /** The mean interval the agents measured. */
  periodMs: number;
  requestedHz: number | null;
}

export interface TimedSample {
  instance: string;
  timeNs: bigint;
  weightNs: bigint;
  frames: ProfileFrame[];
}

// ---- the dashboard's pages (GET /api/dash/...) ----

export interface WindowView {
  from: string;
  to: string;
}

/** A service at a glance: how it is doing in the window. */
export interface ServiceState {
  service: string;
  state: 'critical' | 'warning' | 'fine';
  /** Time its findings say it lost. */
  lostMs: number;
  findings: number;
  worst: { kind: FindingKind; severity: Severity; title: string } | null;
  /** Per step of the window, for sparklines. */
  loopP99Ms: Array<number | null>;
  utilization: Array<number | null>;
}

export interface OverviewPage {
  window: WindowView;
  services: ServiceState[];
  loop: Chart;
  locks: LockRow[];
  blockingGroups: GroupRow[];
  latestEpisodes: AgentSpanRow[];
  syncCalls: GroupRow[];
  offload: { canary: Chart; poolWait: Chart };
}

export interface LocksPage {
  locks: LockRow[];
  chart: Chart;
}

export interface LockPage {
  lock: string;
  wait: HistogramView;
  hold: HistogramView;
  /** Where the lock was waited for: charged wait by acquire site. */
  acquireSites: Array<{ site: string; totalMs: number }>;
  /** Time others waited because this code held the lock, by holder site. */
  holders: Array<{ site: string; totalMs: number }>;
  /** Who waited on whom: charged wait by waiter site and holder site. */
  pairs: LockPair[];
  slowest: AgentSpanRow[];
  held: AgentSpanRow[];
  chart: Chart;
}

export interface BlockingPage {
  episodes: GroupRow[];
  syncCalls: GroupRow[];
}

export interface BlockingGroupPage {
  key: string;
  stack: string;
  spans: AgentSpanRow[];
}

/** A flame graph node: a function (merged by name and file) and what it called. */
export interface FlameNode {
  name: string;
  file: string;
  line: number;
  origin: string;
  totalMs: number;
  selfMs: number;
  children: FlameNode[];
}

export interface ProfilePage {
  windows: ProfileWindows[];
  /** The loop's sampled CPU. */
  cpu: FlameNode;
  /** The stacks of blocking episodes, weighted by how long each blocked. */
  blocked: FlameNode;
  blockedEpisodes: number;
}

export interface RoutesPage {
  routes: RouteRow[];
}

export interface RoutePage {
  route: RouteRow | null;
  /** Its slowest requests, each with its own breakdown. */
  slowest: RequestView[];
}

export interface OffloadPage {
  canary: Chart;
  inFlight: Chart;
  size: Chart;
  threadpoolWaits: GroupRow[];
  poolWait: Chart;
  poolRun: Chart;
  pools: GroupRow[];
}

export type FindingKind = (typeof FINDING_KINDS)[number];
export type Severity = 'warning' | 'critical';

/** User code: a function and where it is. */
export interface CodeLocation {
  function: string;
  file: string;
  line: number;
}

/** One diagnosis for one service over a window: what costs time, where, and what to do. */
export interface Finding {
  kind: FindingKind;
  severity: Severity;
  service: string;
  title: string;
  /** Plain words: what happened, why it costs time, and the fix. */
  detail: string;
  /** Time lost in the window (waits, blocked loop), the ranking key. */
  impactMs: number;
  /** Episodes, calls, waits or tasks behind it. */
  count: number;
  /** The lock or pool. */
  resource?: string;
  location?: CodeLocation;
  /** A few example traces. */
  traceIds: string[];
  /** The figures the detail quotes, by name, for the UI and for alert rules. */
  figures: Record<string, number>;
  /** The routes whose requests this cost time, most first (from the request breakdowns). */
  slows?: Array<{ route: string; ms: number }>;
}

/** What an alert rule measures, per service or per resource (see docs/alerts.md). */
export type AlertSignal = (typeof ALERT_SIGNALS)[number];
export type AlertState = 'pending' | 'firing' | 'resolved';
/** With no data at all for a rule: resolve its alerts, keep their state, or fire. */
export type NoDataPolicy = 'ok' | 'keep' | 'alerting';

export interface AlertReceiver {
  name: string;
  /** Takes the Alertmanager v4 webhook payload. */
  url: string;
  timeoutMs: number;
  /** Extra request headers (e.g. Authorization). */
  headers: Record<string, string>;
}

export interface AlertRule {
  name: string;
  signal: AlertSignal;
  /** Globs on the service and the resource (lock or pool); finding rules may also name a kind. */
  service?: string;
  resource?: string;
  kind?: FindingKind;
  op: '>' | '<';
  /** Milliseconds for duration signals, a count otherwise. */
  threshold: number;
  windowMs: number;
  forMs: number;
  severity: Severity;
  noData: NoDataPolicy;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  receivers: string[];
  /** Notify a firing alert again this often while it fires. */
  repeatMs: number;
  /** 1-based line of the rule in its file, for messages. */
  line: number;
}

export interface AlertRules {
  intervalMs: number;
  receivers: AlertReceiver[];
  rules: AlertRule[];
}

/** One alert: a rule and one label set (its service, its resource). */
export interface AlertInstance {
  rule: string;
  fingerprint: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: AlertState;
  value: number | null;
  /** Epoch ms: when the condition began to hold, when it fired, when it resolved. */
  activeSinceMs: number;
  firedAtMs: number | null;
  resolvedAtMs: number | null;
  lastEvalMs: number;
  /** The last state a receiver was told of, and when. */
  notifiedState: AlertState | null;
  notifiedAtMs: number | null;
}

export interface AlertTransition {
  timeMs: number;
  rule: string;
  fingerprint: string;
  labels: Record<string, string>;
  from: AlertState | 'inactive';
  to: AlertState | 'inactive';
  value: number | null;
}

/** Alert state changes, written by the writer thread in one transaction. */
export interface AlertWrite {
  upsert: AlertInstance[];
  remove: Array<{ rule: string; fingerprint: string }>;
  /** Rules no longer configured: all their instances go. */
  keepRules?: string[];
  history: AlertTransition[];
}
