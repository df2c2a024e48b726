// What the main thread knows of its own loop's turns, from the watchdog's heartbeat (stamped every
// few ms once the app has started): when the loop last turned, and the latest stretches without a
// turn as long as the blocking threshold, each with the request whose code blocked it when the
// watchdog caught it (the watchdog's capture notes it while the loop is paused). Lean request
// tracing asks it, at each request's end, how long the loop was blocked while the request was in
// flight, and by whom: a few comparisons, no timer of its own.

/** A blocked stretch: [fromMs, toMs) on the performance.now() clock, and who blocked the loop. */
export interface Stretch {
  fromMs: number;
  toMs: number;
  /** The request (a lean request record) whose code was running, if the watchdog caught one. */
  by: object | undefined;
}

/** Stretches kept: a request in flight over more blocks than this is told of the latest ones. */
const KEPT = 32;

export const loopClock = {
  /** performance.now() of the latest heartbeat; 0 until the watchdog is armed. */
  lastTurnMs: 0,
  /** A stretch without a turn at least this long is a blocked loop. */
  thresholdMs: Infinity,
  /** The request caught blocking the loop since the latest turn. */
  blocker: undefined as object | undefined,
  /** The latest stretches, newest last. */
  stretches: [] as Stretch[],
};

/** A heartbeat: notes a blocked stretch if the loop did not turn for the threshold or longer. */
export function turned(now: number): void {
  const c = loopClock;
  if (c.lastTurnMs > 0 && now - c.lastTurnMs >= c.thresholdMs) {
    if (c.stretches.push({ fromMs: c.lastTurnMs, toMs: now, by: c.blocker }) > KEPT) c.stretches.shift();
  }
  c.blocker = undefined;
  c.lastTurnMs = now;
}

/** The watchdog caught `by` blocking the loop (called on the main thread while it is paused). */
export function caughtBlocking(by: object | undefined): void {
  if (by) loopClock.blocker = by;
}

/**
 * Calls `visit` with each stretch of blocked loop in [sinceMs, now]: those ended, and the one
 * still open (the blocking code has just returned and the heartbeat has not run yet), whose
 * blocker is the watchdog's catch if any. Newest first; the common case (none) is two comparisons.
 */
export function blockedSince(sinceMs: number, now: number, visit: (ms: number, by: object | undefined) => void): void {
  const c = loopClock;
  if (c.lastTurnMs === 0) return;
  if (now - c.lastTurnMs >= c.thresholdMs) visit(now - Math.max(c.lastTurnMs, sinceMs), c.blocker);
  for (let i = c.stretches.length - 1; i >= 0; i--) {
    const s = c.stretches[i];
    if (s.toMs <= sinceMs) break;
    visit(Math.min(s.toMs, now) - Math.max(s.fromMs, sinceMs), s.by);
  }
}

/** Forgets the loop's history (the watchdog stopped). */
export function resetLoopClock(): void {
  loopClock.lastTurnMs = 0;
  loopClock.blocker = undefined;
  loopClock.stretches = [];
}
