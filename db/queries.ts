// Read-side queries behind the collector's HTTP API. They run on a read-only connection; WAL
// lets them proceed while the writer thread commits.
import type Database from 'better-sqlite3';
import type {
  Attributes,
  MetricQuery,
  MetricResult,
  MetricSeries,
  MetricStep,
  MetricType,
  ServiceSummary,
  SpanView,
  TraceSearch,
  TraceSummary,
} from '../common/types';
import { nsToIso, nsToMs } from '../common/time';
import { key, splitKey } from '../common/keys';

/** Spans examined at most while looking for `limit` distinct traces, so a search stays fast. */
const MAX_SCANNED_SPANS = 100_000;

interface SpanDbRow {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  trace_state: string | null;
  service: string;
  name: string;
  kind: bigint;
  start_ns: bigint;
  end_ns: bigint;
  duration_ns: bigint;
  status_code: bigint;
  status_message: string | null;
  attributes: string;
  events: string | null;
  links: string | null;
  scope_name: string | null;
  scope_version: string | null;
  resource: string;
}

export class Queries {
  private readonly services: Database.Statement;
  private readonly traceSpans: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.services = db
      .prepare('SELECT service, span_count, first_seen_ns, last_seen_ns FROM services ORDER BY service')
      .safeIntegers(true);
    this.traceSpans = db
      .prepare(
        `SELECT s.*, r.attributes AS resource FROM spans s JOIN resources r ON r.id = s.resource_id
         WHERE s.trace_id = ? ORDER BY s.start_ns, s.rowid`,
      )
      .safeIntegers(true);
  }

  listServices(): ServiceSummary[] {
    return (
      this.services.all() as Array<{ service: string; span_count: bigint; first_seen_ns: bigint; last_seen_ns: bigint }>
    ).map((r) => ({
      service: r.service,
      spanCount: Number(r.span_count),
      firstSeen: nsToIso(r.first_seen_ns),
      lastSeen: nsToIso(r.last_seen_ns),
    }));
  }

  getTrace(traceId: string): SpanView[] {
    return (this.traceSpans.all(traceId.toLowerCase()) as SpanDbRow[]).map(toSpanView);
  }

  /** Traces with at least one span matching every filter, newest matching span first. */
  searchTraces(q: TraceSearch): TraceSummary[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.service) {
      where.push('service = ?');
      args.push(q.service);
    }
    if (q.name) {
      where.push('name = ?');
      args.push(q.name);
    }
    if (q.minDurationNs !== undefined) {
      where.push('duration_ns >= ?');
      args.push(q.minDurationNs);
    }
    if (q.fromNs !== undefined) {
      where.push('start_ns >= ?');
      args.push(q.fromNs);
    }
    if (q.toNs !== undefined) {
      where.push('start_ns < ?');
      args.push(q.toNs);
    }
    if (q.agentKind) {
      // The matched span is the agent span itself: found through its index, not a scan.
      where.push('agent_kind = ?');
      args.push(q.agentKind);
    }
    if (q.attribute) {
      // Values arrive as text; match JSON strings exactly and numbers and booleans by meaning.
      const path = `$."${q.attribute.key}"`;
      where.push(`(
        (json_type(attributes, ?) = 'text' AND json_extract(attributes, ?) = ?)
        OR (json_type(attributes, ?) IN ('integer', 'real') AND json_extract(attributes, ?) = CAST(? AS REAL) AND ? GLOB '*[0-9]*')
        OR (json_type(attributes, ?) = 'true' AND ? = 'true')
        OR (json_type(attributes, ?) = 'false' AND ? = 'false'))`);
      const v = q.attribute.value;
      args.push(path, path, v, path, path, v, v, path, v, path, v);
    }
    const sql = `SELECT trace_id, span_id, name, service, duration_ns FROM spans
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY start_ns DESC LIMIT ${MAX_SCANNED_SPANS}`;
    const matched = new Map<string, TraceSummary['matched']>();
    for (const r of this.db
      .prepare(sql)
      .safeIntegers(true)
      .iterate(...args) as Iterable<{
      trace_id: string;
      span_id: string;
      name: string;
      service: string;
      duration_ns: bigint;
    }>) {
      if (!matched.has(r.trace_id)) {
        matched.set(r.trace_id, {
          spanId: r.span_id,
          name: r.name,
          service: r.service,
          durationMs: nsToMs(r.duration_ns),
        });
        if (matched.size >= q.limit) break;
      }
    }
    if (matched.size === 0) return [];
    const ids = [...matched.keys()];
    const placeholders = ids.map(() => '?').join(',');
    const summaries = this.db
      .prepare(
        `SELECT trace_id, count(*) AS spans, min(start_ns) AS start_ns, max(end_ns) AS end_ns,
           sum(status_code = 2) AS errors, group_concat(DISTINCT service) AS services,
           (SELECT r.name || char(0) || r.service FROM spans r WHERE r.trace_id = s.trace_id AND r.parent_span_id IS NULL
              ORDER BY r.start_ns LIMIT 1) AS root
         FROM spans s WHERE trace_id IN (${placeholders}) GROUP BY trace_id`,
      )
      .safeIntegers(true)
      .all(...ids) as Array<{
      trace_id: string;
      spans: bigint;
      start_ns: bigint;
      end_ns: bigint;
      errors: bigint;
      services: string;
      root: string | null;
    }>;
    const byId = new Map(summaries.map((s) => [s.trace_id, s]));
    return ids.flatMap((id) => {
      const s = byId.get(id);
      if (!s) return []; // deleted by retention between the two queries
      const [rootName, rootService] = s.root ? splitKey(s.root) : [null, null];
      return [
        {
          traceId: id,
          rootName,
          rootService,
          startTimeUnixNano: s.start_ns.toString(),
          durationMs: nsToMs(s.end_ns - s.start_ns),
          spanCount: Number(s.spans),
          errorCount: Number(s.errors),
          services: s.services.split(',').sort(),
          matched: matched.get(id)!,
        },
      ];
    });
  }

  queryMetric(q: MetricQuery): MetricResult {
    const args: unknown[] = [q.name, q.fromNs, q.toNs];
    let sql = `SELECT service, resource_id, type, unit, description, temporality, monotonic, start_ns, time_ns, value, count, sum,
        min, max, buckets, attributes FROM metric_points WHERE name = ? AND time_ns >= ? AND time_ns < ?`;
    if (q.service) {
      sql += ' AND service = ?';
      args.push(q.service);
    }
    sql += ' ORDER BY time_ns, rowid';
    const rows = this.db
      .prepare(sql)
      .safeIntegers(true)
      .all(...args) as PointDbRow[];
    const result: MetricResult = { name: q.name, type: null, unit: null, description: null, series: [] };
    if (rows.length === 0) return result;
    const last = rows[rows.length - 1];
    result.type = last.type;
    result.unit = last.unit;
    result.description = last.description;
    const groups = new Map<string, PointDbRow[]>();
    for (const r of rows) {
      const id = key(r.service, r.attributes);
      let g = groups.get(id);
      if (!g) groups.set(id, (g = []));
      g.push(r);
    }
    const stepCount = Number((q.toNs - q.fromNs + q.stepNs - 1n) / q.stepNs);
    for (const points of groups.values()) {
      result.series.push(seriesOf(points, q, stepCount));
    }
    result.series.sort((a, b) =>
      a.service + JSON.stringify(a.attributes) < b.service + JSON.stringify(b.attributes) ? -1 : 1,
    );
    return result;
  }
}

interface PointDbRow {
  service: string;
  resource_id: bigint;
  type: MetricType;
  unit: string | null;
  description: string | null;
  temporality: bigint;
  monotonic: bigint;
  start_ns: bigint | null;
  time_ns: bigint;
  value: bigint | number | null;
  count: bigint | null;
  sum: number | null;
  min: number | null;
  max: number | null;
  buckets: string | null;
  attributes: string;
}

function toSpanView(r: SpanDbRow): SpanView {
  return {
    traceId: r.trace_id,
    spanId: r.span_id,
    parentSpanId: r.parent_span_id,
    traceState: r.trace_state,
    service: r.service,
    name: r.name,
    kind: Number(r.kind),
    startTimeUnixNano: r.start_ns.toString(),
    endTimeUnixNano: r.end_ns.toString(),
    durationMs: nsToMs(r.duration_ns),
    status: { code: Number(r.status_code), message: r.status_message },
    attributes: JSON.parse(r.attributes) as Attributes,
    events: r.events ? (JSON.parse(r.events) as unknown[]) : [],
    links: r.links ? (JSON.parse(r.links) as unknown[]) : [],
    resource: JSON.parse(r.resource) as Attributes,
    scope: { name: r.scope_name, version: r.scope_version },
  };
}

const num = (v: bigint | number | null): number => (v === null ? 0 : Number(v));

/**
 * Folds a series' points into steps. Gauges and non-monotonic sums keep min/max/avg/last.
 * Counters and histograms report what was added within each step: delta points are summed;
 * cumulative points are differenced against the previous point of the same stream (one
 * resource, i.e. one process, with these attributes), and a changed start time or a drop means
 * the counter restarted, so the new value is all increase. Streams of the same service add up.
 */
function seriesOf(points: PointDbRow[], q: MetricQuery, stepCount: number): MetricSeries {
  const first = points[0];
  const kind = first.type;
  const cumulative = Number(first.temporality) === 2;
  const steps: MetricStep[] = [];
  const gaugeLike = kind === 'gauge' || kind === 'summary' || (kind === 'sum' && Number(first.monotonic) === 0);
  const previous = new Map<bigint, PointDbRow>();
  const gaugeCounts: number[] = [];
  for (const p of points) {
    const i = Math.min(stepCount - 1, Number((p.time_ns - q.fromNs) / q.stepNs));
    const step = (steps[i] ??= { time: nsToIso(q.fromNs + BigInt(i) * q.stepNs) });
    if (gaugeLike) {
      const v = kind === 'summary' ? (p.count ? num(p.sum) / num(p.count) : 0) : num(p.value);
      step.min = step.min === undefined ? v : Math.min(step.min, v);
      step.max = step.max === undefined ? v : Math.max(step.max, v);
      gaugeCounts[i] = (gaugeCounts[i] ?? 0) + 1;
      step.avg = ((step.avg ?? 0) * (gaugeCounts[i] - 1) + v) / gaugeCounts[i];
      step.last = v;
      continue;
    }
    const prev = previous.get(p.resource_id);
    const restarted =
      !prev ||
      (p.start_ns !== null && prev.start_ns !== null && p.start_ns !== prev.start_ns) ||
      num(p.count ?? p.value) < num(prev.count ?? prev.value);
    // A cumulative stream first seen mid-life has no baseline inside the window: skip its first point.
    const baseline = cumulative && !prev && (p.start_ns === null || p.start_ns < q.fromNs);
    const before = cumulative && !restarted ? prev : undefined;
    previous.set(p.resource_id, p);
    if (baseline) continue;
    if (kind === 'sum') {
      step.increase = (step.increase ?? 0) + num(p.value) - (before ? num(before.value) : 0);
    } else if (kind === 'histogram') {
      const b = JSON.parse(p.buckets ?? '{"bounds":[],"counts":[]}') as { bounds: number[]; counts: number[] };
      const pb = before ? (JSON.parse(before.buckets ?? '{"counts":[]}') as { counts: number[] }) : undefined;
      step.count = (step.count ?? 0) + num(p.count) - (before ? num(before.count) : 0);
      step.sum = (step.sum ?? 0) + num(p.sum) - (before ? num(before.sum) : 0);
      step.min = p.min === null ? step.min : Math.min(step.min ?? Infinity, p.min);
      step.max = p.max === null ? step.max : Math.max(step.max ?? -Infinity, p.max);
      step.bounds = b.bounds;
      step.bucketCounts = b.counts.map((c, j) => (step.bucketCounts?.[j] ?? 0) + c - (pb?.counts[j] ?? 0));
    } else {
      // Exponential histograms: count and sum per step.
      step.count = (step.count ?? 0) + num(p.count) - (before ? num(before.count) : 0);
      step.sum = (step.sum ?? 0) + num(p.sum) - (before ? num(before.sum) : 0);
    }
  }
  const filled: MetricStep[] = [];
  for (let i = 0; i < stepCount; i++) filled.push(steps[i] ?? { time: nsToIso(q.fromNs + BigInt(i) * q.stepNs) });
  return { service: first.service, attributes: JSON.parse(first.attributes) as Attributes, steps: filled };
}
