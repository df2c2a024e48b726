// workerpool (6 and later). Pool#exec queues a task and may dispatch it at once; the pool hands
// it to WorkerHandler#exec with the same resolver whose promise exec() returned, so that
// promise keys the task from submission to dispatch. workerpool's promises are its own class
// (no unhandled-rejection tracking), so observing one changes nothing for the app.
import {
  InstrumentationBase,
  InstrumentationNodeModuleDefinition,
  InstrumentationNodeModuleFile,
} from '@opentelemetry/instrumentation';
import { context } from '@opentelemetry/api';
import { activePoolTracker, scriptName, type PoolResource, type PoolTask } from './pool-tracker';
import { report } from '../safety';
import { Patches, type AnyFn } from '../patch';

const VERSION = '0.1.0';
const SUPPORTED = ['>=6.0.0 <11'];
const RESOURCE = Symbol('stallscope.pool');

interface WorkerpoolPromise {
  then(ok: (v: unknown) => unknown, fail: (e: unknown) => unknown): unknown;
}

interface PoolLike {
  script: string | null;
  stats(): { totalWorkers: number; pendingTasks: number };
  [RESOURCE]?: PoolResource;
}

interface ErrorClasses {
  CancellationError?: new () => Error;
  TimeoutError?: new () => Error;
}

export class WorkerpoolInstrumentation extends InstrumentationBase {
  private readonly patches = new Patches('workerpool instrumentation');
  private readonly tasks = new WeakMap<object, PoolTask>();
  /** Dispatches that happened inside exec(), before its promise was known. */
  private readonly early = new WeakMap<object, number>();
  /** The name of a function passed to exec(): the inner exec('run') carries it. */
  private functionName: string | undefined;
  private errors: ErrorClasses = {};

  constructor() {
    super('@stallscope/instrumentation-workerpool', VERSION, {});
  }

  protected init() {
    return [
      new InstrumentationNodeModuleDefinition('workerpool', SUPPORTED, undefined, undefined, [
        new InstrumentationNodeModuleFile(
          'workerpool/src/Pool.js',
          SUPPORTED,
          (Pool: { prototype: Record<string | symbol, unknown> }) => {
            this.patches.wrap(Pool.prototype, 'exec', (original) => this.exec(original));
            return Pool;
          },
          (Pool: { prototype: Record<string | symbol, unknown> }) => {
            this.patches.unwrap(Pool.prototype, 'exec');
            return Pool;
          },
        ),
        new InstrumentationNodeModuleFile(
          'workerpool/src/WorkerHandler.js',
          SUPPORTED,
          (WorkerHandler: { prototype: Record<string | symbol, unknown> }) => {
            this.patches.wrap(WorkerHandler.prototype, 'exec', (original) => this.dispatch(original));
            return WorkerHandler;
          },
          (WorkerHandler: { prototype: Record<string | symbol, unknown> }) => {
            this.patches.unwrap(WorkerHandler.prototype, 'exec');
            return WorkerHandler;
          },
        ),
        new InstrumentationNodeModuleFile(
          'workerpool/src/Promise.js',
          SUPPORTED,
          (exports: { Promise?: ErrorClasses } & ErrorClasses) => {
            const P = exports.Promise ?? exports;
            this.errors = { CancellationError: P.CancellationError, TimeoutError: P.TimeoutError };
            return exports;
          },
          (exports: unknown) => exports,
        ),
      ]),
    ];
  }

  private resourceOf(pool: PoolLike): PoolResource | undefined {
    const tracker = activePoolTracker();
    if (!tracker) return undefined;
    let r = pool[RESOURCE];
    if (!r) {
      r = tracker.pool(pool.script ? scriptName(pool.script) : 'workerpool (inline functions)', 'workerpool', pool, {
        queueSize: (p) => (p as PoolLike).stats().pendingTasks,
        threads: (p) => (p as PoolLike).stats().totalWorkers,
      });
      Object.defineProperty(pool, RESOURCE, { value: r, configurable: true });
    }
    return r;
  }

  private exec(original: AnyFn): AnyFn {
    const self = this;
    return function (this: PoolLike, method: unknown): unknown {
      if (typeof method === 'function') {
        // Passed on as exec('run', [source, params]): that inner call is the task.
        const outer = self.functionName;
        self.functionName = method.name || 'anonymous function';
        try {
          return Reflect.apply(original, this, arguments);
        } finally {
          self.functionName = outer;
        }
      }
      const name = method === 'run' && self.functionName ? self.functionName : String(method);
      self.functionName = undefined;
      const promise = Reflect.apply(original, this, arguments) as WorkerpoolPromise;
      try {
        const tracker = activePoolTracker();
        const resource = self.resourceOf(this);
        if (tracker && resource && promise && typeof promise.then === 'function') {
          const t = tracker.submitted(resource, name, context.active());
          const dispatched = self.early.get(promise);
          if (dispatched !== undefined) {
            // Dispatched inside exec(): it never queued.
            t.submittedAt = dispatched;
            t.startedAt = dispatched;
            self.early.delete(promise);
          } else {
            self.tasks.set(promise, t);
          }
          promise.then(
            () => tracker.ended(t, 'completed'),
            (err) => tracker.ended(t, self.outcomeOf(err), err),
          );
        }
      } catch (err) {
        report('workerpool instrumentation', err);
      }
      return promise;
    };
  }

  private outcomeOf(err: unknown): 'error' | 'cancelled' | 'timeout' {
    const { CancellationError, TimeoutError } = this.errors;
    if (CancellationError && err instanceof CancellationError) return 'cancelled';
    if (TimeoutError && err instanceof TimeoutError) return 'timeout';
    return 'error';
  }

  private dispatch(original: AnyFn): AnyFn {
    const self = this;
    return function (this: unknown, ...args: unknown[]): unknown {
      try {
        const promise = (args[2] as { promise?: object } | undefined)?.promise; // (method, params, resolver, options)
        if (promise) {
          const t = self.tasks.get(promise);
          if (t) activePoolTracker()?.started(t);
          else self.early.set(promise, performance.now());
        }
      } catch (err) {
        report('workerpool instrumentation', err);
      }
      return Reflect.apply(original, this, args);
    };
  }
}
