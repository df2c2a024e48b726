// The libuv threadpool: fs, dns.lookup, most async crypto and zlib run on UV_THREADPOOL_SIZE
// threads (4 by default), and work beyond that waits in a queue no API exposes. Two views:
// - a canary: a tiny fs.stat every interval, whose latency is the wait new work would see;
// - every pool operation, seen through async_hooks (init = submitted, before = its callback),
//   counted in flight by category, with its queue wait estimated from the pool's FIFO order:
//   an operation submitted with n in flight on s threads starts at the (n - s + 1)th completion
//   after it. An operation that waited over the threshold becomes a span, child of the span
//   that submitted it, naming what was ahead of it in the queue.
import { createHook, type AsyncHook } from 'node:async_hooks';
import { stat } from 'node:fs';
import zlib from 'node:zlib';
import { SpanKind, context, type Context, type Histogram, type Meter, type Tracer } from '@opentelemetry/api';
import {
  KIND,
  THREADPOOL_AHEAD,
  THREADPOOL_CATEGORY,
  THREADPOOL_IN_FLIGHT,
  THREADPOOL_KIND,
  THREADPOOL_METRICS,
  THREADPOOL_OP,
  THREADPOOL_RUN_MS,
  THREADPOOL_SIZE,
  THREADPOOL_SPAN_NAME,
} from '../../common/conventions';
import { captureStack, codeAttributes, parseV8Stack } from '../stack';
import { report } from '../safety';

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
}

/** An operation pending this long is assumed lost (its callback never ran) and dropped. */
const STALE_MS = 120_000;

/** async_hooks resource types of threadpool requests, by category; ZLIB is counted per write. */
function categoryOf(type: string): PoolCategory | undefined {
  if (type === 'FSREQCALLBACK' || type === 'FSREQPROMISE' || type === 'FILEHANDLECLOSEREQ') return 'fs';
  if (type === 'GETADDRINFOREQWRAP' || type === 'GETNAMEINFOREQWRAP') return 'dns';
  if (type.endsWith('REQUEST')) return 'crypto'; // PBKDF2REQUEST, SCRYPTREQUEST, RANDOMBYTESREQUEST, ...
  return undefined;
}

/** The threadpool size libuv uses: UV_THREADPOOL_SIZE clamped to 1..1024, else 4. */
export function threadpoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1024) : 4;
}

export class ThreadpoolMonitor {
  private readonly size = threadpoolSize();
  private readonly pending = new Map<number, Op>();
  /** Operations still queued by the model, in submission order. */
  private queued: Op[] = [];
  private completions = 0;
  private lastCompletionAt = 0;
  private readonly inFlight: Record<PoolCategory, number> = { fs: 0, dns: 0, crypto: 0, zlib: 0 };
  private readonly peak: Record<PoolCategory, number> = { fs: 0, dns: 0, crypto: 0, zlib: 0 };
  private peakTotal = 0;
  private readonly types = new Map<string, PoolCategory | undefined>();
  private hook: AsyncHook | undefined;
  private canaryTimer: NodeJS.Timeout | undefined;
  private canaryStarting = false;
  private canaryInFlight = false;
  private readonly zlibOriginals = new Map<{ write: unknown }, unknown>();
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
    const buckets = [0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    this.queueWait = this.meter.createHistogram(THREADPOOL_METRICS.queueWait, { description: 'Estimated time threadpool operations waited for a thread', unit: 's', advice: { explicitBucketBoundaries: buckets } });
    this.canaryWait = this.meter.createHistogram(THREADPOOL_METRICS.canaryWait, { description: 'Latency of a tiny threadpool task: the wait new work would see', unit: 's', advice: { explicitBucketBoundaries: buckets } });
    this.meter.createObservableGauge(THREADPOOL_METRICS.size, { description: 'UV_THREADPOOL_SIZE', unit: '{thread}' }).addCallback((r) => r.observe(this.size));
    this.meter.createObservableGauge(THREADPOOL_METRICS.inFlight, { description: 'Most threadpool operations in flight at once since the last export', unit: '{operation}' }).addCallback((r) => {
      for (const c of CATEGORIES) {
        r.observe(this.peak[c], this.attrs[c]);
        this.peak[c] = this.inFlight[c];
      }
      r.observe(this.peakTotal);
      this.peakTotal = this.total();
    });

    // Every hook body is guarded: an exception in an async hook ends the process.
    this.hook = createHook({
      init: this.onInit,
      before: (id) => {
        if (this.pending.size === 0) return;
        const op = this.pending.get(id);
        if (!op) return;
        try {
          this.completed(id, op);
        } catch (err) {
          report('threadpool monitor', err);
        }
      },
    });
    this.hook.enable();
    this.patchZlib();
    if (this.options.canaryIntervalMs > 0) {
      this.canaryTimer = setInterval(() => this.canary(), this.options.canaryIntervalMs);
      this.canaryTimer.unref();
    }
  }

  private readonly onInit = (id: number, type: string): void => {
    if (type === 'PROMISE') return;
    try {
      let category = this.types.get(type);
      if (category === undefined && !this.types.has(type)) this.types.set(type, (category = categoryOf(type)));
      if (category) this.submitted(id, category, type, this.onInit);
    } catch (err) {
      report('threadpool monitor', err);
    }
  };

  stop(): void {
    this.hook?.disable();
    if (this.canaryTimer) clearInterval(this.canaryTimer);
    for (const [proto, write] of this.zlibOriginals) proto.write = write;
    this.zlibOriginals.clear();
    this.pending.clear();
    this.queued = [];
  }

  private total(): number {
    return this.inFlight.fs + this.inFlight.dns + this.inFlight.crypto + this.inFlight.zlib;
  }

  /** `skip`: the frame above which the submitter's stack starts. */
  private submitted(id: number, category: PoolCategory, type: string, skip: Function): void {
    const now = performance.now();
    const busy = this.pending.size;
    const op: Op = { category, type, submittedAt: now, startsAt: 0, busy, ctx: context.active() };
    if (this.canaryStarting) op.canary = true;
    if (busy >= this.size) {
      op.startsAt = this.completions + busy - this.size + 1;
      this.queued.push(op);
      if (!op.canary) {
        op.stack = captureStack(skip, 16);
        op.ahead = this.describeAhead();
      }
    } else {
      op.startedAt = now;
    }
    this.pending.set(id, op);
    if (!op.canary) {
      const n = ++this.inFlight[category];
      if (n > this.peak[category]) this.peak[category] = n;
      const t = this.total();
      if (t > this.peakTotal) this.peakTotal = t;
    }
  }

  /** What the pool is busy with: counts by operation type, most first ("PBKDF2REQUEST=16"). */
  private describeAhead(): string {
    const counts = new Map<string, number>();
    for (const op of this.pending.values()) counts.set(op.type, (counts.get(op.type) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t}=${n}`).join(',');
  }

  private completed(id: number, op: Op): void {
    const now = performance.now();
    this.pending.delete(id);
    this.completions++;
    if (op.startedAt === undefined) {
      // The model lost track (work it cannot see used the pool): it started at the latest free-up.
      op.startedAt = Math.max(op.submittedAt, this.lastCompletionAt);
      const i = this.queued.indexOf(op);
      if (i >= 0) this.queued.splice(i, 1);
    }
    this.lastCompletionAt = now;
    let head = 0;
    while (head < this.queued.length && this.queued[head].startsAt <= this.completions) this.queued[head++].startedAt = now;
    if (head > 0) this.queued = this.queued.slice(head);
    if (op.canary) {
      this.canaryWait.record((now - op.submittedAt) / 1000);
      return;
    }
    this.inFlight[op.category]--;
    const waited = op.startedAt - op.submittedAt;
    this.queueWait.record(waited / 1000, this.attrs[op.category]);
    if (waited >= this.options.waitThresholdMs && op.stack) this.waitSpan(op, now);
  }

  private waitSpan(op: Op, now: number): void {
    const frames = parseV8Stack(op.stack?.stack ?? '');
    const origin = performance.timeOrigin;
    this.tracer
      .startSpan(
        THREADPOOL_SPAN_NAME,
        {
          kind: SpanKind.INTERNAL,
          startTime: origin + op.submittedAt,
          attributes: {
            [KIND]: THREADPOOL_KIND,
            [THREADPOOL_CATEGORY]: op.category,
            [THREADPOOL_OP]: op.type,
            [THREADPOOL_SIZE]: this.size,
            [THREADPOOL_IN_FLIGHT]: op.busy,
            [THREADPOOL_RUN_MS]: now - op.startedAt!,
            ...(op.ahead ? { [THREADPOOL_AHEAD]: op.ahead } : {}),
            ...(frames.length ? codeAttributes(frames) : {}),
          },
        },
        op.ctx,
      )
      .end(origin + op.startedAt!);
  }

  /** Drops operations whose callback never came (a request that failed before it was queued). */
  private sweep(): void {
    const cutoff = performance.now() - STALE_MS;
    for (const [id, op] of this.pending) {
      if (op.submittedAt >= cutoff) break; // insertion order is submission order
      this.pending.delete(id);
      if (!op.canary) this.inFlight[op.category]--;
      const i = this.queued.indexOf(op);
      if (i >= 0) this.queued.splice(i, 1);
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

  /**
   * A zlib stream is one async resource for all its chunks, each a separate pool job. The
   * handle's write() queues a job; its callback (a `before` for the handle's id) completes it.
   */
  private patchZlib(): void {
    for (const stream of [zlib.createGzip(), zlib.createBrotliCompress()]) {
      const handle = (stream as unknown as { _handle?: object })._handle;
      stream.close();
      const proto = handle && (Object.getPrototypeOf(handle) as { write: (...args: unknown[]) => unknown });
      if (!proto || typeof proto.write !== 'function' || this.zlibOriginals.has(proto)) continue;
      const write = proto.write;
      const self = this;
      proto.write = function zlibWrite(this: { getAsyncId(): number }) {
        try {
          self.submitted(this.getAsyncId(), 'zlib', 'ZLIB', zlibWrite);
        } catch (err) {
          report('threadpool monitor', err);
        }
        return Reflect.apply(write, this, arguments);
      };
      this.zlibOriginals.set(proto, write);
    }
  }
}
