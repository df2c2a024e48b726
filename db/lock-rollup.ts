// The lock metrics folded at ingest into one row per lock per export, per minute and per hour, so
// that the locks table over a day reads a few thousand rows instead of every export of every
// stream, and any window, however short, is read exactly from the same folded changes.
// The agent's lock metrics are cumulative per process: each point's increase over the previous
// point of the same stream is what the rollup adds (a changed start time or a drop is a restart,
// and then the point is all increase; a stream's first point after the writer starts has no
// previous one in memory and only sets the baseline).
import type Database from 'better-sqlite3';
import {
  LOCK_ACQUIRE_SITE,
  LOCK_CONTENDED,
  LOCK_HOLDER_SITE,
  LOCK_METRICS,
  LOCK_NAME,
  LOCK_OUTCOME,
  LOCK_TYPE,
} from '../common/conventions';
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

/** Streams remembered at most; past this the memory starts over (one export is lost per stream). */
const MAX_STREAMS = 100_000;

const LOCK_METRIC_NAMES = new Set<string>([
  LOCK_METRICS.acquisitions,
  LOCK_METRICS.waitTime,
  LOCK_METRICS.holdTime,
  LOCK_METRICS.pending,
  LOCK_METRICS.waitCaused,
]);

interface Previous {
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

export class LockRollup {
  private readonly previous = new Map<string, Previous>();
  /** Changes not yet written, by bucket: a batch holds several points per lock and minute. */
  private readonly pending = new Map<
    string,
    { service: string; lock: string; type: string; size: number; bucket: bigint; b: LockBucket }
  >();
  /**
   * A stream that started after this saw its whole life go through this writer: its first point
   * is all increase. One that started before has its first point as a baseline only.
   */
  private readonly since: bigint;
  /** Charged wait (ns) not yet written, per bucket, lock, waiter site and holder site. */
  private readonly pendingBlame = new Map<
    string,
    { size: number; bucket: bigint; service: string; lock: string; waiter: string; holder: string; ns: bigint }
  >();
  private readonly read: Database.Statement;
  private readonly upsert: Database.Statement;
  private readonly upsertBlame: Database.Statement;
  private readonly prune: Database.Statement;
  private prunedAtNs = 0n;

  constructor(db: Database.Database, sinceNs = nowNs()) {
    this.since = sinceNs;
    this.read = db.prepare(
      'SELECT data FROM lock_rollup WHERE service = ? AND lock = ? AND type = ? AND size = ? AND bucket = ?',
    );
    this.upsert = db.prepare(
      `INSERT INTO lock_rollup (service, lock, type, size, bucket, data) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET data = excluded.data`,
    );
    this.prune = db.prepare('DELETE FROM lock_rollup WHERE size = 0 AND bucket < ?');
    this.upsertBlame = db.prepare(
      `INSERT INTO lock_blame_rollup (size, bucket, service, lock, waiter_site, holder_site, charged_ns) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET charged_ns = charged_ns + excluded.charged_ns`,
    );
  }

  /** Forgets the previous points and pending changes: a rolled-back write stored neither. */
  reset(): void {
    this.previous.clear();
    this.pending.clear();
    this.pendingBlame.clear();
  }

  /** Writes the pending changes: one read and one write per lock and bucket. */
  flush(): void {
    for (const { service, lock, type, size, bucket, b } of this.pending.values()) {
      const row = this.read.get(service, lock, type, size, bucket) as { data: string } | undefined;
      const merged = row ? (JSON.parse(row.data) as LockBucket) : emptyBucket();
      mergeBucket(merged, b);
      this.upsert.run(service, lock, type, size, bucket, JSON.stringify(merged));
    }
    this.pending.clear();
    for (const b of this.pendingBlame.values())
      this.upsertBlame.run(b.size, b.bucket, b.service, b.lock, b.waiter, b.holder, b.ns);
    this.pendingBlame.clear();
    // Single exports age out here, whatever the retention: a range at the start of the key.
    const now = nowNs();
    if (now - this.prunedAtNs >= NS_PER_MINUTE) {
      this.prune.run(now - EXACT_HORIZON_NS);
      this.prunedAtNs = now;
    }
  }

  /** Whether a point is one of the lock metrics this folds. */
  static wants(p: MetricPointRow): boolean {
    return LOCK_METRIC_NAMES.has(p.name);
  }

  /** Folds one point of a lock metric, written by `service` from resource `resourceId`. */
  add(p: MetricPointRow, service: string, resourceId: number): void {
    const attrs = JSON.parse(p.attributes) as Record<string, unknown>;
    const lock = String(attrs[LOCK_NAME] ?? '');
    const type = String(attrs[LOCK_TYPE] ?? '');
    const change = emptyBucket();
    if (p.name === LOCK_METRICS.pending) {
      change.maxPending = Number(p.value ?? 0);
    } else {
      const stream = key(resourceId, p.name, p.attributes);
      const exponential = p.type === 'exponential_histogram' && p.buckets !== null;
      const counts =
        p.buckets && !exponential
          ? (JSON.parse(p.buckets) as { bounds: number[]; counts: number[] })
          : { bounds: [], counts: [] };
      const now: Previous = {
        startNs: p.startNs,
        timeNs: p.timeNs,
        value: Number(p.value ?? 0),
        count: Number(p.count ?? 0),
        sum: p.sum ?? 0,
        counts: counts.counts,
        exp: exponential ? expOf(JSON.parse(p.buckets!) as Parameters<typeof expOf>[0]) : undefined,
      };
      const cumulative = p.temporality === 2;
      const before = cumulative ? this.previous.get(stream) : undefined;
      let base: Previous | undefined;
      if (cumulative) {
        if (before) {
          const sameLife = before.startNs === now.startNs;
          // Late or duplicated (an exporter retry): the stream has already moved past it.
          if (now.timeNs <= before.timeNs || (sameLife && (now.value < before.value || now.count < before.count)))
            return;
          // A new start time is a restarted process: then all of its value is increase.
          if (sameLife) base = before;
        }
        if (this.previous.size >= MAX_STREAMS) this.previous.delete(this.previous.keys().next().value!); // the oldest
        this.previous.delete(stream);
        this.previous.set(stream, now);
        if (!before && p.startNs !== null && p.startNs < this.since) return; // began before us: a baseline only
      }
      if (p.name === LOCK_METRICS.waitCaused) {
        const ns = BigInt(Math.round((now.value - (base?.value ?? 0)) * 1e9));
        if (ns > 0n) this.addBlame(p, service, lock, attrs, ns);
        return;
      }
      if (p.name === LOCK_METRICS.acquisitions) {
        const n = now.value - (base?.value ?? 0);
        change.acquisitions = n;
        if (attrs[LOCK_CONTENDED] === true) change.contended = n;
      } else {
        const dCount = now.count - (base?.count ?? 0);
        const dSum = now.sum - (base?.sum ?? 0);
        const dCounts = now.counts.map((c, i) => c - (base?.counts[i] ?? 0));
        const dExp = now.exp && (base?.exp ? subtractExp(now.exp, base.exp) : now.exp);
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
    const exactSince = nowNs() - EXACT_HORIZON_NS;
    for (const [size, ns] of ROLLUP_SIZES) {
      if (size === 0 && p.timeNs < exactSince) continue; // past the horizon (an upgrade's backfill)
      const bucket = p.timeNs / ns;
      const id = key(size, bucket, service, lock, type);
      let e = this.pending.get(id);
      if (!e) this.pending.set(id, (e = { service, lock, type, size, bucket, b: emptyBucket() }));
      mergeBucket(e.b, change);
    }
  }

  /** Who made whom wait: a wait_caused increase, per minute and per hour. */
  private addBlame(p: MetricPointRow, service: string, lock: string, attrs: Record<string, unknown>, ns: bigint): void {
    const waiter = String(attrs[LOCK_ACQUIRE_SITE] ?? '');
    const holder = String(attrs[LOCK_HOLDER_SITE] ?? '');
    for (const [size, width] of ROLLUP_SIZES) {
      if (size === 0) continue; // pairs are read per minute
      const bucket = p.timeNs / width;
      const id = key(size, bucket, service, lock, waiter, holder);
      const e = this.pendingBlame.get(id);
      if (e) e.ns += ns;
      else this.pendingBlame.set(id, { size, bucket, service, lock, waiter, holder, ns });
    }
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
