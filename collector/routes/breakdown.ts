// Where one request's time went. Its critical path says what it waited for (a lock, the
// threadpool, a worker pool, an outgoing call) and what it did itself (its blocking episodes, its
// sync calls). The rest of the path is time the request was between recorded waits: there it was
// running or ready to run, so while the loop was blocked by another request's episode, or busy
// with another route's code (from the loop's CPU samples), it was waiting for the loop; samples of
// its own route's code are its own CPU; what remains is said as unattributed, never hidden.
import {
  KIND,
  KINDS,
  LOCK_HANDOFF_MS,
  LOCK_HOLDER_MS,
  LOCK_HOLDER_SITES,
  LOCK_NAME,
  POOL_NAME,
  POOL_QUEUE_WAIT_MS,
  POOL_RUN_MS,
  SYNC_API,
  THREADPOOL_OP,
} from '../../common/conventions';
import { codeKey } from '../../common/agent-spans';
import type { Attributes, RouteCause, RouteCauseKind } from '../../common/types';
import { key } from '../../common/keys';
import { criticalPath, type PathSpan } from './critical-path';

export interface TraceSpan extends PathSpan {
  traceId: string;
  name: string;
  /** OTLP SpanKind: 2 server, 3 client. */
  kind: number;
  service: string;
  instance: string;
  attributes: Attributes;
}

/** A blocking episode on one process, with the route of the request it ran in. */
export interface Episode {
  traceId: string;
  instance: string;
  startNs: bigint;
  endNs: bigint;
  /** `fn (file:line)`. */
  what: string;
  route: string | null;
}

/** A CPU sample of one process's loop, with its culprit and the route that owns that code, if known. */
export interface BusySample {
  instance: string;
  timeNs: bigint;
  weightNs: bigint;
  culprit: string;
  /** The route whose requests alone were in flight when this code was seen, if one was. */
  route: string | null;
}

const str = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));
const NS_PER_MS = 1_000_000;

/**
 * A request's route as the dashboard shows it: method and route template. Without a template (a
 * plain node:http server), the path with its ids folded (`/orders/:id`), so that routes stay few.
 */
export function routeOf(server: { name: string; attributes: Attributes }): string {
  const a = server.attributes;
  const method = str(a['http.request.method'] ?? a['http.method']);
  const route = str(a['http.route']) || foldPath(str(a['url.path'] ?? a['http.target']));
  if (route) return method ? `${method} ${route}` : route;
  return server.name;
}

const ID_SEGMENT = /^(\d+|[0-9a-f]{8,}|[0-9a-f-]{36}|(?=.*\d)[A-Za-z0-9_-]{16,})$/i;

/** A URL path without its query, each segment that looks like an id as `:id`. */
function foldPath(target: string): string {
  const path = target.split('?')[0];
  if (!path.startsWith('/')) return '';
  return path
    .split('/')
    .map((seg) => (ID_SEGMENT.test(seg) ? ':id' : seg))
    .join('/');
}

class Tally {
  private readonly by = new Map<string, { kind: RouteCauseKind; what: string; ns: number }>();
  add(kind: RouteCauseKind, what: string, ns: number): void {
    if (ns <= 0) return;
    const id = key(kind, what);
    const e = this.by.get(id);
    if (e) e.ns += ns;
    else this.by.set(id, { kind, what, ns });
  }
  causes(): RouteCause[] {
    return [...this.by.values()]
      .map((e) => ({ kind: e.kind, what: e.what, ms: e.ns / NS_PER_MS }))
      .sort((a, b) => b.ms - a.ms);
  }
}

/** Splits [from, to) of a wait span by what the span says about itself (lock blame, pool queue vs run). */
function chargeWaitSpan(t: Tally, s: TraceSpan, ns: number): boolean {
  const a = s.attributes;
  switch (a[KIND]) {
    case KINDS.lockWait: {
      const lock = str(a[LOCK_NAME]);
      const sites = Array.isArray(a[LOCK_HOLDER_SITES]) ? (a[LOCK_HOLDER_SITES] as unknown[]).map(str) : [];
      const ms = Array.isArray(a[LOCK_HOLDER_MS]) ? (a[LOCK_HOLDER_MS] as unknown[]).map(Number) : [];
      const handoff = Number(a[LOCK_HANDOFF_MS]) || 0;
      const whole = ms.reduce((x, y) => x + y, 0) + handoff;
      if (whole <= 0) t.add('lock-wait', `lock ${lock}`, ns);
      else {
        sites.forEach((site, i) => t.add('lock-wait', `lock ${lock}, held by ${site}`, (ns * (ms[i] || 0)) / whole));
        t.add('lock-wait', `lock ${lock}, handoff`, (ns * handoff) / whole);
      }
      return true;
    }
    case KINDS.threadpoolWait:
      t.add('threadpool-wait', `libuv threadpool (${str(a[THREADPOOL_OP])})`, ns);
      return true;
    case KINDS.poolTask: {
      const pool = str(a[POOL_NAME]);
      const q = Number(a[POOL_QUEUE_WAIT_MS]) || 0;
      const r = Number(a[POOL_RUN_MS]) || 0;
      const both = q + r;
      t.add('pool-queue', `worker pool ${pool}`, both > 0 ? (ns * q) / both : ns);
      t.add('pool-run', `worker pool ${pool}`, both > 0 ? (ns * r) / both : 0);
      return true;
    }
    case KINDS.loopBlock:
      t.add('own-blocking', codeKey(a), ns);
      return true;
    case KINDS.syncCall:
      t.add('own-sync', `${str(a[SYNC_API])} at ${codeKey(a)}`, ns);
      return true;
  }
  return false;
}

/** An outgoing call as a cause: its span name and where it went. */
function callName(s: TraceSpan): string {
  const a = s.attributes;
  const host = str(a['server.address'] ?? a['net.peer.name']);
  const port = str(a['server.port'] ?? a['net.peer.port']);
  return host ? `${s.name} ${host}${port ? `:${port}` : ''}` : s.name;
}

/** Where a request ran: its process's episodes and samples (sorted by start and by time). */
export interface Process {
  episodes: readonly Episode[];
  samples: readonly BusySample[];
  /** Requests of `route` in flight on the process at `t` (this one included). */
  inFlight(route: string, t: bigint): number;
}

/** The causes of one request's time; they add up to its duration. */
export function breakdown(root: TraceSpan, trace: readonly TraceSpan[], proc: Process): RouteCause[] {
  const t = new Tally();
  const route = routeOf(root);
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  // Under an outgoing call (the other side's server span and what it did), time is the call's.
  const callOf = (s: TraceSpan): TraceSpan | undefined => {
    for (let p: TraceSpan | undefined = s, hops = 0; p && p !== root && hops < 1000; hops++) {
      if (p.kind === 3) return p;
      p = p.parentSpanId ? byId.get(p.parentSpanId) : undefined;
    }
    return undefined;
  };
  for (const seg of criticalPath(root, trace)) {
    const ns = Number(seg.toNs - seg.fromNs);
    const call = seg.span === root ? undefined : callOf(seg.span);
    if (call) {
      t.add('outgoing-call', callName(call), ns);
      continue;
    }
    if (seg.span !== root && chargeWaitSpan(t, seg.span, ns)) continue;
    gap(t, route, root, seg.fromNs, seg.toNs, proc);
  }
  return t.causes();
}

/** Time between recorded waits: the loop blocked or busy with others, the request's own CPU, or unknown. */
function gap(t: Tally, route: string, root: TraceSpan, from: bigint, to: bigint, proc: Process): void {
  let covered = 0n;
  // Other requests' blocking episodes on this process: the loop could not run this one.
  const blocked: Array<[bigint, bigint]> = [];
  let last = from;
  for (const e of proc.episodes) {
    if (e.startNs >= to) break;
    if (e.endNs <= last || e.instance !== root.instance || e.traceId === root.traceId) continue;
    const a = e.startNs > last ? e.startNs : last;
    const b = e.endNs < to ? e.endNs : to;
    blocked.push([a, b]);
    t.add('loop-wait', `${e.what}${e.route ? `, in ${e.route}` : ''}`, Number(b - a));
    covered += b - a;
    last = b;
  }
  const inBlock = (x: bigint) => blocked.some(([a, b]) => x >= a && x < b);
  let busy = 0n;
  const room = to - from - covered;
  for (const s of lowerBound(proc.samples, from)) {
    if (s.timeNs >= to) break;
    if (s.instance !== root.instance || inBlock(s.timeNs)) continue;
    const w = busy + s.weightNs > room ? room - busy : s.weightNs;
    if (w <= 0n) break;
    busy += w;
    if (s.route === route) {
      // This route's code: this request's, or that of others of the route in flight with it.
      const n = Math.max(1, proc.inFlight(route, s.timeNs));
      t.add('own-cpu', s.culprit, Number(w) / n);
      t.add('loop-wait', `${s.culprit}, in ${route} (other requests of this route)`, (Number(w) * (n - 1)) / n);
    } else if (s.route) t.add('loop-wait', `${s.culprit}, in ${s.route}`, Number(w));
    else t.add('loop-busy', s.culprit, Number(w));
  }
  t.add('unattributed', 'between recorded waits, the loop free', Number(room - busy));
}

/** The samples from `from` on (they are sorted by time). */
function* lowerBound(samples: readonly BusySample[], from: bigint): Generator<BusySample> {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (samples[mid].timeNs < from) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < samples.length; i++) yield samples[i];
}
