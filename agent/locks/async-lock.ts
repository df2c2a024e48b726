// async-lock 1.x: keyed locks. acquire(key, fn) runs fn once the key is free and frees the key
// when fn ends (its callback, or its promise); an array of keys nests one acquire per key. The
// grant is the moment the library calls fn, and the release the moment fn ends, so wrapping fn
// sees both without touching the library's queue. Keys can be many (one per user): a key gets a
// resource of its own once it is contended, up to MAX_KEYS per lock; the rest share one.
import { InstrumentationBase, InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import {
  activeTracker,
  callHeld,
  captureLockStack,
  siteOf,
  type Acquisition,
  type LockResource,
  type LockTracker,
} from './tracker';
import { LOCK_NAME_KEY } from './async-mutex';
import { report } from '../safety';
import { Patches, type AnyFn } from '../patch';

const VERSION = '0.1.0';
const STATE = Symbol('stallscope.asyncLock');
const TYPE = 'async-lock';
/** Keys of one lock with a resource of their own. */
export const MAX_KEYS = 50;
/** A key idle this long gives its place to another. */
const KEY_IDLE_MS = 60_000;
/** Longer timeouts overflow Node's timers: the library's then fires at once, and ours is not set. */
const TIMEOUT_MAX = 2 ** 31 - 1;

interface LockState {
  created?: { stack?: string };
  keys: Map<string, LockResource>;
  others?: LockResource;
  /** The acquisition holding each key now, for "who waited on whom" across resources. */
  holders: Map<string, Acquisition>;
}

interface AsyncLockLike {
  queues: Record<string, unknown[]>;
  timeout: number;
  maxOccupationTime: number;
  maxPending: number;
  domainReentrant: boolean;
  [STATE]?: LockState;
  [LOCK_NAME_KEY]?: string;
}

interface AcquireOptions {
  timeout?: number;
  maxOccupationTime?: number;
  maxPending?: number;
}

export class AsyncLockInstrumentation extends InstrumentationBase {
  private readonly patches = new Patches('async-lock instrumentation');

  constructor() {
    super('@stallscope/instrumentation-async-lock', VERSION, {});
  }

  protected init() {
    return [
      new InstrumentationNodeModuleDefinition(
        'async-lock',
        ['>=1.0.0 <2'],
        (exports: {
          prototype: Record<string | symbol, unknown>;
          default?: { prototype: Record<string | symbol, unknown> };
        }) => {
          // CommonJS: the constructor itself; from ESM, a namespace whose default is it.
          this.patch((exports.default ?? exports).prototype);
          return exports;
        },
        (exports: {
          prototype: Record<string | symbol, unknown>;
          default?: { prototype: Record<string | symbol, unknown> };
        }) => {
          this.unpatch((exports.default ?? exports).prototype);
          return exports;
        },
      ),
    ];
  }

  private patch(proto: Record<string | symbol, unknown>): void {
    if (!proto) return;
    // The constructor's `this.queues = ...` lands here first: where the lock was created.
    function created(this: AsyncLockLike, value: Record<string, unknown[]>): void {
      Object.defineProperty(this, 'queues', { value, writable: true, enumerable: true, configurable: true });
      try {
        Object.defineProperty(this, STATE, {
          value: { created: captureLockStack(created), keys: new Map(), holders: new Map() },
          configurable: true,
        });
      } catch (err) {
        report('async-lock instrumentation', err);
      }
    }
    this.patches.define(proto, 'queues', { set: created });
    this.patches.wrap(proto, 'acquire', (acquire) => this.acquire(acquire));
  }

  /** The library's acquire(), tracked: the request is made here, the grant and release in fn. */
  private acquire(acquire: AnyFn): AnyFn {
    const self = this;
    return function acquireTracked(
      this: AsyncLockLike,
      key: unknown,
      fn: unknown,
      cb?: unknown,
      opts?: unknown,
    ): unknown {
      const tracker = activeTracker();
      // Arrays come back here one key at a time; a domain-reentrant lock may grant to a holder.
      if (!tracker || Array.isArray(key) || typeof fn !== 'function' || this.domainReentrant)
        return Reflect.apply(acquire, this, arguments);
      let acq: Acquisition | undefined;
      let wrapped = fn;
      const timers: NodeJS.Timeout[] = [];
      let queued = 0;
      const k = String(key);
      try {
        // The library indexes its queues by the key itself (a symbol stays a symbol).
        const queue = this.queues[key as string];
        const available = queue === undefined;
        const resource = self.resourceOf(this, tracker, k, !available);
        acq = tracker.request(resource, available, acquireTracked, 1);
        acq.lockKey = k; // keys sharing one resource do not wait for each other
        const state = this[STATE]!;
        wrapped = self.wrap(fn as AnyFn, acq, tracker, state, k, timers);
        if (!available) {
          queued = queue.length;
          const options = (typeof cb === 'function' ? opts : cb) as AcquireOptions | undefined;
          // A request still queued when either timer fires is rejected by the library, and
          // never runs. Ours are set before the library's of the same length: they fire first.
          for (const ms of [options?.timeout || this.timeout, options?.maxOccupationTime || this.maxOccupationTime]) {
            if (!(ms > 0 && ms <= TIMEOUT_MAX)) continue;
            const waiting = acq;
            timers.push(setTimeout(() => tracker.failed(waiting, 'timeout'), ms).unref());
          }
        }
      } catch (err) {
        report('async-lock instrumentation', err);
      }
      try {
        // Missing trailing arguments and undefined ones mean the same to the library.
        return acquire.call(this, key, wrapped, cb, opts);
      } finally {
        // Refused outright (too many pending): the queue did not grow.
        if (
          acq !== undefined &&
          acq.contended &&
          acq.grantedAt === undefined &&
          (this.queues[key as string]?.length ?? 0) <= queued
        ) {
          for (const t of timers) clearTimeout(t);
          tracker.failed(acq, 'error');
        }
      }
    };
  }

  /** fn as the library will call it: the call is the grant, its end the release. Same arity. */
  private wrap(
    fn: AnyFn,
    acq: Acquisition,
    tracker: LockTracker,
    state: LockState,
    key: string,
    timers: NodeJS.Timeout[],
  ): AnyFn {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (state.holders.get(key) === acq) state.holders.delete(key);
      tracker.released(acq.resource, acq);
    };
    const grant = () => {
      for (const t of timers) clearTimeout(t);
      tracker.granted(acq);
      state.holders.set(key, acq);
    };
    if (fn.length === 1) {
      return function (this: unknown, done: unknown) {
        grant();
        try {
          return fn.call(this, function (this: unknown) {
            release();
            return Reflect.apply(done as AnyFn, this, arguments);
          });
        } catch (err) {
          release();
          throw err;
        }
      };
    }
    return function (this: unknown) {
      return callHeld(fn, this, arguments, grant, release);
    };
  }

  private resourceOf(lock: AsyncLockLike, tracker: LockTracker, key: string, contended: boolean): LockResource {
    let state = lock[STATE];
    if (!state) {
      state = { keys: new Map(), holders: new Map() };
      Object.defineProperty(lock, STATE, { value: state, configurable: true });
    }
    const own = state.keys.get(key);
    if (own) return own;
    const now = performance.now();
    const name = lock[LOCK_NAME_KEY];
    if (contended && tracker.keyNames && (state.keys.size < MAX_KEYS || this.evictIdle(state, tracker, now))) {
      const resource = tracker.resource(name ? `${name}:${key}` : key, TYPE, lock);
      state.keys.set(key, resource);
      // The holder took the key while it shared a resource; its hold continues on this one.
      const holder = state.holders.get(key);
      if (holder) tracker.moveHolder(holder, resource);
      return resource;
    }
    state.others ??= tracker.resource(
      `${name ?? (state.created ? siteOf(state.created) : 'async-lock')} (other keys)`,
      TYPE,
      lock,
    );
    return state.others;
  }

  /** Frees the place of keys idle for a while; whether one was freed. */
  private evictIdle(state: LockState, tracker: LockTracker, now: number): boolean {
    let freed = false;
    for (const [key, resource] of state.keys) {
      if (now - resource.lastRequested > KEY_IDLE_MS && resource.holders.length === 0 && resource.waiting === 0) {
        state.keys.delete(key);
        tracker.forget(resource);
        freed = true;
      }
    }
    return freed;
  }

  private unpatch(proto: Record<string | symbol, unknown>): void {
    if (!proto) return;
    this.patches.unwrap(proto, 'acquire');
    this.patches.unwrap(proto, 'queues');
  }
}
