// Percentiles from explicit-bucket histograms, the form the agents' wait and hold metrics take.

export interface Histogram {
  count: number;
  sum: number;
  /** Upper bounds; the last bucket is open. */
  bounds: number[];
  counts: number[];
}

/**
 * The value below which `q` of the observations fall, from bucket counts (upper bounds), with
 * `zeros` more observations that were exactly 0 (uncontended acquisitions wait 0).
 */
export function quantile(h: Histogram, q: number, zeros = 0): number | null {
  const total = h.count + zeros;
  if (total <= 0) return null;
  const target = q * total;
  if (target <= zeros) return 0;
  let seen = zeros;
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i];
    if (seen >= target) {
      if (i >= h.bounds.length) return h.bounds[h.bounds.length - 1] ?? null; // the open top bucket
      const lower = i === 0 ? 0 : h.bounds[i - 1];
      const upper = h.bounds[i];
      const inBucket = h.counts[i];
      // Linear within the bucket: the usual estimate from a fixed-bucket histogram.
      return lower + (upper - lower) * (inBucket ? (target - (seen - inBucket)) / inBucket : 1);
    }
  }
  return h.bounds[h.bounds.length - 1] ?? null;
}
