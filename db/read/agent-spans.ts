// The agent's spans, by kind and by what each is about (its key: the lock, the blocking function,
// the sync API and call site...): totals per key from the rollup kept at ingest (per minute and
// per hour), and the spans themselves through the agent-span indexes, never a scan of all spans.
import type { AgentKind } from '../../common/conventions';
import type { AgentSpanRow, Attributes, Chart, GroupRow, Window } from '../../common/types';
import { key } from '../../common/keys';
import { NS_PER_MINUTE, nsToIso, nsToMs } from '../../common/time';
import { big, int, inList, type Params, type SqlReader } from '../sql';
import { minuteRanges, rangeClause } from './ranges';

/** From this many in a window, a key's slowest spans are found through the duration index. */
const MANY_SPANS = 5000;

const SPAN_COLUMNS = 'trace_id, span_id, service, agent_key, start_ns, duration_ns, attributes';

interface SpanDbRow {
  trace_id: string;
  span_id: string;
  service: string;
  agent_key: string;
  start_ns: unknown;
  duration_ns: unknown;
  attributes: string;
}

function spanRows(rows: SpanDbRow[]): AgentSpanRow[] {
  return rows.map((r) => ({
    traceId: r.trace_id,
    spanId: r.span_id,
    service: r.service,
    key: r.agent_key,
    start: nsToIso(big(r.start_ns)),
    durationMs: nsToMs(big(r.duration_ns)),
    attributes: JSON.parse(r.attributes) as Attributes,
  }));
}

/** The rollup's minutes that a window touches: [first, end). */
export function minutesOf(w: Window): { from: bigint; to: bigint } {
  return { from: w.fromNs / NS_PER_MINUTE, to: (w.toNs + NS_PER_MINUTE - 1n) / NS_PER_MINUTE };
}

/** Agent spans of one kind grouped by what they are about, most time first. */
export async function groups(db: SqlReader, kind: AgentKind, w: Window, limit = 50): Promise<GroupRow[]> {
  const params: Params = { kind, service: w.service ?? null, limit };
  const where = rangeClause(minuteRanges(w), params);
  if (!where) return [];
  const rows = await db.all<{ service: string; key: string; count: unknown; total_ns: unknown; max_ns: unknown }>(
    `SELECT service, key, sum(count) AS count, sum(total_ns) AS total_ns, max(max_ns) AS max_ns FROM span_rollup
     WHERE kind = @kind ${w.service ? 'AND service = @service' : ''} AND ${where}
     GROUP BY service, key ORDER BY total_ns DESC LIMIT @limit`,
    params,
  );
  return rows.map((r) => ({
    service: r.service,
    key: r.key,
    count: int(r.count),
    totalMs: nsToMs(big(r.total_ns)),
    maxMs: nsToMs(big(r.max_ns)),
  }));
}

/** Time per step for the given keys of one kind (from the per-minute rollups). */
export async function groupChart(db: SqlReader, kind: AgentKind, keys: string[], w: Window): Promise<Chart> {
  const { from, to } = minutesOf(w);
  const stepMinutes = w.stepNs / NS_PER_MINUTE > 0n ? w.stepNs / NS_PER_MINUTE : 1n;
  const steps = Number((to - from + stepMinutes - 1n) / stepMinutes);
  const times = Array.from({ length: steps }, (_, i) => nsToIso((from + BigInt(i) * stepMinutes) * NS_PER_MINUTE));
  const series = new Map<string, { name: string; service: string; values: Array<number | null> }>();
  if (keys.length === 0) return { times, series: [] };
  const list = inList('k', keys);
  const rows = await db.all<{ service: string; key: string; minute: unknown; total_ns: unknown }>(
    `SELECT service, key, bucket AS minute, total_ns FROM span_rollup
     WHERE kind = @kind AND size = 1 ${w.service ? 'AND service = @service' : ''} AND bucket >= @from AND bucket < @to
       AND key IN (${list.sql})`,
    { kind, service: w.service ?? null, from, to, ...list.params },
  );
  for (const r of rows) {
    const id = key(r.service, r.key);
    let s = series.get(id);
    if (!s) series.set(id, (s = { name: r.key, service: r.service, values: new Array<number | null>(steps).fill(0) }));
    const i = Number((big(r.minute) - from) / stepMinutes);
    if (i >= 0 && i < steps) s.values[i] = (s.values[i] ?? 0) + nsToMs(big(r.total_ns));
  }
  return { times, series: [...series.values()] };
}

/** The latest agent spans of a kind (and key), newest first. */
export async function latest(
  db: SqlReader,
  kind: AgentKind,
  w: Window,
  limit: number,
  agentKey?: string,
): Promise<AgentSpanRow[]> {
  const index = agentKey !== undefined ? 'spans_agent_key' : w.service ? 'spans_agent_service' : 'spans_agent';
  const rows = await db.all<SpanDbRow>(
    `SELECT ${SPAN_COLUMNS} FROM spans ${db.dialect.indexedBy(index)}
     WHERE agent_kind = @kind ${agentKey !== undefined ? 'AND agent_key = @key' : ''}
       ${w.service ? 'AND service = @service' : ''} AND start_ns >= @from AND start_ns < @to
     ORDER BY start_ns DESC LIMIT @limit`,
    { kind, key: agentKey ?? null, service: w.service ?? null, from: w.fromNs, to: w.toNs, limit },
  );
  return spanRows(rows);
}

/** The slowest agent spans of one key in the window, slowest first. */
export async function slowest(
  db: SqlReader,
  kind: AgentKind,
  agentKey: string,
  w: Window,
  limit: number,
): Promise<AgentSpanRow[]> {
  // Many of them in the window: walk the slowest first (most are inside it). Few: read the
  // window's and sort. The rollup says which.
  const counted: Params = { kind, key: agentKey, service: w.service ?? null };
  const ranges = rangeClause(minuteRanges(w), counted);
  const [count] = ranges
    ? await db.all<{ n: unknown }>(
        `SELECT sum(count) AS n FROM span_rollup WHERE kind = @kind AND ${ranges} AND key = @key
         ${w.service ? 'AND service = @service' : ''}`,
        counted,
      )
    : [];
  return walk(
    db,
    int(count?.n) > MANY_SPANS ? 'spans_agent_slow' : 'spans_agent_key',
    kind,
    agentKey,
    w,
    limit,
    'slowest',
  );
}

/**
 * One key's slowest (or latest) spans in the window, read through `index`: the duration index
 * walks the slowest first, the key's time index the window's spans (backwards for the latest).
 */
async function walk(
  db: SqlReader,
  index: 'spans_agent_slow' | 'spans_agent_key',
  kind: AgentKind,
  agentKey: string,
  w: Window,
  limit: number,
  order: 'slowest' | 'latest',
): Promise<AgentSpanRow[]> {
  const rows = await db.all<SpanDbRow>(
    `SELECT ${SPAN_COLUMNS} FROM spans ${db.dialect.indexedBy(index)}
     WHERE agent_kind = @kind AND agent_key = @key AND start_ns >= @from AND start_ns < @to
       ${w.service ? 'AND service = @service' : ''}
     ORDER BY ${order === 'slowest' ? 'duration_ns' : 'start_ns'} DESC LIMIT @limit`,
    { kind, key: agentKey, service: w.service ?? null, from: w.fromNs, to: w.toNs, limit },
  );
  return spanRows(rows);
}

/**
 * Whether a key's `n` slowest spans in the window are found sooner by walking its spans slowest
 * first than through its slowest minutes. The walk reads about n spans for each window's length of
 * the data's life (for `n` in the window); the minutes, one rollup row per minute of the window.
 */
async function walkSlowest(db: SqlReader, kind: AgentKind, w: Window, n: number): Promise<boolean> {
  const [first] = await db.all<{ hour: unknown }>(
    'SELECT min(bucket) AS hour FROM span_rollup WHERE kind = @kind AND size = 60',
    { kind },
  );
  if (first?.hour === null || first?.hour === undefined) return false;
  const lifeNs = w.toNs - big(first.hour) * 60n * NS_PER_MINUTE;
  const windowNs = w.toNs - w.fromNs;
  if (windowNs <= 0n) return false;
  return BigInt(n) * lifeNs * NS_PER_MINUTE <= windowNs * windowNs;
}

/**
 * Example spans for many groups of one kind: per (service, key), the `perGroup` slowest, or the
 * latest. Walked per group where that reads few spans (see walkSlowest); otherwise in one query,
 * through the rollup: the slowest n spans of a key lie within its n minutes with the
 * longest maximum (a minute that beats the minute of the nth slowest must hold a slower one), so
 * only those minutes' spans are read; two more cover the window's cut edges. Each minute's range
 * is clipped to the window in one pair of bounds: with a second pair (the window's own) the
 * planner ranged the index over the whole window for every minute.
 */
export async function samples(
  db: SqlReader,
  kind: AgentKind,
  of: ReadonlyArray<{ service: string; key: string }>,
  w: Window,
  perGroup: number,
  order: 'slowest' | 'latest',
): Promise<Map<string, AgentSpanRow[]>> {
  const out = new Map<string, AgentSpanRow[]>();
  if (of.length === 0) return out;
  // The latest are the first few read backwards from the window's end; the slowest, over a window
  // that is much of the data's life, the first few walking the slowest down.
  if (order === 'latest' || (await walkSlowest(db, kind, w, perGroup))) {
    const index = order === 'latest' ? 'spans_agent_key' : 'spans_agent_slow';
    const lists = await Promise.all(
      of.map((g) => walk(db, index, kind, g.key, { ...w, service: g.service }, perGroup, order)),
    );
    of.forEach((g, i) => {
      if (lists[i].length) out.set(key(g.service, g.key), lists[i]);
    });
    return out;
  }
  const services = inList('s', [...new Set(of.map((g) => g.service))]);
  const keys = inList('k', [...new Set(of.map((g) => g.key))]);
  const wanted = new Set(of.map((g) => key(g.service, g.key)));
  const rows = await db.all<SpanDbRow>(
    `WITH top AS (
       SELECT service, key,
         CASE WHEN minute * @minuteNs > @fromNs THEN minute * @minuteNs ELSE @fromNs END AS lo,
         CASE WHEN (minute + 1) * @minuteNs < @toNs THEN (minute + 1) * @minuteNs ELSE @toNs END AS hi
       FROM (
         SELECT service, key, bucket AS minute, row_number() OVER (PARTITION BY service, key ORDER BY max_ns DESC) AS rn
         FROM span_rollup
         WHERE kind = @kind AND size = 1 AND bucket >= @from AND bucket < @to
           AND service IN (${services.sql}) AND key IN (${keys.sql})
       ) AS ranked WHERE rn <= @minutes
     )
     SELECT ${SPAN_COLUMNS} FROM (
       SELECT s.trace_id, s.span_id, s.service, s.agent_key, s.start_ns, s.duration_ns, s.attributes,
         row_number() OVER (PARTITION BY s.service, s.agent_key ORDER BY s.duration_ns DESC) AS rn
       FROM top JOIN spans s ${db.dialect.indexedBy('spans_agent_key')}
         ON s.agent_kind = @kind AND s.agent_key = top.key AND s.service = top.service
         AND s.start_ns >= top.lo AND s.start_ns < top.hi
     ) AS picked WHERE rn <= @perGroup`,
    {
      kind,
      ...minutesOf(w),
      ...services.params,
      ...keys.params,
      minutes: perGroup + 2,
      minuteNs: NS_PER_MINUTE,
      fromNs: w.fromNs,
      toNs: w.toNs,
      perGroup,
    },
  );
  for (const s of spanRows(rows)) {
    const id = key(s.service, s.key);
    if (!wanted.has(id)) continue; // a service of one group with the key of another
    let list = out.get(id);
    if (!list) out.set(id, (list = []));
    list.push(s);
  }
  for (const list of out.values()) list.sort((a, b) => b.durationMs - a.durationMs);
  return out;
}
