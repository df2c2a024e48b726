// Web Locks (navigator.locks, Node >= 24.5): request(name, [options], callback) holds the lock
// named `name` while the callback's promise is pending. The callback runs at the grant; Node
// (24.21, measured) runs it inside request() when the lock is free, so a callback not yet run
// when request() returns means the request queued. Names can be many: MAX_NAMES get a resource
// of their own, the rest share one.
import { activeTracker, callHeld, cancelOnAbort, type Acquisition, type LockResource } from './tracker';
import { report } from '../safety';
import { Patches } from '../patch';

const TYPE = 'web-locks';
const MAX_NAMES = 200;

type Request = (name: unknown, ...rest: unknown[]) => Promise<unknown>;

interface LockOptions {
  signal?: AbortSignal;
  steal?: boolean;
  ifAvailable?: boolean;
  mode?: string;
}

/** What the Web Locks API rejects without queuing (the spec's request() checks). */
function refusedAtOnce(name: unknown, options: LockOptions | undefined): boolean {
  if (String(name).startsWith('-')) return true;
  if (!options) return false;
  if (options.signal?.aborted) return true;
  if (options.steal && (options.ifAvailable || options.mode === 'shared' || options.signal)) return true;
  return options.ifAvailable === true && options.signal !== undefined;
}

export class WebLocksInstrumentation {
  private readonly resources = new Map<string, LockResource>();
  private others: LockResource | undefined;
  /** Keeps the resources alive: names are not objects the tracker could watch. */
  private readonly owner = {};
  private readonly patches = new Patches('web locks instrumentation');

  /** Patches navigator.locks where the runtime has it; whether it did. */
  start(): boolean {
    const locks = (globalThis as { navigator?: { locks?: object } }).navigator?.locks;
    const proto = locks && (Object.getPrototypeOf(locks) as { request?: Request });
    if (!proto) return false;
    return this.patches.wrap(proto, 'request', (original: Request) => this.request(original)) !== undefined;
  }

  stop(): void {
    this.patches.restore();
  }

  private request(original: Request): Request {
    const self = this;
    return function request(this: unknown, name: unknown, ...rest: unknown[]): Promise<unknown> {
      const tracker = activeTracker();
      const callback = rest[rest.length - 1];
      const options = (rest.length === 2 ? rest[0] : undefined) as LockOptions | undefined;
      // Requests the API refuses at once (reserved names, bad option mixes, a signal already
      // aborted) are left to it: they never wait or hold.
      if (!tracker || typeof callback !== 'function' || rest.length > 2 || refusedAtOnce(name, options))
        return Reflect.apply(original, this, arguments);
      let acq: Acquisition | undefined;
      let resource: LockResource;
      try {
        resource = self.resourceOf(String(name));
      } catch (err) {
        report('web locks instrumentation', err);
        return Reflect.apply(original, this, arguments);
      }
      const wrapped = function (this: unknown, lock: unknown): unknown {
        const a = (acq ??= tracker.request(resource, true, request, 1));
        // ifAvailable and the lock was taken: the callback runs with null and holds nothing.
        if (lock === null) {
          tracker.failed(a, 'timeout');
          return Reflect.apply(callback, this, arguments);
        }
        return callHeld(
          callback as (...args: unknown[]) => unknown,
          this,
          arguments,
          () => tracker.granted(a),
          () => tracker.released(a.resource, a),
        );
      };
      const args = [name, ...rest.slice(0, -1), wrapped];
      const result = Reflect.apply(original, this, args);
      try {
        if (!acq) {
          acq = tracker.request(resource, false, request, 1);
          cancelOnAbort(tracker, acq, options?.signal);
        }
      } catch (err) {
        report('web locks instrumentation', err);
      }
      return result;
    };
  }

  private resourceOf(name: string): LockResource {
    const tracker = activeTracker()!;
    let r = this.resources.get(name);
    if (!r) {
      if (this.resources.size >= MAX_NAMES || !tracker.keyNames)
        return (this.others ??= tracker.resource('web-locks (other names)', TYPE, this.owner));
      r = tracker.resource(name, TYPE, this.owner);
      this.resources.set(name, r);
    }
    return r;
  }
}
