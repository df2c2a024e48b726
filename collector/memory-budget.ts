// One memory budget for every OTLP request in flight. Each request takes what it holds as it
// grows (the bytes read, the bytes inflated, an estimate of its decoded form) and gives it all
// back once it is answered; a request that cannot take more is refused with 503 and Retry-After,
// so a burst of large or hostile requests waits its turn instead of growing the process.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { formatSize } from '../common/size';

/**
 * What decoding and storing a request costs beyond its decompressed bytes, as a multiple of
 * them: protobufjs or JSON.parse objects, the rows, the copy handed to the writer thread and
 * SQLite's own. One 55 MB request grew the process by 9 times its size (JSON spans, one long
 * string) to 14 (protobuf spans) at the peak; the budget holds the estimate from the moment the
 * size is known until the answer.
 */
export const DECODE_FACTOR = 13;

/**
 * Past this, a request is refused until others finish (503), or for good when it holds the whole
 * budget by itself (413: waiting would not help).
 */
export class OverBudget extends Error {
  constructor(
    message: string,
    readonly alone = false,
  ) {
    super(message);
  }
}

/**
 * A full garbage collection. Request buffers live outside V8's heap and V8 collects them only when
 * its own heap needs it, which after a burst may be never: the process would keep the burst's
 * memory. So, as the OpenTelemetry Collector's memory limiter does, the budget asks for one after
 * its bytes have turned over. V8 lets only a context created while the flag is set call gc().
 */
function exposeGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    setFlagsFromString('--no-expose-gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

let gc: (() => void) | undefined | null = null;
const fullGarbageCollection = () => (gc === null ? (gc = exposeGc()) : gc);

/** At most one collection per this interval, however busy. */
const SWEEP_INTERVAL_MS = 1000;

export class MemoryBudget {
  private held = 0;
  /** The most held at once since start. */
  peak = 0;
  /** Requests refused because the budget was spent. */
  refusals = 0;
  /** Full collections asked for. */
  sweeps = 0;
  private releasedSinceSweep = 0;
  private lastSweep = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepIsIdle = false;

  constructor(
    readonly limit: number,
    private readonly collect = fullGarbageCollection(),
  ) {}

  get inUse(): number {
    return this.held;
  }

  /** Whether anything is left at all: a request arriving at a spent budget is refused unread. */
  get exhausted(): boolean {
    return this.held >= this.limit;
  }

  /** The largest decompressed body that can ever fit (alone, once its decode estimate is added). */
  static largestBody(limit: number): number {
    // Compressed and as read (up to the body's size each), inflated, and decoded.
    return Math.floor(limit / (3 + DECODE_FACTOR));
  }

  claim(): Claim {
    return new Claim(this);
  }

  /** @internal used by Claim */
  tryTake(n: number): boolean {
    if (this.held + n > this.limit) return false;
    this.held += n;
    if (this.sweepIsIdle && this.sweepTimer) {
      // Not idle after all: the busy rule takes over.
      clearTimeout(this.sweepTimer);
      this.sweepTimer = undefined;
    }
    if (this.held > this.peak) this.peak = this.held;
    return true;
  }

  /** @internal used by Claim */
  /** `buffers` of the `n` bytes were buffers, which V8 does not collect unless its heap needs it. */
  give(n: number, buffers: number): void {
    this.held -= n;
    this.releasedSinceSweep += buffers;
    if (!this.collect || this.sweepTimer) return;
    // Busy: buffers of a quarter of the budget let go are worth a collection. Idle: what a burst left.
    if (this.releasedSinceSweep >= this.limit / 4) {
      this.schedule(Math.max(0, this.lastSweep + SWEEP_INTERVAL_MS - Date.now()), false);
    } else if (this.held === 0 && this.releasedSinceSweep >= this.limit / 32) {
      this.schedule(SWEEP_INTERVAL_MS, true);
    }
  }

  private schedule(ms: number, idle: boolean): void {
    this.sweepIsIdle = idle;
    this.sweepTimer = setTimeout(() => this.sweep(), ms);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    this.sweepTimer = undefined;
    this.lastSweep = Date.now();
    this.releasedSinceSweep = 0;
    this.sweeps++;
    this.collect!();
  }
}

/** One request's share of the budget. */
export class Claim {
  private taken = 0;
  private decodeReserved = 0;
  private released = false;

  constructor(private readonly budget: MemoryBudget) {}

  /** Takes `n` more bytes, or throws OverBudget (counted once per request). */
  take(n: number, what: string): void {
    if (this.released) throw new Error('claim already released');
    if (this.budget.tryTake(n)) {
      this.taken += n;
      return;
    }
    this.budget.refusals++;
    const limit = formatSize(this.budget.limit);
    if (this.taken === this.budget.inUse) {
      throw new OverBudget(
        `the request needs more than the collector's whole memory budget (${limit}) for ${what}; send smaller batches or raise --memory-budget`,
        true,
      );
    }
    throw new OverBudget(
      `the collector's memory budget (${limit}) is in use by other requests; ${what} needs ${formatSize(n)} more`,
    );
  }

  /**
   * Makes sure what decoding a body of this size costs is held, taken as soon as the size is
   * known (a Content-Length, a gzip trailer), so that a request that cannot be decoded now is
   * refused before its body is read or inflated.
   */
  reserveDecode(bodyBytes: number, what: string): void {
    const more = DECODE_FACTOR * bodyBytes - this.decodeReserved;
    if (more <= 0) return;
    this.take(more, what);
    this.decodeReserved += more;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.give(this.taken, this.taken - this.decodeReserved);
    this.taken = 0;
  }
}
