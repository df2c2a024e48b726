// When the app has finished starting. Loading code is legitimately synchronous and slow, and an
// ES module graph loads over several loop turns (the main thread idles while the loader thread
// reads files), so neither the first turn nor one idle moment is enough: the detectors arm once
// the loop has been mostly idle for IDLE_WINDOWS windows in a row (the app waits for work), or
// after MAX_WAIT_MS at the latest, so that a process busy from its first moment is still watched.
import { performance } from 'node:perf_hooks';

const WINDOW_MS = 25;
const IDLE_WINDOWS = 4;
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
  let idleInARow = 0;
  timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const window = performance.eventLoopUtilization(now, previous);
    previous = now;
    idleInARow = window.utilization < 0.5 ? idleInARow + 1 : 0;
    if (idleInARow >= IDLE_WINDOWS || Date.now() - began > MAX_WAIT_MS) settle();
  }, WINDOW_MS);
  timer.unref();
}
