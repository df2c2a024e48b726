// Requests: the server spans and traces the routes job breaks down, and the breakdowns and route
// rollups the Routes page reads (for services in lean request mode, their per-route metrics).
import {
  CAUSE_KIND,
  CAUSE_WHAT,
  HTTP_METHOD,
  HTTP_METRICS,
  HTTP_PATH_ROUTE,
  HTTP_ROUTE,
  KINDS,
  REQUEST_METRICS,
} from '../../common/conventions';
import { routeName } from '../../common/routes';
import type { Attributes, JobSpan, RequestView, RouteCause, RouteRow, Window } from '../../common/types';
import { key, splitKey } from '../../common/keys';
import { nsToIso, nsToMs } from '../../common/time';
import { durationQuantile, emptyRouteBucket, mergeRouteBucket, type RouteBucket } from '../route-bucket';
import { big, int, inList, type Params, type SqlReader } from '../sql';
import { minuteRanges, rangeClause } from './ranges';
import { quantile, type Histogram } from './histogram';
import { counterTotals, windowTotals } from './metrics';

interface SpanDbRow {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: unknown;
  service: string;
  start_ns: unknown;
  end_ns: unknown;
  attributes: string;
  resource: string;
}

const COLUMNS = `s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.service, s.start_ns, s.end_ns, s.attributes,
  r.attributes AS resource`;

function jobSpans(rows: SpanDbRow[]): JobSpan[] {
  const instances = new Map<string, string>();
  return rows.map((r) => {
    let instance = instances.get(r.resource);
    if (instance === undefined) {
      const a = JSON.parse(r.resource) as Attributes;
      instances.set(r.resource, (instance = String(a['service.instance.id'] ?? a['service.name'] ?? '')));
    }
    return {
      traceId: r.trace_id,
      spanId: r.span_id,
      parentSpanId: r.parent_span_id,
      name: r.name,
      kind: int(r.kind),
      service: r.service,
      instance,
      startNs: big(r.start_ns),
      endNs: big(r.end_ns),
      attributes: JSON.parse(r.attributes) as Attributes,
    };
  });
}

/** HTTP server spans that ended in [from, to), oldest end first, at most `limit`. */
export async function serverSpansEnding(
  db: SqlReader,
  fromNs: bigint,
  toNs: bigint,
  limit: number,
): Promise<JobSpan[]> {
  const rows = await db.all<SpanDbRow>(
    `SELECT ${COLUMNS} FROM spans s ${db.dialect.indexedBy('spans_server_end')} JOIN resources r ON r.id = s.resource_id
     WHERE s.kind = 2 AND s.end_ns >= @from AND s.end_ns < @to ORDER BY s.end_ns LIMIT @limit`,
    { from: fromNs, to: toNs, limit },
  );
  return jobSpans(rows);
}

/** Every span of the given traces. */
export async function spansOfTraces(db: SqlReader, traceIds: string[]): Promise<JobSpan[]> {
  const out: JobSpan[] = [];
  for (let i = 0; i < traceIds.length; i += 500) {
    const list = inList('t', traceIds.slice(i, i + 500));
    out.push(
      ...jobSpans(
        await db.all<SpanDbRow>(
          `SELECT ${COLUMNS} FROM spans s JOIN resources r ON r.id = s.resource_id WHERE s.trace_id IN (${list.sql})`,
          list.params,
        ),
      ),
    );
  }
  return out;
}

/** Blocking episodes of the given services in [from, to), by start. */
export async function episodesOf(db: SqlReader, services: string[], fromNs: bigint, toNs: bigint): Promise<JobSpan[]> {
  if (services.length === 0) return [];
  const list = inList('s', services);
  const rows = await db.all<SpanDbRow>(
    `SELECT ${COLUMNS} FROM spans s ${db.dialect.indexedBy('spans_agent_service')} JOIN resources r ON r.id = s.resource_id
     WHERE s.agent_kind = @kind AND s.service IN (${list.sql}) AND s.start_ns >= @from AND s.start_ns < @to
     ORDER BY s.start_ns`,
    { kind: KINDS.loopBlock, from: fromNs, to: toNs, ...list.params },
  );
  return jobSpans(rows);
}

/** Where the routes job stopped: the end of the latest request it broke down. */
export async function lastBreakdownEnd(db: SqlReader): Promise<bigint | null> {
  const [r] = await db.all<{ t: unknown }>('SELECT max(start_ns + duration_ns) AS t FROM request_breakdown');
  return r?.t === null || r?.t === undefined ? null : big(r.t);
}

/** Every route in the window, most total time first, with the causes of its time. */
export async function routes(db: SqlReader, w: Window, route?: string): Promise<RouteRow[]> {
  const params: Params = { service: w.service ?? null, route: route ?? null };
  const where = rangeClause(minuteRanges(w), params);
  if (!where) return [];
  const [rows, lean] = await Promise.all([
    db.all<{ service: string; route: string; data: string }>(
      `SELECT service, route, data FROM route_rollup WHERE ${where}
       ${w.service ? 'AND service = @service' : ''} ${route !== undefined ? 'AND route = @route' : ''}`,
      params,
    ),
    leanRoutes(db, w, route),
  ]);
  const merged = new Map<string, { service: string; route: string; b: RouteBucket }>();
  for (const r of rows) {
    const id = key(r.service, r.route);
    let e = merged.get(id);
    if (!e) merged.set(id, (e = { service: r.service, route: r.route, b: emptyRouteBucket() }));
    mergeRouteBucket(e.b, JSON.parse(r.data) as RouteBucket);
  }
  const traced = [...merged]
    .filter(([id]) => !lean.has(id))
    .map(([, { service, route: name, b }]) => ({
      service,
      route: name,
      requests: b.requests,
      totalMs: b.totalMs,
      p50Ms: durationQuantile(b, 0.5),
      p95Ms: durationQuantile(b, 0.95),
      p99Ms: durationQuantile(b, 0.99),
      causes: causeRows(b.causes, b.totalMs),
    }));
  return [...traced, ...lean.values()].sort((a, b) => b.totalMs - a.totalMs);
}

function causeRows(causes: Record<string, number>, totalMs: number): RouteRow['causes'] {
  return Object.entries(causes)
    .map(([k, ms]) => {
      const [kind, what] = splitKey(k);
      return { kind: kind as RouteCause['kind'], what, ms, share: totalMs ? ms / totalMs : 0 };
    })
    .sort((a, x) => x.ms - a.ms);
}

const str = (v: unknown) => (typeof v === 'string' ? v : '');
const routeOfPoint = (a: Attributes) => routeName(str(a[HTTP_METHOD]), str(a[HTTP_ROUTE]) || str(a[HTTP_PATH_ROUTE]));

/**
 * Routes of services in lean request mode, from the agent's per-route metrics (every request,
 * traced or not): the time by cause from `stallscope.request.time`, the count and percentiles from
 * `http.server.request.duration`. A route counted so is not read from the breakdowns, which
 * there cover only the requests that stalled.
 */
async function leanRoutes(db: SqlReader, w: Window, route?: string): Promise<Map<string, RouteRow>> {
  const [times, durations] = await Promise.all([
    counterTotals(db, REQUEST_METRICS.time, w),
    windowTotals(db, HTTP_METRICS.serverDuration, w),
  ]);
  const out = new Map<string, RouteRow & { byCause: Record<string, number>; histogram: Histogram }>();
  for (const t of times) {
    const name = routeOfPoint(t.attributes);
    if (route !== undefined && name !== route) continue;
    const id = key(t.service, name);
    let r = out.get(id);
    if (!r)
      out.set(
        id,
        (r = {
          service: t.service,
          route: name,
          requests: 0,
          totalMs: 0,
          p50Ms: null,
          p95Ms: null,
          p99Ms: null,
          causes: [],
          byCause: {},
          histogram: { count: 0, sum: 0, bounds: [], counts: [] },
        }),
      );
    const cause = key(str(t.attributes[CAUSE_KIND]), str(t.attributes[CAUSE_WHAT]));
    r.byCause[cause] = (r.byCause[cause] ?? 0) + t.value * 1000;
  }
  for (const d of durations) {
    const r = out.get(key(d.service, routeOfPoint(d.attributes)));
    if (!r || !d.step.count) continue;
    const h = r.histogram;
    h.count += d.step.count;
    h.sum += d.step.sum ?? 0;
    h.bounds = d.step.bounds ?? h.bounds;
    (d.step.bucketCounts ?? []).forEach((c, i) => (h.counts[i] = (h.counts[i] ?? 0) + c));
  }
  const rows = new Map<string, RouteRow>();
  for (const [id, { byCause, histogram, ...r }] of out) {
    r.totalMs = Object.values(byCause).reduce((a, x) => a + x, 0);
    r.causes = causeRows(byCause, r.totalMs);
    r.requests = histogram.count;
    const ms = (q: number) => {
      const s = quantile(histogram, q);
      return s === null ? null : s * 1000;
    };
    [r.p50Ms, r.p95Ms, r.p99Ms] = [ms(0.5), ms(0.95), ms(0.99)];
    if (r.totalMs > 0) rows.set(id, r);
  }
  return rows;
}

/** One route's slowest requests in the window, each with its breakdown. */
export async function slowestRequests(
  db: SqlReader,
  service: string,
  route: string,
  w: Window,
  limit: number,
): Promise<RequestView[]> {
  const rows = await db.all<{
    trace_id: string;
    span_id: string;
    instance: string;
    start_ns: unknown;
    duration_ns: unknown;
    causes: string;
  }>(
    // The slowest keys from the index alone (a window without one of the route's requests
    // reads the route's index entries, never its rows), then their rows.
    `SELECT b.trace_id, b.span_id, b.instance, b.start_ns, b.duration_ns, b.causes FROM (
       SELECT trace_id, span_id FROM request_breakdown ${db.dialect.indexedBy('request_breakdown_slowest')}
       WHERE service = @service AND route = @route AND start_ns >= @from AND start_ns < @to
       ORDER BY duration_ns DESC LIMIT @limit
     ) AS top JOIN request_breakdown b ON b.trace_id = top.trace_id AND b.span_id = top.span_id
     ORDER BY b.duration_ns DESC`,
    { service, route, from: w.fromNs, to: w.toNs, limit },
  );
  return rows.map((r) => ({
    traceId: r.trace_id,
    spanId: r.span_id,
    service,
    instance: r.instance,
    route,
    start: nsToIso(big(r.start_ns)),
    durationMs: nsToMs(big(r.duration_ns)),
    causes: JSON.parse(r.causes) as RouteCause[],
  }));
}
