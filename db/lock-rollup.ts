// The lock metrics folded at ingest into one row per lock per export, per minute and per hour, so
// that the locks table over a day reads a few thousand rows instead of every export of every
// stream, and any window, however short, is read exactly from the same folded changes.
// The agent's lock metrics are cumulative per process: each point's increase over the previous
// point of the same stream is what the rollup adds (a changed start time or a drop is a restart,
// and then the point is all increase). The previous point of each stream is kept in the database
// (lock_streams), written in the same transaction as the rollup rows, because consecutive exports
// of one process may reach different collectors writing one database. This module is the
// arithmetic; each engine's writer reads the previous points and the rollup rows it changes, and
// writes them back.
import {
  LOCK_ACQUIRE_SITE,
  LOCK_CONTENDED,
  LOCK_HOLDER_SITE,
  LOCK_METRICS,
  LOCK_NAME,
  LOCK_OUTCOME,
  LOCK_TYPE,
} from '../common/conventions';
import { createHash } from 'node:crypto';
import type { MetricPointRow } from '../common/types';
import { emptyExp, expOf, mergeExp, subtractExp, type ExpHistogram } from './exp-histogram';
import { NS_PER_HOUR, NS_PER_MINUTE, nowNs } from '../common/time';
import { key } from '../common/keys';

/**
 * Bucket sizes in minutes and their width in ns. Size 0 is a single export (bucket = its time in
 * ns): a window's partial minutes at either end read those, so a window of any length is exact.
 */
export const ROLLUP_SIZES = [
  [0, 1n],
  [1, NS_PER_MINUTE],
  [60, NS_PER_HOUR],
] as const;

/** How long single exports are kept: windows reaching further back are exact to the minute. */
export const EXACT_HORIZON_NS = 2n * NS_PER_HOUR;

/** A stream silent this long is forgotten (its process is gone: SDKs export every stream each time). */
export const STREAM_HORIZON_NS = 24n * NS_PER_HOUR;

const LOCK_METRIC_NAMES = new Set<string>([
  LOCK_METRICS.acquisitions,
  LOCK_METRICS.waitTime,
  LOCK_METRICS.holdTime,
  LOCK_METRICS.pending,
  LOCK_METRICS.waitCaused,
]);

/** A stream's last point, as the next one is differenced against. */
export interface StreamState {
  startNs: bigint | null;
  timeNs: bigint;
  value: number;
  count: number;
  sum: number;
  counts: number[];
  /** An exponential histogram's buckets. */
  exp?: ExpHistogram;
}

/** One lock's activity within one bucket (a minute or an hour). */
export interface LockBucket {
  acquisitions: number;
  contended: number;
  waitCount: number;
  waitSum: number;
  waitCounts: number[];
  holdCount: number;
  holdSum: number;
  holdCounts: number[];
  bounds: number[];
  maxPending: number;
  timeouts: number;
  /** The waits and holds of streams that send exponential histograms (the agents do, when the SDK is theirs). */
  waitExp?: ExpHistogram;
  holdExp?: ExpHistogram;
}

export function emptyBucket(): LockBucket {
  return {
    acquisitions: 0,
    contended: 0,
    waitCount: 0,
    waitSum: 0,
    waitCounts: [],
    holdCount: 0,
    holdSum: 0,
    holdCounts: [],
    bounds: [],
    maxPending: 0,
    timeouts: 0,
  };
}

const add = (into: number[], from: number[]) => from.forEach((c, i) => (into[i] = (into[i] ?? 0) + c));

/** A lock metric point and where it came from. */
export interface LockPoint {
  point: MetricPointRow;
  service: string;
  resourceId: number;
}

/** What a group of lock points changes: rollup increments, blame increments, streams' last points. */
export interface LockChanges {
  /** Increments per (size, bucket, service, lock, type), to merge into the stored rows. */
  buckets: Array<{ service: string; lock: string; type: string; size: number; bucket: bigint; b: LockBucket }>;
  /** Charged wait (ns) per (size, bucket, service, lock, waiter site, holder site), to add. */
  blame: Array<{
    size: number;
    bucket: bigint;
    service: string;
    lock: string;
    waiter: string;
    holder: string;
    ns: bigint;
  }>;
  /** The new last point of every stream that moved, by stream id. */
  streams: Map<string, StreamState>;
}

/** Whether a point is one of the lock metrics folded here. */
export function isLockPoint(p: MetricPointRow): boolean {
  return LOCK_METRIC_NAMES.has(p.name);
}

/** The lock a point is about: every stream and rollup row belongs to one (service, lock, type). */
export function lockOf(p: LockPoint): { lock: string; type: string } {
  const attrs = JSON.parse(p.point.attributes) as Record<string, unknown>;
  return { lock: String(attrs[LOCK_NAME] ?? ''), type: String(attrs[LOCK_TYPE] ?? '') };
}

/** The id of a cumulative point's stream (a process, a metric, an attribute set); null for others. */
export function streamOf(p: LockPoint): string | null {
  if (p.point.temporality !== 2 || p.point.name === LOCK_METRICS.pending) return null;
  return createHash('sha1')
    .update(key(p.resourceId, p.point.name, p.point.attributes))
    .digest('hex');
}

/** A stream state as stored (JSON; times as decimal strings). */
export function encodeStream(s: StreamState): string {
  return JSON.stringify({ ...s, startNs: s.startNs?.toString() ?? null, timeNs: s.timeNs.toString() });
}

export function decodeStream(text: string): StreamState {
  const s = JSON.parse(text) as Omit<StreamState, 'startNs' | 'timeNs'> & { startNs: string | null; timeNs: string };
  return { ...s, startNs: s.startNs === null ? null : BigInt(s.startNs), timeNs: BigInt(s.timeNs) };
}

/**
 * Folds lock points, in the order they were received, against their streams' stored last points
 * (`previous`, by stream id). A stream with no stored point that started after `sinceNs` (when the
 * database began keeping streams) had its whole life stored: its first point is all increase. One
 * that started before has its first point as a baseline only.
 */
export function foldLockPoints(
  points: LockPoint[],
  previous: ReadonlyMap<string, StreamState>,
  sinceNs: bigint,
  now = nowNs(),
): LockChanges {
  const last = new Map(previous);
  const streams = new Map<string, StreamState>();
  const buckets = new Map<string, LockChanges['buckets'][number]>();
  const blame = new Map<string, LockChanges['blame'][number]>();
  const exactSince = now - EXACT_HORIZON_NS;
  for (const lp of points) {
    const p = lp.point;
    const attrs = JSON.parse(p.attributes) as Record<string, unknown>;
    const lock = String(attrs[LOCK_NAME] ?? '');
    const type = String(attrs[LOCK_TYPE] ?? '');
    const change = emptyBucket();
    if (p.name === LOCK_METRICS.pending) {
      change.maxPending = Number(p.value ?? 0);
    } else {
      const exponential = p.type === 'exponential_histogram' && p.buckets !== null;
      const counts =
        p.buckets && !exponential
          ? (JSON.parse(p.buckets) as { bounds: number[]; counts: number[] })
          : { bounds: [], counts: [] };
      const current: StreamState = {
        startNs: p.startNs,
        timeNs: p.timeNs,
        value: Number(p.value ?? 0),
        count: Number(p.count ?? 0),
        sum: p.sum ?? 0,
        counts: counts.counts,
        exp: exponential ? expOf(JSON.parse(p.buckets!) as Parameters<typeof expOf>[0]) : undefined,
      };
      const stream = streamOf(lp);
      let base: StreamState | undefined;
      if (stream !== null) {
        const before = last.get(stream);
        if (before) {
          const sameLife = before.startNs === current.startNs;
          // Late or duplicated (an exporter retry): the stream has already moved past it.
          if (
            current.timeNs <= before.timeNs ||
            (sameLife && (current.value < before.value || current.count < before.count))
          )
            continue;
          // A new start time is a restarted process: then all of its value is increase.
          if (sameLife) base = before;
        }
        last.set(stream, current);
        streams.set(stream, current);
        if (!before && p.startNs !== null && p.startNs < sinceNs) continue; // began before: a baseline only
      }
      if (p.name === LOCK_METRICS.waitCaused) {
        const ns = BigInt(Math.round((current.value - (base?.value ?? 0)) * 1e9));
        if (ns > 0n) addBlame(blame, p, lp.service, lock, attrs, ns);
        continue;
      }
      if (p.name === LOCK_METRICS.acquisitions) {
        const n = current.value - (base?.value ?? 0);
        change.acquisitions = n;
        if (attrs[LOCK_CONTENDED] === true) change.contended = n;
      } else {
        const dCount = current.count - (base?.count ?? 0);
        const dSum = current.sum - (base?.sum ?? 0);
        const dCounts = current.counts.map((c, i) => c - (base?.counts[i] ?? 0));
        const dExp = current.exp && (base?.exp ? subtractExp(current.exp, base.exp) : current.exp);
        change.bounds = counts.bounds;
        if (p.name === LOCK_METRICS.waitTime) {
          change.waitCount = dCount;
          change.waitSum = dSum;
          change.waitCounts = dCounts;
          change.waitExp = dExp;
          if (attrs[LOCK_OUTCOME] === 'timeout') change.timeouts = dCount;
        } else {
          change.holdCount = dCount;
          change.holdSum = dSum;
          change.holdCounts = dCounts;
          change.holdExp = dExp;
        }
      }
    }
    for (const [size, ns] of ROLLUP_SIZES) {
      if (size === 0 && p.timeNs < exactSince) continue; // past the horizon (an upgrade's backfill)
      const bucket = p.timeNs / ns;
      const id = key(size, bucket, lp.service, lock, type);
      let e = buckets.get(id);
      if (!e) buckets.set(id, (e = { service: lp.service, lock, type, size, bucket, b: emptyBucket() }));
      mergeBucket(e.b, change);
    }
  }
  return { buckets: [...buckets.values()], blame: [...blame.values()], streams };
}

/** Who made whom wait: a wait_caused increase, per minute and per hour. */
function addBlame(
  into: Map<string, LockChanges['blame'][number]>,
  p: MetricPointRow,
  service: string,
  lock: string,
  attrs: Record<string, unknown>,
  ns: bigint,
): void {
  const waiter = String(attrs[LOCK_ACQUIRE_SITE] ?? '');
  const holder = String(attrs[LOCK_HOLDER_SITE] ?? '');
  for (const [size, width] of ROLLUP_SIZES) {
    if (size === 0) continue; // pairs are read per minute
    const bucket = p.timeNs / width;
    const id = key(size, bucket, service, lock, waiter, holder);
    const e = into.get(id);
    if (e) e.ns += ns;
    else into.set(id, { size, bucket, service, lock, waiter, holder, ns });
  }
}

/** Adds `from` into `into`. */
export function mergeBucket(into: LockBucket, from: LockBucket): void {
  into.acquisitions += from.acquisitions;
  into.contended += from.contended;
  into.waitCount += from.waitCount;
  into.waitSum += from.waitSum;
  add(into.waitCounts, from.waitCounts);
  into.holdCount += from.holdCount;
  into.holdSum += from.holdSum;
  add(into.holdCounts, from.holdCounts);
  if (from.bounds.length) into.bounds = from.bounds;
  into.maxPending = Math.max(into.maxPending, from.maxPending);
  into.timeouts += from.timeouts;
  if (from.waitExp) into.waitExp = mergeExp(into.waitExp ?? emptyExp(), from.waitExp);
  if (from.holdExp) into.holdExp = mergeExp(into.holdExp ?? emptyExp(), from.holdExp);
}
