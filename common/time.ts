// Time in the units each part works in: durations as people write them ("250ms", "15m", "7d"),
// exact nanoseconds (OTLP timestamps exceed 2^53, so bigint) and milliseconds.

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;

/** Milliseconds for a duration string, or an Error whose message says what is accepted. */
export function parseDuration(text: string): number | Error {
  const match = DURATION_RE.exec(text.trim());
  if (!match) {
    return new Error(`"${text}" is not a duration; use a number and a unit (ms, s, m, h, d, w), e.g. 15m or 7d`);
  }
  const ms = Number(match[1]) * UNIT_MS[match[2]];
  if (!Number.isFinite(ms)) return new Error(`"${text}" is too large`);
  return ms;
}

export const NS_PER_MS = 1_000_000n;
export const NS_PER_SECOND = 1_000_000_000n;
export const NS_PER_MINUTE = 60n * NS_PER_SECOND;
export const NS_PER_HOUR = 60n * NS_PER_MINUTE;

/** Milliseconds (fractions to the microsecond) as nanoseconds. */
export function msToNs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

/** The current time in nanoseconds since the epoch, to the millisecond. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * NS_PER_MS;
}

export function nsToIso(ns: bigint): string {
  return new Date(Number(ns / NS_PER_MS)).toISOString();
}

/** Nanoseconds as fractional milliseconds (exact enough for durations under 100 days). */
export function nsToMs(ns: bigint): number {
  return Number(ns) / 1e6;
}

/** The start (ISO 8601) of every step of a window, at most 2000. */
export function stepTimes(w: { fromNs: bigint; toNs: bigint; stepNs: bigint }): string[] {
  const n = Number((w.toNs - w.fromNs + w.stepNs - 1n) / w.stepNs);
  return Array.from({ length: Math.min(n, 2000) }, (_, i) => nsToIso(w.fromNs + BigInt(i) * w.stepNs));
}
