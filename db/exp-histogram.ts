// Base-2 exponential histograms (OpenTelemetry's EXPONENTIAL_HISTOGRAM) of durations: bucket i of
// scale s holds (2^(i·2^-s), 2^((i+1)·2^-s)], so a percentile read off one is within half a bucket
// (about 4% at scale 3) of the exact value, however far apart the waits are. Histograms of
// different scales merge at the smaller one; a cumulative point less its predecessor is what the
// stream added between them.

export interface ExpHistogram {
  scale: number;
  /** Observations of 0 (or under the zero threshold). */
  zeroCount: number;
  /** Index of counts[0]. */
  offset: number;
  counts: number[];
}

export const emptyExp = (): ExpHistogram => ({ scale: 20, zeroCount: 0, offset: 0, counts: [] });

const isEmpty = (h: ExpHistogram) => h.zeroCount === 0 && h.counts.every((c) => c === 0);

/** The same observations at a smaller scale (each step down merges pairs of buckets). */
export function downscale(h: ExpHistogram, scale: number): ExpHistogram {
  if (scale >= h.scale) return h;
  const shift = h.scale - scale;
  const counts: number[] = [];
  const offset = h.offset >> shift;
  h.counts.forEach((c, i) => {
    const j = ((h.offset + i) >> shift) - offset;
    counts[j] = (counts[j] ?? 0) + c;
  });
  for (let j = 0; j < counts.length; j++) counts[j] ??= 0;
  return { scale, zeroCount: h.zeroCount, offset, counts };
}

/** `into` + `from` (or − `from`, sign −1), at the smaller of their scales. */
function combine(into: ExpHistogram, from: ExpHistogram, sign: 1 | -1): ExpHistogram {
  if (isEmpty(from)) return into;
  if (isEmpty(into) && sign === 1) return { ...from, counts: [...from.counts] };
  const scale = Math.min(into.scale, from.scale);
  const a = downscale(into, scale);
  const b = downscale(from, scale);
  const lo = Math.min(a.offset, b.offset);
  const hi = Math.max(a.offset + a.counts.length, b.offset + b.counts.length);
  const counts = new Array<number>(Math.max(0, hi - lo)).fill(0);
  a.counts.forEach((c, i) => (counts[a.offset + i - lo] += c));
  b.counts.forEach((c, i) => (counts[b.offset + i - lo] += sign * c));
  return { scale, zeroCount: a.zeroCount + sign * b.zeroCount, offset: lo, counts: counts.map((c) => Math.max(0, c)) };
}

export const mergeExp = (into: ExpHistogram, from: ExpHistogram) => combine(into, from, 1);
export const subtractExp = (now: ExpHistogram, before: ExpHistogram) => combine(now, before, -1);

/** An OTLP exponential histogram point's buckets as stored (normalize.ts), positive side only. */
export function expOf(buckets: {
  scale: number;
  zeroCount: number;
  positive: { offset: number; counts: number[] };
}): ExpHistogram {
  return {
    scale: buckets.scale,
    zeroCount: buckets.zeroCount,
    offset: buckets.positive.offset,
    counts: buckets.positive.counts,
  };
}

/** A bucket's lower and upper bound. */
export function bucketBounds(h: ExpHistogram, i: number): [number, number] {
  const base = 2 ** (2 ** -h.scale);
  return [base ** (h.offset + i), base ** (h.offset + i + 1)];
}

/**
 * The value below which `q` of the observations fall, with `zeros` more observations of 0: the
 * geometric middle of the bucket it falls in.
 */
export function expQuantile(h: ExpHistogram, q: number, zeros = 0): number | null {
  const total = h.zeroCount + zeros + h.counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const target = q * total;
  let seen = h.zeroCount + zeros;
  if (target <= seen) return 0;
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i];
    if (seen >= target) {
      const [lo, hi] = bucketBounds(h, i);
      return Math.sqrt(lo * hi);
    }
  }
  return bucketBounds(h, h.counts.length - 1)[1];
}

/** The histogram in about `bars` bars (adjacent buckets added up), for charts: upper bounds and counts. */
export function expBars(h: ExpHistogram, bars = 24): { bounds: number[]; counts: number[] } {
  let used = h.counts.length - 1;
  while (used >= 0 && h.counts[used] === 0) used--;
  if (used < 0) return { bounds: [], counts: [] };
  const first = h.counts.findIndex((c) => c > 0);
  const width = Math.max(1, Math.ceil((used - first + 1) / bars));
  const bounds: number[] = [];
  const counts: number[] = [];
  for (let i = first; i <= used; i += width) {
    const end = Math.min(used, i + width - 1);
    bounds.push(bucketBounds(h, end)[1]);
    counts.push(h.counts.slice(i, end + 1).reduce((a, b) => a + b, 0));
  }
  return { bounds, counts };
}
