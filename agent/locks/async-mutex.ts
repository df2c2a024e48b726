// async-mutex >= 0.5 (Mutex and Semaphore, CommonJS and ESM builds). A Mutex delegates to an
// inner Semaphore, and runExclusive goes through Semaphore.prototype.acquire, so patching the
// Semaphore prototype sees every acquisition. The library's exports are read-only getters, so
// constructors cannot be replaced; instead an accessor on the prototype catches the
// constructor's `this._queue = []` and records where the lock was created, which names it.
import {
  InstrumentationBase,
  InstrumentationNodeModuleDefinition,
  InstrumentationNodeModuleFile,
} from '@opentelemetry/instrumentation';
import {
  activeTracker,
  captureLockStack,
  siteOf,
  type Acquisition,
  type LockResource,
  type LockTracker,
} from './tracker';
import { framesOf } from '../stack';
import { report } from '../safety';
import { Patches, shaped, type AnyFn } from '../patch';

const VERSION = '0.1.0';
const CREATED = Symbol('stallscope.created');
const RESOURCE = Symbol('stallscope.resource');
const TASK = Symbol('stallscope.acquisition');
const SUPPORTED = ['>=0.5.0 <1'];
const TIMEOUT_MAX = 2 ** 31 - 1;

interface Task {
  resolve: (ticket: [number, () => void]) => void;
  reject: (err: unknown) => void;
  weight: number;
  [TASK]?: Acquisition;
}
/** Set by nameLock() on a lock (and a Mutex's inner semaphore). */
export const LOCK_NAME_KEY = Symbol.for('stallscope.lockName');

interface SemaphoreLike {
  _value: number;
  _queue: unknown[];
  _cancelError?: unknown;
  _couldLockImmediately: (weight: number, priority: number) => boolean;
  [CREATED]?: { stack?: string };
  [RESOURCE]?: LockResource;
  [LOCK_NAME_KEY]?: string;
}

type Decorator = (sync: unknown, ...rest: unknown[]) => Record<string | symbol, unknown>;

interface AsyncMutexExports {
  Semaphore: { prototype: Record<string | symbol, unknown> };
  withTimeout: Decorator;
  tryAcquire: Decorator;
}

function writable(target: object, name: string): boolean {
  const desc = Object.getOwnPropertyDescriptor(target, name);
  return !desc || desc.writable === true || desc.set !== undefined;
}

export class AsyncMutexInstrumentation extends InstrumentationBase {
  private readonly patches = new Patches('async-mutex instrumentation');
  /** > 0 while one of our releasers runs, so its inner release() is not counted twice. */
  private releasing = 0;
  /** The acquisition whose acquire() call is running: a task dispatched inside it is its own. */
  private current: Acquisition | undefined;
  /** The last acquisition requested, read by a withTimeout decorator right after its call. */
  private lastRequested: Acquisition | undefined;

  constructor() {
    super('@stallscope/instrumentation-async-mutex', VERSION, {});
  }

  private get tracker(): LockTracker | undefined {
    return activeTracker();
  }

  protected init() {
    return [
      new InstrumentationNodeModuleDefinition(
        'async-mutex',
        // 0.5 is the first with the internals used here (_queue of tasks, _dispatchItem, _couldLockImmediately).
        SUPPORTED,
        (exports: AsyncMutexExports) => {
          this.patch(exports);
          // The ESM build is one file whose tryAcquire calls its own withTimeout: both exports are
          // replaced. CommonJS exports are read-only getters, patched in lib/withTimeout.js below.
          this.replaceExport(exports, 'withTimeout', (args) => Number(args[1]));
          this.replaceExport(exports, 'tryAcquire', () => 0);
          return exports;
        },
        (exports: AsyncMutexExports) => {
          this.unpatch(exports);
          return exports;
        },
        [
          new InstrumentationNodeModuleFile(
            'async-mutex/lib/withTimeout.js',
            SUPPORTED,
            (exports: AsyncMutexExports) => {
              this.replaceExport(exports, 'withTimeout', (args) => Number(args[1]));
              return exports;
            },
            (exports: AsyncMutexExports) => {
              this.patches.unwrap(exports, 'withTimeout');
              return exports;
            },
          ),
        ],
      ),
    ];
  }

  private resourceOf(sem: SemaphoreLike): LockResource | undefined {
    const tracker = this.tracker;
    if (!tracker) return undefined;
    let r = sem[RESOURCE];
    if (!r) {
      const created = sem[CREATED];
      const frames = created ? framesOf(created) : [];
      const type = frames.some((f) => f.function === 'new Mutex') ? 'async-mutex.Mutex' : 'async-mutex.Semaphore';
      r = tracker.resource(sem[LOCK_NAME_KEY] ?? (created ? siteOf(created) : 'async-mutex (unknown site)'), type, sem);
      sem[RESOURCE] = r;
    }
    return r;
  }

  private patch(exports: AsyncMutexExports): void {
    const proto = exports.Semaphore?.prototype;
    if (!proto) return;
    // Runs inside the constructor: `this._queue = []` lands here first.
    function created(this: SemaphoreLike, value: unknown[]): void {
      Object.defineProperty(this, '_queue', { value, writable: true, enumerable: true, configurable: true });
      try {
        Object.defineProperty(this, CREATED, { value: captureLockStack(created), configurable: true });
      } catch (err) {
        report('async-mutex instrumentation', err);
      }
    }
    this.patches.define(proto, '_queue', { set: created });
    this.patches.wrap(proto, 'acquire', (acquire) => this.acquire(acquire));
    this.patches.wrap(proto, '_dispatchItem', (dispatch) => this.dispatchItem(dispatch));
    this.patches.wrap(proto, 'release', (release) => this.release(release));
    this.patches.wrap(proto, 'waitForUnlock', (waitForUnlock) => this.waitForUnlock(waitForUnlock));
    this.patches.wrap(proto, 'setValue', (setValue) => this.setValue(setValue));
  }

  // The library grants in _dispatchItem(task), synchronously: at once inside acquire() for a
  // free lock, or inside release() for the next queued task. Tagging each task with its
  // acquisition and hooking that point records grants at the exact moment, and hands out the
  // tracked releaser without adding a promise step, so the order of events is unchanged.
  private acquire(acquire: AnyFn): AnyFn {
    const self = this;
    return function acquireTracked(this: SemaphoreLike, weight: number = 1, priority: number = 0): unknown {
      let acq: Acquisition | undefined;
      try {
        const resource = self.resourceOf(this);
        if (resource && weight > 0) {
          const available = this._couldLockImmediately(weight, priority);
          acq = self.tracker!.request(resource, available, acquireTracked, weight);
          self.lastRequested = acq;
        }
      } catch (err) {
        report('async-mutex instrumentation', err);
      }
      if (!acq) return Reflect.apply(acquire, this, arguments);
      const queued = this._queue.length;
      self.current = acq;
      try {
        return Reflect.apply(acquire, this, arguments);
      } catch (err) {
        self.tracker!.abandon(acq);
        throw err;
      } finally {
        self.current = undefined;
        // Queued rather than granted: find the new task (the queue grew by one) and tag it.
        if (!acq.grantedAt && this._queue.length > queued) {
          // Equal priorities append; searching from the end finds it at once.
          const queue = this._queue as Task[];
          for (let i = queue.length - 1; i >= 0; i--) {
            if (!queue[i][TASK]) {
              self.tag(queue[i], acq, this);
              break;
            }
          }
        }
      }
    };
  }

  private dispatchItem(dispatch: AnyFn): AnyFn {
    const self = this;
    return function (this: SemaphoreLike, item: Task): unknown {
      let acq = item[TASK];
      if (!acq && self.current) {
        acq = self.current;
        // A free mutex has one holder, so its own releaser's bare release() ends exactly this
        // hold: the fast path, most acquisitions, needs no tracked releaser.
        if (acq.resource.type === 'async-mutex.Mutex') item[TASK] = acq;
        else self.tag(item, acq, this);
      }
      if (acq) self.tracker?.granted(acq);
      return Reflect.apply(dispatch, this, [item]);
    };
  }

  private release(release: AnyFn): AnyFn {
    const self = this;
    return function (this: SemaphoreLike, weight: number = 1): unknown {
      // A bare release() (Mutex.release, Semaphore.release, a free mutex's own releaser) ends the
      // oldest holds for that weight.
      if (self.releasing === 0 && this[RESOURCE]) self.tracker?.released(this[RESOURCE], undefined, weight);
      return Reflect.apply(release, this, arguments);
    };
  }

  /** Waiting for a lock to be free without taking it is still time lost to the lock. */
  private waitForUnlock(waitForUnlock: AnyFn): AnyFn {
    const self = this;
    return function waitTracked(this: SemaphoreLike, weight: number = 1, priority: number = 0): unknown {
      const result = Reflect.apply(waitForUnlock, this, arguments);
      try {
        const resource = self.resourceOf(this);
        if (resource && weight > 0 && !this._couldLockImmediately(weight, priority) && result instanceof Promise) {
          const acq = self.tracker!.request(resource, false, waitTracked, weight);
          // This promise only ever resolves, so a handler on it changes nothing for the app.
          result.then(() => self.tracker!.failed(acq, 'unlocked'));
        }
      } catch (err) {
        report('async-mutex instrumentation', err);
      }
      return result;
    };
  }

  /**
   * setValue() re-bases the count (a token bucket refilling): the slots taken so far are no
   * longer holds that anyone will give back.
   */
  private setValue(setValue: AnyFn): AnyFn {
    const self = this;
    return function (this: SemaphoreLike): unknown {
      if (this[RESOURCE]) self.tracker?.forgetHolders(this[RESOURCE]);
      return Reflect.apply(setValue, this, arguments);
    };
  }

  /**
   * Replaces a decorator export (withTimeout, tryAcquire) where the module allows it: an ESM
   * namespace seen through import-in-the-middle, or a plain CommonJS assignment.
   */
  private replaceExport(
    exports: AsyncMutexExports,
    name: 'withTimeout' | 'tryAcquire',
    timeoutOf: (args: unknown[]) => number,
  ): void {
    if (!writable(exports, name)) return; // a CommonJS getter
    const self = this;
    this.patches.wrap(
      exports,
      name,
      (original) =>
        function (this: unknown): unknown {
          const decorated = Reflect.apply(original, this, arguments) as Record<string | symbol, unknown>;
          try {
            self.timed(decorated, timeoutOf(Array.from(arguments)));
          } catch (err) {
            report('async-mutex instrumentation', err);
          }
          return decorated;
        },
    );
  }

  /**
   * A withTimeout (or tryAcquire, a zero timeout) decoration rejects the caller when its timer
   * fires but leaves the request queued, and drops it at once when granted later. A timer of the
   * same length set just before the library's fires just before it, with nothing in between that
   * could grant the lock: a request still waiting then is the one that times out. The app's
   * promise is never touched, so its rejection handling is unchanged.
   */
  private timed(decorated: Record<string | symbol, unknown>, timeout: number): void {
    const acquire = decorated.acquire as AnyFn;
    if (typeof acquire !== 'function' || !Number.isFinite(timeout)) return;
    const self = this;
    // A method of each decorated lock: replaced in place, never undone (the lock is the app's).
    decorated.acquire = shaped(function (this: unknown): unknown {
      const tracker = self.tracker;
      // Past 2^31-1 ms Node fires a timer at once (with a warning): the library's then rejects
      // at once, and a second timer would only repeat the warning.
      if (!tracker || !(timeout <= TIMEOUT_MAX)) return Reflect.apply(acquire, this, arguments);
      let acq: Acquisition | undefined;
      const timer = setTimeout(() => {
        if (acq) tracker.failed(acq, 'timeout');
      }, timeout);
      self.lastRequested = undefined;
      try {
        return Reflect.apply(acquire, this, arguments);
      } finally {
        // Left in place: a decoration of a decoration reads the same request after this returns.
        acq = self.lastRequested as Acquisition | undefined; // set by the acquire() just called
        if (!acq || acq.grantedAt !== undefined) clearTimeout(timer);
        else timer.unref();
      }
    }, acquire);
  }

  /** Binds a library task to its acquisition: grant, releaser and rejection report to it. */
  private tag(task: Task, acq: Acquisition, sem: SemaphoreLike): void {
    task[TASK] = acq;
    const resolve = task.resolve;
    const reject = task.reject;
    const tracker = this.tracker!;
    task.resolve = (ticket: [number, () => void]) => {
      const releaser = ticket[1];
      let done = false;
      const tracked = () => {
        if (!done) {
          done = true;
          tracker.released(acq.resource, acq);
        }
        this.releasing++;
        try {
          return releaser();
        } finally {
          this.releasing--;
        }
      };
      resolve([ticket[0], tracked]);
    };
    task.reject = (err: unknown) => {
      tracker.failed(acq, err === sem._cancelError ? 'cancelled' : 'error');
      reject(err);
    };
  }

  private unpatch(exports: AsyncMutexExports): void {
    for (const name of ['withTimeout', 'tryAcquire']) this.patches.unwrap(exports, name);
    const proto = exports.Semaphore?.prototype;
    if (!proto) return;
    for (const key of ['acquire', 'release', '_dispatchItem', 'setValue', 'waitForUnlock', '_queue'])
      this.patches.unwrap(proto, key);
  }
}
