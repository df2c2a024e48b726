// Findings: the stored measurements turned into diagnoses. Each names the culprit (a function,
// a call site, a lock, a pool), what it cost over the window, and the fix, in plain words. One
// culprit gives one finding: a lock held too long is not also reported as contended, a blocking
// sync call not also as a blocked loop at the same line.
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
  LOCK_WAITERS,
  POOL_METRICS,
  POOL_NAME,
  POOL_TYPE,
  SYNC_API,
  THREADPOOL_AHEAD,
  THREADPOOL_METRICS,
  THREADPOOL_SIZE,
} from '../common/conventions';
import type { Attributes, CodeLocation, Finding, Severity } from '../common/types';
import type { AgentSpanRow, DashboardQueries, Window } from '../db/index';
import type { FindingThresholds } from './findings-config';
import { key } from '../common/keys';

const EXAMPLES = 3;
/** Threadpool waits read to learn what the pool was busy with. */
const AHEAD_SAMPLE = 500;

const str = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

export function formatMs(ms: number): string {
  if (ms >= 10_000) return `${Math.round(ms / 1000)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms)} ms`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function locationOf(a: Attributes | undefined): CodeLocation | undefined {
  const file = str(a?.[CODE_FILE]);
  if (!a || !file) return undefined;
  return { function: str(a[CODE_FUNCTION]) || '<anonymous>', file, line: Number(a[CODE_LINE]) || 0 };
}

/** A `file:line` site as the lock spans name them (function unknown). */
function siteLocation(site: string): CodeLocation | undefined {
  const m = /^(.*):(\d+)$/.exec(site);
  return m ? { function: '', file: m[1], line: Number(m[2]) } : undefined;
}

const showLocation = (l: CodeLocation) => (l.function ? `${l.function} (${l.file}:${l.line})` : `${l.file}:${l.line}`);
const traceIds = (spans: AgentSpanRow[]) => [...new Set(spans.map((s) => s.traceId))].slice(0, EXAMPLES);
const sameSite = (service: string, l: CodeLocation) => key(service, `${l.file}:${l.line}`);

/** Python's blocking calls (from the Python agent) and what a coroutine should await instead. */
const PYTHON_ALTERNATIVES: Array<[RegExp, string]> = [
  [/^time\.sleep$/, 'await asyncio.sleep(), which lets the loop run other tasks meanwhile'],
  [/^socket\./, "asyncio streams (asyncio.open_connection) or the loop's sock_* methods on a non-blocking socket"],
  [/^subprocess\./, 'asyncio.create_subprocess_exec() and await the process'],
  [/^(os\.read|pathlib\.)/, 'await asyncio.to_thread() around the file work, so a worker thread waits for the disk'],
  [/^json\.loads$/, 'await asyncio.to_thread(json.loads, text) for documents this large, or smaller payloads'],
  [
    /^threading\.Lock\.acquire$/,
    'an asyncio.Lock between coroutines; a lock shared with threads is taken in asyncio.to_thread()',
  ],
];

/** What to call instead of a blocking API. */
function alternative(api: string): string {
  const python = PYTHON_ALTERNATIVES.find(([re]) => re.test(api));
  if (python) return python[1];
  const [module, fn = ''] = api.split('.');
  if (module === 'JSON') {
    return `keep payloads this large off the request path: parse or serialise them in a worker thread (e.g. Piscina), stream them, or make them smaller`;
  }
  const asyncName = fn.replace(/Sync$/, '');
  if (module === 'fs') {
    const promised = fn === 'existsSync' ? 'access' : asyncName;
    return `await fs.promises.${promised}() (or the callback fs.${promised}), which leaves the loop free while the disk works`;
  }
  if (module === 'child_process') {
    const async = fn === 'spawnSync' ? 'spawn' : asyncName;
    return `child_process.${async}() (promisified with util.promisify), so the loop runs while the child does`;
  }
  if (module === 'zlib')
    return `zlib.${asyncName}() (promisified) or a zlib stream, which compress on the libuv threadpool`;
  if (module === 'Atomics')
    return 'Atomics.waitAsync(), or an asynchronous lock (async-mutex), so that the main thread is never put to sleep';
  if (module === 'crypto') {
    return `crypto.${asyncName}(), which runs on the libuv threadpool; at a high rate, run it in a worker pool instead so it does not fill that pool`;
  }
  return 'its asynchronous form';
}

interface SyncSite {
  finding: Finding;
  api: string;
  totalMs: number;
  maxMs: number;
  /** Blocking episodes at the same line, folded in. */
  episodes: number;
  blockMaxMs: number;
}

function severity(critical: boolean): Severity {
  return critical ? 'critical' : 'warning';
}

/** Blocking sync calls, then blocked loops not explained by one of them. */
function blocking(dash: DashboardQueries, w: Window, th: FindingThresholds): Finding[] {
  const sites = new Map<string, SyncSite>();
  for (const g of dash.groups(KINDS.syncCall, w, 100)) {
    const examples = dash.slowest(KINDS.syncCall, g.key, { ...w, service: g.service }, EXAMPLES);
    const location = locationOf(examples[0]?.attributes);
    if (!location) continue;
    const api = str(examples[0].attributes[SYNC_API]) || 'a blocking call';
    const finding: Finding = {
      kind: 'sync-call',
      severity: 'warning',
      service: g.service,
      title: `${api} blocks the event loop in ${location.function}`,
      detail: '',
      impactMs: g.totalMs,
      count: g.count,
      location,
      traceIds: traceIds(examples),
      figures: { totalMs: g.totalMs, maxMs: g.maxMs, calls: g.count },
    };
    const key = sameSite(g.service, location);
    // Two slow APIs on one line: the costlier one names the finding.
    if ((sites.get(key)?.totalMs ?? -1) < g.totalMs)
      sites.set(key, { finding, api, totalMs: g.totalMs, maxMs: g.maxMs, episodes: 0, blockMaxMs: 0 });
  }

  const out: Finding[] = [];
  const t = th['loop-blocked'];
  for (const g of dash.groups(KINDS.loopBlock, w, 100)) {
    const examples = dash.slowest(KINDS.loopBlock, g.key, { ...w, service: g.service }, EXAMPLES);
    const a = examples[0]?.attributes;
    const location = locationOf(a);
    // No stack: nothing to name. The telemetry's own work and Node's alone are not the app's doing.
    const origin = str(a?.[BLOCK_ORIGIN]) || BLOCK_ORIGINS.app;
    if (!location || origin === BLOCK_ORIGINS.telemetry || origin === BLOCK_ORIGINS.runtime) continue;
    const sync = sites.get(sameSite(g.service, location));
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
    const inDependency = origin === BLOCK_ORIGINS.dependency;
    const pkg = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(location.file)?.[1]?.replace('\\', '/');
    out.push({
      kind: 'loop-blocked',
      severity: severity(g.totalMs >= t['critical-total'] || g.maxMs >= t['critical-max']),
      service: g.service,
      title: `Event loop blocked in ${location.function}${pkg ? ` (${pkg})` : ''}`,
      detail:
        `The event loop stopped for ${formatMs(g.totalMs)} in ${plural(g.count, 'episode')} (the longest ${formatMs(g.maxMs)}) while running ` +
        `${showLocation(location)}${inDependency ? `, code of the dependency ${pkg ?? ''} with no code of yours on the stack` : ''}. ` +
        `While it runs, this process does nothing else: every other request, timer and I/O callback waits. ` +
        (location.file.endsWith('.py')
          ? `Move the CPU work off the loop (loop.run_in_executor with a ProcessPoolExecutor: threads share the GIL), split it into chunks with await asyncio.sleep(0) between them, or make it cheaper.`
          : `Move the CPU work off the main thread (a worker pool such as Piscina), split it into chunks that yield with setImmediate, or make it cheaper.`),
      impactMs: g.totalMs,
      count: g.count,
      location,
      traceIds: traceIds(examples),
      figures: { totalMs: g.totalMs, maxMs: g.maxMs, episodes: g.count },
    });
  }

  const s = th['sync-call'];
  for (const site of sites.values()) {
    const f = site.finding;
    f.count = Math.max(f.count, site.episodes);
    if (site.totalMs < s['min-total'] || f.count < s['min-count']) continue;
    const api = site.api;
    f.severity = severity(site.totalMs >= s['critical-total'] || site.blockMaxMs >= t['critical-max']);
    f.impactMs = site.totalMs;
    f.figures = { ...f.figures, totalMs: site.totalMs, maxMs: site.maxMs };
    f.detail =
      `${api} at ${showLocation(f.location!)} ran ${plural(f.count, 'time')} while serving, blocking the event loop for ` +
      `${formatMs(site.totalMs)} in all (the longest ${formatMs(site.maxMs)}). A synchronous call holds the only JavaScript thread until it returns. ` +
      `Use ${alternative(api)}.`;
    out.push(f);
  }
  return out;
}

interface Pairs {
  cross: number;
  share: number;
  top?: { waiterSite: string; holderSite: string; totalMs: number };
  topSite?: string;
}

function pairsOf(dash: DashboardQueries, lock: string, w: Window): Pairs {
  const pairs = dash.lockPairs(lock, w);
  let known = 0;
  let cross = 0;
  let top: Pairs['top'];
  const bySite = new Map<string, number>();
  for (const p of pairs) {
    bySite.set(p.waiterSite, (bySite.get(p.waiterSite) ?? 0) + p.totalMs);
    if (!p.waiterSite || !p.holderSite) continue;
    known += p.totalMs;
    if (p.waiterSite === p.holderSite) continue;
    cross += p.totalMs;
    if (!top || p.totalMs > top.totalMs) top = p;
  }
  const topSite = [...bySite].filter(([site]) => site).sort((a, b) => b[1] - a[1])[0]?.[0];
  return { cross, share: known ? cross / known : 0, top, topSite };
}

function limiterAdvice(type: string): string {
  return type === 'p-limit' || type === 'p-queue'
    ? 'It is a limiter: tasks wait for one of its slots. Raise its concurrency if what it protects can take more, make each task shorter, or shed load before queueing.'
    : 'Hold it for less time (do slow I/O and computation outside the critical section), or split it per resource or per key so that unrelated requests do not queue together.';
}

function locks(dash: DashboardQueries, w: Window, th: FindingThresholds): Finding[] {
  const out: Finding[] = [];
  const rows = dash.locks(w);
  /** service and lock of the held-lock findings: the cause of those locks' waits. */
  const held = new Set<string>();

  const h = th['lock-held'];
  for (const g of dash.groups(KINDS.lockHeld, w, 100)) {
    const sw = { ...w, service: g.service };
    const spans = dash.latest(KINDS.lockHeld, sw, 20, g.key);
    const heldMs = Math.max(0, ...spans.map((s) => Number(s.attributes[LOCK_HELD_MS]) || s.durationMs));
    if (heldMs < h['min-held']) continue;
    const waiters = Math.max(0, ...spans.map((s) => Number(s.attributes[LOCK_WAITERS]) || 0));
    const holderSite = spans.map((s) => str(s.attributes[LOCK_HOLDER_SITE])).find(Boolean) ?? '';
    const row = rows.find((r) => r.service === g.service && r.lock === g.key);
    // Waiters of a lock that is never released never finish waiting: count them while it was
    // held, from each hold's latest report (a hold is reported again as it goes on).
    const perHold = new Map<string, number>();
    for (const s of spans)
      perHold.set(
        s.start,
        Math.max(
          perHold.get(s.start) ?? 0,
          (Number(s.attributes[LOCK_HELD_MS]) || 0) * (Number(s.attributes[LOCK_WAITERS]) || 0),
        ),
      );
    const waitedMs = Math.max(
      row?.totalWaitMs ?? 0,
      [...perHold.values()].reduce((a, b) => a + b, 0),
    );
    held.add(key(g.service, g.key));
    out.push({
      kind: 'lock-held',
      severity: severity(heldMs >= h['critical-held']),
      service: g.service,
      title: `Lock ${g.key} held for ${formatMs(heldMs)} while others wait`,
      detail:
        `Lock ${g.key} was held for ${formatMs(heldMs)}${holderSite ? ` by the code that acquired it at ${holderSite}` : ''} with ${plural(waiters, 'request')} ` +
        `waiting behind it (${plural(g.count, 'report')}; each is made while the lock is still held). Either slow work runs inside the critical section, ` +
        `or a code path returns or throws between acquire and release, so the lock is never released and every later request waits forever. ` +
        `Release in a finally block (or use runExclusive), keep slow I/O outside the lock, and give acquisitions a timeout.`,
      impactMs: waitedMs,
      count: g.count,
      resource: g.key,
      location: locationOf(spans[0]?.attributes) ?? siteLocation(holderSite),
      traceIds: traceIds(spans),
      figures: { heldMs, waiters, reports: g.count, ...(row ? { totalWaitMs: row.totalWaitMs } : {}) },
    });
  }

  const c = th['lock-contention'];
  for (const row of rows) {
    if (
      held.has(key(row.service, row.lock)) ||
      row.totalWaitMs < c['min-total-wait'] ||
      (row.waitP95Ms ?? 0) < c['min-p95']
    )
      continue;
    const sw = { ...w, service: row.service };
    const pairs = pairsOf(dash, row.lock, sw);
    const examples = dash.slowest(KINDS.lockWait, row.lock, sw, 20);
    const siteSpan = (site: string | undefined) => examples.find((s) => str(s.attributes[LOCK_ACQUIRE_SITE]) === site);
    const figures = {
      totalWaitMs: row.totalWaitMs,
      waitP95Ms: row.waitP95Ms ?? 0,
      waitMaxMs: row.waitMaxMs ?? 0,
      maxQueue: row.maxQueue,
      acquisitions: row.acquisitions,
      contended: row.contended,
    };
    const stats =
      `${plural(row.contended, 'acquisition')} of ${row.acquisitions} had to wait, ${formatMs(row.totalWaitMs)} in all; 95% of acquisitions waited ` +
      `under ${formatMs(row.waitP95Ms ?? 0)}, the longest ${formatMs(row.waitMaxMs ?? 0)}, with up to ${row.maxQueue} queued`;
    const base = {
      severity: severity((row.waitP95Ms ?? 0) >= c['critical-p95']),
      service: row.service,
      impactMs: row.totalWaitMs,
      count: row.contended,
      resource: row.lock,
    };
    if (pairs.top && pairs.share >= th['shared-lock']['min-cross-share']) {
      const { waiterSite, holderSite } = pairs.top;
      out.push({
        ...base,
        kind: 'shared-lock',
        title: `One lock, ${row.lock}, serialises unrelated code`,
        detail:
          `Lock ${row.lock} (${row.type}) is taken at different places, and ${Math.round(pairs.share * 100)}% of the waiting (${formatMs(pairs.cross)}) ` +
          `was code at one place queueing behind a holder at another: most of all ${waiterSite} waiting for ${holderSite}. ${stats}. ` +
          `When one lock guards unrelated resources, each path waits for the other for no reason. Give each resource its own lock ` +
          `(one for the balance, another for the order counter, for example), so that only work on the same data queues.`,
        location: locationOf(siteSpan(waiterSite)?.attributes) ?? siteLocation(waiterSite),
        traceIds: traceIds(examples),
        figures: { ...figures, crossSiteShare: pairs.share, crossSiteWaitMs: pairs.cross },
      });
      continue;
    }
    out.push({
      ...base,
      kind: 'lock-contention',
      title: `Hot lock ${row.lock}`,
      detail: `Lock ${row.lock} (${row.type}) is contended: ${stats}.${pairs.topSite ? ` Most of the waiting is at ${pairs.topSite}.` : ''} ${limiterAdvice(row.type)}`,
      location:
        locationOf(siteSpan(pairs.topSite)?.attributes) ?? (pairs.topSite ? siteLocation(pairs.topSite) : undefined),
      traceIds: traceIds(examples),
      figures,
    });
  }
  return out;
}

/** libuv request types as the code that makes them knows them. */
const OPERATIONS: Record<string, string> = {
  FSREQCALLBACK: 'fs callbacks and streams',
  GETADDRINFOREQWRAP: 'dns.lookup',
  GETNAMEINFOREQWRAP: 'dns.lookupService',
  PBKDF2REQUEST: 'crypto.pbkdf2',
  SCRYPTREQUEST: 'crypto.scrypt',
  RANDOMBYTESREQUEST: 'crypto.randomBytes',
  DERIVEBITSREQUEST: 'crypto.hkdf',
  ZLIB: 'zlib',
};
const opName = (op: string) => (OPERATIONS[op] ? `${OPERATIONS[op]} (${op})` : op);

function threadpool(dash: DashboardQueries, w: Window, th: FindingThresholds): Finding[] {
  const t = th['threadpool-saturated'];
  const byService = new Map<string, Array<{ op: string; totalMs: number; count: number }>>();
  for (const g of dash.groups(KINDS.threadpoolWait, w, 200)) {
    const list = byService.get(g.service) ?? [];
    list.push({ op: g.key, totalMs: g.totalMs, count: g.count });
    byService.set(g.service, list);
  }
  const out: Finding[] = [];
  for (const [service, waits] of byService) {
    const totalMs = waits.reduce((s, x) => s + x.totalMs, 0);
    if (totalMs < t['min-total-wait']) continue;
    const sw = { ...w, service };
    const sample = dash.latest(KINDS.threadpoolWait, sw, AHEAD_SAMPLE);
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
    const canary = dash.histogramTotals(THREADPOOL_METRICS.canaryWait, sw).find((c) => c.service === service);
    const canaryMs = canary?.count ? (1000 * canary.sum) / canary.count : undefined;
    const count = waits.reduce((s, x) => s + x.count, 0);
    waits.sort((a, b) => b.totalMs - a.totalMs);
    const busyText = culprits
      .slice(0, 3)
      .map(([op, n]) => `${opName(op)} ${Math.round((100 * n) / busyTotal)}%`)
      .join(', ');
    const waitText = waits
      .slice(0, 3)
      .map((x) => `${opName(x.op)} ${formatMs(x.totalMs)}`)
      .join(', ');
    const cpuBound =
      culprit === 'PBKDF2REQUEST' ||
      culprit === 'SCRYPTREQUEST' ||
      culprit === 'ZLIB' ||
      culprit === 'DERIVEBITSREQUEST';
    const dnsWaits = waits.some((x) => x.op === 'GETADDRINFOREQWRAP');
    out.push({
      kind: 'threadpool-saturated',
      severity: severity(totalMs >= t['critical-total-wait']),
      service,
      title: `libuv threadpool saturated${culprit ? ` by ${OPERATIONS[culprit] ?? culprit}` : ''}`,
      detail: [
        `All ${size} libuv threads were busy: ${plural(count, 'operation')} waited ${formatMs(totalMs)} in all for a thread (${waitText}).`,
        busyText
          ? `The threads were busy with ${busyText}${submitter ? `, submitted at ${showLocation(locationOf(submitter.attributes)!)}` : ''}.`
          : '',
        !submitter && waiter ? `Most waiting was at ${showLocation(locationOf(waiter.attributes)!)}.` : '',
        canaryMs !== undefined ? `A tiny fs.stat took ${formatMs(canaryMs)} on average.` : '',
        cpuBound
          ? 'CPU-heavy work fills the pool and everything behind it waits: run it in a worker pool (e.g. Piscina) sized to your cores and keep the libuv threads for I/O; raising UV_THREADPOOL_SIZE helps only while cores are idle.'
          : 'Raise UV_THREADPOOL_SIZE (in the environment before the process starts, e.g. UV_THREADPOOL_SIZE=16) if the work is I/O, or submit less at once.',
        dnsWaits ? 'dns.lookup shares this pool: dns.resolve* does not, and caching lookups avoids the wait.' : '',
      ]
        .filter(Boolean)
        .join(' '),
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
    });
  }
  return out;
}

function pools(dash: DashboardQueries, w: Window, th: FindingThresholds): Finding[] {
  const t = th['pool-queueing'];
  const id = (service: string, a: Attributes) => key(service, str(a[POOL_NAME]), str(a[POOL_TYPE]));
  const runs = new Map(dash.histogramTotals(POOL_METRICS.runTime, w).map((r) => [id(r.service, r.attributes), r]));
  const waits = new Map<string, { service: string; pool: string; type: string; count: number; sum: number }>();
  // Several instances of a service each report the pool: add them up.
  for (const r of dash.histogramTotals(POOL_METRICS.queueWait, w)) {
    const k = id(r.service, r.attributes);
    const e = waits.get(k) ?? {
      service: r.service,
      pool: str(r.attributes[POOL_NAME]),
      type: str(r.attributes[POOL_TYPE]),
      count: 0,
      sum: 0,
    };
    e.count += r.count;
    e.sum += r.sum;
    waits.set(k, e);
  }
  const out: Finding[] = [];
  for (const [k, wait] of waits) {
    const run = runs.get(k);
    const waitMs = 1000 * wait.sum;
    if (!wait.count || !run?.count || waitMs < t['min-total-wait']) continue;
    const meanWait = waitMs / wait.count;
    const meanRun = (1000 * run.sum) / run.count;
    const ratio = meanRun > 0 ? meanWait / meanRun : Infinity;
    if (ratio < t['min-wait-to-run']) continue;
    const examples = dash.slowest(KINDS.poolTask, wait.pool, { ...w, service: wait.service }, EXAMPLES);
    out.push({
      kind: 'pool-queueing',
      severity: severity(ratio >= t['critical-wait-to-run']),
      service: wait.service,
      title: `Tasks wait longer than they run in ${wait.pool}`,
      detail:
        `Tasks of the ${wait.type} pool ${wait.pool} waited ${formatMs(meanWait)} on average for a worker but ran ${formatMs(meanRun)}: ` +
        `${plural(wait.count, 'task')}, ${formatMs(waitMs)} of waiting in all. The pool has fewer threads than the work needs at this rate. ` +
        `Raise maxThreads as far as there are idle cores, make tasks cheaper or batch small ones, and cap the queue (maxQueue) ` +
        `so that overload is refused early instead of waiting unboundedly.`,
      impactMs: waitMs,
      count: wait.count,
      resource: wait.pool,
      traceIds: traceIds(examples),
      figures: { totalWaitMs: waitMs, meanWaitMs: meanWait, meanRunMs: meanRun, tasks: wait.count },
    });
  }
  return out;
}

/** Every finding for the window (and service), most costly first. */
export function deriveFindings(dash: DashboardQueries, w: Window, th: FindingThresholds): Finding[] {
  return [...blocking(dash, w, th), ...locks(dash, w, th), ...threadpool(dash, w, th), ...pools(dash, w, th)].sort(
    (a, b) => b.impactMs - a.impactMs,
  );
}
