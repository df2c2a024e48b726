// Lock bookkeeping shared by every lock instrumentation: who waits, who holds, since when and
// from where. Library adapters call request/granted/released/failed; the tracker turns them
// into metrics per resource, charges every wait to the holds that caused it (blame.ts), makes a
// span for each wait over the threshold (naming those holds), and one for a lock held too long
// while others wait.
import { context, type Context, type Counter, type Histogram, type Meter, type Tracer } from '@opentelemetry/api';
import {
  KINDS,
  LOCK_ACQUIRE_GENERATED_SITE,
  LOCK_ACQUIRE_SITE,
  LOCK_CONTENDED,
  LOCK_HELD_MS,
  LOCK_HANDOFF_MS,
  LOCK_HOLDER_GENERATED_SITE,
  LOCK_HOLDER_MS,
  LOCK_HOLDER_SITE,
  LOCK_HOLDER_SITES,
  LOCK_HOLDER_SPAN,
  LOCK_HOLDER_TRACE,
  LOCK_METRICS,
  LOCK_NAME,
  LOCK_OUTCOME,
  LOCK_QUEUE_DEPTH,
  LOCK_SITES,
  LOCK_TYPE,
  LOCK_WAITERS,
  REQUEST_EXPORT_REASONS,
  SPAN_NAMES,
} from '../../common/conventions';
import { spanContextOf } from '../requests/lean-request';
import { captureStack } from '../stack';
import { codeSiteOf } from '../sites';
import { BlameLedger, type Charges, type HoldToken, type WaitStart } from './blame';
import { recordSpan, type SiteAttribute } from '../spans';
import { activeSourceMapper } from '../source-mapper';
import { report } from '../safety';
import { WAIT_BUCKETS_S } from '../../common/buckets';
import { key } from '../../common/keys';

export type LockOutcome = 'timeout' | 'cancelled' | 'error' | 'unlocked';

export interface LockOptions {
  /** A contended acquisition that waited this long becomes a span. */
  waitThresholdMs: number;
  /** A lock held this long while others wait is reported while still held. */
  heldThresholdMs: number;
  /** Whether keys of keyed locks (async-lock keys, Web Locks names) may name resources. */
  keyNames?: boolean;
}

/** One lock instance (or one key of a keyed lock). */
export interface LockResource {
  name: string;
  type: string;
  holders: Acquisition[];
  waiting: number;
  maxQueue: number;
  /** When a request last had to wait; 0 if never. */
  lastContended: number;
  /** When the last request came. */
  lastRequested: number;
  /** Attribute sets built once: the metrics SDK records a reused object far faster. */
  attrs: { base: Record<string, string>; granted: Record<string, string> };
  /** Acquisition counts, shared by the resources of one name. */
  counts: AcquisitionCounts;
  /** Blame ledgers by lock key ('' for a lock without keys), open while someone waits. */
  ledgers: Map<string, BlameLedger<Acquisition>>;
  /** Requests that had to wait, in request order; those before `waitHead`, or ended, are done. */
  waitQueue: Acquisition[];
  waitHead: number;
}

/**
 * Taking a stack costs about 2 us, more than an uncontended acquisition may add. Stacks are
 * therefore taken only on hot locks: for a request that has to wait, and for every acquisition
 * of a lock that made someone wait within this window (so that the holder's site is known when
 * the next waiter queues behind it). A holder on a cold lock is identified by its span.
 */
const HOT_MS = 10_000;

/** Granted acquisitions of one lock name, counted here and read by an observable counter. */
interface AcquisitionCounts {
  contended: number;
  uncontended: number;
  attrs: { contended: Record<string, string | boolean>; uncontended: Record<string, string | boolean> };
}

/**
 * Lock names counted at most: keyed locks make names from keys, which a long-lived process can
 * churn through. Past this, new names share one count.
 */
const MAX_COUNTED_NAMES = 10_000;

/** Holds tracked per lock at most: a semaphore used as a token bucket never gives slots back. */
const MAX_HOLDERS = 1000;

/** Holder and acquire sites counted per lock name in wait_caused; the rest are `(other)`. */
const MAX_BLAME_SITES = 20;

/** Holder sites a lock-wait span lists before the rest go to `(other)`. */
const SPAN_HOLDER_SITES = 5;

export interface Acquisition {
  resource: LockResource;
  weight: number;
  requestedAt: number;
  grantedAt?: number;
  queueDepth: number;
  contended: boolean;
  /** Captured on hot locks only (see HOT_MS); formatted only if a report needs it. */
  stack?: { stack?: string };
  ctx: Context;
  /** Its site as `fn (file:line)`, worked out the first time a charge needs it. */
  site?: string;
  /** Its place in the lock's blame ledger while it holds (only while someone waits). */
  token?: HoldToken<Acquisition>;
  /** The ledger's integrals when it began to wait. */
  waitStart?: WaitStart;
  /** The key within a keyed lock, where several keys share one resource: only its holds block it. */
  lockKey?: string;
  /** Age (ms) at which a hold still going on is reported (again). */
  nextHeldReportMs?: number;
  /** Ended without a hold (failed, timed out, cancelled): a late grant from the library is ignored. */
  settled?: boolean;
  /** Undoes what an adapter attached while the request waits (an abort listener); run once it ends. */
  detach?: () => void;
}

const HELD_REPORT_MAX_GAP_MS = 60_000;

/** Frames kept for a lock site: enough to climb out of the library into the caller. */
const LOCK_STACK_FRAMES = 12;

/** The caller's stack above `skip`, where a lock is created: its name when it has none (see sites.ts). */
export function captureLockStack(skip: Function): { stack?: string } {
  const holder = captureStack(skip, LOCK_STACK_FRAMES);
  activeSourceMapper()?.prefetch(holder);
  return holder;
}

const siteOfAcquisition = (acq: Acquisition) => (acq.site ??= acq.stack ? codeSiteOf(acq.stack) : LOCK_SITES.unknown);

/**
 * Calls a task function that a library runs under its lock: the call is the grant, and its end
 * (its promise settling, or its return) the release. Only a native promise is observed: the
 * library already waits on it, so one more reaction changes nothing, whereas a thenable such as
 * a query builder would run again on every then(); for those the hold ends at the return.
 */
export function callHeld(
  fn: (...args: unknown[]) => unknown,
  thisArg: unknown,
  args: ArrayLike<unknown>,
  grant: () => void,
  release: () => void,
): unknown {
  grant();
  let result: unknown;
  try {
    result = Reflect.apply(fn, thisArg, args);
  } catch (err) {
    release();
    throw err;
  }
  // A native promise exactly: a subclass's then() may do more than observe (and the library
  // calls it once already).
  if (result instanceof Promise && Object.getPrototypeOf(result) === Promise.prototype) result.then(release, release);
  else release();
  return result;
}

/**
 * Ends a waiting request as cancelled when `signal` aborts (the library then drops it). The
 * listener is removed once the request ends either way: apps pass long-lived signals too.
 */
export function cancelOnAbort(
  tracker: LockTracker,
  acq: Acquisition,
  signal: AbortSignal | undefined,
  dropped?: () => void,
): void {
  if (!signal || typeof signal.addEventListener !== 'function') return;
  const onAbort = () => {
    dropped?.();
    tracker.failed(acq, 'cancelled');
  };
  signal.addEventListener('abort', onAbort, { once: true });
  acq.detach = () => signal.removeEventListener('abort', onAbort);
}

let active: LockTracker | undefined;

/** The tracker of the running agent, which every lock instrumentation reports to. */
export function activeTracker(): LockTracker | undefined {
  return active;
}

export class LockTracker {
  private readonly resources = new Set<LockResource>();
  // Apps may create a lock per request or per entity: a resource leaves with its lock.
  private readonly collected = new FinalizationRegistry<LockResource>((r) => this.resources.delete(r));
  private waitTime!: Histogram;
  private holdTime!: Histogram;
  private waitCaused!: Counter;
  /** Per lock name and type: the sites counted in wait_caused, and their attribute sets. */
  private readonly blameSites = new Map<
    string,
    { holders: Set<string>; waiters: Set<string>; attrs: Map<string, Record<string, string>> }
  >();
  /** Counted in plain numbers: an add() to the metrics SDK costs about 90 ns per acquisition. */
  private readonly counts = new Map<string, AcquisitionCounts>();
  private timer: NodeJS.Timeout | undefined;
  /** Locks whose waiting gauges were last observed above 0. */
  private readonly reportedWaiting = new Map<string, Record<string, string>>();

  constructor(
    private readonly options: LockOptions,
    private readonly tracer: Tracer,
    private readonly meter: Meter,
  ) {}

  /** Keys can carry user data (`user:42`): an app may keep them out of its telemetry. */
  get keyNames(): boolean {
    return this.options.keyNames !== false;
  }

  start(): void {
    this.waitTime = this.meter.createHistogram(LOCK_METRICS.waitTime, {
      description: 'Time from lock request to grant (or failure)',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS_S },
    });
    this.holdTime = this.meter.createHistogram(LOCK_METRICS.holdTime, {
      description: 'Time from lock grant to release',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS_S },
    });
    this.waitCaused = this.meter.createCounter(LOCK_METRICS.waitCaused, {
      description: 'Lock wait charged to the holds that caused it, by holder and waiter site',
      unit: 's',
    });
    const acquisitions = this.meter.createObservableCounter(LOCK_METRICS.acquisitions, {
      description: 'Lock acquisitions granted',
      unit: '{acquisition}',
    });
    acquisitions.addCallback((result) => {
      for (const c of this.counts.values()) {
        if (c.contended > 0) result.observe(c.contended, c.attrs.contended);
        if (c.uncontended > 0) result.observe(c.uncontended, c.attrs.uncontended);
      }
    });
    const pending = this.meter.createObservableGauge(LOCK_METRICS.pending, {
      description: 'Most requests queued on the lock since the last export',
      unit: '{request}',
    });
    pending.addCallback((result) => {
      // Locks created on one line share a name: report the deepest queue among them.
      const deepest = new Map<string, { r: LockResource; max: number }>();
      for (const r of this.resources) {
        const id = key(r.name, r.type);
        const seen = deepest.get(id);
        if (!seen || r.maxQueue > seen.max) deepest.set(id, { r, max: r.maxQueue });
        r.maxQueue = r.waiting;
      }
      for (const { r, max } of deepest.values()) result.observe(max, r.attrs.base);
    });
    // What waits right now, and since when: a lock that is stuck shows as stuck at once, long
    // before any of its waits ends (and one that never releases has no wait that ends).
    const waiting = this.meter.createObservableGauge(LOCK_METRICS.waiting, {
      description: 'Requests waiting for the lock now',
      unit: '{request}',
    });
    const oldest = this.meter.createObservableGauge(LOCK_METRICS.oldestWait, {
      description: 'How long the oldest request still waiting has waited',
      unit: 's',
    });
    this.meter.addBatchObservableCallback(
      (result) => {
        const now = performance.now();
        const by = new Map<string, { r: LockResource; count: number; since: number }>();
        for (const r of this.resources) {
          if (r.waiting <= 0) continue;
          this.advanceWaitHead(r);
          const since = r.waitHead < r.waitQueue.length ? r.waitQueue[r.waitHead].requestedAt : now;
          const id = key(r.name, r.type);
          const e = by.get(id);
          if (e) [e.count, e.since] = [e.count + r.waiting, Math.min(e.since, since)];
          else by.set(id, { r, count: r.waiting, since });
        }
        for (const { r, count, since } of by.values()) {
          result.observe(waiting, count, r.attrs.base);
          result.observe(oldest, (now - since) / 1000, r.attrs.base);
        }
        // The SDK repeats a gauge's last value while it is not observed: a lock whose waiters have
        // all been served is observed at 0 once, which the SDK then repeats.
        for (const [id, attrs] of this.reportedWaiting) {
          if (by.has(id)) continue;
          result.observe(waiting, 0, attrs);
          result.observe(oldest, 0, attrs);
          this.reportedWaiting.delete(id);
        }
        for (const [id, { r }] of by) this.reportedWaiting.set(id, r.attrs.base);
      },
      [waiting, oldest],
    );
    this.timer = setInterval(() => this.checkHeld(), Math.min(1000, this.options.heldThresholdMs / 2));
    this.timer.unref();
    active = this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (active === this) active = undefined;
  }

  /** The resource of one lock instance, dropped when `owner` (the lock) is garbage-collected. */
  resource(name: string, type: string, owner: object): LockResource {
    const base = { [LOCK_NAME]: name, [LOCK_TYPE]: type };
    const r: LockResource = {
      name,
      type,
      holders: [],
      waiting: 0,
      maxQueue: 0,
      lastContended: 0,
      lastRequested: 0,
      attrs: { base, granted: { ...base, [LOCK_OUTCOME]: 'granted' } },
      counts: this.countsFor(name, type),
      ledgers: new Map(),
      waitQueue: [],
      waitHead: 0,
    };
    this.resources.add(r);
    this.collected.register(owner, r, r);
    return r;
  }

  private countsFor(name: string, type: string): AcquisitionCounts {
    const id = key(name, type);
    let c = this.counts.get(id);
    if (!c) {
      if (this.counts.size >= MAX_COUNTED_NAMES)
        return this.countsFor('(more lock names than stallscope counts)', type);
      const base = { [LOCK_NAME]: name, [LOCK_TYPE]: type };
      c = {
        contended: 0,
        uncontended: 0,
        attrs: { contended: { ...base, [LOCK_CONTENDED]: true }, uncontended: { ...base, [LOCK_CONTENDED]: false } },
      };
      this.counts.set(id, c);
    }
    return c;
  }

  /** Stops reporting a resource (a key of a keyed lock that went idle). */
  forget(resource: LockResource): void {
    this.resources.delete(resource);
    this.collected.unregister(resource);
  }

  /** A hold moves to another resource (a key of a keyed lock got a resource of its own). */
  moveHolder(acq: Acquisition, to: LockResource): void {
    const from = acq.resource;
    const i = from.holders.indexOf(acq);
    if (i < 0) return;
    from.holders.splice(i, 1);
    acq.resource = to;
    to.holders.push(acq);
    const now = performance.now();
    this.endToken(acq, now);
    const ledger = to.ledgers.get(acq.lockKey ?? '');
    if (ledger) acq.token = ledger.hold(siteOfAcquisition(acq), acq.weight, acq, now);
  }

  /**
   * `available`: whether the library will grant at once. `lockKey`: the key within a keyed lock,
   * where several keys share one resource (only its own holds block it).
   */
  request(resource: LockResource, available: boolean, skip: Function, weight = 1, lockKey?: string): Acquisition {
    // A first waiter opens the ledger, naming the holds in progress: the tracker's time, taken
    // before the wait's clock starts so that it is not counted as waiting.
    const ledger = available ? undefined : this.ledgerFor(resource, lockKey ?? '', performance.now());
    const now = performance.now();
    resource.lastRequested = now;
    if (!available) resource.lastContended = now;
    const acq: Acquisition = {
      resource,
      weight,
      requestedAt: now,
      queueDepth: resource.waiting,
      contended: !available,
      stack:
        resource.lastContended > 0 && now - resource.lastContended < HOT_MS
          ? captureStack(skip, LOCK_STACK_FRAMES)
          : undefined,
      ctx: context.active(),
      lockKey,
    };
    if (!available) {
      acq.waitStart = ledger!.waitStarts(now);
      resource.waitQueue.push(acq);
      resource.waiting++;
      if (resource.waiting > resource.maxQueue) resource.maxQueue = resource.waiting;
    }
    return acq;
  }

  /** The wait is over: what the adapter attached comes off. */
  private endWait(acq: Acquisition): void {
    acq.detach?.();
    acq.detach = undefined;
  }

  /** Moves the wait queue's head past the requests already served, and trims them off. */
  private advanceWaitHead(r: LockResource): void {
    const q = r.waitQueue;
    while (r.waitHead < q.length && (q[r.waitHead].grantedAt !== undefined || q[r.waitHead].settled)) r.waitHead++;
    if (r.waitHead > 64 && r.waitHead * 2 > q.length) {
      q.splice(0, r.waitHead);
      r.waitHead = 0;
    }
  }

  /** The lock key's ledger, opened on its first waiter with the holds then in progress. */
  private ledgerFor(r: LockResource, lockKey: string, now: number): BlameLedger<Acquisition> {
    let ledger = r.ledgers.get(lockKey);
    if (!ledger) {
      ledger = new BlameLedger<Acquisition>(now);
      for (const h of r.holders)
        if ((h.lockKey ?? '') === lockKey) h.token = ledger.hold(siteOfAcquisition(h), h.weight, h, now);
      r.ledgers.set(lockKey, ledger);
    }
    return ledger;
  }

  private endToken(acq: Acquisition, now: number): void {
    acq.token?.ledger.release(acq.token, now);
    acq.token = undefined;
  }

  /**
   * Charges a wait that ends now to the holds that overlapped it (see blame.ts), adds the
   * charges to wait_caused, and returns them for the wait's span.
   */
  private blame(acq: Acquisition, end: number): Charges<Acquisition> {
    const r = acq.resource;
    const charges = this.closeWait(acq, end);
    const waiter = siteOfAcquisition(acq);
    for (const [site, ms] of charges.bySite) this.waitCaused.add(ms / 1000, this.blameAttrs(r, site, waiter));
    if (charges.handoffMs > 0)
      this.waitCaused.add(charges.handoffMs / 1000, this.blameAttrs(r, LOCK_SITES.handoff, waiter));
    return charges;
  }

  /** The wait's charges from its ledger, which closes with its last waiter. */
  private closeWait(acq: Acquisition, end: number): Charges<Acquisition> {
    const r = acq.resource;
    const lockKey = acq.lockKey ?? '';
    const ledger = r.ledgers.get(lockKey);
    const start = acq.waitStart;
    acq.waitStart = undefined;
    if (!ledger || !start) return { bySite: new Map(), handoffMs: end - acq.requestedAt };
    const charges = ledger.waitEnds(start, end);
    if (ledger.waiters <= 0) r.ledgers.delete(lockKey);
    return charges;
  }

  /** wait_caused attributes for a holder and waiter site, each bounded per lock name. */
  private blameAttrs(r: LockResource, holder: string, waiter: string): Record<string, string> {
    const id = key(r.name, r.type);
    let b = this.blameSites.get(id);
    if (!b) {
      if (this.blameSites.size >= MAX_COUNTED_NAMES) return this.blameAttrs(this.overflow(r), holder, waiter);
      this.blameSites.set(id, (b = { holders: new Set(), waiters: new Set(), attrs: new Map() }));
    }
    const bound = (set: Set<string>, site: string) => {
      if (set.has(site)) return site;
      if (set.size >= MAX_BLAME_SITES) return LOCK_SITES.other;
      set.add(site);
      return site;
    };
    const h = holder === LOCK_SITES.handoff ? holder : bound(b.holders, holder);
    const w = bound(b.waiters, waiter);
    const attrsId = key(h, w);
    let attrs = b.attrs.get(attrsId);
    if (!attrs) b.attrs.set(attrsId, (attrs = { ...r.attrs.base, [LOCK_HOLDER_SITE]: h, [LOCK_ACQUIRE_SITE]: w }));
    return attrs;
  }

  private overflowResource?: LockResource;
  /** Where lock names past the bound are counted together. */
  private overflow(r: LockResource): LockResource {
    return (this.overflowResource ??= {
      ...r,
      name: '(more lock names than stallscope counts)',
      attrs: {
        base: { [LOCK_NAME]: '(more lock names than stallscope counts)', [LOCK_TYPE]: r.type },
        granted: { [LOCK_NAME]: '(more lock names than stallscope counts)', [LOCK_TYPE]: r.type },
      },
    });
  }

  granted(acq: Acquisition): void {
    if (acq.settled) return;
    try {
      const r = acq.resource;
      acq.grantedAt = acq.contended ? performance.now() : acq.requestedAt;
      if (acq.contended) r.waiting--;
      const charges = acq.contended ? this.blame(acq, acq.grantedAt) : undefined;
      if (acq.contended) this.advanceWaitHead(r);
      r.holders.push(acq);
      // While others wait, the hold is on the ledger their waits are charged from.
      const ledger = r.ledgers.get(acq.lockKey ?? '');
      if (ledger) acq.token = ledger.hold(siteOfAcquisition(acq), acq.weight, acq, acq.grantedAt);
      if (r.holders.length > MAX_HOLDERS) this.endToken(r.holders.shift()!, acq.grantedAt); // slots never given back
      if (acq.contended) r.counts.contended++;
      else r.counts.uncontended++;
      // An uncontended acquisition waited 0: acquisitions{contended=false} counts those zeros,
      // which saves a histogram record (about 90 ns) on the path every acquisition takes.
      if (acq.contended) {
        const waited = acq.grantedAt - acq.requestedAt;
        this.waitTime.record(waited / 1000, r.attrs.granted);
        if (waited >= this.options.waitThresholdMs) this.waitSpan(acq, acq.grantedAt, 'granted', charges!);
      }
      this.endWait(acq);
    } catch (err) {
      report('lock tracking', err);
    }
  }

  /**
   * A request that ended without a hold: it failed, timed out or was cancelled, or (outcome
   * 'unlocked') it only waited for the lock to be free and took nothing.
   */
  failed(acq: Acquisition, outcome: LockOutcome): void {
    if (acq.settled || acq.grantedAt !== undefined) return;
    acq.settled = true;
    try {
      const r = acq.resource;
      const now = performance.now();
      if (acq.contended) r.waiting--;
      const charges = this.blame(acq, now);
      this.advanceWaitHead(r);
      this.waitTime.record((now - acq.requestedAt) / 1000, { ...r.attrs.base, [LOCK_OUTCOME]: outcome });
      if (now - acq.requestedAt >= this.options.waitThresholdMs) this.waitSpan(acq, now, outcome, charges);
      this.endWait(acq);
    } catch (err) {
      report('lock tracking', err);
    }
  }

  /** The lock's count was set anew: current holds are no longer tracked as holds. */
  forgetHolders(resource: LockResource): void {
    const now = performance.now();
    for (const h of resource.holders) this.endToken(h, now);
    resource.holders.length = 0;
  }

  /** The library refused the request outright (an invalid weight): forget it. */
  abandon(acq: Acquisition): void {
    if (acq.settled || acq.grantedAt !== undefined) return;
    acq.settled = true;
    this.endWait(acq);
    if (acq.contended) {
      acq.resource.waiting--;
      this.closeWait(acq, performance.now());
      this.advanceWaitHead(acq.resource);
    }
  }

  /**
   * Ends a hold. Without an acquisition (a bare release(weight)), the oldest holds adding up to
   * that weight end, as the library itself does not know whose slot comes back.
   */
  released(resource: LockResource, acq?: Acquisition, weight = 1): void {
    try {
      const now = performance.now();
      if (acq) {
        const holders = resource.holders;
        // Mostly the newest hold (a mutex has one): no search, no array made.
        if (holders[holders.length - 1] === acq) holders.pop();
        else {
          const i = holders.indexOf(acq);
          if (i < 0) return;
          holders.splice(i, 1);
        }
        this.endHold(resource, acq, now);
        return;
      }
      let left = weight;
      while (left > 0 && resource.holders.length > 0) {
        const held = resource.holders.shift()!;
        left -= held.weight;
        this.endHold(resource, held, now);
      }
    } catch (err) {
      report('lock tracking', err);
    }
  }

  private endHold(resource: LockResource, held: Acquisition, now: number): void {
    this.holdTime.record((now - held.grantedAt!) / 1000, resource.attrs.base);
    this.endToken(held, now);
  }

  private holderAttributes(holder: Acquisition | undefined): Record<string, string> {
    if (!holder) return {};
    const attrs: Record<string, string> = { [LOCK_HOLDER_SITE]: siteOfAcquisition(holder) };
    const sc = spanContextOf(holder.ctx, REQUEST_EXPORT_REASONS.lockHolder);
    if (sc) {
      attrs[LOCK_HOLDER_TRACE] = sc.traceId;
      attrs[LOCK_HOLDER_SPAN] = sc.spanId;
    }
    return attrs;
  }

  /** A span about one acquisition: its resource, its code location, and what the caller adds. */
  private emit(
    name: string,
    kind: string,
    acq: Acquisition,
    from: number,
    to: number,
    attributes: Record<string, string | number | string[] | number[]>,
    sites: SiteAttribute[],
  ): void {
    recordSpan(this.tracer, {
      name,
      kind,
      from,
      to,
      ctx: acq.ctx,
      stack: acq.stack,
      sites,
      attributes: { ...acq.resource.attrs.base, ...attributes },
    });
  }

  /**
   * The generated positions of the sites a span names, when a source map moved them (the sites
   * themselves are named as the charges were, see codeSiteOf).
   */
  private generatedSites(acquire: Acquisition | undefined, holder: Acquisition | undefined): SiteAttribute[] {
    const out: SiteAttribute[] = [];
    if (acquire?.stack)
      out.push({ name: LOCK_ACQUIRE_SITE, generatedName: LOCK_ACQUIRE_GENERATED_SITE, stack: acquire.stack });
    if (holder?.stack)
      out.push({ name: LOCK_HOLDER_SITE, generatedName: LOCK_HOLDER_GENERATED_SITE, stack: holder.stack });
    return out;
  }

  private waitSpan(acq: Acquisition, now: number, outcome: string, charges: Charges<Acquisition>): void {
    const ranked = [...charges.bySite].sort((a, b) => b[1] - a[1]);
    const shown = ranked.slice(0, SPAN_HOLDER_SITES);
    const rest = ranked.slice(SPAN_HOLDER_SITES).reduce((sum, [, ms]) => sum + ms, 0);
    if (rest > 0) shown.push([LOCK_SITES.other, rest]);
    this.emit(
      SPAN_NAMES.lockWait,
      KINDS.lockWait,
      acq,
      acq.requestedAt,
      now,
      {
        [LOCK_OUTCOME]: outcome,
        [LOCK_QUEUE_DEPTH]: acq.queueDepth,
        [LOCK_ACQUIRE_SITE]: siteOfAcquisition(acq),
        [LOCK_HOLDER_SITES]: shown.map(([site]) => site),
        [LOCK_HOLDER_MS]: shown.map(([, ms]) => ms),
        [LOCK_HANDOFF_MS]: charges.handoffMs,
        ...this.holderAttributes(charges.top),
      },
      this.generatedSites(acq, charges.top),
    );
  }

  /** Reports, once each, holds older than the threshold while others wait for the same lock. */
  private checkHeld(): void {
    try {
      const now = performance.now();
      for (const r of this.resources) {
        if (r.waiting === 0) continue;
        for (const h of r.holders) {
          const age = now - h.grantedAt!;
          if (age < (h.nextHeldReportMs ?? this.options.heldThresholdMs)) continue;
          // Again at twice the age, then every minute: a lock never released stays visible,
          // with how long it has been held and how many wait now.
          h.nextHeldReportMs = age + Math.min(age, HELD_REPORT_MAX_GAP_MS);
          this.emit(
            SPAN_NAMES.lockHeld,
            KINDS.lockHeld,
            h,
            h.grantedAt!,
            now,
            { [LOCK_HELD_MS]: age, [LOCK_WAITERS]: r.waiting, ...this.holderAttributes(h) },
            this.generatedSites(undefined, h),
          );
        }
      }
    } catch (err) {
      report('lock tracking', err);
    }
  }
}
