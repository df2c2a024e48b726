// The rollup rows that make up a window. Rollups (locks, lock blame, profiles) keep rows per
// minute (size 1) and per hour (size 60), and the lock rollup single exports (size 0) for two
// hours, so that any window reads few rows and, where the single rows exist, exactly.
import type { Window } from '../../common/types';
import { NS_PER_MINUTE, nowNs } from '../../common/time';
import { EXACT_HORIZON_NS } from '../lock-rollup';
import type { Params } from '../sql';

export interface Range {
  size: 0 | 1 | 60;
  from: bigint;
  to: bigint;
}

/**
 * The rollup rows that make up a window: whole hours from the hourly rows, whole minutes from
 * the minute rows, and the partial minutes at either end from single exports while those are
 * kept (older windows are widened to whole minutes).
 */
export function rollupRanges(w: Window, now = nowNs()): Range[] {
  return ranges(w, now - EXACT_HORIZON_NS);
}

/** The same for rollups without single rows: whole minutes and hours, the ends widened to minutes. */
export function minuteRanges(w: Window): Range[] {
  return ranges(w, null);
}

/** `exactSince`: from when single rows (size 0) exist; null: never. */
function ranges(w: Window, exactSince: bigint | null): Range[] {
  const exact = (ns: bigint) => exactSince !== null && ns >= exactSince;
  const ceilMinute = (ns: bigint) => (ns + NS_PER_MINUTE - 1n) / NS_PER_MINUTE;
  const ranges: Range[] = [];
  let firstMinute = w.fromNs / NS_PER_MINUTE;
  let endMinute = ceilMinute(w.toNs);
  const headEnd = ceilMinute(w.fromNs) * NS_PER_MINUTE;
  const tailStart = (w.toNs / NS_PER_MINUTE) * NS_PER_MINUTE;
  if (headEnd >= w.toNs) {
    // Inside one minute.
    if (exact(w.fromNs)) return [{ size: 0, from: w.fromNs, to: w.toNs }];
  } else {
    if (exact(w.fromNs) && headEnd > w.fromNs) {
      ranges.push({ size: 0, from: w.fromNs, to: headEnd });
      firstMinute = headEnd / NS_PER_MINUTE;
    }
    if (exact(tailStart) && tailStart < w.toNs) {
      ranges.push({ size: 0, from: tailStart, to: w.toNs });
      endMinute = tailStart / NS_PER_MINUTE;
    }
  }
  const firstHour = (firstMinute + 59n) / 60n;
  const endHour = endMinute / 60n;
  if (firstHour < endHour) {
    ranges.push({ size: 60, from: firstHour, to: endHour });
    ranges.push({ size: 1, from: firstMinute, to: firstHour * 60n });
    ranges.push({ size: 1, from: endHour * 60n, to: endMinute });
  } else {
    ranges.push({ size: 1, from: firstMinute, to: endMinute });
  }
  return ranges.filter((r) => r.from < r.to);
}

/** `(size = .. AND bucket >= .. AND bucket < ..) OR ...` for the ranges, binding into `params`; '' for none. */
export function rangeClause(ranges: Range[], params: Params): string {
  const parts = ranges.map((r, i) => {
    Object.assign(params, { [`size${i}`]: r.size, [`from${i}`]: r.from, [`to${i}`]: r.to });
    return `(size = @size${i} AND bucket >= @from${i} AND bucket < @to${i})`;
  });
  return parts.length ? `(${parts.join(' OR ')})` : '';
}
