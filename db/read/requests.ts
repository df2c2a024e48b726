// Requests: the server spans and traces the routes job breaks down, and the breakdowns and route
// rollups the Routes page reads.
import { KINDS } from '../../common/conventions';
import type { Attributes, JobSpan, RequestView, RouteCause, RouteRow, Window } from '../../common/types';
import { key, splitKey } from '../../common/keys';
import { nsToIso, nsToMs } from '../../common/time';
import { durationQuantile, emptyRouteBucket, mergeRouteBucket, type RouteBucket } from '../route-bucket';
import { big, int, inList, type Params, type SqlReader } from '../sql';
import { minuteRanges, rangeClause } from './ranges';

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
  const rows = await db.all<{ service: string; route: string; data: string }>(
    `SELECT service, route, data FROM route_rollup WHERE ${where}
       ${w.service ? 'AND service = @service' : ''} ${route !== undefined ? 'AND route = @route' : ''}`,
    params,
  );
  const merged = new Map<string, { service: string; route: string; b: RouteBucket }>();
  for (const r of rows) {
    const id = key(r.service, r.route);
    let e = merged.get(id);
    if (!e) merged.set(id, (e = { service: r.service, route: r.route, b: emptyRouteBucket() }));
    mergeRouteBucket(e.b, JSON.parse(r.data) as RouteBucket);
  }
  return [...merged.values()]
    .map(({ service, route: name, b }) => ({
      service,
      route: name,
      requests: b.requests,
      totalMs: b.totalMs,
      p50Ms: durationQuantile(b, 0.5),
      p95Ms: durationQuantile(b, 0.95),
      p99Ms: durationQuantile(b, 0.99),
      causes: Object.entries(b.causes)
        .map(([k, ms]) => {
          const [kind, what] = splitKey(k);
          return { kind: kind as RouteCause['kind'], what, ms, share: b.totalMs ? ms / b.totalMs : 0 };
        })
        .sort((a, x) => x.ms - a.ms),
    }))
    .sort((a, b) => b.totalMs - a.totalMs);
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
    `SELECT trace_id, span_id, instance, start_ns, duration_ns, causes FROM request_breakdown
     WHERE service = @service AND route = @route AND start_ns >= @from AND start_ns < @to
     ORDER BY duration_ns DESC LIMIT @limit`,
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
