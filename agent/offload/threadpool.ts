// The libuv threadpool: fs, dns.lookup, most async crypto and zlib run on UV_THREADPOOL_SIZE
// threads (4 by default), and work beyond that waits in a queue no API exposes. Two views:
// - a canary: a tiny fs.stat every interval, whose latency is the wait new work would see;
// - pool operations, counted in flight by category, with their queue wait estimated from the
//   pool's first-come order: an operation submitted with n in flight on s threads starts at the
//   (n - s + 1)th completion after it. One that waited over the threshold becomes a span, child
//   of the span that submitted it, naming what was ahead of it in the queue.
// A lasting async hook would see every operation, but any init hook makes every promise call
// into JavaScript: 1M `await null` took 180-350 ms instead of 70-115 ms (about 200 ns more per
// await, roughly 3x; Node 20 and 24) where nothing else had promise hooks on, as in any Node 24
// process, whose AsyncLocalStorage needs none. So a hook runs only for a moment at start, to
// find the prototypes of the request objects Node's own modules build; from then on those
// prototypes are patched where the request is handed its callback, just before it is queued:
// - fs callbacks (FSReqCallback) and dns.lookup (GetAddrInfoReqWrap): `req.oncomplete = cb`;
// - crypto jobs (pbkdf2, scrypt, randomBytes/randomFill, hkdf): `job.ondone = cb; job.run()`;
// - zlib: a handle's init() receives its completion callback, write() queues each chunk.
// Promise-based fs (fs/promises, FileHandle) completes inside Node without a JavaScript
// callback and is not counted one by one; the canary still sees the queue it makes.
import { createHook } from 'node:async_hooks';
import { stat } from 'node:fs';
import { lookup } from 'node:dns';
import { hkdf, pbkdf2, randomFill, scrypt } from 'node:crypto';
import zlib from 'node:zlib';
import { context, type Context, type Histogram, type Meter, type Tracer } from '@opentelemetry/api';
import {
  KINDS,
  SPAN_NAMES,
  THREADPOOL_AHEAD,
  THREADPOOL_CATEGORY,
  THREADPOOL_IN_FLIGHT,
  THREADPOOL_METRICS,
  THREADPOOL_OP,
  THREADPOOL_RUN_MS,
  THREADPOOL_SIZE,
} from '../../common/conventions';
import { captureStack } from '../stack';
import { recordSpan } from '../spans';
import { report } from '../safety';
import { Patches, type AnyFn } from '../patch';
import { whenStarted } from '../startup';
import { WAIT_BUCKETS_S } from '../../common/buckets';

export type PoolCategory = 'fs' | 'dns' | 'crypto' | 'zlib';
const CATEGORIES: PoolCategory[] = ['fs', 'dns', 'crypto', 'zlib'];

export interface ThreadpoolOptions {
  /** An operation that waited this long in the queue becomes a span. */
  waitThresholdMs: number;
  /** How often the canary runs; 0 turns it off. */
  canaryIntervalMs: number;
}

interface Op {
  category: PoolCategory;
  /** The async resource type Node gives the request: FSREQCALLBACK, PBKDF2REQUEST, ZLIB... */
  type: string;
  submittedAt: number;
  /** The completion count at which a thread frees up for it; 0 when one was free at once. */
  startsAt: number;
  startedAt?: number;
  ctx: Context;
  /** Taken only for an operation that has to queue. */
  stack?: { stack?: string };
  ahead?: string;
  /** Operations in flight when it was submitted. */
  busy: number;
  canary?: boolean;
  done?: boolean;
}

/** An operation pending this long is assumed lost (its callback never ran) and dropped. */
const STALE_MS = 120_000;
/** Marks a zlib handle made while the monitor ran: its callback is wrapped, its jobs are counted. */
const TRACKED = Symbol('stallscope.tracked');

/** The threadpool size libuv uses: UV_THREADPOOL_SIZE clamped to 1..1024, else 4. */
export function threadpoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/**
 * The prototypes of Node's threadpool request objects, by async resource type, found by watching
 * one tiny request of each kind being made. The requests themselves are real and harmless.
 */
function discoverRequestPrototypes(): Map<string, object> {
  const found = new Map<string, object>();
  const noop = () => undefined;
  const hook = createHook({
    init(_id, type, _trigger, resource) {
      if (type !== 'PROMISE' && !found.has(type)) found.set(type, Object.getPrototypeOf(resource) as object);
    },
  });
  hook.enable();
  try {
    stat(__filename, noop);
    lookup('localhost', noop);
    pbkdf2('', '', 1, 1, 'sha256', noop);
    scrypt('', '', 1, { N: 2 }, noop);
    randomFill(Buffer.alloc(1), noop);
    hkdf('sha256', 'k', '', '', 1, noop);
  } finally {
    hook.disable();
  }
  return found;
}

/**
 * While operations are in flight a timer ticks every TICK_MS, so a gap between ticks shows the
 * loop was blocked. A completion is only seen when its callback runs: one seen right after a
 * block happened some time during it, and is taken to have happened at its start (a lower
 * bound), so a blocked loop is not mistaken for a full pool.
 */
const TICK_MS = 10;
/**
 * A gap this long between ticks is a blocked loop. Shorter gaps happen when pool threads busy
 * with CPU work starve the main thread, and the callbacks seen then are taken at face value.
 */
const BLOCK_GAP_MS = 50;

export class ThreadpoolMonitor {
  /** Read when the monitor arms, after the app's start-up code could set UV_THREADPOOL_SIZE. */
  private size = threadpoolSize();
  private readonly pending = new Set<Op>();
  /** In flight by type, for naming what a queued operation waits behind. */
  private readonly byType = new Map<string, number>();
  /** Operations still queued by the model, in submission order, from queuedHead on. */
  private queued: Op[] = [];
  private queuedHead = 0;
  private ticker: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private ticks = 0;
  /** The last gap between ticks that shows a blocked loop. */
  private blockedFrom = 0;
  private blockedUntil = -Infinity;
  /** Resolves once the monitor has armed (see start()). */
  armed: Promise<void> = Promise.resolve();
  private completions = 0;
  private lastCompletionAt = 0;
  private readonly inFlight: Record<PoolCategory, number> = { fs: 0, dns: 0, crypto: 0, zlib: 0 };
  private readonly peak: Record<PoolCategory, number> = { fs: 0, dns: 0, crypto: 0, zlib: 0 };
  private peakTotal = 0;
  /** zlib handles have one write in flight at a time: the handle finds its operation. */
  private readonly zlibOps = new WeakMap<object, Op>();
  private readonly patches = new Patches('threadpool monitor');
  private canaryTimer: NodeJS.Timeout | undefined;
  private canaryInFlight = false;
  /** True while the canary's own fs.stat is being made. */
  private canaryStarting = false;
  private queueWait!: Histogram;
  private canaryWait!: Histogram;
  /** Attribute sets built once: the metrics SDK records a reused object far faster. */
  private readonly attrs: Record<PoolCategory, Record<string, string>> = {
    fs: { [THREADPOOL_CATEGORY]: 'fs' },
    dns: { [THREADPOOL_CATEGORY]: 'dns' },
    crypto: { [THREADPOOL_CATEGORY]: 'crypto' },
    zlib: { [THREADPOOL_CATEGORY]: 'zlib' },
  };

  constructor(
    private readonly options: ThreadpoolOptions,
    private readonly tracer: Tracer,
    private readonly meter: Meter,
  ) {}

  start(): void {
    this.queueWait = this.meter.createHistogram(THREADPOOL_METRICS.queueWait, {
      description: 'Estimated time threadpool operations waited for a thread',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS_S },
    });
    this.canaryWait = this.meter.createHistogram(THREADPOOL_METRICS.canaryWait, {
      description: 'Latency of a tiny threadpool task: the wait new work would see',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS_S },
    });
    this.meter
      .createObservableGauge(THREADPOOL_METRICS.size, { description: 'UV_THREADPOOL_SIZE', unit: '{thread}' })
      .addCallback((r) => r.observe(this.size));
    this.meter
      .createObservableGauge(THREADPOOL_METRICS.inFlight, {
        description: 'Most threadpool operations in flight at once since the last export',
        unit: '{operation}',
      })
      .addCallback((r) => {
        for (const c of CATEGORIES) {
          r.observe(this.peak[c], this.attrs[c]);
          this.peak[c] = this.inFlight[c];
        }
        r.observe(this.peakTotal);
        this.peakTotal = this.total();
      });
    // Finding the prototypes makes pool requests, and libuv sizes its pool at the first one:
    // wait until the app's start-up code has run, as it may set UV_THREADPOOL_SIZE itself.
    this.armed = new Promise((resolve) =>
      whenStarted(() => {
        try {
          this.arm();
        } catch (err) {
          report('threadpool monitor', err);
        }
        resolve();
      }),
    );
  }

  private arm(): void {
    if (this.stopped) return;
    this.size = threadpoolSize();
    for (const [type, proto] of discoverRequestPrototypes()) {
      if (type === 'FSREQCALLBACK') this.patchCallbackProperty(proto, 'oncomplete', 'fs', type);
      else if (type === 'GETADDRINFOREQWRAP') this.patchCallbackProperty(proto, 'oncomplete', 'dns', type);
      else if (type.endsWith('REQUEST')) this.patchJob(proto, type);
    }
    this.patchZlib();
    if (this.options.canaryIntervalMs > 0) {
      this.canaryTimer = setInterval(() => this.canary(), this.options.canaryIntervalMs);
      this.canaryTimer.unref();
    }
  }

  private stopped = false;

  stop(): void {
    this.stopped = true;
    if (this.canaryTimer) clearInterval(this.canaryTimer);
    this.stopTicker();
    this.patches.restore();
    this.pending.clear();
    this.byType.clear();
    this.queued = [];
    this.queuedHead = 0;
  }

  private stopTicker(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  private tick(): void {
    const now = performance.now();
    if (now - this.lastTick > BLOCK_GAP_MS) {
      this.blockedFrom = this.lastTick;
      this.blockedUntil = now;
    }
    this.lastTick = now;
    if (++this.ticks % 1000 === 0) this.sweep(); // every 10 s while anything is in flight
  }

  private total(): number {
    return this.inFlight.fs + this.inFlight.dns + this.inFlight.crypto + this.inFlight.zlib;
  }

  /** The callback a request completes through, wrapped so that its call ends the operation. */
  private completing(op: Op, callback: AnyFn): AnyFn {
    const self = this;
    return function (this: unknown) {
      self.completed(op);
      return Reflect.apply(callback, this, arguments);
    };
  }

  /**
   * fs and dns requests are made, given `req.oncomplete = callback`, then queued: an accessor on
   * the prototype sees that assignment and stores a wrapped callback on the request itself.
   */
  private patchCallbackProperty(proto: object, property: string, category: PoolCategory, type: string): void {
    if (Object.getOwnPropertyDescriptor(proto, property) || !Object.isExtensible(proto)) return;
    const self = this;
    this.patches.define(proto, property, {
      get: () => undefined,
      set: function submit(this: object, callback: unknown) {
        let value = callback;
        if (typeof callback === 'function') {
          try {
            const op = self.submitted(category, type, submit, self.canaryStarting);
            value = self.completing(op, callback as AnyFn);
          } catch (err) {
            report('threadpool monitor', err);
          }
        }
        Object.defineProperty(this, property, { value, writable: true, enumerable: true, configurable: true });
      },
    });
  }

  /** Crypto jobs: `job.ondone = callback` then `job.run()` queues it (run() with no ondone is a sync job). */
  private patchJob(proto: object, type: string): void {
    const self = this;
    this.patches.wrap(
      proto,
      'run',
      (run) =>
        function runJob(this: { ondone?: unknown }) {
          if (typeof this.ondone === 'function') {
            try {
              this.ondone = self.completing(self.submitted('crypto', type, runJob, false), this.ondone as AnyFn);
            } catch (err) {
              report('threadpool monitor', err);
            }
          }
          return Reflect.apply(run, this, arguments);
        },
    );
  }

  /**
   * zlib streams are one native handle for many pool jobs: init() receives the callback each
   * job completes through, and write() queues a job. Handles made before the agent started
   * have an unwrapped callback and are left alone.
   */
  private patchZlib(): void {
    const protos = new Set<object>();
    const makers = [
      zlib.createGzip,
      zlib.createBrotliCompress,
      zlib.createBrotliDecompress,
      (zlib as { createZstdCompress?: () => zlib.Gzip }).createZstdCompress,
    ];
    for (const make of makers) {
      if (typeof make !== 'function') continue;
      const stream = make();
      const handle = (stream as unknown as { _handle?: object })._handle;
      stream.close();
      if (handle) protos.add(Object.getPrototypeOf(handle) as object);
    }
    const self = this;
    const finish = (handle: object, discard: boolean) => {
      const op = self.zlibOps.get(handle);
      if (!op) return;
      self.zlibOps.delete(handle);
      if (discard) self.discard(op);
      else self.completed(op);
    };
    for (const proto of protos) {
      const { init, write, close } = proto as { init?: unknown; write?: unknown; close?: unknown };
      if (typeof init !== 'function' || typeof write !== 'function' || typeof close !== 'function') continue;
      this.patches.wrap(
        proto,
        'init',
        (init) =>
          function (this: object, ...args: unknown[]) {
            const handle = this;
            const wrappedArgs = args.map((arg) =>
              typeof arg === 'function'
                ? function (this: unknown) {
                    finish(handle, false);
                    return Reflect.apply(arg as AnyFn, this, arguments);
                  }
                : arg,
            );
            Object.defineProperty(handle, TRACKED, { value: true, configurable: true });
            return Reflect.apply(init, this, wrappedArgs);
          },
      );
      this.patches.wrap(
        proto,
        'write',
        (write) =>
          function zlibWrite(this: { [TRACKED]?: boolean }) {
            if (this[TRACKED]) {
              try {
                self.zlibOps.set(this, self.submitted('zlib', 'ZLIB', zlibWrite, false));
              } catch (err) {
                report('threadpool monitor', err);
              }
            }
            try {
              return Reflect.apply(write, this, arguments);
            } catch (err) {
              finish(this, true);
              throw err;
            }
          },
      );
      // A job that fails ends in onerror (set on each handle), not in the init() callback.
      if (!Object.getOwnPropertyDescriptor(proto, 'onerror')) {
        this.patches.define(proto, 'onerror', {
          get: () => undefined,
          set(this: object, handler: unknown) {
            const handle = this;
            const value =
              typeof handler === 'function'
                ? function (this: unknown) {
                    finish(handle, false);
                    return Reflect.apply(handler as AnyFn, this, arguments);
                  }
                : handler;
            Object.defineProperty(handle, 'onerror', { value, writable: true, enumerable: true, configurable: true });
          },
        });
      }
      this.patches.wrap(
        proto,
        'close',
        (close) =>
          function (this: object) {
            finish(this, true);
            return Reflect.apply(close, this, arguments);
          },
      );
    }
  }

  /** `skip`: the frame above which the submitter's stack starts. */
  private submitted(category: PoolCategory, type: string, skip: Function, canary: boolean): Op {
    const now = performance.now();
    const busy = this.pending.size;
    const op: Op = { category, type, submittedAt: now, startsAt: 0, busy, ctx: context.active(), canary };
    if (busy >= this.size) {
      op.startsAt = this.completions + busy - this.size + 1;
      this.queued.push(op);
      if (!canary) {
        op.stack = captureStack(skip, 16);
        op.ahead = this.describeAhead();
      }
    } else {
      op.startedAt = now;
    }
    this.pending.add(op);
    this.byType.set(type, (this.byType.get(type) ?? 0) + 1);
    if (!this.ticker) {
      this.lastTick = now;
      this.ticker = setInterval(() => this.tick(), TICK_MS);
      this.ticker.unref();
    }
    if (!canary) {
      const n = ++this.inFlight[category];
      if (n > this.peak[category]) this.peak[category] = n;
      const t = this.total();
      if (t > this.peakTotal) this.peakTotal = t;
    }
    return op;
  }

  /** What the pool is busy with: counts by operation type, most first ("PBKDF2REQUEST=16"). */
  private describeAhead(): string {
    return [...this.byType]
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([t, n]) => `${t}=${n}`)
      .join(',');
  }

  /** Takes an operation out of the books: it completed, was lost, or will never complete. */
  private remove(op: Op): boolean {
    if (!this.pending.delete(op)) return false;
    op.done = true;
    const n = (this.byType.get(op.type) ?? 1) - 1;
    if (n > 0) this.byType.set(op.type, n);
    else this.byType.delete(op.type);
    if (!op.canary) this.inFlight[op.category]--;
    if (this.pending.size === 0) this.stopTicker();
    return true;
  }

  /** An operation that will not complete (its stream closed, its request threw): forgotten, not timed. */
  private discard(op: Op): void {
    this.remove(op);
  }

  private completed(op: Op): void {
    if (op.done) return;
    try {
      const now = performance.now();
      // Seen late because the loop was blocked (a block is still going on, or just ended):
      // taken to have happened when the block began.
      let at = now;
      if (now - this.lastTick > BLOCK_GAP_MS) at = this.lastTick;
      else if (now - this.blockedUntil < TICK_MS) at = this.blockedFrom;
      at = Math.max(at, op.submittedAt);
      if (!this.remove(op)) return; // dropped as stale, or the monitor stopped
      this.completions++;
      // Not started by the model (work it cannot see used the pool): it started at the latest free-up.
      op.startedAt ??= Math.max(op.submittedAt, this.lastCompletionAt);
      this.lastCompletionAt = at;
      while (this.queuedHead < this.queued.length) {
        const next = this.queued[this.queuedHead];
        if (!next.done && next.startsAt > this.completions) break;
        if (!next.done) next.startedAt = Math.max(at, next.submittedAt);
        this.queuedHead++;
      }
      if (this.queuedHead > 1024 && this.queuedHead * 2 > this.queued.length) {
        this.queued = this.queued.slice(this.queuedHead);
        this.queuedHead = 0;
      }
      if (op.canary) {
        this.canaryWait.record((now - op.submittedAt) / 1000);
        return;
      }
      const waited = op.startedAt - op.submittedAt;
      this.queueWait.record(waited / 1000, this.attrs[op.category]);
      if (waited >= this.options.waitThresholdMs && op.stack) this.waitSpan(op, now);
    } catch (err) {
      report('threadpool monitor', err);
    }
  }

  private waitSpan(op: Op, now: number): void {
    recordSpan(this.tracer, {
      name: SPAN_NAMES.threadpoolWait,
      kind: KINDS.threadpoolWait,
      from: op.submittedAt,
      to: op.startedAt!,
      ctx: op.ctx,
      stack: op.stack,
      attributes: {
        [THREADPOOL_CATEGORY]: op.category,
        [THREADPOOL_OP]: op.type,
        [THREADPOOL_SIZE]: this.size,
        [THREADPOOL_IN_FLIGHT]: op.busy,
        [THREADPOOL_RUN_MS]: now - op.startedAt!,
        ...(op.ahead ? { [THREADPOOL_AHEAD]: op.ahead } : {}),
      },
    });
  }

  /** Drops operations whose callback never came (a request that failed before it was queued). */
  private sweep(): void {
    const cutoff = performance.now() - STALE_MS;
    for (const op of this.pending) {
      if (op.submittedAt >= cutoff) break; // insertion order is submission order
      this.remove(op);
    }
  }

  private canary(): void {
    this.sweep();
    if (this.canaryInFlight) return; // still queued: the next reading would only repeat it
    this.canaryInFlight = true;
    this.canaryStarting = true;
    try {
      stat(__filename, () => {
        this.canaryInFlight = false;
      });
    } catch (err) {
      this.canaryInFlight = false;
      report('threadpool canary', err);
    } finally {
      this.canaryStarting = false;
    }
  }
}
