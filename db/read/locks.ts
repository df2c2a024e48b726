// Lock statistics over a window, from the lock rollup (db/lock-rollup.ts): the one source for
// the Locks page, a lock's page, findings and lock alerts, so that they never disagree.
import { KINDS, LOCK_METRICS, LOCK_NAME } from '../../common/conventions';
import type { HistogramView, LockPair, LockRow, Window } from '../../common/types';
import { key } from '../../common/keys';
import { NS_PER_MINUTE, nsToMs } from '../../common/time';
import { emptyBucket, mergeBucket, type LockBucket } from '../lock-rollup';
import { big, type Params, type SqlReader } from '../sql';
import { groups } from './agent-spans';
import { minuteRanges, rangeClause, rollupRanges } from './ranges';
import { quantile, type Histogram } from './histogram';
import { expBars, expQuantile, type ExpHistogram } from '../exp-histogram';

/** The lock rollup over a window, merged per lock. */
async function lockBuckets(
  db: SqlReader,
  w: Window,
  lock?: string,
): Promise<Map<string, { service: string; lock: string; type: string; b: LockBucket }>> {
  const params: Params = { service: w.service ?? null, lock: lock ?? null };
  const where = rangeClause(rollupRanges(w), params);
  const out = new Map<string, { service: string; lock: string; type: string; b: LockBucket }>();
  if (!where) return out;
  const rows = await db.all<{ service: string; lock: string; type: string; data: string }>(
    `SELECT service, lock, type, data FROM lock_rollup WHERE ${where}
       ${w.service ? 'AND service = @service' : ''} ${lock !== undefined ? 'AND lock = @lock' : ''}`,
    params,
  );
  for (const r of rows) {
    const id = key(r.service, r.lock, r.type);
    let e = out.get(id);
    if (!e) out.set(id, (e = { service: r.service, lock: r.lock, type: r.type, b: emptyBucket() }));
    mergeBucket(e.b, JSON.parse(r.data) as LockBucket);
  }
  return out;
}

const waitHistogram = (b: LockBucket): Histogram => ({
  count: b.waitCount,
  sum: b.waitSum,
  bounds: b.bounds,
  counts: b.waitCounts,
});
const holdHistogram = (b: LockBucket): Histogram => ({
  count: b.holdCount,
  sum: b.holdSum,
  bounds: b.bounds,
  counts: b.holdCounts,
});

/**
 * Percentiles of a lock's waits or holds: from the exponential histogram where its streams sent
 * one (within a few percent), else from the explicit buckets (linear within a bucket).
 */
function percentiles(explicit: Histogram, exp: ExpHistogram | undefined, zeros: number): (q: number) => number | null {
  const expCount = exp ? exp.zeroCount + exp.counts.reduce((a, c) => a + c, 0) : 0;
  const explicitCount = explicit.counts.reduce((a, c) => a + c, 0);
  return exp && expCount >= explicitCount ? (q) => expQuantile(exp, q, zeros) : (q) => quantile(explicit, q, zeros);
}

/** How far back from a window's end the last export of a process is looked for. */
const LAST_EXPORT_NS = 2n * NS_PER_MINUTE;

/**
 * What waited at each lock at the window's end: from each process's last export of the waiting
 * gauges, added up over processes (the oldest wait: the longest).
 */
async function waitingAtEnd(
  db: SqlReader,
  w: Window,
  lock?: string,
): Promise<Map<string, { count: number; oldestMs: number }>> {
  const rows = await db.all<{
    service: string;
    name: string;
    resource_id: unknown;
    attributes: string;
    value: unknown;
  }>(
    `SELECT service, name, resource_id, attributes, value FROM (
       SELECT service, name, resource_id, attributes, value,
         row_number() OVER (PARTITION BY name, resource_id, attributes ORDER BY time_ns DESC) AS rn
       FROM metric_points WHERE name IN (@waiting, @oldest) AND time_ns >= @from AND time_ns < @to
         ${w.service ? 'AND service = @service' : ''}
     ) AS latest WHERE rn = 1`,
    {
      waiting: LOCK_METRICS.waiting,
      oldest: LOCK_METRICS.oldestWait,
      from: w.toNs - LAST_EXPORT_NS > w.fromNs ? w.toNs - LAST_EXPORT_NS : w.fromNs,
      to: w.toNs,
      service: w.service ?? null,
    },
  );
  const out = new Map<string, { count: number; oldestMs: number }>();
  for (const r of rows) {
    const name = String((JSON.parse(r.attributes) as Record<string, unknown>)[LOCK_NAME] ?? '');
    if (lock !== undefined && name !== lock) continue;
    const id = key(r.service, name);
    const e = out.get(id) ?? { count: 0, oldestMs: 0 };
    if (r.name === LOCK_METRICS.waiting) e.count += Number(r.value);
    else e.oldestMs = Math.max(e.oldestMs, Number(r.value) * 1000);
    out.set(id, e);
  }
  return out;
}

/** Every lock resource seen in the window, most waiting first. */
export async function locks(db: SqlReader, w: Window, lock?: string): Promise<LockRow[]> {
  const [buckets, waitGroups, waitingNow] = await Promise.all([
    lockBuckets(db, w, lock),
    groups(db, KINDS.lockWait, w, 1000),
    waitingAtEnd(db, w, lock),
  ]);
  const waitMax = new Map(waitGroups.map((g) => [key(g.service, g.key), g.maxMs]));
  const out: LockRow[] = [];
  for (const { service, lock: name, type, b } of buckets.values()) {
    const wait = waitHistogram(b);
    // Uncontended acquisitions waited 0: they are not in the wait histogram, and count here.
    const zeros = Math.max(0, b.acquisitions - b.contended);
    const msOf = (v: number | null) => (v === null ? null : v * 1000);
    const waitQ = percentiles(wait, b.waitExp, zeros);
    const max = waitMax.get(key(service, name)) ?? (b.waitCount ? waitQ(1)! * 1000 : 0);
    // A percentile read off bucket bounds can exceed the longest wait the spans measured.
    const ms = (v: number | null) => (v === null ? null : Math.min(v * 1000, max));
    out.push({
      service,
      lock: name,
      type,
      acquisitions: b.acquisitions,
      contended: b.contended,
      contendedPct: b.acquisitions ? (100 * b.contended) / b.acquisitions : 0,
      totalWaitMs: b.waitSum * 1000,
      waitP50Ms: ms(waitQ(0.5)),
      waitP95Ms: ms(waitQ(0.95)),
      waitP99Ms: ms(waitQ(0.99)),
      waitMaxMs: max,
      holdP95Ms: msOf(percentiles(holdHistogram(b), b.holdExp, 0)(0.95)),
      maxQueue: b.maxPending,
      timeouts: b.timeouts,
      waitingNow: waitingNow.get(key(service, name))?.count ?? 0,
      oldestWaitMs: waitingNow.get(key(service, name))?.oldestMs ?? null,
    });
  }
  // A lock that is stuck now ranks by what its waiters have already waited.
  const weight = (r: LockRow) => r.totalWaitMs + r.waitingNow * (r.oldestWaitMs ?? 0);
  return out.sort((a, b) => weight(b) - weight(a));
}

/** One lock's wait and hold histograms over the window (all services, or the window's). */
export async function lockHistograms(
  db: SqlReader,
  name: string,
  w: Window,
): Promise<{ wait: HistogramView; hold: HistogramView }> {
  const b = emptyBucket();
  for (const e of (await lockBuckets(db, w, name)).values()) mergeBucket(b, e.b);
  const view = (h: Histogram, exp: ExpHistogram | undefined): HistogramView => {
    // Exponential buckets are drawn as a few bars (their upper bounds), with no open top bar.
    const bars = exp && exp.counts.some((c) => c > 0) ? expBars(exp) : undefined;
    return {
      count: h.count,
      sumMs: h.sum * 1000,
      boundsMs: (bars?.bounds ?? h.bounds).map((x) => x * 1000),
      counts: bars ? [...bars.counts, 0] : h.counts,
    };
  };
  return { wait: view(waitHistogram(b), b.waitExp), hold: view(holdHistogram(b), b.holdExp) };
}

/**
 * Who made whom wait at one lock (or every lock of the window): the wait charged to each holder
 * site by each waiter site, most first. Read per minute (whole hours from the hourly rows).
 */
export async function lockPairs(db: SqlReader, w: Window, name?: string): Promise<LockPair[]> {
  const params: Params = { service: w.service ?? null, lock: name ?? null };
  const where = rangeClause(minuteRanges(w), params);
  if (!where) return [];
  const rows = await db.all<{ service: string; lock: string; waiter_site: string; holder_site: string; ns: unknown }>(
    `SELECT service, lock, waiter_site, holder_site, sum(charged_ns) AS ns FROM lock_blame_rollup
     WHERE ${where} ${w.service ? 'AND service = @service' : ''} ${name !== undefined ? 'AND lock = @lock' : ''}
     GROUP BY service, lock, waiter_site, holder_site ORDER BY ns DESC`,
    params,
  );
  return rows.map((p) => ({
    service: p.service,
    lock: p.lock,
    waiterSite: p.waiter_site,
    holderSite: p.holder_site,
    totalMs: nsToMs(big(p.ns)),
  }));
}
