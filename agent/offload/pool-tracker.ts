// Task bookkeeping shared by the worker-pool instrumentations: each task's queue wait (submitted
// until handed to a worker) and run time (until its result came back), as histograms per pool
// and as a span per task, child of the span that submitted it.
import { relative, isAbsolute } from 'node:path';
import type { Context, Histogram, Meter, Tracer } from '@opentelemetry/api';
import {
  KINDS,
  POOL_METRICS,
  POOL_NAME,
  POOL_OUTCOME,
  POOL_QUEUE_WAIT_MS,
  POOL_RUN_MS,
  POOL_TASK,
  POOL_TYPE,
  SPAN_NAMES,
} from '../../common/conventions';
import { report } from '../safety';
import { recordSpan } from '../spans';
import { POOL_BUCKETS_S } from '../../common/buckets';

export type TaskOutcome = 'completed' | 'error' | 'cancelled' | 'timeout' | 'rejected';

/** What a pool instrumentation can read from one pool, for the gauges. */
export interface PoolProbe {
  queueSize(pool: object): number;
  threads(pool: object): number;
}

export interface PoolResource {
  name: string;
  type: string;
  /** Weak: the tracker must not keep a pool the app has dropped. */
  pool: WeakRef<object>;
  probe: PoolProbe;
  /** Most tasks queued at once since the last export. */
  maxQueue: number;
  attrs: Record<string, string>;
}

export interface PoolTask {
  pool: PoolResource;
  task: string;
  ctx: Context;
  submittedAt: number;
  startedAt?: number;
  ended?: boolean;
  /** Removes what the instrumentation attached while the task runs (an abort listener). */
  detach?: () => void;
}

/** A worker script's path, relative to the working directory when inside it. */
export function scriptName(file: string): string {
  const path = file.startsWith('file://') ? new URL(file).pathname : file;
  return isAbsolute(path) && path.startsWith(process.cwd()) ? relative(process.cwd(), path) : path;
}

let active: PoolTracker | undefined;

/** The tracker of the running agent, which every pool instrumentation reports to. */
export function activePoolTracker(): PoolTracker | undefined {
  return active;
}

export class PoolTracker {
  private readonly pools = new Set<PoolResource>();
  private readonly collected = new FinalizationRegistry<PoolResource>((p) => this.pools.delete(p));
  private queueWait!: Histogram;
  private runTime!: Histogram;

  constructor(
    private readonly tracer: Tracer,
    private readonly meter: Meter,
  ) {}

  start(): void {
    this.queueWait = this.meter.createHistogram(POOL_METRICS.queueWait, {
      description: 'Time pool tasks waited for a worker',
      unit: 's',
      advice: { explicitBucketBoundaries: POOL_BUCKETS_S },
    });
    this.runTime = this.meter.createHistogram(POOL_METRICS.runTime, {
      description: 'Time from a task reaching a worker to its result',
      unit: 's',
      advice: { explicitBucketBoundaries: POOL_BUCKETS_S },
    });
    this.meter
      .createObservableGauge(POOL_METRICS.queueSize, {
        description: 'Most tasks queued at once since the last export',
        unit: '{task}',
      })
      .addCallback((r) => {
        for (const [p, pool] of this.live()) {
          try {
            const now = p.probe.queueSize(pool);
            r.observe(Math.max(p.maxQueue, now), p.attrs);
            p.maxQueue = now;
          } catch (err) {
            report('pool metrics', err);
          }
        }
      });
    this.meter
      .createObservableGauge(POOL_METRICS.threads, { description: 'Worker threads in the pool', unit: '{thread}' })
      .addCallback((r) => {
        for (const [p, pool] of this.live()) {
          try {
            r.observe(p.probe.threads(pool), p.attrs);
          } catch (err) {
            report('pool metrics', err);
          }
        }
      });
    active = this;
  }

  stop(): void {
    if (active === this) active = undefined;
  }

  /** The pools still alive, with their resources. */
  private *live(): Generator<[PoolResource, object]> {
    for (const p of this.pools) {
      const pool = p.pool.deref();
      if (pool) yield [p, pool];
      else this.pools.delete(p);
    }
  }

  /** The resource of one pool object, dropped when the pool is garbage-collected. */
  pool(name: string, type: string, owner: object, probe: PoolProbe): PoolResource {
    const p: PoolResource = {
      name,
      type,
      pool: new WeakRef(owner),
      probe,
      maxQueue: 0,
      attrs: { [POOL_NAME]: name, [POOL_TYPE]: type },
    };
    this.pools.add(p);
    this.collected.register(owner, p);
    return p;
  }

  submitted(pool: PoolResource, task: string, ctx: Context): PoolTask {
    const t: PoolTask = { pool, task, ctx, submittedAt: performance.now() };
    try {
      const owner = pool.pool.deref();
      const queued = owner ? pool.probe.queueSize(owner) : 0;
      if (queued > pool.maxQueue) pool.maxQueue = queued;
    } catch (err) {
      report('pool metrics', err);
    }
    return t;
  }

  /** `at`: when the pool handed the task to a worker, on the performance.now() clock. */
  started(t: PoolTask, at = performance.now()): void {
    t.startedAt ??= at;
  }

  ended(t: PoolTask, outcome: TaskOutcome, error?: unknown): void {
    if (t.ended) return;
    t.ended = true;
    try {
      t.detach?.();
      t.detach = undefined;
      const now = performance.now();
      const started = t.startedAt ?? now; // never reached a worker: all of it was waiting
      const waited = started - t.submittedAt;
      const ran = now - started;
      this.queueWait.record(waited / 1000, t.pool.attrs);
      if (t.startedAt !== undefined) this.runTime.record(ran / 1000, t.pool.attrs);
      recordSpan(this.tracer, {
        name: SPAN_NAMES.poolTask,
        kind: KINDS.poolTask,
        from: t.submittedAt,
        to: now,
        ctx: t.ctx,
        attributes: {
          ...t.pool.attrs,
          [POOL_TASK]: t.task,
          [POOL_OUTCOME]: outcome,
          [POOL_QUEUE_WAIT_MS]: waited,
          [POOL_RUN_MS]: ran,
        },
        error: outcome === 'completed' ? undefined : error instanceof Error ? error.message : outcome,
      });
    } catch (err) {
      report('pool tracking', err);
    }
  }
}
