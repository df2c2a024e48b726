// The read model: every question the query API, the dashboard's pages, the findings and the
// alerts ask of the stored data, answered in one place (db/read/*) over any engine's SqlReader.
// Each read is bounded by a time window and reads rollups or indexed agent spans, never a scan
// of all spans; callers shape the answers, they do not write SQL.
import type { AgentKind } from '../common/conventions';
import type {
  AgentSpanRow,
  AlertInstance,
  AlertTransition,
  Attributes,
  Chart,
  GroupRow,
  HistogramTotal,
  HistogramView,
  LockPair,
  LockRow,
  MetricQuery,
  MetricResult,
  MetricSeries,
  MetricStep,
  JobSpan,
  ProfileWindows,
  RequestView,
  RouteRow,
  StackWeight,
  TimedSample,
  ServiceSummary,
  SpanView,
  TraceSearch,
  TraceSummary,
  Window,
} from '../common/types';
import type { SqlReader } from './sql';
import * as traces from './read/traces';
import * as metrics from './read/metrics';
import * as agentSpans from './read/agent-spans';
import * as lockReads from './read/locks';
import * as alertReads from './read/alerts';
import * as profileReads from './read/profiles';
import * as requestReads from './read/requests';

export class ReadModel {
  constructor(private readonly db: SqlReader) {}

  // Services and traces (the query API, the waterfall).
  services(): Promise<ServiceSummary[]> {
    return traces.listServices(this.db);
  }
  trace(traceId: string): Promise<SpanView[]> {
    return traces.getTrace(this.db, traceId);
  }
  searchTraces(q: TraceSearch): Promise<TraceSummary[]> {
    return traces.searchTraces(this.db, q);
  }

  // Metrics as stored.
  metric(q: MetricQuery): Promise<MetricResult> {
    return metrics.queryMetric(this.db, q);
  }
  /** A metric folded over the whole window, per service and attribute set. */
  windowTotals(name: string, w: Window): Promise<Array<{ service: string; attributes: Attributes; step: MetricStep }>> {
    return metrics.windowTotals(this.db, name, w);
  }
  histogramTotals(name: string, w: Window): Promise<HistogramTotal[]> {
    return metrics.histogramTotals(this.db, name, w);
  }
  gaugeSteps(
    name: string,
    fold: 'max' | 'avg',
    w: Window,
  ): Promise<Array<{ service: string; step: number; value: number }>> {
    return metrics.gaugeSteps(this.db, name, fold, w);
  }
  meanChart(name: string, w: Window, label: (a: Attributes) => string): Promise<Chart> {
    return metrics.meanChart(this.db, name, w, label);
  }
  gaugeMaxChart(name: string, w: Window, label: (s: MetricSeries) => string): Promise<Chart> {
    return metrics.gaugeMaxChart(this.db, name, w, label);
  }

  // The agent's spans.
  groups(kind: AgentKind, w: Window, limit = 50): Promise<GroupRow[]> {
    return agentSpans.groups(this.db, kind, w, limit);
  }
  groupChart(kind: AgentKind, keys: string[], w: Window): Promise<Chart> {
    return agentSpans.groupChart(this.db, kind, keys, w);
  }
  latest(kind: AgentKind, w: Window, limit: number, key?: string): Promise<AgentSpanRow[]> {
    return agentSpans.latest(this.db, kind, w, limit, key);
  }
  slowest(kind: AgentKind, key: string, w: Window, limit: number): Promise<AgentSpanRow[]> {
    return agentSpans.slowest(this.db, kind, key, w, limit);
  }
  /** Example spans of many groups in one read, keyed by `key(service, key)`. */
  samples(
    kind: AgentKind,
    of: ReadonlyArray<{ service: string; key: string }>,
    w: Window,
    perGroup: number,
    order: 'slowest' | 'latest',
  ): Promise<Map<string, AgentSpanRow[]>> {
    return agentSpans.samples(this.db, kind, of, w, perGroup, order);
  }

  // Locks.
  locks(w: Window, lock?: string): Promise<LockRow[]> {
    return lockReads.locks(this.db, w, lock);
  }
  lockHistograms(name: string, w: Window): Promise<{ wait: HistogramView; hold: HistogramView }> {
    return lockReads.lockHistograms(this.db, name, w);
  }
  /** Who made whom wait: charged wait by waiter and holder site, for one lock or all. */
  lockPairs(w: Window, lock?: string): Promise<LockPair[]> {
    return lockReads.lockPairs(this.db, w, lock);
  }

  // Loop CPU profiles.
  /** The weight of every profiled stack over the window, per service, heaviest first. */
  stackWeights(w: Window): Promise<StackWeight[]> {
    return profileReads.stackWeights(this.db, w);
  }
  profileWindows(w: Window): Promise<ProfileWindows[]> {
    return profileReads.profileWindows(this.db, w);
  }
  /** One service's profile samples in [from, to) with their times (the last two hours). */
  timedSamples(service: string, fromNs: bigint, toNs: bigint): Promise<TimedSample[]> {
    return profileReads.timedSamples(this.db, service, fromNs, toNs);
  }

  // Requests and routes.
  serverSpansEnding(fromNs: bigint, toNs: bigint, limit: number): Promise<JobSpan[]> {
    return requestReads.serverSpansEnding(this.db, fromNs, toNs, limit);
  }
  spansOfTraces(traceIds: string[]): Promise<JobSpan[]> {
    return requestReads.spansOfTraces(this.db, traceIds);
  }
  episodesOf(services: string[], fromNs: bigint, toNs: bigint): Promise<JobSpan[]> {
    return requestReads.episodesOf(this.db, services, fromNs, toNs);
  }
  lastBreakdownEnd(): Promise<bigint | null> {
    return requestReads.lastBreakdownEnd(this.db);
  }
  /** Every route in the window, most total time first, with the causes of its time. */
  routes(w: Window, route?: string): Promise<RouteRow[]> {
    return requestReads.routes(this.db, w, route);
  }
  slowestRequests(service: string, route: string, w: Window, limit: number): Promise<RequestView[]> {
    return requestReads.slowestRequests(this.db, service, route, w, limit);
  }

  // Alert state.
  alertInstances(): Promise<AlertInstance[]> {
    return alertReads.alertInstances(this.db);
  }
  alertHistory(sinceMs: number, limit: number): Promise<AlertTransition[]> {
    return alertReads.alertHistory(this.db, sinceMs, limit);
  }
}
