// When the app has finished starting. Loading code is legitimately synchronous and slow, and an
// ES module graph loads over several loop turns, so the first turn is not enough: the detectors
// arm once the loop has spent most of a short window idle (the app is waiting for work), or
// after MAX_WAIT_MS at the latest, so that a process busy from its first moment is still watched.
import { performance } from 'node:perf_hooks';

const WINDOW_MS = 25;
const MAX_WAIT_MS = 5000;

const waiting: Array<() => void> = [];
let settled = false;
let timer: NodeJS.Timeout | undefined;

function settle(): void {
  settled = true;
  if (timer) clearInterval(timer);
  for (const cb of waiting.splice(0)) cb();
}

/** Calls `cb` once the app has started (at once if it already has). */
export function whenStarted(cb: () => void): void {
  if (settled) {
    cb();
    return;
  }
  waiting.push(cb);
  if (timer) return;
  const began = Date.now();
  let previous = performance.eventLoopUtilization();
  timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const window = performance.eventLoopUtilization(now, previous);
    previous = now;
    if (window.utilization < 0.5 || Date.now() - began > MAX_WAIT_MS) settle();
  }, WINDOW_MS);
  timer.unref();
}
