// Concurrency limiters are semaphores: a task waits for a slot, holds it while it runs, and
// frees it when it ends. p-limit (3 CommonJS; 4+ ES modules) is a factory of closures, so the
// factory is replaced and each limit function wrapped; p-queue (6 CommonJS, 7+ ES modules) is a
// class whose add() is patched. Either way the task function is wrapped: its call is the grant
// and its end the release. A limiter is named by the line that created it.
import { InstrumentationBase, InstrumentationNodeModuleDefinition } from '@opentelemetry/instrumentation';
import {
  activeTracker,
  callHeld,
  cancelOnAbort,
  captureLockStack,
  type Acquisition,
  type LockResource,
  type LockTracker,
} from './tracker';
import { siteOf } from '../sites';
import { LOCK_NAME_KEY } from './async-mutex';
import { report, warnOnce } from '../safety';
import { originalOf, Patches, shaped, type AnyFn } from '../patch';

const VERSION = '0.1.0';
const STATE = Symbol('stallscope.limiter');

/** One limiter: its resource (made on first use) and the requests still queued on it. */
interface LimiterState {
  created: { stack?: string };
  /** p-limit 3 has no `concurrency` property: the factory's argument. */
  concurrency?: number;
  resource?: LockResource;
  queued: Acquisition[];
  /** p-limit 4+ starts even a free slot's task a tick later: holders-to-be, for waiters' blockedBy. */
  starting: Acquisition[];
}

function resourceOf(
  tracker: LockTracker,
  state: LimiterState,
  type: string,
  owner: object & { [LOCK_NAME_KEY]?: string },
): LockResource {
  state.resource ??= tracker.resource(owner[LOCK_NAME_KEY] ?? siteOf(state.created), type, owner);
  return state.resource;
}

/** The newest `count` queued requests, which the limiter dropped (clearQueue, clear), end as cancelled. */
function cancelQueued(state: LimiterState, count: number): void {
  const tracker = activeTracker();
  const dropped = state.queued.splice(Math.max(0, state.queued.length - count));
  for (const acq of dropped) tracker?.failed(acq, 'cancelled');
}

function dequeue(state: LimiterState, acq: Acquisition): void {
  const list = acq.contended ? state.queued : state.starting;
  // Tasks mostly start in the order they came: the oldest first.
  if (list[0] === acq) list.shift();
  else {
    const i = list.indexOf(acq);
    if (i >= 0) list.splice(i, 1);
  }
}

/** A task function whose call is the grant of `acquisition()` and whose end is the release. */
function heldTask(fn: AnyFn, tracker: LockTracker, state: LimiterState, acquisition: () => Acquisition): AnyFn {
  return function (this: unknown) {
    const acq = acquisition();
    return callHeld(
      fn,
      this,
      arguments,
      () => {
        dequeue(state, acq);
        tracker.granted(acq);
      },
      () => tracker.released(acq.resource, acq),
    );
  };
}

interface Limit {
  (fn: AnyFn, ...args: unknown[]): Promise<unknown>;
  activeCount: number;
  pendingCount: number;
  concurrency: number;
  clearQueue(): void;
}

export class PLimitInstrumentation extends InstrumentationBase {
  private readonly wrappers = new WeakMap<AnyFn, AnyFn>();
  private readonly patches = new Patches('p-limit instrumentation');

  constructor() {
    super('@stallscope/instrumentation-p-limit', VERSION, {});
  }

  protected init() {
    return [
      new InstrumentationNodeModuleDefinition(
        'p-limit',
        ['>=3.0.0 <8'],
        (exports: AnyFn | Record<string, unknown>) => this.patch(exports),
        (exports: AnyFn | Record<string, unknown>) => this.unpatch(exports),
      ),
    ];
  }

  private patch(exports: AnyFn | Record<string, unknown>): unknown {
    try {
      // 3.x: module.exports is the factory; replacing the module's value is the only way in.
      if (typeof exports === 'function') return originalOf(exports) ? exports : this.wrapFactory(exports);
      const wrapped = this.patches.wrap(exports, 'default', (factory) => this.wrapFactory(factory), {
        // require() of the ES module hands out its frozen namespace: nothing can be replaced.
        failed: () =>
          warnOnce('p-limit loaded with require() of its ES module build is not instrumented; import it instead'),
      });
      if (wrapped) this.patches.wrap(exports, 'limitFunction', () => this.limitFunction(wrapped));
    } catch (err) {
      report('p-limit instrumentation', err);
    }
    return exports;
  }

  private unpatch(exports: AnyFn | Record<string, unknown>): unknown {
    if (typeof exports === 'function') return originalOf(exports) ?? exports;
    this.patches.unwrap(exports, 'default');
    this.patches.unwrap(exports, 'limitFunction');
    return exports;
  }

  /** The same wrapper for the same factory, whether reached through require or import. */
  private wrapFactory(factory: AnyFn): AnyFn {
    const known = this.wrappers.get(factory);
    if (known) return known;
    const self = this;
    const pLimit = function pLimit(this: unknown): unknown {
      const limit = Reflect.apply(factory, this, arguments) as Limit;
      try {
        const arg = arguments[0] as number | { concurrency?: number } | undefined;
        const concurrency = typeof arg === 'object' ? arg?.concurrency : arg;
        return self.wrapLimit(limit, { created: captureLockStack(pLimit), queued: [], starting: [], concurrency });
      } catch (err) {
        report('p-limit instrumentation', err);
        return limit;
      }
    };
    this.wrappers.set(factory, shaped(pLimit, factory));
    return pLimit;
  }

  /** limitFunction(fn, options) of 7.x, rebuilt on the wrapped factory (the library's calls its own). */
  private limitFunction(pLimit: AnyFn): AnyFn {
    return function limitFunction(...args: unknown[]): unknown {
      const [fn, options] = args as [AnyFn, unknown];
      const limit = pLimit(options) as Limit;
      const limited = (...args: unknown[]) => limit(() => fn(...args));
      Object.defineProperty(limited, 'clearQueue', { value: limit.clearQueue });
      return limited;
    };
  }

  /** A function that behaves as `limit`, with its properties, and tracks each task. */
  private wrapLimit(limit: Limit, state: LimiterState): Limit {
    // An arrow, like the library's own: no prototype, length 1.
    const generator = ((fn: unknown, ...args: unknown[]): Promise<unknown> => {
      const tracker = activeTracker();
      if (!tracker || typeof fn !== 'function') return Reflect.apply(limit, undefined, [fn, ...args]);
      let acq: Acquisition | undefined;
      try {
        // p-limit 3-6 dequeue a tick after the call, so a request just made is still pending.
        const available = limit.activeCount + limit.pendingCount < (limit.concurrency ?? state.concurrency);
        acq = tracker.request(resourceOf(tracker, state, 'p-limit', generator), available, generator, 1);
        if (available) state.starting.push(acq);
        else state.queued.push(acq);
      } catch (err) {
        report('p-limit instrumentation', err);
      }
      if (!acq) return limit(fn as AnyFn, ...args);
      const requested = acq;
      const task = heldTask(fn as AnyFn, tracker, state, () => requested);
      return args.length === 0 ? limit(task) : limit(task, ...args);
    }) as Limit;
    for (const key of Reflect.ownKeys(limit)) {
      if (key === 'length' || key === 'name' || key === 'prototype') continue;
      const desc = Object.getOwnPropertyDescriptor(limit, key)!;
      if (key === 'clearQueue') {
        desc.value = function clearQueue(this: unknown) {
          // The library drops the requests still in its queue: the newest `pendingCount`.
          const pending = limit.pendingCount;
          const result = Reflect.apply(limit.clearQueue, limit, arguments);
          cancelQueued(state, pending);
          return result;
        };
      } else if (key === 'map') {
        // The library's map calls its own generator; this one goes through the wrapper.
        desc.value = async function map(iterable: Iterable<unknown>, fn: AnyFn): Promise<unknown[]> {
          const promises: Array<Promise<unknown>> = [];
          try {
            Array.from(iterable, (value, index) => promises.push(generator(fn, value, index)));
          } catch (err) {
            for (const p of promises) p.catch(() => undefined);
            throw err;
          }
          return Promise.all(promises);
        };
      } else {
        if (desc.get) desc.get = desc.get.bind(limit);
        if (desc.set) desc.set = desc.set.bind(limit);
      }
      Object.defineProperty(generator, key, desc);
    }
    return generator;
  }
}

interface PQueueLike {
  size: number;
  [STATE]?: LimiterState;
  [LOCK_NAME_KEY]?: string;
}

export class PQueueInstrumentation extends InstrumentationBase {
  private readonly patches = new Patches('p-queue instrumentation');

  constructor() {
    super('@stallscope/instrumentation-p-queue', VERSION, {});
  }

  protected init() {
    return [
      new InstrumentationNodeModuleDefinition(
        'p-queue',
        ['>=6.0.0 <10'],
        (exports: { default?: { prototype: Record<string | symbol, unknown> } }) => {
          // The class is the default export in every build; patching its prototype works even
          // through a frozen namespace.
          if (exports.default) this.patch(exports.default.prototype);
          return exports;
        },
        (exports: { default?: { prototype: Record<string | symbol, unknown> } }) => {
          if (exports.default) this.unpatch(exports.default.prototype);
          return exports;
        },
      ),
    ];
  }

  private patch(proto: Record<string | symbol, unknown>): void {
    const concurrency = Object.getOwnPropertyDescriptor(proto, 'concurrency');
    if (typeof proto.add !== 'function' || !concurrency?.set) return;
    const setConcurrency = concurrency.set;

    // The constructor sets `this.concurrency`: the first call tells where the queue was made.
    this.patches.define(proto, 'concurrency', {
      ...concurrency,
      set: function concurrencySetter(this: PQueueLike, value: number) {
        if (!this[STATE]) {
          try {
            Object.defineProperty(this, STATE, {
              value: { created: captureLockStack(concurrencySetter), queued: [], starting: [] },
              configurable: true,
            });
          } catch (err) {
            report('p-queue instrumentation', err);
          }
        }
        Reflect.apply(setConcurrency, this, [value]);
      },
    });
    this.patches.wrap(proto, 'add', (add) => this.add(add));
    this.patches.wrap(
      proto,
      'clear',
      (clear) =>
        function (this: PQueueLike): unknown {
          const result = Reflect.apply(clear, this, arguments);
          const state = this[STATE];
          if (state) cancelQueued(state, state.queued.length);
          return result;
        },
    );
  }

  private add(add: AnyFn): AnyFn {
    return function addTracked(this: PQueueLike, fn: unknown, options?: { signal?: AbortSignal }): unknown {
      const tracker = activeTracker();
      const state = this[STATE];
      if (!tracker || !state || typeof fn !== 'function') return Reflect.apply(add, this, arguments);
      let acq: Acquisition | undefined;
      const queue = this;
      const size = this.size;
      // A free slot runs the task inside add() itself: then it never waited.
      const task = heldTask(
        fn as AnyFn,
        tracker,
        state,
        () => (acq ??= tracker.request(resourceOf(tracker, state, 'p-queue', queue), true, addTracked, 1)),
      );
      // An undefined options argument means the same to the library as a missing one.
      const result = add.call(this, task, options);
      try {
        // Neither run nor queued (bad options, a signal already aborted): nothing to track.
        if (!acq && this.size > size) {
          const waiting = (acq = tracker.request(resourceOf(tracker, state, 'p-queue', this), false, addTracked, 1));
          state.queued.push(waiting);
          cancelOnAbort(tracker, waiting, options?.signal, () => dequeue(state, waiting));
        }
      } catch (err) {
        report('p-queue instrumentation', err);
      }
      return result;
    };
  }

  private unpatch(proto: Record<string | symbol, unknown>): void {
    for (const key of ['add', 'clear', 'concurrency']) this.patches.unwrap(proto, key);
  }
}
