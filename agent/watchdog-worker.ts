// The watchdog thread. The main thread stamps a shared heartbeat every few milliseconds; when
// the stamp is older than the threshold, the main thread is blocked. The watchdog then pauses
// it through the inspector just long enough to read the call stack and the active span, and
// resumes it. What is known about each episode is posted back once the loop turns again.
// The loop profiler (profiler.ts) runs on this thread too, and asks nothing of the main thread
// while a capture is in progress.
//
// The same thread reads and decodes the app's source maps when the main thread asks (see
// source-maps.ts), in slices, so that polling goes on in between.
//
// Hazards (measured on Node 20, 2 cores): the Debugger domain left enabled made await-heavy code
// about 9.5x slower, so it is enabled only for a capture; a worker that let go of a main thread
// still paused (disconnecting right after Debugger.resume) aborted the process in 4 of 20 runs,
// and none of 20 once it waited for Debugger.resumed, so every capture waits for that event
// before its session disconnects.
import { Session } from 'node:inspector';
import { parentPort, workerData } from 'node:worker_threads';
import { LoopProfiler, type CaptureGate } from './profiler';
import { fileOf, type Frame } from './stack';
import { loadMap, type MapLoad } from './source-maps';
import { BEAT, type EpisodeMessage, type MapMessage, type ToWatchdog, type WatchdogData } from './watchdog-protocol';

const data = workerData as WatchdogData;
const beat = new BigInt64Array(data.heartbeat);
const port = parentPort!;
const gate: CaptureGate = { captures: 0 };
const profiler = data.profile
  ? new LoopProfiler(data.profile, data.thresholdMs, beat, gate, (m) => port.postMessage(m))
  : undefined;
const thresholdNs = BigInt(Math.round(data.thresholdMs * 1e6));
const CALL_TIMEOUT_MS = 1000;

interface Episode {
  startHr: bigint;
  count: bigint;
  reported: boolean;
  detectedHr: bigint;
  cpu: NodeJS.CpuUsage;
  capture?: Promise<Capture>;
}

interface Capture {
  capturedHr?: bigint;
  frames?: Frame[];
  activeSpan?: string;
  error?: string;
}

// Call frames often carry no url; Debugger.enable announces every script, which names them.
// Script ids are stable for the isolate's life, so the names outlive each capture's session.
const scriptUrls = new Map<string, string>();

interface PausedParams {
  callFrames: Array<{
    functionName: string;
    url: string;
    location: { scriptId: string; lineNumber: number; columnNumber: number };
  }>;
}

/**
 * One inspector session per capture. A session left connected would make Node wait for it at
 * exit ("Waiting for the debugger to disconnect"), so it is closed as soon as the main thread
 * has resumed, never before.
 */
class CaptureSession {
  private readonly session = new Session();
  private pauseRequested = false;
  private capturing = true;

  constructor() {
    this.session.connectToMainThread();
    this.session.on('Debugger.scriptParsed', (msg: { params: { scriptId: string; url: string } }) => {
      if (msg.params.url) scriptUrls.set(msg.params.scriptId, msg.params.url);
    });
    // A pause requested but landing only after its capture gave up (the main thread was in a
    // long native call) is resumed here, so the host is never left paused.
    this.session.on('Debugger.paused', () => {
      if (this.pauseRequested && !this.capturing) void this.release();
    });
  }

  /** One session.post bounded by a timeout; a late answer is ignored. */
  call(method: string, params?: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${method} timed out after ${CALL_TIMEOUT_MS} ms`)),
        CALL_TIMEOUT_MS,
      );
      this.session.post(method, params ?? {}, (err, result) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(result);
      });
    });
  }

  once(event: string, timeoutMs: number): Promise<unknown | undefined> {
    return new Promise((resolve) => {
      const onEvent = (msg: { params: unknown }) => {
        clearTimeout(timer);
        resolve(msg.params);
      };
      const timer = setTimeout(() => {
        this.session.off(event, onEvent);
        resolve(undefined);
      }, timeoutMs);
      this.session.once(event, onEvent);
    });
  }

  async capture(ep: Episode): Promise<Capture> {
    gate.captures++;
    try {
      return await this.pauseAndRead(ep);
    } finally {
      gate.captures--;
    }
  }

  private async pauseAndRead(ep: Episode): Promise<Capture> {
    try {
      const paused = this.once('Debugger.paused', Math.max(2000, data.thresholdMs * 10));
      this.pauseRequested = true;
      // Both are sent at once: a main thread stuck in native code serves them in one interrupt.
      const enabled = this.call('Debugger.enable').catch((err: Error) => err);
      const pausing = this.call('Debugger.pause').catch((err: Error) => err);
      const params = (await paused) as PausedParams | undefined;
      if (!params) {
        await Promise.all([enabled, pausing]);
        this.capturing = false;
        return { error: 'the main thread did not pause in time (blocked in native code)' };
      }
      const capturedHr = process.hrtime.bigint();
      let result: Capture;
      if (Atomics.load(beat, BEAT.count) !== ep.count) {
        result = { error: 'the loop turned before the stack could be captured' };
      } else {
        const frames = params.callFrames.map((f) => ({
          function: f.functionName,
          file: fileOf(f.url || scriptUrls.get(f.location.scriptId) || ''),
          line: f.location.lineNumber + 1,
          column: f.location.columnNumber + 1,
        }));
        let activeSpan: string | undefined;
        try {
          const r = (await this.call('Runtime.evaluate', {
            expression: data.activeSpanExpression,
            returnByValue: true,
          })) as {
            result?: { value?: unknown };
          };
          if (typeof r?.result?.value === 'string' && r.result.value) activeSpan = r.result.value;
        } catch {
          // the span is optional: the stack alone is worth reporting
        }
        result = { capturedHr, frames, activeSpan };
      }
      this.capturing = false;
      await this.release();
      return result;
    } catch (err) {
      this.capturing = false;
      await this.release();
      return { error: (err as Error).message };
    }
  }

  /** Resumes, waits until the main thread has really resumed, then lets go. */
  private async release(): Promise<void> {
    if (this.pauseRequested) {
      this.pauseRequested = false;
      const resumed = this.once('Debugger.resumed', CALL_TIMEOUT_MS);
      await this.call('Debugger.resume').catch(() => undefined);
      await resumed;
    }
    await this.call('Debugger.disable').catch(() => undefined);
    this.session.disconnect();
  }
}

let available = true;
function capture(ep: Episode): Promise<Capture> {
  try {
    return new CaptureSession().capture(ep);
  } catch (err) {
    available = false;
    port.postMessage({
      type: 'unavailable',
      reason: `the inspector cannot attach to the main thread: ${(err as Error).message}`,
    });
    return Promise.resolve({ error: 'inspector unavailable' });
  }
}

// Token bucket for captures: a pathological app cannot make the agent pause it or flood the collector.
let tokens = data.maxPerMinute;
let refilledAt = Date.now();
function takeToken(): boolean {
  const now = Date.now();
  tokens = Math.min(data.maxPerMinute, tokens + ((now - refilledAt) / 60_000) * data.maxPerMinute);
  refilledAt = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

let episode: Episode | undefined;

function poll(): void {
  // The count first: the main thread writes the time before the count, so this order never
  // pairs a new count with an old time.
  const count = Atomics.load(beat, BEAT.count);
  const last = Atomics.load(beat, BEAT.time);
  if (last === 0n) return; // not armed until the loop has turned once
  profiler?.observe(process.hrtime.bigint() - last);
  if (!data.watch) return;
  if (!episode) {
    if (process.hrtime.bigint() - last <= thresholdNs) return;
    const ep: Episode = {
      startHr: last,
      count,
      reported: takeToken(),
      detectedHr: process.hrtime.bigint(),
      cpu: process.cpuUsage(),
    };
    if (ep.reported && available) ep.capture = capture(ep);
    episode = ep;
    return;
  }
  if (count === episode.count) return;
  const ep = episode;
  episode = undefined;
  const endHr = last;
  const wallUs = Number(process.hrtime.bigint() - ep.detectedHr) / 1000;
  const cpu = process.cpuUsage(ep.cpu);
  // Too short a look to tell: 20 ms at least.
  const cpuRatio = wallUs >= 20_000 ? (cpu.user + cpu.system) / wallUs : undefined;
  void (ep.capture ?? Promise.resolve<Capture>({ error: available ? 'rate limited' : 'inspector unavailable' })).then(
    (c) => {
      const msg: EpisodeMessage = {
        type: 'episode',
        startHr: ep.startHr,
        endHr,
        reported: ep.reported,
        capturedHr: c.capturedHr,
        frames: c.frames,
        activeSpan: c.activeSpan,
        error: c.error,
        cpuRatio,
      };
      port.postMessage(msg);
    },
  );
}

const mapFiles: string[] = [];
let loadingMaps = false;

/** One map at a time: a burst of requests never holds several decoded maps in memory at once. */
async function loadMaps(): Promise<void> {
  loadingMaps = true;
  while (mapFiles.length) {
    const file = mapFiles.shift()!;
    let load: MapLoad;
    try {
      load = await loadMap(file);
    } catch (err) {
      load = { problem: 'invalid', detail: (err as Error).message };
    }
    const msg: MapMessage = { type: 'map', file, load };
    port.postMessage(
      msg,
      'table' in load ? [load.table.lines.buffer as ArrayBuffer, load.table.segs.buffer as ArrayBuffer] : [],
    );
  }
  loadingMaps = false;
}

port.on('message', (m: ToWatchdog) => {
  if (m.type === 'load-map') {
    mapFiles.push(m.file);
    if (!loadingMaps) void loadMaps();
  } else if (m.type === 'profiler-done') profiler?.onDone(m);
  else if (m.type === 'resource') profiler?.setResource(m.attributes);
  else if (m.type === 'release') profiler?.release();
});

// The profiler reads the loop's delays from the poll too.
if (data.watch || profiler) setInterval(poll, data.pollMs);
profiler?.start();
port.postMessage({ type: 'ready' });
