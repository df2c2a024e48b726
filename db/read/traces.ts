// Services, traces and trace search: what the query API lists and the waterfall opens.
import type { ServiceSummary, SpanView, TraceSearch, TraceSummary, Attributes } from '../../common/types';
import { nsToIso, nsToMs } from '../../common/time';
import { big, int, inList, type Params, type SqlReader } from '../sql';

/** Spans examined at most while looking for `limit` distinct traces, so a search stays fast. */
const MAX_SCANNED_SPANS = 100_000;
/** Spans read per page while searching: most searches end in the first. */
const SEARCH_PAGE = 2_000;

interface SpanDbRow {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  trace_state: string | null;
  service: string;
  name: string;
  kind: unknown;
  start_ns: unknown;
  end_ns: unknown;
  duration_ns: unknown;
  status_code: unknown;
  status_message: string | null;
  attributes: string;
  events: string | null;
  links: string | null;
  scope_name: string | null;
  scope_version: string | null;
  resource: string;
}

export async function listServices(db: SqlReader): Promise<ServiceSummary[]> {
  const rows = await db.all<{ service: string; span_count: unknown; first_seen_ns: unknown; last_seen_ns: unknown }>(
    'SELECT service, span_count, first_seen_ns, last_seen_ns FROM services ORDER BY service',
  );
  return rows.map((r) => ({
    service: r.service,
    spanCount: int(r.span_count),
    firstSeen: nsToIso(big(r.first_seen_ns)),
    lastSeen: nsToIso(big(r.last_seen_ns)),
  }));
}

export async function getTrace(db: SqlReader, traceId: string): Promise<SpanView[]> {
  const rows = await db.all<SpanDbRow>(
    `SELECT s.trace_id, s.span_id, s.parent_span_id, s.trace_state, s.service, s.name, s.kind, s.start_ns, s.end_ns,
       s.duration_ns, s.status_code, s.status_message, s.attributes, s.events, s.links, s.scope_name, s.scope_version,
       r.attributes AS resource
     FROM spans s JOIN resources r ON r.id = s.resource_id
     WHERE s.trace_id = @trace ORDER BY s.start_ns, s.${db.dialect.rowId}`,
    { trace: traceId.toLowerCase() },
  );
  return rows.map(toSpanView);
}

/** Traces with at least one span matching every filter, newest matching span first. */
export async function searchTraces(db: SqlReader, q: TraceSearch): Promise<TraceSummary[]> {
  const where: string[] = [];
  const params: Params = {};
  const filter = (sql: string, name: string, value: unknown) => {
    where.push(sql);
    params[name] = value;
  };
  if (q.service) filter('service = @service', 'service', q.service);
  if (q.name) filter('name = @name', 'name', q.name);
  if (q.minDurationNs !== undefined) filter('duration_ns >= @minDuration', 'minDuration', q.minDurationNs);
  if (q.fromNs !== undefined) filter('start_ns >= @from', 'from', q.fromNs);
  if (q.toNs !== undefined) filter('start_ns < @to', 'to', q.toNs);
  // The matched span is the agent span itself: found through its index, not a scan.
  if (q.agentKind) filter('agent_kind = @agentKind', 'agentKind', q.agentKind);
  if (q.attribute) {
    // Values arrive as text; match JSON strings exactly and numbers and booleans by meaning.
    const d = db.dialect;
    const type = d.jsonType('attributes', '@attrKey');
    const value = d.jsonValue('attributes', '@attrKey');
    where.push(`(
      (${type} = 'text' AND ${value} = @attrValue)
      OR (${type} IN ('integer', 'real') AND @attrIsNumber = 1 AND ${value} = @attrNumber)
      OR (${type} = 'true' AND @attrValue = 'true')
      OR (${type} = 'false' AND @attrValue = 'false'))`);
    const v = q.attribute.value;
    const n = Number(v);
    Object.assign(params, {
      attrKey: q.attribute.key,
      attrValue: v,
      attrIsNumber: v.trim() !== '' && Number.isFinite(n) ? 1 : 0,
      attrNumber: Number.isFinite(n) ? n : 0,
    });
  }
  const sql = `SELECT trace_id, span_id, name, service, duration_ns FROM spans
    ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY start_ns DESC LIMIT @limit OFFSET @offset`;
  const matched = new Map<string, TraceSummary['matched']>();
  for (let offset = 0; offset < MAX_SCANNED_SPANS && matched.size < q.limit; offset += SEARCH_PAGE) {
    const page = await db.all<{
      trace_id: string;
      span_id: string;
      name: string;
      service: string;
      duration_ns: unknown;
    }>(sql, { ...params, limit: SEARCH_PAGE, offset });
    for (const r of page) {
      if (matched.has(r.trace_id)) continue;
      matched.set(r.trace_id, {
        spanId: r.span_id,
        name: r.name,
        service: r.service,
        durationMs: nsToMs(big(r.duration_ns)),
      });
      if (matched.size >= q.limit) break;
    }
    if (page.length < SEARCH_PAGE) break;
  }
  if (matched.size === 0) return [];
  const ids = [...matched.keys()];
  const list = inList('t', ids);
  const d = db.dialect;
  const root = (col: string) =>
    `(SELECT r.${col} FROM spans r WHERE r.trace_id = s.trace_id AND r.parent_span_id IS NULL ORDER BY r.start_ns LIMIT 1)`;
  const summaries = await db.all<{
    trace_id: string;
    spans: unknown;
    start_ns: unknown;
    end_ns: unknown;
    errors: unknown;
    agent: unknown;
    services: string;
    root_name: string | null;
    root_service: string | null;
  }>(
    `SELECT trace_id, count(*) AS spans, min(start_ns) AS start_ns, max(end_ns) AS end_ns,
       ${d.count('status_code = 2')} AS errors, ${d.count('agent_kind IS NOT NULL')} AS agent,
       ${d.joinDistinct('service')} AS services,
       ${root('name')} AS root_name, ${root('service')} AS root_service
     FROM spans s WHERE trace_id IN (${list.sql}) GROUP BY trace_id`,
    list.params,
  );
  const byId = new Map(summaries.map((s) => [s.trace_id, s]));
  return ids.flatMap((id) => {
    const s = byId.get(id);
    if (!s) return []; // deleted by retention between the two queries
    return [
      {
        traceId: id,
        rootName: s.root_name,
        rootService: s.root_service,
        startTimeUnixNano: big(s.start_ns).toString(),
        durationMs: nsToMs(big(s.end_ns) - big(s.start_ns)),
        spanCount: int(s.spans),
        errorCount: int(s.errors),
        agentSpanCount: int(s.agent),
        services: s.services.split(',').sort(),
        matched: matched.get(id)!,
      },
    ];
  });
}

function toSpanView(r: SpanDbRow): SpanView {
  return {
    traceId: r.trace_id,
    spanId: r.span_id,
    parentSpanId: r.parent_span_id,
    traceState: r.trace_state,
    service: r.service,
    name: r.name,
    kind: int(r.kind),
    startTimeUnixNano: big(r.start_ns).toString(),
    endTimeUnixNano: big(r.end_ns).toString(),
    durationMs: nsToMs(big(r.duration_ns)),
    status: { code: int(r.status_code), message: r.status_message },
    attributes: JSON.parse(r.attributes) as Attributes,
    events: r.events ? (JSON.parse(r.events) as unknown[]) : [],
    links: r.links ? (JSON.parse(r.links) as unknown[]) : [],
    resource: JSON.parse(r.resource) as Attributes,
    scope: { name: r.scope_name, version: r.scope_version },
  };
}
