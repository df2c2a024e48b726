// Loop CPU profiles read back: the weight of each stack over a window (flame graphs, findings,
// pprof downloads), what was received, and the timed samples of the last two hours.
import type { ProfileFrame, ProfileWindows, StackWeight, TimedSample, Window } from '../../common/types';
import { nsToMs } from '../../common/time';
import { big, int, inList, type Params, type SqlReader } from '../sql';
import { minuteRanges, rangeClause } from './ranges';

/** Stack frames by id, parsed once per read. */
async function framesOf(db: SqlReader, ids: number[]): Promise<Map<number, ProfileFrame[]>> {
  const out = new Map<number, ProfileFrame[]>();
  for (let i = 0; i < ids.length; i += 500) {
    const list = inList('id', ids.slice(i, i + 500));
    for (const r of await db.all<{ id: unknown; frames: string }>(
      `SELECT id, frames FROM profile_stacks WHERE id IN (${list.sql})`,
      list.params,
    ))
      out.set(int(r.id), JSON.parse(r.frames) as ProfileFrame[]);
  }
  return out;
}

/** The weight of every stack over the window, per service, heaviest first. */
export async function stackWeights(db: SqlReader, w: Window): Promise<StackWeight[]> {
  const params: Params = { service: w.service ?? null };
  const where = rangeClause(minuteRanges(w), params);
  if (!where) return [];
  const rows = await db.all<{ service: string; stack_id: unknown; samples: unknown; ns: unknown }>(
    `SELECT service, stack_id, sum(samples) AS samples, sum(weight_ns) AS ns FROM profile_rollup
     WHERE ${where} ${w.service ? 'AND service = @service' : ''}
     GROUP BY service, stack_id ORDER BY ns DESC`,
    params,
  );
  const frames = await framesOf(db, [...new Set(rows.map((r) => int(r.stack_id)))]);
  return rows.map((r) => ({
    service: r.service,
    stackId: int(r.stack_id),
    frames: frames.get(int(r.stack_id)) ?? [],
    samples: int(r.samples),
    weightMs: nsToMs(big(r.ns)),
  }));
}

/** What profiles were received in the window, per service. */
export async function profileWindows(db: SqlReader, w: Window): Promise<ProfileWindows[]> {
  const rows = await db.all<{
    service: string;
    instances: unknown;
    windows: unknown;
    samples: unknown;
    period: unknown;
    hz: number | null;
  }>(
    `SELECT service, count(DISTINCT instance) AS instances, count(*) AS windows, sum(samples) AS samples,
       avg(period_ns) AS period, max(requested_hz) AS hz
     FROM profiles WHERE start_ns + duration_ns > @from AND start_ns < @to ${w.service ? 'AND service = @service' : ''}
     GROUP BY service ORDER BY service`,
    { from: w.fromNs, to: w.toNs, service: w.service ?? null },
  );
  return rows.map((r) => ({
    service: r.service,
    instances: int(r.instances),
    windows: int(r.windows),
    samples: int(r.samples),
    periodMs: Number(r.period ?? 0) / 1e6,
    requestedHz: r.hz,
  }));
}

/** One service's samples in [from, to), in time order (kept two hours). */
export async function timedSamples(
  db: SqlReader,
  service: string,
  fromNs: bigint,
  toNs: bigint,
): Promise<TimedSample[]> {
  const rows = await db.all<{ instance: string; time_ns: unknown; stack_id: unknown; weight_ns: unknown }>(
    `SELECT instance, time_ns, stack_id, weight_ns FROM profile_samples
     WHERE service = @service AND time_ns >= @from AND time_ns < @to ORDER BY time_ns`,
    { service, from: fromNs, to: toNs },
  );
  const frames = await framesOf(db, [...new Set(rows.map((r) => int(r.stack_id)))]);
  return rows.map((r) => ({
    instance: r.instance,
    timeNs: big(r.time_ns),
    weightNs: big(r.weight_ns),
    frames: frames.get(int(r.stack_id)) ?? [],
  }));
}
