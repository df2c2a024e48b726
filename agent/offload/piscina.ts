// Piscina 4 and 5. run() hands the task to a private pool, which builds a TaskInfo in the
// caller's stack: `created` when submitted, `started` when posted to a worker, done() with the
// result. TaskInfo is looked up on its module at every run, so a subclass put in its place sees
// every task; run() marks which pool and which caller the next TaskInfo belongs to. Nothing is
// attached to the promise the app gets, so its rejection handling is unchanged.
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
const SUPPORTED = ['>=4.0.0 <6'];
const RESOURCE = Symbol('stallscope.pool');
const RECORD = Symbol('stallscope.task');
/** The errors the pool builds when it refuses a task. */
const REFUSALS = ['TaskQueueAtLimit', 'NoTaskQueueAvailable'];

interface PiscinaLike {
  queueSize: number;
  threads: unknown[];
  options?: { filename?: string | null };
  [RESOURCE]?: PoolResource;
}

interface TaskInfoLike {
  filename?: string | null;
  name?: string | null;
  created: number;
  started: number;
  abortSignal?: { aborted?: boolean; addEventListener?: AnyFn; once?: AnyFn } | null;
  [RECORD]?: PoolTask;
}

type TaskInfoClass = new (...args: unknown[]) => TaskInfoLike;

export class PiscinaInstrumentation extends InstrumentationBase {
  private readonly patches = new Patches('piscina instrumentation');
  /** Set while run() executes: the TaskInfo built inside it belongs to this pool. */
  private submitting: PiscinaLike | undefined;
  /** Whether the run() executing built a TaskInfo: one that did not was refused outright. */
  private madeTask = false;
  /** The task record the run() executing made, if any. */
  private record: PoolTask | undefined;
  /** Set when the pool builds one of its refusal errors (queue at limit, no queue). */
  private refusing = false;

  constructor() {
    super('@stallscope/instrumentation-piscina', VERSION, {});
  }

  protected init() {
    const taskQueue = new InstrumentationNodeModuleFile(
      'piscina/dist/task_queue/index.js',
      SUPPORTED,
      (exports: { TaskInfo: TaskInfoClass }) => {
        this.patches.wrap<TaskInfoClass>(exports, 'TaskInfo', (Original) => this.trackedTaskInfo(Original));
        return exports;
      },
      (exports: { TaskInfo: TaskInfoClass }) => {
        this.patches.unwrap(exports, 'TaskInfo');
        return exports;
      },
    );
    // Piscina's main module is the class (CommonJS) or a namespace whose default is the class
    // (ESM); either way the prototype is shared. Its files load through CommonJS in both cases.
    const main = new InstrumentationNodeModuleFile(
      'piscina/dist/index.js',
      SUPPORTED,
      (exports: { default?: { prototype: Record<string, unknown> } }) => {
        if (exports.default) this.patchPool(exports.default.prototype);
        return exports;
      },
      (exports: { default?: { prototype: Record<string | symbol, unknown> } }) => {
        const proto = exports.default?.prototype;
        if (proto) for (const method of ['run', 'runTask']) this.patches.unwrap(proto, method);
        return exports;
      },
    );
    // The pool refuses a task (its queue full, or no queue) by building one of these errors.
    const errors = new InstrumentationNodeModuleFile(
      'piscina/dist/errors.js',
      SUPPORTED,
      (exports: { Errors?: Record<string, AnyFn> }) => {
        const errors = exports.Errors;
        if (!errors) return exports;
        for (const name of REFUSALS) {
          this.patches.wrap(errors, name, (make) => (...args: unknown[]) => {
            this.refusing = true;
            return make(...args);
          });
        }
        return exports;
      },
      (exports: { Errors?: Record<string, AnyFn> }) => {
        if (exports.Errors) for (const name of REFUSALS) this.patches.unwrap(exports.Errors, name);
        return exports;
      },
    );
    return [
      new InstrumentationNodeModuleDefinition('piscina', SUPPORTED, undefined, undefined, [taskQueue, main, errors]),
    ];
  }

  private patchPool(proto: Record<string | symbol, unknown>): void {
    for (const method of ['run', 'runTask']) this.patches.wrap(proto, method, (original) => this.run(original)); // runTask: 4.x only
  }

  private run(original: AnyFn): AnyFn {
    const self = this;
    return function (this: PiscinaLike, _task: unknown, options?: { name?: unknown }): unknown {
      const outer = self.submitting;
      const outerMade = self.madeTask;
      const outerRecord = self.record;
      self.submitting = this;
      self.madeTask = false;
      self.record = undefined;
      self.refusing = false;
      try {
        return Reflect.apply(original, this, arguments);
      } finally {
        const made = self.madeTask;
        // Bad options, or a full queue: the task never entered the pool.
        if (!made) self.refused(this, typeof options?.name === 'string' ? options.name : 'default');
        else if (self.refusing && self.record) activePoolTracker()?.ended(self.record, 'rejected');
        self.refusing = false;
        self.submitting = outer;
        self.madeTask = outerMade || made;
        self.record = outerRecord;
      }
    };
  }

  private resourceOf(pool: PiscinaLike, task: TaskInfoLike): PoolResource | undefined {
    const tracker = activePoolTracker();
    if (!tracker) return undefined;
    let r = pool[RESOURCE];
    if (!r) {
      const file = pool.options?.filename ?? task.filename;
      r = tracker.pool(file ? scriptName(file) : 'piscina', 'piscina', pool, {
        queueSize: (p) => (p as PiscinaLike).queueSize,
        threads: (p) => (p as PiscinaLike).threads.length,
      });
      Object.defineProperty(pool, RESOURCE, { value: r, configurable: true });
    }
    return r;
  }

  /** A TaskInfo that ties each task to its pool and caller, and ends it in done(). */
  private trackedTaskInfo(Original: TaskInfoClass): TaskInfoClass {
    const self = this;
    class TrackedTaskInfo extends Original {
      constructor(...args: unknown[]) {
        super(...args);
        const pool = self.submitting;
        self.madeTask = true;
        if (pool) self.track(this, pool);
      }

      done(...args: unknown[]): unknown {
        const t = this[RECORD];
        if (t) {
          if (this.started > 0) t.startedAt = this.started;
          activePoolTracker()?.ended(
            t,
            args[0] ? (this.abortSignal?.aborted ? 'cancelled' : 'error') : 'completed',
            args[0],
          );
        }
        return Reflect.apply((Original.prototype as unknown as { done: AnyFn }).done, this, args);
      }
    }
    return TrackedTaskInfo;
  }

  private refused(pool: PiscinaLike, name: string): void {
    try {
      const tracker = activePoolTracker();
      const resource = this.resourceOf(pool, {} as TaskInfoLike);
      if (tracker && resource) tracker.ended(tracker.submitted(resource, name, context.active()), 'rejected');
    } catch (err) {
      report('piscina instrumentation', err);
    }
  }

  private track(info: TaskInfoLike, pool: PiscinaLike): void {
    try {
      const tracker = activePoolTracker();
      const resource = this.resourceOf(pool, info);
      if (!tracker || !resource) return;
      const t = tracker.submitted(resource, info.name ?? 'default', context.active());
      t.submittedAt = info.created;
      this.record = t;
      // `started` is set as the task is posted to a worker; done() reads it.
      Object.defineProperty(info, RECORD, { value: t, configurable: true });
      // A task aborted while still queued never reaches done(). The listener dies with the
      // signal, which is usually per request.
      const signal = info.abortSignal;
      const onAbort = () => {
        if (!(info.started > 0)) tracker.ended(t, 'cancelled');
      };
      if (signal?.aborted) onAbort();
      else if (typeof signal?.addEventListener === 'function') {
        signal.addEventListener('abort', onAbort, { once: true });
        t.detach = () => (signal as AbortSignal).removeEventListener('abort', onAbort);
      } else if (typeof signal?.once === 'function') {
        signal.once('abort', onAbort);
        t.detach = () => (signal as unknown as NodeJS.EventEmitter).off('abort', onAbort);
      }
    } catch (err) {
      report('piscina instrumentation', err);
    }
  }
}
