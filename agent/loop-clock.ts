// What the main thread knows of its own loop's turns, from the watchdog's heartbeat (stamped every
// few ms once the app has started): when the loop last turned, and the latest stretches without a
// turn as long as the blocking threshold, each with who blocked it: a request whose handler took
// that long before it first yielded, or the one the watchdog caught (its capture notes it while the
// loop is paused), or the machine when the process hardly used the CPU meanwhile. Lean request
// tracing asks it, at each request's end, how long the loop was blocked while the request was in
// flight, and by whom: a few comparisons, no timer of its own.

/** A blocked stretch: [fromMs, toMs) on the performance.now() clock, and who blocked the loop. */
export interface Stretch {
  fromMs: number;
  toMs: number;
  /** A lean request record, STARVED, or undefined when nobody is known. */
  by: object | undefined;
}

/** Stretches kept: a request in flight over more blocks than this is told of the latest ones. */
const KEPT = 32;
/** Below this share of one CPU over a stretch, the process was not running: the machine blocked it. */
const STARVED_CPU_RATIO = 0.25;
/** Who blocked a stretch in which the process hardly ran. */
export const STARVED = Object.freeze({ starved: true });

export const loopClock = {
  /** performance.now() of the latest heartbeat; 0 until the watchdog is armed. */
  lastTurnMs: 0,
  /** CPU time of the process (µs) at the latest heartbeat. */
  lastTurnCpuUs: 0,
  /** A stretch without a turn at least this long is a blocked loop. */
  thresholdMs: Infinity,
  /** Who blocked the loop since the latest turn, when known. */
  blocker: undefined as object | undefined,
  /** The latest stretches, newest last. */
  stretches: [] as Stretch[],
};

/** CPU time the process has used (µs). */
export function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * A heartbeat at `now`, with the process's CPU time then: notes a blocked stretch if the loop did
 * not turn for the threshold or longer (the machine's doing if the process hardly ran meanwhile).
 */
export function turned(now: number, cpuNowUs: number): void {
  const c = loopClock;
  if (c.lastTurnMs > 0 && now - c.lastTurnMs >= c.thresholdMs) {
    const starved = cpuNowUs - c.lastTurnCpuUs < STARVED_CPU_RATIO * (now - c.lastTurnMs) * 1000;
    if (c.stretches.push({ fromMs: c.lastTurnMs, toMs: now, by: starved ? STARVED : c.blocker }) > KEPT)
      c.stretches.shift();
  }
  c.blocker = undefined;
  c.lastTurnMs = now;
  c.lastTurnCpuUs = cpuNowUs;
}

/**
 * `by` blocked the loop: the watchdog caught it (called on the main thread while it is paused),
 * or its handler ran for the threshold or longer before it first yielded.
 */
export function caughtBlocking(by: object | undefined): void {
  if (by) loopClock.blocker = by;
}

/**
 * Calls `visit` with each stretch of blocked loop in [sinceMs, now]: those ended, and the one
 * still open (the blocking code has just returned and the heartbeat has not run yet). Newest
 * first; the common case (none) is two comparisons.
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
