// bench/agent-overhead's stand-in for the watchdog thread: loads one map with the agent's own
// loader while a 1 ms ticker records the longest the thread went without turning (what the
// watchdog's polling would lose), first over as long a time with nothing to do (the machine's
// own share of that pause), and hands the table over as the agent does.
import { parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadMap } from '../agent/source-maps';

let longestGapMs = 0;
let last = performance.now();
const ticker = setInterval(() => {
  const now = performance.now();
  longestGapMs = Math.max(longestGapMs, now - last);
  last = now;
}, 1);

void (async () => {
  await sleep(300);
  const idleGapMs = longestGapMs;
  longestGapMs = 0;
  const start = performance.now();
  const load = await loadMap(workerData as string);
  const ms = performance.now() - start;
  clearInterval(ticker);
  if (!('table' in load)) throw new Error(`no table: ${JSON.stringify(load)}`);
  const { lines, segs } = load.table;
  parentPort!.postMessage({ ms, longestGapMs, idleGapMs, table: load.table }, [
    lines.buffer as ArrayBuffer,
    segs.buffer as ArrayBuffer,
  ]);
})();
