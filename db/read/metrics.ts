// Metric points read back as series and charts. Cumulative points are differenced per stream
// (one process, i.e. one resource, and one attribute set); a changed start time or a drop is a
// restart, whose value is all increase.
import type {
  Attributes,
  Chart,
  HistogramTotal,
  MetricQuery,
  MetricResult,
  MetricSeries,
  MetricStep,
  MetricType,
  Window,
} from '../../common/types';
import { key } from '../../common/keys';
import { nsToIso, stepTimes } from '../../common/time';
import { big, int, type SqlReader } from '../sql';

interface PointDbRow {
  service: string;
  resource_id: unknown;
  type: MetricType;
  unit: string | null;
  description: string | null;
  temporality: unknown;
  monotonic: unknown;
  start_ns: unknown;
  time_ns: unknown;
  value: unknown;
  count: unknown;
  sum: number | null;
  min: number | null;
  max: number | null;
  buckets: string | null;
  attributes: string;
}

export async function queryMetric(db: SqlReader, q: MetricQuery): Promise<MetricResult> {
  const rows = await db.all<PointDbRow>(
    `SELECT service, resource_id, type, unit, description, temporality, monotonic, start_ns, time_ns, value, count, sum,
       min, max, buckets, attributes FROM metric_points
     WHERE name = @name AND time_ns >= @from AND time_ns < @to ${q.service ? 'AND service = @service' : ''}
     ORDER BY time_ns, ${db.dialect.rowId}`,
    { name: q.name, from: q.fromNs, to: q.toNs, service: q.service ?? null },
  );
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
  for (const points of groups.values()) result.series.push(seriesOf(points, q, stepCount));
  result.series.sort((a, b) =>
    a.service + JSON.stringify(a.attributes) < b.service + JSON.stringify(b.attributes) ? -1 : 1,
  );
  return result;
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

/**
 * Folds a series' points into steps. Gauges and non-monotonic sums keep min/max/avg/last.
 * Counters and histograms report what was added within each step: delta points are summed;
 * cumulative points are differenced against the previous point of the same stream, and streams
 * of the same service add up.
 */
function seriesOf(points: PointDbRow[], q: MetricQuery, stepCount: number): MetricSeries {
  const first = points[0];
  const kind = first.type;
  const cumulative = int(first.temporality) === 2;
  const steps: MetricStep[] = [];
  const gaugeLike = kind === 'gauge' || kind === 'summary' || (kind === 'sum' && int(first.monotonic) === 0);
  const previous = new Map<string, PointDbRow>();
  const gaugeCounts: number[] = [];
  for (const p of points) {
    const timeNs = big(p.time_ns);
    const i = Math.min(stepCount - 1, Number((timeNs - q.fromNs) / q.stepNs));
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
    const stream = String(p.resource_id);
    const prev = previous.get(stream);
    const startNs = p.start_ns === null ? null : big(p.start_ns);
    const prevStart = prev?.start_ns === null || prev === undefined ? null : big(prev.start_ns);
    const restarted =
      !prev ||
      (startNs !== null && prevStart !== null && startNs !== prevStart) ||
      num(p.count ?? p.value) < num(prev.count ?? prev.value);
    // A cumulative stream first seen mid-life has no baseline inside the window: skip its first point.
    const baseline = cumulative && !prev && (startNs === null || startNs < q.fromNs);
    const before = cumulative && !restarted ? prev : undefined;
    previous.set(stream, p);
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

/** A metric folded over the whole window (one step), per service and attributes. */
export async function windowTotals(
  db: SqlReader,
  name: string,
  w: Window,
): Promise<Array<{ service: string; attributes: Attributes; step: MetricStep }>> {
  const m = await queryMetric(db, {
    name,
    service: w.service,
    fromNs: w.fromNs,
    toNs: w.toNs,
    stepNs: w.toNs - w.fromNs,
  });
  return m.series.map((s) => ({ service: s.service, attributes: s.attributes, step: s.steps[0] ?? { time: '' } }));
}

/**
 * A histogram metric's count and sum (seconds) per step, per service and attributes: what
 * queryMetric computes, folded in SQL, which a day of points needs. A cumulative stream's count
 * and sum only grow within one life (a restart is a new start time), so a step's increase is its
 * last point less the last point before it in the same life, found per step and life (max/min) and
 * then over steps: no sort of every point by time. A life's first point in the window is a
 * baseline unless it started inside the window. Delta points add up as they are.
 */
export async function histogramSteps(
  db: SqlReader,
  name: string,
  w: Window,
): Promise<Array<HistogramTotal & { step: number }>> {
  const increase = (col: string) => `CASE WHEN temporality != 2 THEN all_${col}
      WHEN prev_${col} IS NULL THEN (CASE WHEN start_ns >= @from THEN last_${col} ELSE last_${col} - first_${col} END)
      ELSE last_${col} - prev_${col} END`;
  const rows = await db.all<{ service: string; attributes: string; step: unknown; count: unknown; sum: unknown }>(
    `SELECT service, attributes, step, sum(${increase('count')}) AS count, sum(${increase('sum')}) AS sum
     FROM (
       SELECT service, attributes, temporality, start_ns, step, all_count, all_sum, first_count, last_count,
         first_sum, last_sum, lag(last_count) OVER w AS prev_count, lag(last_sum) OVER w AS prev_sum
       FROM (
         SELECT resource_id, service, attributes, temporality, start_ns, (time_ns - @from) / @step AS step,
           sum(count) AS all_count, sum(sum) AS all_sum, min(count) AS first_count, max(count) AS last_count,
           min(sum) AS first_sum, max(sum) AS last_sum
         FROM metric_points WHERE name = @name ${w.service ? 'AND service = @service' : ''} AND time_ns >= @from AND time_ns < @to
         GROUP BY resource_id, service, attributes, temporality, start_ns, (time_ns - @from) / @step) AS lives
       WINDOW w AS (PARTITION BY resource_id, attributes, temporality, start_ns ORDER BY step)) AS d
     GROUP BY service, attributes, step`,
    { name, from: w.fromNs, to: w.toNs, step: w.stepNs, service: w.service ?? null },
  );
  const attrs = new Map<string, Attributes>();
  return rows.map((r) => {
    let a = attrs.get(r.attributes);
    if (!a) attrs.set(r.attributes, (a = JSON.parse(r.attributes) as Attributes));
    return { service: r.service, attributes: a, step: int(r.step), count: num(r.count), sum: num(r.sum) };
  });
}

/** A histogram metric's count and sum (seconds) over the whole window, per service and attributes. */
export function histogramTotals(db: SqlReader, name: string, w: Window): Promise<HistogramTotal[]> {
  return histogramSteps(db, name, { ...w, stepNs: w.toNs - w.fromNs + 1n });
}

/**
 * A monotonic counter's increase over the window, per service and attributes, differenced per
 * stream in SQL as histogramSteps does (a cumulative stream's first point is a baseline unless it
 * started inside the window; a drop or a new start time is a restart).
 */
export async function counterTotals(
  db: SqlReader,
  name: string,
  w: Window,
): Promise<Array<{ service: string; attributes: Attributes; value: number }>> {
  const rows = await db.all<{ service: string; attributes: string; value: unknown }>(
    `SELECT service, attributes, sum(CASE WHEN temporality != 2 THEN value
         WHEN prev IS NULL THEN (CASE WHEN start_ns >= @from THEN value ELSE 0 END)
         WHEN value < prev OR start_ns IS DISTINCT FROM prev_start THEN value
         ELSE value - prev END) AS value
     FROM (
       SELECT service, attributes, temporality, start_ns, value,
         lag(value) OVER w AS prev, lag(start_ns) OVER w AS prev_start
       FROM metric_points WHERE name = @name ${w.service ? 'AND service = @service' : ''} AND time_ns >= @from AND time_ns < @to
       WINDOW w AS (PARTITION BY resource_id, attributes ORDER BY time_ns, ${db.dialect.rowId})) AS d
     GROUP BY service, attributes`,
    { name, from: w.fromNs, to: w.toNs, service: w.service ?? null },
  );
  return rows.map((r) => ({
    service: r.service,
    attributes: JSON.parse(r.attributes) as Attributes,
    value: num(r.value),
  }));
}

/** A gauge folded per step and service in SQL (a day of exports is thousands of points per series). */
export async function gaugeSteps(
  db: SqlReader,
  name: string,
  fold: 'max' | 'avg',
  w: Window,
): Promise<Array<{ service: string; step: number; value: number }>> {
  const rows = await db.all<{ service: string; step: unknown; value: unknown }>(
    `SELECT service, (time_ns - @from) / @step AS step, ${fold}(value) AS value FROM metric_points
     WHERE name = @name ${w.service ? 'AND service = @service' : ''} AND time_ns >= @from AND time_ns < @to
     GROUP BY service, step`,
    { name, from: w.fromNs, to: w.toNs, step: w.stepNs, service: w.service ?? null },
  );
  return rows.map((r) => ({ service: r.service, step: int(r.step), value: num(r.value) }));
}

/** A histogram's mean per step (ms), one line per service and label. */
export async function meanChart(
  db: SqlReader,
  name: string,
  w: Window,
  label: (a: Attributes) => string,
): Promise<Chart> {
  const times = stepTimes(w);
  const merged = new Map<string, { name: string; service: string; sum: number[]; count: number[] }>();
  for (const r of await histogramSteps(db, name, w)) {
    const id = key(r.service, label(r.attributes));
    let e = merged.get(id);
    if (!e)
      merged.set(
        id,
        (e = { name: label(r.attributes), service: r.service, sum: times.map(() => 0), count: times.map(() => 0) }),
      );
    if (r.step >= 0 && r.step < times.length) {
      e.sum[r.step] += r.sum;
      e.count[r.step] += r.count;
    }
  }
  return {
    times,
    series: [...merged.values()].map((e) => ({
      name: e.name,
      service: e.service,
      values: e.sum.map((x, i) => (e.count[i] ? (1000 * x) / e.count[i] : null)),
    })),
  };
}

/** A gauge's largest value per step, one line per service and label. */
export async function gaugeMaxChart(
  db: SqlReader,
  name: string,
  w: Window,
  label: (s: MetricSeries) => string,
): Promise<Chart> {
  const m = await queryMetric(db, { name, service: w.service, fromNs: w.fromNs, toNs: w.toNs, stepNs: w.stepNs });
  return {
    times: m.series[0]?.steps.map((s) => s.time) ?? stepTimes(w),
    series: m.series.map((s) => ({ name: label(s), service: s.service, values: s.steps.map((st) => st.max ?? null) })),
  };
}
