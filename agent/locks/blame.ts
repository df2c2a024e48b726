// Lock blame: a wait is charged to the holds that overlapped it. Each stretch of the wait is split
// among the holds in progress during it, by weight (a semaphore whose k slots are all taken: 1/k
// each); a stretch with no hold in progress (released, the waiter not yet resumed) is the handoff.
// Exact, not sampled: the holds come from a ring kept only for holds released while someone waited.

/** A hold as blame sees it: [from, to) in performance.now() ms; `to` absent while still held. */
export interface HoldSpan<T = unknown> {
  from: number;
  to?: number;
  weight: number;
  site: string;
  /** What the caller ties to the hold (its acquisition). */
  ref?: T;
}

export interface Charges<T = unknown> {
  /** ms per holder site. */
  bySite: Map<string, number>;
  handoffMs: number;
  /** The single hold charged the most. */
  top?: HoldSpan<T>;
}

/**
 * Splits the wait [t0, t1) among `holds` (any order). Time before `coveredFrom` that no kept hold
 * explains goes to `uncovered` instead of the handoff (holds fell out of the ring).
 */
export function chargeWait<T>(
  t0: number,
  t1: number,
  holds: readonly HoldSpan<T>[],
  coveredFrom: number,
  uncovered: string,
): Charges<T> {
  const bySite = new Map<string, number>();
  const add = (site: string, ms: number) => {
    if (ms > 0) bySite.set(site, (bySite.get(site) ?? 0) + ms);
  };
  // Boundaries: each hold clipped to the wait opens and closes with its weight.
  const events: Array<{ t: number; w: number; i: number }> = [];
  const clipped: Array<{ from: number; to: number; h: HoldSpan<T> }> = [];
  for (const h of holds) {
    const from = Math.max(h.from, t0);
    const to = Math.min(h.to ?? t1, t1);
    if (to <= from) continue;
    const i = clipped.push({ from, to, h }) - 1;
    events.push({ t: from, w: h.weight, i }, { t: to, w: -h.weight, i });
  }
  events.sort((a, b) => a.t - b.t || a.w - b.w);
  // Each hold's charge is its weight times the sum, over the stretches it spans, of
  // stretch / (weight held then): a prefix sum over the boundaries keeps this linear.
  const prefixAt = new Float64Array(clipped.length * 2);
  let prefix = 0;
  let held = 0;
  let handoff = 0;
  let cursor = t0;
  const flush = (until: number) => {
    const stretch = until - cursor;
    if (stretch <= 0) return;
    if (held > 0) prefix += stretch / held;
    else {
      // No hold explains it: before the kept holds begin, the ones that fell out of the ring.
      const early = Math.max(0, Math.min(until, coveredFrom) - cursor);
      add(uncovered, early);
      handoff += stretch - early;
    }
    cursor = until;
  };
  for (const e of events) {
    flush(e.t);
    if (e.w > 0) prefixAt[2 * e.i] = prefix;
    else prefixAt[2 * e.i + 1] = prefix;
    held += e.w;
  }
  flush(t1);
  let top: HoldSpan<T> | undefined;
  let topMs = 0;
  clipped.forEach((c, i) => {
    const ms = c.h.weight * (prefixAt[2 * i + 1] - prefixAt[2 * i]);
    add(c.h.site, ms);
    if (ms > topMs) [top, topMs] = [c.h, ms];
  });
  return { bySite, handoffMs: handoff, top };
}
