// The detectors: each reads the window through the read model and returns what it found as
// figures and facts (no prose: wording.ts words them). One culprit gives one finding: a lock held
// too long is not also reported as contended, a blocking sync call not also as a blocked loop at
// the same line. Example spans come from one read per kind, not one per culprit.
import {
  BLOCK_ORIGIN,
  BLOCK_ORIGINS,
  BLOCK_STARVED,
  CODE_FILE,
  CODE_FUNCTION,
  CODE_LINE,
  KINDS,
  LOCK_ACQUIRE_SITE,
  LOCK_HELD_MS,
  LOCK_HOLDER_SITE,
  LOCK_HOLDER_SPAN,
  LOCK_HOLDER_TRACE,
  LOCK_NAME,
  LOCK_SITES,
  LOCK_WAITERS,
  KIND,
  METRICS,
  POOL_METRICS,
  POOL_NAME,
  POOL_TYPE,
  SYNC_API,
  SYNC_SITE,
  SYNC_SITES,
  THREADPOOL_AHEAD,
  THREADPOOL_METRICS,
  THREADPOOL_OP,
  THREADPOOL_SIZE,
} from '../../common/conventions';
import { key } from '../../common/keys';
import type {
  AgentSpanRow,
  Attributes,
  CodeLocation,
  Finding,
  LockPair,
  RouteRow,
  Severity,
  SpanView,
  Window,
} from '../../common/types';
import type { ReadModel } from '../../db/index';
import type { FindingThresholds } from '../findings-config';
import { loopCulprits, type Culprit } from '../loop-profile';

const EXAMPLES = 3;
/** Threadpool waits read to learn what the pool was busy with. */
const AHEAD_SAMPLE = 500;
/** Groups of one kind a detector looks at, most time first. */
const GROUPS = 100;
/** How the breakdown names a route's wait for other requests of the same route. */
const SAME_ROUTE = '(other requests of this route)';
/** Holder traces read to learn what a hot lock's holders waited for while holding it. */
const HELD_ACROSS_TRACES = 3;

/** A finding before it is put into words: its figures and the facts the words need. */
type Base = Omit<Finding, 'kind' | 'title' | 'detail'>;
export type Detected =
  | (Base & { kind: 'sync-call'; facts: { api: string } })
  | (Base & { kind: 'loop-blocked'; facts: { pkg?: string; inDependency: boolean } })
  | (Base & { kind: 'lock-held'; facts: { lock: string; holderSite: string } })
  | (Base & {
      kind: 'shared-lock';
      /** The two code paths (holder sites) that make each other wait, the costlier first. */
      facts: { lock: string; type: string; first: string; second: string; heldAcross?: string };
    })
  | (Base & {
      kind: 'lock-contention';
      /** Where the lock is held while others wait the most, and where it is waited for most. */
      facts: { lock: string; type: string; topHolder?: string; topWaiter?: string; heldAcross?: string };
    })
  | (Base & {
      kind: 'threadpool-saturated';
      facts: {
        culprit?: string;
        /** What the threads were busy with, most first, with its share (0-1). */
        busy: Array<{ op: string; share: number }>;
        /** What waited, most first. */
        waits: Array<{ op: string; totalMs: number }>;
        submitter?: CodeLocation;
        waiter?: CodeLocation;
      };
    })
  | (Base & { kind: 'pool-queueing'; facts: { pool: string; type: string } })
  | (Base & { kind: 'loop-saturated'; facts: { culprits: Culprit[] } })
  | (Base & { kind: 'slowed-by-others'; facts: { route: string; culprit: string } });

const str = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

export function locationOf(a: Attributes | undefined): CodeLocation | undefined {
  const file = str(a?.[CODE_FILE]);
  if (!a || !file) return undefined;
  return { function: str(a[CODE_FUNCTION]) || '<anonymous>', file, line: Number(a[CODE_LINE]) || 0 };
}

const traceIds = (spans: AgentSpanRow[]) => [...new Set(spans.map((s) => s.traceId))].slice(0, EXAMPLES);
const severity = (critical: boolean): Severity => (critical ? 'critical' : 'warning');

/** One file named two ways: a path as the agent saw it, and one relative to the agent's working directory. */
const sameFile = (a: string, b: string) => a === b || a.endsWith(`/${b}`) || b.endsWith(`/${a}`);
const sameCode = (a: CodeLocation, b: CodeLocation) => a.line === b.line && sameFile(a.file, b.file);
/** Sites of the sync-call totals that are not code. */
const NOT_CODE = new Set<string>([SYNC_SITES.fast, SYNC_SITES.other, LOCK_SITES.unknown]);

/**
 * Blocking sync calls, then blocked loops not explained by one of them. The agent counts every
 * sync call per API and site (stallscope.sync.time and .calls), so a site's figures come from
 * those totals, whatever the sampling and however short each call; its spans (the calls over the
 * span threshold) give its full location and example traces. A service that sends no totals (an
 * older agent) is judged from its spans alone.
 */
async function blocking(read: ReadModel, w: Window, th: FindingThresholds): Promise<Detected[]> {
  const [syncGroups, blockGroups, syncTime, syncCalls] = await Promise.all([
    read.groups(KINDS.syncCall, w, GROUPS),
    read.groups(KINDS.loopBlock, w, GROUPS),
    read.counterTotals(METRICS.syncTime, w),
    read.counterTotals(METRICS.syncCalls, w),
  ]);
  const [syncSamples, blockSamples] = await Promise.all([
    read.samples(KINDS.syncCall, syncGroups, w, EXAMPLES, 'slowest'),
    read.samples(KINDS.loopBlock, blockGroups, w, EXAMPLES, 'slowest'),
  ]);
  type SyncSite = {
    d: Extract<Detected, { kind: 'sync-call' }>;
    totalMs: number;
    maxMs: number;
    /** Blocking episodes at the same line, folded in. */
    episodes: number;
    blockMaxMs: number;
  };
  /** Span groups with their location and API, by service. */
  const spanned = syncGroups.flatMap((g) => {
    const examples = syncSamples.get(key(g.service, g.key)) ?? [];
    const location = locationOf(examples[0]?.attributes);
    return location ? [{ g, examples, location, api: str(examples[0].attributes[SYNC_API]) }] : [];
  });
  const counted = new Map<string, { service: string; api: string; site: string; ms: number; calls: number }>();
  const totalOf = (service: string, a: Attributes) => {
    const id = key(service, str(a[SYNC_API]), str(a[SYNC_SITE]));
    let e = counted.get(id);
    if (!e) counted.set(id, (e = { service, api: str(a[SYNC_API]), site: str(a[SYNC_SITE]), ms: 0, calls: 0 }));
    return e;
  };
  for (const r of syncTime) totalOf(r.service, r.attributes).ms += 1000 * r.value;
  for (const r of syncCalls) totalOf(r.service, r.attributes).calls += r.value;

  const found: Array<SyncSite['d']> = [];
  const used = new Set<(typeof spanned)[number]>();
  const finding = (
    service: string,
    api: string,
    location: CodeLocation,
    totalMs: number,
    calls: number,
    spans: (typeof spanned)[number] | undefined,
  ): SyncSite['d'] => ({
    kind: 'sync-call',
    severity: 'warning',
    service,
    impactMs: totalMs,
    count: calls,
    location,
    traceIds: spans ? traceIds(spans.examples) : [],
    figures: { totalMs, ...(spans ? { maxMs: spans.g.maxMs } : {}), calls, meanMs: calls ? totalMs / calls : 0 },
    facts: { api: api || 'a blocking call' },
  });
  for (const c of counted.values()) {
    if (NOT_CODE.has(c.site)) continue;
    const at = siteLocation(c.site);
    if (!at) continue;
    const spans = spanned.find(
      (x) =>
        x.g.service === c.service && x.api === c.api && x.location.function === at.function && sameCode(x.location, at),
    );
    if (spans) used.add(spans);
    found.push(finding(c.service, c.api, spans?.location ?? at, c.ms, c.calls, spans));
  }
  // Services without totals, and spans no total matched (a site first counted before its map was read).
  for (const x of spanned)
    if (!used.has(x)) found.push(finding(x.g.service, x.api, x.location, x.g.totalMs, x.g.count, x));

  const sites: SyncSite[] = [];
  for (const d of found) {
    const same = sites.find((x) => x.d.service === d.service && sameCode(x.d.location!, d.location!));
    // Two slow APIs on one line: the costlier one names the finding.
    if (same && same.totalMs >= d.impactMs) continue;
    const site = { d, totalMs: d.impactMs, maxMs: d.figures.maxMs ?? 0, episodes: 0, blockMaxMs: 0 };
    if (same) sites[sites.indexOf(same)] = site;
    else sites.push(site);
  }

  const out: Detected[] = [];
  const t = th['loop-blocked'];
  for (const g of blockGroups) {
    const examples = blockSamples.get(key(g.service, g.key)) ?? [];
    const a = examples[0]?.attributes;
    const location = locationOf(a);
    // No stack: nothing to name. The telemetry's own work and Node's alone are not the app's doing.
    const origin = str(a?.[BLOCK_ORIGIN]) || BLOCK_ORIGINS.app;
    if (!location || origin === BLOCK_ORIGINS.telemetry || origin === BLOCK_ORIGINS.runtime) continue;
    const sync = sites.find((x) => x.d.service === g.service && sameCode(x.d.location!, location));
    // A loop held up by CPU starvation (the process hardly ran) is not this code's doing; the
    // sample decides for the group, and a sync call on the line still explains its episodes.
    if (!sync && examples.every((e) => e.attributes[BLOCK_STARVED] === true)) continue;
    if (sync) {
      // The loop was blocked by the sync call on this line: one culprit, the larger figures.
      sync.totalMs = Math.max(sync.totalMs, g.totalMs);
      sync.maxMs = Math.max(sync.maxMs, g.maxMs);
      sync.episodes += g.count;
      sync.blockMaxMs = Math.max(sync.blockMaxMs, g.maxMs);
      continue;
    }
    if (g.totalMs < t['min-total'] || g.count < t['min-count']) continue;
    const pkg = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(location.file)?.[1]?.replace('\\', '/');
    out.push({
      kind: 'loop-blocked',
      severity: severity(g.totalMs >= t['critical-total'] || g.maxMs >= t['critical-max']),
      service: g.service,
      impactMs: g.totalMs,
      count: g.count,
      location,
      traceIds: traceIds(examples),
      figures: { totalMs: g.totalMs, maxMs: g.maxMs, episodes: g.count },
      facts: { pkg, inDependency: origin === BLOCK_ORIGINS.dependency },
    });
  }

  const s = th['sync-call'];
  for (const site of sites) {
    const d = site.d;
    d.count = Math.max(d.count, site.episodes);
    if (site.totalMs < s['min-total'] || d.count < s['min-count']) continue;
    d.severity = severity(site.totalMs >= s['critical-total'] || site.blockMaxMs >= t['critical-max']);
    d.impactMs = site.totalMs;
    d.figures = { ...d.figures, totalMs: site.totalMs, ...(site.maxMs ? { maxMs: site.maxMs } : {}) };
    out.push(d);
  }
  return out;
}

/** The function part of a site `fn (file:line)`. */
const fnOf = (site: string) => /^(.*) \(.*:\d+\)$/.exec(site)?.[1] ?? site;
const isCode = (site: string) => site !== '' && !Object.values(LOCK_SITES).includes(site as never);

/** One lock's blame, from the charged pairs: who waited, who made them wait, and across paths. */
interface Blame {
  /** Wait charged to code (not handoff, unknown or other). */
  knownMs: number;
  /** Of that, wait where the waiter and the holder are different functions. */
  crossMs: number;
  /** Holder functions, most charged first, each with its busiest site. */
  holders: Array<{ fn: string; site: string; ms: number }>;
  waiters: Array<{ fn: string; site: string; ms: number }>;
  /** ms that waiters in function `w` waited for holders in function `h`: key(w, h). */
  between: Map<string, number>;
}

function blameOf(pairs: LockPair[]): Blame {
  const tally = (m: Map<string, { fn: string; sites: Map<string, number>; ms: number }>, site: string, ms: number) => {
    const fn = fnOf(site);
    const e = m.get(fn) ?? { fn, sites: new Map<string, number>(), ms: 0 };
    e.ms += ms;
    e.sites.set(site, (e.sites.get(site) ?? 0) + ms);
    m.set(fn, e);
  };
  const holders = new Map<string, { fn: string; sites: Map<string, number>; ms: number }>();
  const waiters = new Map<string, { fn: string; sites: Map<string, number>; ms: number }>();
  const between = new Map<string, number>();
  let knownMs = 0;
  let crossMs = 0;
  for (const p of pairs) {
    if (isCode(p.waiterSite)) tally(waiters, p.waiterSite, p.totalMs);
    if (!isCode(p.holderSite)) continue;
    tally(holders, p.holderSite, p.totalMs);
    knownMs += p.totalMs;
    const [w, h] = [fnOf(p.waiterSite), fnOf(p.holderSite)];
    if (w !== h) crossMs += p.totalMs;
    between.set(key(w, h), (between.get(key(w, h)) ?? 0) + p.totalMs);
  }
  const ranked = (m: typeof holders) =>
    [...m.values()]
      .map((e) => ({ fn: e.fn, site: [...e.sites].sort((a, b) => b[1] - a[1])[0][0], ms: e.ms }))
      .sort((a, b) => b.ms - a.ms);
  return { knownMs, crossMs, holders: ranked(holders), waiters: ranked(waiters), between };
}

/** A `fn (file:line)` site (or a bare `file:line`) as a location. */
function siteLocation(site: string): CodeLocation | undefined {
  const m = /^(?:(.*) \()?(.*):(\d+)\)?$/.exec(site);
  return m ? { function: m[1] ?? '', file: m[2], line: Number(m[3]) } : undefined;
}

/**
 * What the holds at a site waited for while they held the lock: the outgoing calls and the
 * agent's waits under the holder's span that ran during the waits it caused (from a few of the
 * holder traces the wait spans link to).
 */
async function heldAcross(read: ReadModel, waits: AgentSpanRow[], holderSite: string): Promise<string | undefined> {
  const linked = waits
    .filter((s) => s.attributes[LOCK_HOLDER_SITE] === holderSite && s.attributes[LOCK_HOLDER_TRACE])
    .slice(0, HELD_ACROSS_TRACES);
  const seen = new Map<string, number>();
  for (const wait of linked) {
    const spans = await read.trace(str(wait.attributes[LOCK_HOLDER_TRACE]));
    const children = new Map<string, SpanView[]>();
    for (const s of spans)
      if (s.parentSpanId) children.set(s.parentSpanId, [...(children.get(s.parentSpanId) ?? []), s]);
    const lock = str(wait.attributes[LOCK_NAME]);
    let from = BigInt(Date.parse(wait.start)) * 1_000_000n;
    const to = from + BigInt(Math.round(wait.durationMs * 1e6));
    // The holder's span and what ran under it, breadth first.
    const under: SpanView[] = [...(children.get(str(wait.attributes[LOCK_HOLDER_SPAN])) ?? [])];
    for (let i = 0; i < under.length && i < 2000; i++) under.push(...(children.get(under[i].spanId) ?? []));
    // The holder queued for this lock too: its hold began when its own wait ended, and what it
    // awaited before then was not held across.
    for (const s of under)
      if (s.attributes[KIND] === KINDS.lockWait && str(s.attributes[LOCK_NAME]) === lock) {
        const end = BigInt(s.endTimeUnixNano);
        if (end < to && end > from) from = end;
      }
    for (const s of under) {
      if (BigInt(s.endTimeUnixNano) <= from || BigInt(s.startTimeUnixNano) >= to) continue;
      if (s.attributes[KIND] === KINDS.lockWait && str(s.attributes[LOCK_NAME]) === lock) continue;
      const what = awaited(s);
      if (what) seen.set(what, (seen.get(what) ?? 0) + 1);
    }
  }
  return [...seen].sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** How a span a lock holder waited on is named in a finding, if it is one that waits. */
function awaited(s: SpanView): string | undefined {
  const a = s.attributes;
  switch (a[KIND]) {
    case KINDS.lockWait:
      return `a wait for lock ${str(a[LOCK_NAME])}`;
    case KINDS.poolTask:
      return `a task on the worker pool ${str(a[POOL_NAME])}`;
    case KINDS.threadpoolWait:
      return `a wait for the libuv threadpool (${str(a[THREADPOOL_OP])})`;
    case KINDS.syncCall:
      return `the blocking call ${str(a[SYNC_API])}`;
  }
  if (s.kind !== 3) return undefined; // OTLP SpanKind CLIENT: an outgoing call
  const host = str(a['server.address'] ?? a['net.peer.name'] ?? a['db.system'] ?? '');
  return `an outgoing call (${s.name}${host ? ` to ${host}` : ''})`;
}

async function locks(read: ReadModel, w: Window, th: FindingThresholds): Promise<Detected[]> {
  const out: Detected[] = [];
  const [rows, heldGroups] = await Promise.all([read.locks(w), read.groups(KINDS.lockHeld, w, GROUPS)]);
  /** service and lock of the held-lock findings: the cause of those locks' waits. */
  const held = new Set<string>();

  const h = th['lock-held'];
  const heldSamples = await read.samples(KINDS.lockHeld, heldGroups, w, 20, 'latest');
  for (const g of heldGroups) {
    const spans = heldSamples.get(key(g.service, g.key)) ?? [];
    const heldMs = Math.max(0, ...spans.map((s) => Number(s.attributes[LOCK_HELD_MS]) || s.durationMs));
    if (heldMs < h['min-held']) continue;
    const waiters = Math.max(0, ...spans.map((s) => Number(s.attributes[LOCK_WAITERS]) || 0));
    const holderSite = spans.map((s) => str(s.attributes[LOCK_HOLDER_SITE])).find(Boolean) ?? '';
    const row = rows.find((r) => r.service === g.service && r.lock === g.key);
    // Waiters of a lock that is never released never finish waiting: count them while it was
    // held, from each hold's latest report (a hold is reported again as it goes on).
    const perHold = new Map<string, number>();
    for (const s of spans) {
      const waited = (Number(s.attributes[LOCK_HELD_MS]) || 0) * (Number(s.attributes[LOCK_WAITERS]) || 0);
      perHold.set(s.start, Math.max(perHold.get(s.start) ?? 0, waited));
    }
    const waitedMs = Math.max(
      row?.totalWaitMs ?? 0,
      [...perHold.values()].reduce((a, b) => a + b, 0),
    );
    held.add(key(g.service, g.key));
    out.push({
      kind: 'lock-held',
      severity: severity(heldMs >= h['critical-held']),
      service: g.service,
      impactMs: waitedMs,
      count: g.count,
      resource: g.key,
      location: locationOf(spans[0]?.attributes) ?? siteLocation(holderSite),
      traceIds: traceIds(spans),
      figures: { heldMs, waiters, reports: g.count, ...(row ? { totalWaitMs: row.totalWaitMs } : {}) },
      facts: { lock: g.key, holderSite },
    });
  }

  const c = th['lock-contention'];
  const sh = th['shared-lock'];
  const hot = rows.filter(
    (row) =>
      !held.has(key(row.service, row.lock)) &&
      row.totalWaitMs >= c['min-total-wait'] &&
      (row.waitP95Ms ?? 0) >= c['min-p95'],
  );
  if (hot.length === 0) return out;
  const [examplesOf, allPairs] = await Promise.all([
    read.samples(
      KINDS.lockWait,
      hot.map((r) => ({ service: r.service, key: r.lock })),
      w,
      20,
      'slowest',
    ),
    read.lockPairs(w),
  ]);
  const pairsOf = new Map<string, LockPair[]>();
  for (const p of allPairs) pairsOf.set(key(p.service, p.lock), [...(pairsOf.get(key(p.service, p.lock)) ?? []), p]);
  for (const row of hot) {
    const examples = examplesOf.get(key(row.service, row.lock)) ?? [];
    const b = blameOf(pairsOf.get(key(row.service, row.lock)) ?? []);
    // A site's location with its full path when a sample span waited there (they carry code.*).
    const at = (site: string | undefined) =>
      site === undefined
        ? undefined
        : (locationOf(examples.find((s) => str(s.attributes[LOCK_ACQUIRE_SITE]) === site)?.attributes) ??
          siteLocation(site));
    const base = {
      severity: severity((row.waitP95Ms ?? 0) >= c['critical-p95']),
      service: row.service,
      impactMs: row.totalWaitMs,
      count: row.contended,
      resource: row.lock,
      traceIds: traceIds(examples),
    };
    const figures = {
      totalWaitMs: row.totalWaitMs,
      waitP95Ms: row.waitP95Ms ?? 0,
      waitMaxMs: row.waitMaxMs ?? 0,
      maxQueue: row.maxQueue,
      acquisitions: row.acquisitions,
      contended: row.contended,
    };
    const topHolder = b.holders[0];
    const across = topHolder ? await heldAcross(read, examples, topHolder.site) : undefined;
    const crossShare = b.knownMs ? b.crossMs / b.knownMs : 0;
    // Two paths in different functions that each hold the lock for a real share of the waiting,
    // and make each other wait: one lock serialises unrelated work (or one resource's two uses).
    const paths = b.holders.filter((x) => x.ms >= sh['min-holder-share'] * b.knownMs);
    if (paths.length >= 2 && crossShare >= sh['min-cross-share']) {
      const [p, q] = paths;
      const pWaitedOnQ = b.between.get(key(p.fn, q.fn)) ?? 0;
      const qWaitedOnP = b.between.get(key(q.fn, p.fn)) ?? 0;
      out.push({
        ...base,
        kind: 'shared-lock',
        location: at(p.site),
        figures: {
          ...figures,
          crossSiteShare: crossShare,
          crossSiteWaitMs: b.crossMs,
          firstHeldMs: p.ms,
          secondHeldMs: q.ms,
          firstWaitedOnSecondMs: pWaitedOnQ,
          secondWaitedOnFirstMs: qWaitedOnP,
        },
        facts: { lock: row.lock, type: row.type, first: p.site, second: q.site, heldAcross: across },
      });
      continue;
    }
    out.push({
      ...base,
      kind: 'lock-contention',
      location: at(topHolder?.site ?? b.waiters[0]?.site),
      figures: { ...figures, ...(topHolder ? { topHolderMs: topHolder.ms } : {}) },
      facts: {
        lock: row.lock,
        type: row.type,
        topHolder: topHolder?.site,
        topWaiter: b.waiters[0]?.site,
        heldAcross: across,
      },
    });
  }
  return out;
}

async function threadpool(read: ReadModel, w: Window, th: FindingThresholds): Promise<Detected[]> {
  const t = th['threadpool-saturated'];
  const byService = new Map<string, Array<{ op: string; totalMs: number; count: number }>>();
  for (const g of await read.groups(KINDS.threadpoolWait, w, 200)) {
    const list = byService.get(g.service) ?? [];
    list.push({ op: g.key, totalMs: g.totalMs, count: g.count });
    byService.set(g.service, list);
  }
  const saturated = [...byService].filter(
    ([, waits]) => waits.reduce((s, x) => s + x.totalMs, 0) >= t['min-total-wait'],
  );
  if (saturated.length === 0) return [];
  const canaries = await read.histogramTotals(THREADPOOL_METRICS.canaryWait, w);
  const samples = await Promise.all(
    saturated.map(([service]) => read.latest(KINDS.threadpoolWait, { ...w, service }, AHEAD_SAMPLE)),
  );
  return saturated.map(([service, waits], i): Detected => {
    const totalMs = waits.reduce((s, x) => s + x.totalMs, 0);
    const sample = samples[i];
    const busy = new Map<string, number>();
    for (const s of sample) {
      for (const part of str(s.attributes[THREADPOOL_AHEAD]).split(',')) {
        const [op, n] = part.split('=');
        if (op && Number(n) > 0) busy.set(op, (busy.get(op) ?? 0) + Number(n));
      }
    }
    const busyTotal = [...busy.values()].reduce((a, b) => a + b, 0);
    const culprits = [...busy].sort((a, b) => b[1] - a[1]);
    const culprit = culprits[0]?.[0];
    const size = Number(sample[0]?.attributes[THREADPOOL_SIZE]) || 4;
    // Where the work that filled the pool was submitted, when it queued too (then it has spans);
    // otherwise where the most waiting happened.
    const submitter = sample.find((s) => s.key === culprit && locationOf(s.attributes));
    const waiter = submitter ?? sample.find((s) => locationOf(s.attributes));
    const canary = canaries
      .filter((c) => c.service === service)
      .reduce((a, c) => ({ count: a.count + c.count, sum: a.sum + c.sum }), { count: 0, sum: 0 });
    const canaryMs = canary.count ? (1000 * canary.sum) / canary.count : undefined;
    const count = waits.reduce((s, x) => s + x.count, 0);
    waits.sort((a, b) => b.totalMs - a.totalMs);
    return {
      kind: 'threadpool-saturated',
      severity: severity(totalMs >= t['critical-total-wait']),
      service,
      impactMs: totalMs,
      count,
      location: waiter ? locationOf(waiter.attributes) : undefined,
      traceIds: traceIds(sample.filter((s) => s.key !== culprit).concat(sample)),
      figures: {
        totalWaitMs: totalMs,
        waits: count,
        size,
        ...(canaryMs !== undefined ? { canaryMeanMs: canaryMs } : {}),
      },
      facts: {
        culprit,
        busy: culprits.map(([op, n]) => ({ op, share: n / busyTotal })),
        waits: waits.map(({ op, totalMs: ms }) => ({ op, totalMs: ms })),
        submitter: submitter ? locationOf(submitter.attributes) : undefined,
        waiter: waiter ? locationOf(waiter.attributes) : undefined,
      },
    };
  });
}

async function pools(read: ReadModel, w: Window, th: FindingThresholds): Promise<Detected[]> {
  const t = th['pool-queueing'];
  const id = (service: string, a: Attributes) => key(service, str(a[POOL_NAME]), str(a[POOL_TYPE]));
  const [runTotals, waitTotals] = await Promise.all([
    read.histogramTotals(POOL_METRICS.runTime, w),
    read.histogramTotals(POOL_METRICS.queueWait, w),
  ]);
  // Several instances of a service each report the pool: add them up.
  const sum = (rows: typeof runTotals) => {
    const by = new Map<string, { service: string; pool: string; type: string; count: number; sum: number }>();
    for (const r of rows) {
      const k = id(r.service, r.attributes);
      const e = by.get(k) ?? {
        service: r.service,
        pool: str(r.attributes[POOL_NAME]),
        type: str(r.attributes[POOL_TYPE]),
        count: 0,
        sum: 0,
      };
      e.count += r.count;
      e.sum += r.sum;
      by.set(k, e);
    }
    return by;
  };
  const runs = sum(runTotals);
  const found: Array<{
    wait: { service: string; pool: string; type: string; count: number; sum: number };
    meanWait: number;
    meanRun: number;
    ratio: number;
  }> = [];
  for (const [k, wait] of sum(waitTotals)) {
    const run = runs.get(k);
    const waitMs = 1000 * wait.sum;
    if (!wait.count || !run?.count || waitMs < t['min-total-wait']) continue;
    const meanWait = waitMs / wait.count;
    const meanRun = (1000 * run.sum) / run.count;
    const ratio = meanRun > 0 ? meanWait / meanRun : Infinity;
    if (ratio >= t['min-wait-to-run']) found.push({ wait, meanWait, meanRun, ratio });
  }
  const examples = await read.samples(
    KINDS.poolTask,
    found.map((f) => ({ service: f.wait.service, key: f.wait.pool })),
    w,
    EXAMPLES,
    'slowest',
  );
  return found.map(({ wait, meanWait, meanRun, ratio }) => {
    const waitMs = 1000 * wait.sum;
    return {
      kind: 'pool-queueing',
      severity: severity(ratio >= t['critical-wait-to-run']),
      service: wait.service,
      impactMs: waitMs,
      count: wait.count,
      resource: wait.pool,
      traceIds: traceIds(examples.get(key(wait.service, wait.pool)) ?? []),
      figures: { totalWaitMs: waitMs, meanWaitMs: meanWait, meanRunMs: meanRun, tasks: wait.count },
      facts: { pool: wait.pool, type: wait.type },
    };
  });
}

/**
 * Loops busy most of the window with many calls rather than one long block: the functions that
 * took the loop's time, from its CPU profile.
 */
async function saturation(read: ReadModel, w: Window, th: FindingThresholds): Promise<Detected[]> {
  const t = th['loop-saturated'];
  const whole = { ...w, stepNs: w.toNs - w.fromNs + 1n };
  const busy = (await read.gaugeSteps(METRICS.loopUtilization, 'avg', whole)).filter(
    (u) => u.value >= t['min-utilization'],
  );
  if (busy.length === 0) return [];
  const [stacks, blocks, loopTime] = await Promise.all([
    read.stackWeights(w),
    read.groups(KINDS.loopBlock, w, 1000),
    read.counterTotals(METRICS.loopTime, w),
  ]);
  const out: Detected[] = [];
  for (const { service, value: utilization } of busy) {
    const { totalMs, telemetryMs, culprits } = loopCulprits(stacks.filter((s) => s.service === service));
    if (totalMs < t['min-busy']) continue;
    // Long blocks that explain nearly all the busy time are the loop-blocked (or sync-call)
    // finding's; short of that the profile tells the rest. Both over the whole window: the
    // profiles may cover only part of it.
    const blockedMs = blocks.filter((b) => b.service === service).reduce((a, b) => a + b.totalMs, 0);
    const activeMs =
      1000 *
      loopTime
        .filter((c) => c.service === service && c.attributes[METRICS.loopState] === 'active')
        .reduce((a, c) => a + c.value, 0);
    if (blockedMs > 0 && blockedMs >= activeMs * t['max-blocked']) continue;
    const named = culprits.filter((c) => c.share >= t['min-share']).slice(0, 3);
    if (named.length === 0) continue;
    const top = named[0].frame;
    out.push({
      kind: 'loop-saturated',
      severity: severity(utilization >= t['critical-utilization']),
      service,
      impactMs: named.reduce((a, c) => a + c.ms, 0),
      count: named.length,
      location: { function: top.fn, file: top.file, line: top.line },
      traceIds: [],
      figures: { utilization, sampledMs: totalMs, topShare: named[0].share, telemetryMs, blockedMs, activeMs },
      facts: { culprits: named },
    });
  }
  return out;
}

/** Routes whose time goes mostly to waiting while other routes' work holds the loop. */
function slowedRoutes(routes: RouteRow[], th: FindingThresholds): Detected[] {
  const t = th['slowed-by-others'];
  const out: Detected[] = [];
  for (const r of routes) {
    if (r.totalMs < t['min-total']) continue;
    const others = r.causes.filter((c) => c.kind === 'loop-wait' && !c.what.endsWith(SAME_ROUTE));
    const waited = others.reduce((a, c) => a + c.ms, 0);
    const share = waited / r.totalMs;
    if (share < t['min-share'] || others.length === 0) continue;
    const top = others[0];
    out.push({
      kind: 'slowed-by-others',
      severity: severity(share >= t['critical-share']),
      service: r.service,
      impactMs: waited,
      count: r.requests,
      resource: r.route,
      location: siteLocation(top.what.replace(/, in .*$/, '')),
      traceIds: [],
      figures: { share, waitedMs: waited, totalMs: r.totalMs, requests: r.requests, topMs: top.ms },
      facts: { route: r.route, culprit: top.what },
    });
  }
  return out;
}

/** What each finding cost which routes, from the breakdowns: the routes it slows down. */
function slows(d: Detected, routes: RouteRow[]): Array<{ route: string; ms: number }> {
  const prefix =
    d.kind === 'loop-blocked' || d.kind === 'sync-call' || d.kind === 'loop-saturated'
      ? d.location && `${d.location.function} (`
      : d.kind === 'lock-contention' || d.kind === 'shared-lock' || d.kind === 'lock-held'
        ? `lock ${d.resource},`
        : undefined;
  if (!prefix) return [];
  const kinds = new Set(['loop-wait', 'lock-wait', 'own-blocking', 'own-sync', 'own-cpu']);
  return routes
    .filter((r) => r.service === d.service)
    .map((r) => ({
      route: r.route,
      ms: r.causes.filter((c) => kinds.has(c.kind) && c.what.startsWith(prefix)).reduce((a, c) => a + c.ms, 0),
    }))
    .filter((x) => x.ms > 0)
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 5);
}

/**
 * A function's own name, as profiles give it: stack traces add the receiver's type and an alias
 * (`FileAsync.stringify [as serialize]` is `stringify`).
 */
const bareFunction = (fn: string) => fn.replace(/ \[as [^\]]*\]$/, '').replace(/^.*\./, '');

/**
 * A saturation culprit that is also a blocked loop's or a sync call's finding (same service,
 * function and file) had its loop time counted there already: the saturation finding's impact
 * keeps only the rest, so that a service's findings add up to the time it lost, not more.
 */
function discountCounted(all: Detected[]): void {
  for (const d of all) {
    if (d.kind !== 'loop-saturated') continue;
    let coveredMs = 0;
    for (const c of d.facts.culprits) {
      const counted = all
        .filter(
          (x) =>
            (x.kind === 'loop-blocked' || x.kind === 'sync-call') &&
            x.service === d.service &&
            x.location !== undefined &&
            bareFunction(x.location.function) === bareFunction(c.frame.fn) &&
            sameFile(x.location.file, c.frame.file),
        )
        .reduce((a, x) => a + x.impactMs, 0);
      c.countedMs = Math.min(c.ms, counted);
      coveredMs += c.countedMs;
    }
    d.impactMs = Math.max(0, d.impactMs - coveredMs);
    d.figures.countedElsewhereMs = coveredMs;
  }
}

/** Everything the detectors find in the window (and service). */
export async function detect(read: ReadModel, w: Window, th: FindingThresholds): Promise<Detected[]> {
  const found = await Promise.all([
    saturation(read, w, th),
    blocking(read, w, th),
    locks(read, w, th),
    threadpool(read, w, th),
    pools(read, w, th),
  ]);
  const routes = await read.routes(w);
  const all = [...found.flat(), ...slowedRoutes(routes, th)];
  discountCounted(all);
  for (const d of all) {
    const s = slows(d, routes);
    if (s.length) d.slows = s;
  }
  return all;
}
