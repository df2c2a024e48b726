// One route's requests within a bucket (a minute or an hour): their count, total time, a
// log-linear histogram of durations (8 buckets per doubling: percentiles within about 5%), and
// the time of each cause. Causes past a bound per bucket are folded into one per kind.

import { key, splitKey } from '../common/keys';

export interface RouteBucket {
  requests: number;
  totalMs: number;
  /** Duration bucket index (see durationBucket) → requests. */
  durations: Record<number, number>;
  /** key(kind, what) → ms. */
  causes: Record<string, number>;
}

const PER_DOUBLING = 8;
/** Causes kept per bucket; the rest are `(other)` of their kind. */
const MAX_CAUSES = 100;
const OTHER = '(other)';

export function emptyRouteBucket(): RouteBucket {
  return { requests: 0, totalMs: 0, durations: {}, causes: {} };
}

/** The histogram bucket of a duration in ms (from 1 µs). */
export function durationBucket(ms: number): number {
  return Math.max(0, Math.floor(Math.log2(Math.max(ms, 0.001) / 0.001) * PER_DOUBLING));
}

/** The upper bound (ms) of a histogram bucket. */
export function bucketUpperMs(i: number): number {
  return 0.001 * 2 ** ((i + 1) / PER_DOUBLING);
}

export function mergeRouteBucket(into: RouteBucket, from: RouteBucket): void {
  into.requests += from.requests;
  into.totalMs += from.totalMs;
  for (const [k, n] of Object.entries(from.durations)) into.durations[Number(k)] = (into.durations[Number(k)] ?? 0) + n;
  for (const [k, ms] of Object.entries(from.causes)) into.causes[k] = (into.causes[k] ?? 0) + ms;
  const keys = Object.keys(into.causes);
  if (keys.length <= MAX_CAUSES) return;
  // The smallest go to (other) of their kind.
  const sorted = keys.sort((a, b) => into.causes[b] - into.causes[a]);
  for (const k of sorted.slice(MAX_CAUSES)) {
    const other = key(splitKey(k)[0], OTHER);
    if (k === other) continue;
    into.causes[other] = (into.causes[other] ?? 0) + into.causes[k];
    delete into.causes[k];
  }
}

/** The duration below which `q` of the requests fall, from the histogram (upper bounds). */
export function durationQuantile(b: RouteBucket, q: number): number | null {
  if (b.requests <= 0) return null;
  const target = q * b.requests;
  let seen = 0;
  for (const i of Object.keys(b.durations)
    .map(Number)
    .sort((x, y) => x - y)) {
    seen += b.durations[i];
    if (seen >= target) return bucketUpperMs(i);
  }
  return null;
}
