// stallscope's own lock: a fair (first come, first served) async semaphore, and a mutex as a
// semaphore of one, for code that has no lock library or wants a named one. It works the same
// whether or not the agent runs; when it runs, every acquisition is tracked like a library's.
import {
  activeTracker,
  captureLockStack,
  siteOf,
  type Acquisition,
  type LockResource,
  type LockTracker,
} from './tracker';
import { report } from '../safety';

export type Release = () => void;

const TIMEOUT_MAX = 2 ** 31 - 1;

export interface AcquireOptions {
  /** Slots to take at once (semaphores only); default 1. */
  weight?: number;
  /** Give up after this long: the promise rejects with a LockTimeoutError. */
  timeoutMs?: number;
  /** Give up when aborted: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export class LockTimeoutError extends Error {
  constructor(
    readonly lock: string,
    readonly timeoutMs: number,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for lock "${lock}"`);
    this.name = 'LockTimeoutError';
  }
}

interface Waiter {
  weight: number;
  grant: () => void;
  acq?: Acquisition;
}

export class Semaphore {
  private free: number;
  private readonly given: string | undefined;
  private readonly created: { stack?: string } | undefined;
  private site: string | undefined;
  private readonly queue: Waiter[] = [];
  private resourceFor: LockTracker | undefined;
  private resource: LockResource | undefined;

  constructor(
    readonly permits: number,
    name?: string,
  ) {
    if (!Number.isInteger(permits) || permits < 1)
      throw new RangeError(`permits must be an integer >= 1, got ${String(permits)}`);
    if (name !== undefined && (typeof name !== 'string' || name === ''))
      throw new TypeError('a lock name must be a non-empty string');
    this.free = permits;
    this.given = name;
    this.created = name === undefined ? captureLockStack(new.target) : undefined;
  }

  /** The name given, or the file:line that created it, read when first asked (its source map has had time to load). */
  get name(): string {
    return this.given ?? (this.site ??= siteOf(this.created ?? {}));
  }

  /** Slots free now. */
  get available(): number {
    return this.free;
  }

  /** Requests waiting now. */
  get waiting(): number {
    return this.queue.length;
  }

  protected get type(): string {
    return 'stallscope.Semaphore';
  }

  /** Resolves with a release function (calling it again does nothing) once the slots are held. */
  acquire(options: AcquireOptions = {}): Promise<Release> {
    const { weight = 1, timeoutMs, signal } = options;
    if (!Number.isInteger(weight) || weight < 1 || weight > this.permits) {
      return Promise.reject(
        new RangeError(`weight must be an integer from 1 to ${this.permits}, got ${String(weight)}`),
      );
    }
    // Infinity means no timeout; Node's timers cannot count past 2^31-1 ms.
    if (timeoutMs !== undefined && timeoutMs !== Infinity && !(timeoutMs >= 0 && timeoutMs <= TIMEOUT_MAX)) {
      return Promise.reject(
        new RangeError(`timeoutMs must be from 0 to ${TIMEOUT_MAX} or Infinity, got ${String(timeoutMs)}`),
      );
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const available = this.queue.length === 0 && this.free >= weight;
    const tracker = activeTracker();
    let acq: Acquisition | undefined;
    try {
      const resource = tracker && this.resourceOf(tracker);
      if (resource) acq = tracker.request(resource, available, Semaphore.prototype.acquire, weight);
    } catch (err) {
      report('stallscope lock', err);
    }
    if (available) {
      this.free -= weight;
      if (acq) tracker!.granted(acq);
      return Promise.resolve(this.releaser(weight, acq));
    }
    return new Promise<Release>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const giveUp = (outcome: 'timeout' | 'cancelled', err: unknown) => {
        const i = this.queue.indexOf(waiter);
        if (i < 0) return;
        this.queue.splice(i, 1);
        settle();
        if (acq) tracker!.failed(acq, outcome);
        reject(err);
        this.dispatch(); // a heavy request leaving the head may let lighter ones in
      };
      const onAbort = () => giveUp('cancelled', signal!.reason);
      const waiter: Waiter = {
        weight,
        acq,
        grant: () => {
          settle();
          if (acq) tracker!.granted(acq);
          resolve(this.releaser(weight, acq));
        },
      };
      this.queue.push(waiter);
      if (timeoutMs !== undefined && timeoutMs !== Infinity)
        timer = setTimeout(() => giveUp('timeout', new LockTimeoutError(this.name, timeoutMs)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Runs fn holding the lock, and releases it however fn ends. */
  async runExclusive<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    const release = await this.acquire(options);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private releaser(weight: number, acq: Acquisition | undefined): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.free += weight;
      if (acq) activeTracker()?.released(acq.resource, acq);
      this.dispatch();
    };
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.queue[0].weight <= this.free) {
      const next = this.queue.shift()!;
      this.free -= next.weight;
      next.grant();
    }
  }

  private resourceOf(tracker: LockTracker): LockResource {
    if (this.resourceFor !== tracker || !this.resource) {
      this.resource = tracker.resource(this.name, this.type, this);
      this.resourceFor = tracker;
    }
    return this.resource;
  }
}

/** A semaphore of one. */
export class Mutex extends Semaphore {
  constructor(name?: string) {
    super(1, name);
  }

  protected override get type(): string {
    return 'stallscope.Mutex';
  }

  get locked(): boolean {
    return this.available === 0;
  }
}
