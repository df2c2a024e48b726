// What the dashboard's pages ask: where a service loses time, from the per-minute rollups of
// agent spans (kept at ingest) and from the agent's metrics. Every query is bounded by a time
// window and reads rollup rows or indexed agent spans, never a scan of all spans.
import type Database from 'better-sqlite3';
import {
  CODE_STACKTRACE,
  KINDS,
  METRICS,
  POOL_METRICS,
  POOL_NAME,
  POOL_TYPE,
  THREADPOOL_CATEGORY,
  THREADPOOL_METRICS,
} from '../common/conventions';
import { NS_PER_MINUTE, nsToIso, nsToMs } from '../common/time';
import type { Attributes, MetricSeries, MetricStep } from '../common/types';
import type { Queries } from './queries';
import { emptyBucket, mergeBucket, type LockBucket } from './lock-rollup';
import { key } from '../common/keys';

/** From this many in a window, a key's slowest spans are found through the duration index. */
const MANY_SPANS = 5000;

export interface Window {
  service?: string;
  fromNs: bigint;
  toNs: bigint;
  /** Chart resolution. */
  stepNs: bigint;
}

export interface GroupRow {
  service: string;
  key: string;
  count: number;
  totalMs: number;
  maxMs: number;
}

export interface AgentSpanRow {
  traceId: string;
  spanId: string;
  service: string;
  key: string;
  start: string;
  durationMs: number;
  attributes: Attributes;
}

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
}

export interface LockPair {
  waiterSite: string;
  holderSite: string;
  count: number;
  totalMs: number;
  maxMs: number;
}

/** A chart's worth: one line (or stack) per name, a value per step. */
export interface Chart {
  times: string[];
  series: Array<{ name: string; service: string; values: Array<number | null> }>;
}

interface Histogram {
  count: number;
  sum: number;
  bounds: number[];
  counts: number[];
}

/**
 * The value below which `q` of the observations fall, from bucket counts (upper bounds), with
 * `zeros` more observations that were exactly 0 (uncontended acquisitions wait 0).
 */
export function quantile(h: Histogram, q: number, zeros = 0): number | null {
  const total = h.count + zeros;
  if (total <= 0) return null;
  const target = q * total;
  if (target <= zeros) return 0;
  let seen = zeros;
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i];
    if (seen >= target) {
      if (i >= h.bounds.length) return h.bounds[h.bounds.length - 1] ?? null; // the open top bucket
      const lower = i === 0 ? 0 : h.bounds[i - 1];
      const upper = h.bounds[i];
      const inBucket = h.counts[i];
      // Linear within the bucket: the usual estimate from a fixed-bucket histogram.
      return lower + (upper - lower) * (inBucket ? (target - (seen - inBucket)) / inBucket : 1);
    }
  }
  return h.bounds[h.bounds.length - 1] ?? null;
}

const text = (v: unknown) => (typeof v === 'string' ? v : String(v ?? ''));

export class DashboardQueries {
  private readonly rollupGroups: Database.Statement;
  private readonly rollupGroupsByService: Database.Statement;
  private readonly rollupSeries: Database.Statement;
  private readonly agentSpansByKey: Database.Statement;
  private readonly slowestByKey: Database.Statement;
  private readonly slowestByKeyLong: Database.Statement;
  private readonly latestAgentSpans: [all: Database.Statement, byService: Database.Statement];
  private readonly pairs: Database.Statement;
  private readonly lockRows: Database.Statement;
  private readonly gauge: Record<'max' | 'avg', [all: Database.Statement, byService: Database.Statement]>;
  private readonly keyCount: Database.Statement;
  private readonly totals: [all: Database.Statement, byService: Database.Statement];

  constructor(
    db: Database.Database,
    private readonly queries: Queries,
  ) {
    const groupSql = (byService: boolean) => `
      SELECT service, key, sum(count) AS count, sum(total_ns) AS total_ns, max(max_ns) AS max_ns FROM span_rollup
      WHERE kind = ? ${byService ? 'AND service = ?' : ''} AND minute >= ? AND minute < ?
      GROUP BY service, key ORDER BY total_ns DESC LIMIT ?`;
    this.rollupGroups = db.prepare(groupSql(false)).safeIntegers(true);
    this.rollupGroupsByService = db.prepare(groupSql(true)).safeIntegers(true);
    this.rollupSeries = db
      .prepare(
        `SELECT service, key, minute, total_ns FROM span_rollup
         WHERE kind = @kind AND (@service IS NULL OR service = @service) AND minute >= @from AND minute < @to
           AND key IN (SELECT value FROM json_each(@keys))`,
      )
      .safeIntegers(true);
    this.agentSpansByKey = db
      .prepare(
        `SELECT trace_id, span_id, service, agent_key, start_ns, duration_ns, attributes FROM spans
         WHERE agent_kind = ? AND agent_key = ? AND start_ns >= ? AND start_ns < ? AND (? IS NULL OR service = ?)
         ORDER BY start_ns DESC LIMIT ?`,
      )
      .safeIntegers(true);
    const slowestSql = (index: string) => `
      SELECT trace_id, span_id, service, agent_key, start_ns, duration_ns, attributes FROM spans INDEXED BY ${index}
      WHERE agent_kind = ? AND agent_key = ? AND start_ns >= ? AND start_ns < ? AND (? IS NULL OR service = ?)
      ORDER BY duration_ns DESC LIMIT ?`;
    // A short window: its spans by time, then sorted. A long one: the slowest first, until enough are inside it.
    this.slowestByKey = db.prepare(slowestSql('spans_agent_key')).safeIntegers(true);
    this.slowestByKeyLong = db.prepare(slowestSql('spans_agent_slow')).safeIntegers(true);
    const latestSql = (byService: boolean) => `
      SELECT trace_id, span_id, service, agent_key, start_ns, duration_ns, attributes FROM spans INDEXED BY ${byService ? 'spans_agent_service' : 'spans_agent'}
      WHERE agent_kind = @kind ${byService ? 'AND service = @service' : ''} AND start_ns >= @from AND start_ns < @to
      ORDER BY start_ns DESC LIMIT @limit`;
    this.latestAgentSpans = [
      db.prepare(latestSql(false)).safeIntegers(true),
      db.prepare(latestSql(true)).safeIntegers(true),
    ];
    // With a service, (name, service, time); for all services, (name, time).
    const gaugeSql = (fold: string, byService: boolean) => `
      SELECT service, (time_ns - @from) / @step AS step, ${fold}(value) AS value FROM metric_points
      WHERE name = @name ${byService ? 'AND service = @service' : ''} AND time_ns >= @from AND time_ns < @to
      GROUP BY service, step`;
    this.gauge = {
      max: [
        db.prepare(gaugeSql('max', false)).safeIntegers(true),
        db.prepare(gaugeSql('max', true)).safeIntegers(true),
      ],
      avg: [
        db.prepare(gaugeSql('avg', false)).safeIntegers(true),
        db.prepare(gaugeSql('avg', true)).safeIntegers(true),
      ],
    };
    // Cumulative points differenced per stream (one process: resource_id) as queryMetric does:
    // a stream's first point in the window is a baseline unless it started inside the window,
    // and a smaller count or a new start time is a restart, whose value is all increase.
    const delta = (col: string) => `CASE WHEN temporality != 2 THEN ${col}
        WHEN prev_count IS NULL THEN (CASE WHEN start_ns >= @from THEN ${col} ELSE 0 END)
        WHEN count < prev_count OR start_ns IS NOT prev_start THEN ${col}
        ELSE ${col} - prev_${col} END`;
    const totalsSql = (byService: boolean) => `
      SELECT service, attributes, (time_ns - @from) / @step AS step, sum(${delta('count')}) AS count, sum(${delta('sum')}) AS sum FROM (
        SELECT service, attributes, temporality, start_ns, time_ns, count, sum,
          lag(count) OVER w AS prev_count, lag(sum) OVER w AS prev_sum, lag(start_ns) OVER w AS prev_start
        FROM metric_points WHERE name = @name ${byService ? 'AND service = @service' : ''} AND time_ns >= @from AND time_ns < @to
        WINDOW w AS (PARTITION BY resource_id, attributes ORDER BY time_ns, rowid))
      GROUP BY service, attributes, step`;
    this.totals = [db.prepare(totalsSql(false)).safeIntegers(false), db.prepare(totalsSql(true)).safeIntegers(false)];
    this.keyCount = db
      .prepare(
        `SELECT sum(count) FROM span_rollup WHERE kind = ? AND minute >= ? AND minute < ? AND key = ? AND (? IS NULL OR service = ?)`,
      )
      .pluck()
      .safeIntegers(true);
    this.lockRows = db
      .prepare(
        `SELECT service, lock, type, data FROM lock_rollup WHERE size = @size AND bucket >= @from AND bucket < @to
           AND (@service IS NULL OR service = @service) AND (@lock IS NULL OR lock = @lock)`,
      )
      .safeIntegers(true);
    this.pairs = db
      .prepare(
        `SELECT waiter_site, holder_site, sum(count) AS count, sum(total_ns) AS total_ns, max(max_ns) AS max_ns FROM lock_pair_rollup
         WHERE lock = ? AND minute >= ? AND minute < ? AND (? IS NULL OR service = ?)
         GROUP BY waiter_site, holder_site ORDER BY total_ns DESC LIMIT 50`,
      )
      .safeIntegers(true);
  }

  private minutes(w: Window): [bigint, bigint] {
    return [w.fromNs / NS_PER_MINUTE, (w.toNs + NS_PER_MINUTE - 1n) / NS_PER_MINUTE];
  }

  /** Agent spans of one kind grouped by what they are about, most time first. */
  groups(kind: string, w: Window, limit = 50): GroupRow[] {
    const [from, to] = this.minutes(w);
    const rows = (
      w.service
        ? this.rollupGroupsByService.all(kind, w.service, from, to, limit)
        : this.rollupGroups.all(kind, from, to, limit)
    ) as Array<{
      service: string;
      key: string;
      count: bigint;
      total_ns: bigint;
      max_ns: bigint;
    }>;
    return rows.map((r) => ({
      service: r.service,
      key: r.key,
      count: Number(r.count),
      totalMs: nsToMs(r.total_ns),
      maxMs: nsToMs(r.max_ns),
    }));
  }

  /** Time per step for the given keys of one kind (from the per-minute rollups). */
  groupChart(kind: string, keys: string[], w: Window): Chart {
    const [from, to] = this.minutes(w);
    const stepMinutes = w.stepNs / NS_PER_MINUTE > 0n ? w.stepNs / NS_PER_MINUTE : 1n;
    const steps = Number((to - from + stepMinutes - 1n) / stepMinutes);
    const times = Array.from({ length: steps }, (_, i) => nsToIso((from + BigInt(i) * stepMinutes) * NS_PER_MINUTE));
    const series = new Map<string, { name: string; service: string; values: Array<number | null> }>();
    for (const r of this.rollupSeries.all({
      kind,
      service: w.service ?? null,
      from,
      to,
      keys: JSON.stringify(keys),
    }) as Array<{ service: string; key: string; minute: bigint; total_ns: bigint }>) {
      const id = key(r.service, r.key);
      let s = series.get(id);
      if (!s)
        series.set(id, (s = { name: r.key, service: r.service, values: new Array<number | null>(steps).fill(0) }));
      const i = Number((r.minute - from) / stepMinutes);
      if (i >= 0 && i < steps) s.values[i] = (s.values[i] ?? 0) + nsToMs(r.total_ns);
    }
    return { times, series: [...series.values()] };
  }

  private spanRows(rows: unknown[]): AgentSpanRow[] {
    return (
      rows as Array<{
        trace_id: string;
        span_id: string;
        service: string;
        agent_key: string;
        start_ns: bigint;
        duration_ns: bigint;
        attributes: string;
      }>
    ).map((r) => ({
      traceId: r.trace_id,
      spanId: r.span_id,
      service: r.service,
      key: r.agent_key,
      start: nsToIso(r.start_ns),
      durationMs: nsToMs(r.duration_ns),
      attributes: JSON.parse(r.attributes) as Attributes,
    }));
  }

  /** The latest agent spans of a kind (and key), newest first. */
  latest(kind: string, w: Window, limit: number, key?: string): AgentSpanRow[] {
    const svc = w.service ?? null;
    if (key !== undefined) return this.spanRows(this.agentSpansByKey.all(kind, key, w.fromNs, w.toNs, svc, svc, limit));
    const args = { kind, from: w.fromNs, to: w.toNs, limit, ...(w.service ? { service: w.service } : {}) };
    return this.spanRows(this.latestAgentSpans[w.service ? 1 : 0].all(args));
  }

  slowest(kind: string, key: string, w: Window, limit: number): AgentSpanRow[] {
    const svc = w.service ?? null;
    // Many of them in the window: walk the slowest first (most are inside it). Few: read the
    // window's and sort. The rollup says which, for a row per minute.
    const [from, to] = this.minutes(w);
    const inWindow = Number((this.keyCount.get(kind, from, to, key, svc, svc) as bigint | null) ?? 0n);
    return this.spanRows(
      (inWindow > MANY_SPANS ? this.slowestByKeyLong : this.slowestByKey).all(
        kind,
        key,
        w.fromNs,
        w.toNs,
        svc,
        svc,
        limit,
      ),
    );
  }

  /**
   * The lock rollup over a window: whole hours from the hourly rows, the minutes at either end
   * from the minute rows, merged per lock.
   */
  private lockBuckets(
    w: Window,
    lock?: string,
  ): Map<string, { service: string; lock: string; type: string; b: LockBucket }> {
    const fromMin = w.fromNs / NS_PER_MINUTE;
    const toMin = (w.toNs + NS_PER_MINUTE - 1n) / NS_PER_MINUTE;
    const firstHour = (fromMin + 59n) / 60n;
    const endHour = toMin / 60n;
    const rows: Array<{ service: string; lock: string; type: string; data: string }> = [];
    const args = { service: w.service ?? null, lock: lock ?? null };
    if (firstHour < endHour) {
      rows.push(...(this.lockRows.all({ ...args, size: 60, from: firstHour, to: endHour }) as typeof rows));
      rows.push(...(this.lockRows.all({ ...args, size: 1, from: fromMin, to: firstHour * 60n }) as typeof rows));
      rows.push(...(this.lockRows.all({ ...args, size: 1, from: endHour * 60n, to: toMin }) as typeof rows));
    } else {
      rows.push(...(this.lockRows.all({ ...args, size: 1, from: fromMin, to: toMin }) as typeof rows));
    }
    const out = new Map<string, { service: string; lock: string; type: string; b: LockBucket }>();
    for (const r of rows) {
      const id = key(r.service, r.lock, r.type);
      let e = out.get(id);
      if (!e) out.set(id, (e = { service: r.service, lock: r.lock, type: r.type, b: emptyBucket() }));
      mergeBucket(e.b, JSON.parse(r.data) as LockBucket);
    }
    return out;
  }

  /** The locks table: every lock resource seen in the window, most waiting first. */
  locks(w: Window): LockRow[] {
    const waitMax = new Map(this.groups(KINDS.lockWait, w, 1000).map((g) => [key(g.service, g.key), g.maxMs]));
    const out: LockRow[] = [];
    for (const { service, lock, type, b } of this.lockBuckets(w).values()) {
      const wait: Histogram = { count: b.waitCount, sum: b.waitSum, bounds: b.bounds, counts: b.waitCounts };
      // Uncontended acquisitions waited 0: they are not in the wait histogram, and count here.
      const zeros = Math.max(0, b.acquisitions - b.contended);
      const msOf = (v: number | null) => (v === null ? null : v * 1000);
      const max = waitMax.get(key(service, lock)) ?? (wait.count ? quantile(wait, 1)! * 1000 : 0);
      // A percentile read off bucket bounds can exceed the longest wait the spans measured.
      const ms = (v: number | null) => (v === null ? null : Math.min(v * 1000, max));
      out.push({
        service,
        lock,
        type,
        acquisitions: b.acquisitions,
        contended: b.contended,
        contendedPct: b.acquisitions ? (100 * b.contended) / b.acquisitions : 0,
        totalWaitMs: b.waitSum * 1000,
        waitP50Ms: ms(quantile(wait, 0.5, zeros)),
        waitP95Ms: ms(quantile(wait, 0.95, zeros)),
        waitP99Ms: ms(quantile(wait, 0.99, zeros)),
        waitMaxMs: max,
        holdP95Ms: msOf(quantile({ count: b.holdCount, sum: b.holdSum, bounds: b.bounds, counts: b.holdCounts }, 0.95)),
        maxQueue: b.maxPending,
        timeouts: b.timeouts,
      });
    }
    return out.sort((a, b) => b.totalWaitMs - a.totalWaitMs);
  }

  /** Who waited on whom at one lock: waiter site by holder site, most waiting first. */
  lockPairs(name: string, w: Window): LockPair[] {
    const [from, to] = this.minutes(w);
    const svc = w.service ?? null;
    return (
      this.pairs.all(name, from, to, svc, svc) as Array<{
        waiter_site: string;
        holder_site: string;
        count: bigint;
        total_ns: bigint;
        max_ns: bigint;
      }>
    ).map((p) => ({
      waiterSite: p.waiter_site,
      holderSite: p.holder_site,
      count: Number(p.count),
      totalMs: nsToMs(p.total_ns),
      maxMs: nsToMs(p.max_ns),
    }));
  }

  /** A metric folded over the whole window (one step), per service and attributes. */
  windowTotals(name: string, w: Window): Array<{ service: string; attributes: Attributes; step: MetricStep }> {
    const m = this.queries.queryMetric({
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
   * queryMetric computes, folded in SQL, which a day of points needs.
   */
  histogramSteps(
    name: string,
    w: Window,
  ): Array<{ service: string; attributes: Attributes; step: number; count: number; sum: number }> {
    const rows = this.totals[w.service ? 1 : 0].all({
      name,
      from: w.fromNs,
      to: w.toNs,
      step: w.stepNs,
      ...(w.service ? { service: w.service } : {}),
    }) as Array<{
      service: string;
      attributes: string;
      step: number;
      count: number | null;
      sum: number | null;
    }>;
    const attrs = new Map<string, Attributes>();
    return rows.map((r) => {
      let a = attrs.get(r.attributes);
      if (!a) attrs.set(r.attributes, (a = JSON.parse(r.attributes) as Attributes));
      return { service: r.service, attributes: a, step: Number(r.step), count: Number(r.count ?? 0), sum: r.sum ?? 0 };
    });
  }

  /** A histogram metric's count and sum (seconds) over the whole window, per service and attributes. */
  histogramTotals(
    name: string,
    w: Window,
  ): Array<{ service: string; attributes: Attributes; count: number; sum: number }> {
    return this.histogramSteps(name, { ...w, stepNs: w.toNs - w.fromNs + 1n });
  }

  /** One lock: its wait and hold histograms, who waited on whom, the slowest waits. */
  lock(name: string, w: Window) {
    const b = emptyBucket();
    for (const e of this.lockBuckets(w, name).values()) mergeBucket(b, e.b);
    const wait: Histogram = { count: b.waitCount, sum: b.waitSum, bounds: b.bounds, counts: b.waitCounts };
    const hold: Histogram = { count: b.holdCount, sum: b.holdSum, bounds: b.bounds, counts: b.holdCounts };
    const pairs = this.lockPairs(name, w);
    const sites = new Map<string, { site: string; count: number; totalMs: number }>();
    for (const p of pairs) {
      const s = sites.get(p.waiterSite) ?? { site: p.waiterSite, count: 0, totalMs: 0 };
      s.count += p.count;
      s.totalMs += p.totalMs;
      sites.set(p.waiterSite, s);
    }
    const histogram = (h: Histogram) => ({
      count: h.count,
      sumMs: h.sum * 1000,
      boundsMs: h.bounds.map((b) => b * 1000),
      counts: h.counts,
    });
    return {
      lock: name,
      wait: histogram(wait),
      hold: histogram(hold),
      acquireSites: [...sites.values()].sort((a, b) => b.totalMs - a.totalMs),
      pairs,
      slowest: this.slowest(KINDS.lockWait, name, w, 10),
      held: this.latest(KINDS.lockHeld, w, 10, name),
      chart: this.groupChart(KINDS.lockWait, [name], w),
    };
  }

  /** Blocking episodes and slow sync calls grouped by where they happened. */
  blocking(w: Window) {
    return { episodes: this.groups(KINDS.loopBlock, w), syncCalls: this.groups(KINDS.syncCall, w) };
  }

  /** One blocking group: its episodes (newest first), each with its stack and trace. */
  blockingGroup(kind: string, key: string, w: Window) {
    const spans = this.latest(kind, w, 50, key);
    return { key, stack: text(spans[0]?.attributes[CODE_STACKTRACE] ?? ''), spans };
  }

  /** Loop lag and utilization over time, per service. */
  loop(w: Window): Chart {
    const times = stepTimes(w);
    const series: Chart['series'] = [];
    // Gauges, folded per step in SQL: a day of exports is thousands of points per series.
    // Several instances of a service: the worst delay, the mean utilization.
    for (const [name, fold, scale] of [
      [`${METRICS.loopDelayPrefix}p99`, 'max', 1000],
      [`${METRICS.loopDelayPrefix}max`, 'max', 1000],
      [METRICS.loopUtilization, 'avg', 1],
    ] as const) {
      const args = { name, from: w.fromNs, to: w.toNs, step: w.stepNs, ...(w.service ? { service: w.service } : {}) };
      const rows = this.gauge[fold][w.service ? 1 : 0].all(args) as Array<{
        service: string;
        step: bigint;
        value: number | bigint;
      }>;
      const byService = new Map<string, Array<number | null>>();
      for (const r of rows) {
        let values = byService.get(r.service);
        if (!values) byService.set(r.service, (values = new Array<number | null>(times.length).fill(null)));
        const i = Number(r.step);
        if (i >= 0 && i < times.length) values[i] = Number(r.value) * scale;
      }
      for (const [service, values] of byService) series.push({ name, service, values });
    }
    return { times, series };
  }

  /** A histogram's mean per step (ms), one line per service and label. */
  meanChart(name: string, w: Window, label: (a: Attributes) => string): Chart {
    const times = stepTimes(w);
    const merged = new Map<string, { name: string; service: string; sum: number[]; count: number[] }>();
    for (const r of this.histogramSteps(name, w)) {
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

  /** Thread offload over time: the threadpool canary and in-flight counts, and each pool's wait and run. */
  offload(w: Window) {
    const gauge = (name: string, label: (s: MetricSeries) => string): Chart => {
      const m = this.queries.queryMetric({
        name,
        service: w.service,
        fromNs: w.fromNs,
        toNs: w.toNs,
        stepNs: w.stepNs,
      });
      return {
        times: m.series[0]?.steps.map((s) => s.time) ?? stepTimes(w),
        series: m.series.map((s) => ({
          name: label(s),
          service: s.service,
          values: s.steps.map((st) => st.max ?? null),
        })),
      };
    };
    const category = (s: MetricSeries) => text(s.attributes[THREADPOOL_CATEGORY] ?? 'all');
    return {
      canary: this.meanChart(THREADPOOL_METRICS.canaryWait, w, () => 'canary wait'),
      inFlight: gauge(THREADPOOL_METRICS.inFlight, category),
      size: gauge(THREADPOOL_METRICS.size, () => 'threadpool size'),
      threadpoolWaits: this.groups(KINDS.threadpoolWait, w),
      poolWait: this.meanChart(POOL_METRICS.queueWait, w, poolLabel),
      poolRun: this.meanChart(POOL_METRICS.runTime, w, poolLabel),
      pools: this.groups(KINDS.poolTask, w),
    };
  }
}

/** How a pool is labelled in charts: its name and type. */
export const poolLabel = (a: Attributes) => `${text(a[POOL_NAME])} (${text(a[POOL_TYPE])})`;

/** The start of every step of the window. */
function stepTimes(w: Window): string[] {
  const n = Number((w.toNs - w.fromNs + w.stepNs - 1n) / w.stepNs);
  return Array.from({ length: Math.min(n, 2000) }, (_, i) => nsToIso(w.fromNs + BigInt(i) * w.stepNs));
}
