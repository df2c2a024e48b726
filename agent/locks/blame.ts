// Lock blame: a wait is charged to the holds that overlapped it. Each instant of the wait is
// split among the holds in progress then, by weight (a semaphore's k holders: 1/k each); an
// instant with no hold in progress (released, the waiter not yet resumed) is the handoff.
//
// Exact, not sampled, and O(1) per grant and release however deep the queue: the ledger keeps
// running integrals over time, P = ∫ dt / (weight held) while something is held and F = ∫ dt
// while nothing is, and per holder site C = Σ over its holds of weight × (P at release − P at
// grant), open holds up to now. A wait's charge to a site is then C at its end minus C at its
// start, and its handoff F at its end minus F at its start: the charges add up to the wait.

/** A hold as the ledger knows it, to be released with the same token. */
export interface HoldToken<T> {
  ledger: BlameLedger<T>;
  site: string;
  weight: number;
  /** P when the hold began (or when the ledger opened, for a hold already in progress). */
  p0: number;
}

/** The integrals at a wait's start. */
export interface WaitStart {
  free: number;
  bySite: Map<string, number>;
}

export interface Charges<T> {
  /** ms per holder site. */
  bySite: Map<string, number>;
  handoffMs: number;
  /** The latest hold of the site charged the most: the holder a wait span names. */
  top?: T;
}

interface SiteLedger<T> {
  /** Σ weight × ΔP of its ended holds. */
  closed: number;
  /** Σ weight of its holds in progress, and Σ weight × P0 of those. */
  openWeight: number;
  openWeightP0: number;
  latest: T;
}

/**
 * The ledger of one lock (one key of a keyed lock), open while someone waits for it: a wait can
 * only overlap holds in progress from its start on.
 */
export class BlameLedger<T> {
  /** Requests waiting now; the ledger is dropped when none does. */
  waiters = 0;
  private held = 0;
  private last: number;
  private p = 0;
  private free = 0;
  private readonly sites = new Map<string, SiteLedger<T>>();

  constructor(now: number) {
    this.last = now;
  }

  private advance(now: number): void {
    const dt = now - this.last;
    if (dt <= 0) return;
    if (this.held > 0) this.p += dt / this.held;
    else this.free += dt;
    this.last = now;
  }

  hold(site: string, weight: number, ref: T, now: number): HoldToken<T> {
    this.advance(now);
    let s = this.sites.get(site);
    if (!s) this.sites.set(site, (s = { closed: 0, openWeight: 0, openWeightP0: 0, latest: ref }));
    s.openWeight += weight;
    s.openWeightP0 += weight * this.p;
    s.latest = ref;
    this.held += weight;
    return { ledger: this, site, weight, p0: this.p };
  }

  release(token: HoldToken<T>, now: number): void {
    if (token.ledger !== this) return;
    this.advance(now);
    const s = this.sites.get(token.site)!;
    s.openWeight -= token.weight;
    s.openWeightP0 -= token.weight * token.p0;
    s.closed += token.weight * (this.p - token.p0);
    this.held = Math.max(0, this.held - token.weight);
  }

  private charged(s: SiteLedger<T>): number {
    return s.closed + s.openWeight * this.p - s.openWeightP0;
  }

  waitStarts(now: number): WaitStart {
    this.advance(now);
    this.waiters++;
    const bySite = new Map<string, number>();
    for (const [site, s] of this.sites) bySite.set(site, this.charged(s));
    return { free: this.free, bySite };
  }

  /** What the wait that started at `start` and ends now is charged, per holder site. */
  waitEnds(start: WaitStart, now: number): Charges<T> {
    this.advance(now);
    this.waiters--;
    const bySite = new Map<string, number>();
    let top: SiteLedger<T> | undefined;
    let topMs = 0;
    for (const [site, s] of this.sites) {
      const ms = this.charged(s) - (start.bySite.get(site) ?? 0);
      // Float residue of a site that held nothing during the wait.
      if (ms <= 1e-9) continue;
      bySite.set(site, ms);
      if (ms > topMs) [top, topMs] = [s, ms];
    }
    return { bySite, handoffMs: this.free - start.free, top: top?.latest };
  }
}
