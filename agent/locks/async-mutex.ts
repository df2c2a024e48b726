// async-mutex (Mutex and Semaphore, CommonJS and ESM builds). A Mutex delegates to an inner
// Semaphore, and runExclusive goes through Semaphore.prototype.acquire, so patching the
// Semaphore prototype sees every acquisition. The library's exports are read-only getters, so
// constructors cannot be replaced; instead an accessor on the prototype catches the
// constructor's `this._queue = []` and records where the lock was created, which names it.
import { InstrumentationBase, InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import { captureStack, siteOf, type Acquisition, type LockResource, type LockTracker } from './tracker';
import { parseV8Stack } from '../stack';
import { report } from '../safety';

const VERSION = '0.1.0';
const CREATED = Symbol('stallscope.created');
const RESOURCE = Symbol('stallscope.resource');
const ORIGINALS = Symbol('stallscope.originals');
/** Set by nameLock() on a lock (and a Mutex's inner semaphore). */
export const LOCK_NAME_KEY = Symbol.for('stallscope.lockName');

type AnyFn = (...args: unknown[]) => unknown;

interface SemaphoreLike {
  _value: number;
  _queue: unknown[];
  _cancelError?: unknown;
  _couldLockImmediately?: (weight: number, priority: number) => boolean;
  [CREATED]?: { stack?: string };
  [RESOURCE]?: LockResource;
  [LOCK_NAME_KEY]?: string;
}

interface AsyncMutexExports {
  Semaphore: { prototype: Record<string | symbol, unknown> };
}

export class AsyncMutexInstrumentation extends InstrumentationBase {
  private tracker: LockTracker | undefined;
  /** > 0 while one of our releasers runs, so its inner release() is not counted twice. */
  private releasing = 0;

  constructor() {
    super('@stallscope/instrumentation-async-mutex', VERSION, {});
  }

  setTracker(tracker: LockTracker): void {
    this.tracker = tracker;
  }

  protected init() {
    return [
      new InstrumentationNodeModuleDefinition(
        'async-mutex',
        ['>=0.4.0 <1'],
        (exports: AsyncMutexExports) => {
          this.patch(exports);
          return exports;
        },
        (exports: AsyncMutexExports) => {
          this.unpatch(exports);
          return exports;
        },
      ),
    ];
  }

  private resourceOf(sem: SemaphoreLike): LockResource | undefined {
    const tracker = this.tracker;
    if (!tracker) return undefined;
    let r = sem[RESOURCE];
    if (!r) {
      const created = sem[CREATED];
      const frames = parseV8Stack(created?.stack ?? '');
      const type = frames.some((f) => f.function === 'new Mutex') ? 'async-mutex.Mutex' : 'async-mutex.Semaphore';
      r = tracker.resource(sem[LOCK_NAME_KEY] ?? (created ? siteOf(created) : 'async-mutex (unknown site)'), type, sem);
      sem[RESOURCE] = r;
    }
    return r;
  }

  private patch(exports: AsyncMutexExports): void {
    const proto = exports.Semaphore.prototype;
    if (proto[ORIGINALS]) return;
    const self = this;
    const acquire = proto.acquire as AnyFn;
    const release = proto.release as AnyFn;
    Object.defineProperty(proto, ORIGINALS, { value: { acquire, release }, configurable: true });

    // Runs inside the constructor: `this._queue = []` lands here first.
    function created(this: SemaphoreLike, value: unknown[]): void {
      Object.defineProperty(this, '_queue', { value, writable: true, enumerable: true, configurable: true });
      try {
        Object.defineProperty(this, CREATED, { value: captureStack(created), configurable: true });
      } catch (err) {
        report('async-mutex instrumentation', err);
      }
    }
    Object.defineProperty(proto, '_queue', { configurable: true, set: created });

    proto.acquire = function (this: SemaphoreLike, weight: number = 1, priority: number = 0): unknown {
      let acq: Acquisition | undefined;
      let resource: LockResource | undefined;
      try {
        resource = self.resourceOf(this);
        if (resource) {
          const available = this._couldLockImmediately ? this._couldLockImmediately(weight, priority) : weight <= this._value && this._queue.length === 0;
          acq = self.tracker!.request(resource, available, proto.acquire as AnyFn);
        }
      } catch (err) {
        report('async-mutex instrumentation', err);
      }
      // eslint-disable-next-line prefer-rest-params
      const pending = Reflect.apply(acquire, this, arguments) as Promise<[number, () => void]>;
      if (!acq || !resource) return pending;
      const tracker = self.tracker!;
      if (!acq.contended && resource.type === 'async-mutex.Mutex') {
        // The fast path, most acquisitions: a free mutex is granted within acquire() and has one
        // holder, so its bare release() identifies the hold exactly; the promise is left alone.
        tracker.granted(acq);
        return pending;
      }
      const sem = this;
      const a = acq;
      const r = resource;
      return pending.then(
        ([value, releaser]) => {
          tracker.granted(a);
          let done = false;
          const tracked = () => {
            if (!done) {
              done = true;
              tracker.released(r, a);
            }
            self.releasing++;
            try {
              return releaser();
            } finally {
              self.releasing--;
            }
          };
          return [value, tracked];
        },
        (err: unknown) => {
          tracker.failed(a, err === sem._cancelError ? 'cancelled' : 'error');
          throw err;
        },
      );
    };
    Object.defineProperty(proto.acquire, 'length', { value: acquire.length });

    proto.release = function (this: SemaphoreLike): unknown {
      // A bare release() (Mutex.release, Semaphore.release) ends the oldest hold.
      if (self.releasing === 0 && this[RESOURCE]) self.tracker?.released(this[RESOURCE]);
      // eslint-disable-next-line prefer-rest-params
      return Reflect.apply(release, this, arguments);
    };
    Object.defineProperty(proto.release, 'length', { value: release.length });
  }

  private unpatch(exports: AsyncMutexExports): void {
    const proto = exports.Semaphore.prototype;
    const originals = proto[ORIGINALS] as { acquire: AnyFn; release: AnyFn } | undefined;
    if (!originals) return;
    proto.acquire = originals.acquire;
    proto.release = originals.release;
    delete proto._queue;
    delete proto[ORIGINALS];
  }
}
