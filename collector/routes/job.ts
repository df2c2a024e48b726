// The routes job: every interval, the HTTP server spans that ended a while ago (long enough for
// their traces, the other requests' episodes and the loop's CPU profile windows to have arrived)
// are broken down (breakdown.ts) and stored through the writer thread, off the ingest path.
import { codeKey } from '../../common/agent-spans';
import { BLOCK_CAPTURED, BLOCK_ORIGIN, BLOCK_ORIGINS, BLOCK_STARVED } from '../../common/conventions';
import type { JobSpan, RequestBreakdown, TimedSample } from '../../common/types';
import { key } from '../../common/keys';
import { NS_PER_MINUTE, nowNs } from '../../common/time';
import type { Store } from '../../db/index';
import { culpritOf } from '../loop-profile';
import { breakdown, routeOf, type BusySample, type Episode, type Process } from './breakdown';

export interface RoutesJobOptions {
  store: Store;
  /** How often the job runs. */
  intervalMs?: number;
  /** How long after a request ended it is broken down (profile windows are 30 s). */
  lagMs?: number;
  log: (line: string) => void;
}

/** Requests broken down per run at most; the rest wait for the next run. */
const MAX_REQUESTS = 5000;
/** A culprit is a route's own code when that route alone was in flight at least this often when it was seen. */
const OWNER_SHARE = 0.8;
const OWNER_MIN_SAMPLES = 3;

export class RoutesJob {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private cursor: bigint | undefined;
  private closed = false;

  constructor(private readonly o: RoutesJobOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.run(), this.o.intervalMs ?? 15_000);
    this.timer.unref();
  }

  /** One run; a call while one runs waits for it. */
  run(now = nowNs()): Promise<void> {
    this.running ??= this.runOnce(now)
      .catch((err: Error) => this.o.log(`stallscope: routes: ${err.message}`))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async runOnce(now: bigint): Promise<void> {
    if (this.closed) return;
    const read = this.o.store.read;
    const until = now - BigInt(this.o.lagMs ?? 60_000) * 1_000_000n;
    // From where the last run (of this process, or the stored breakdowns) stopped.
    this.cursor ??= (await read.lastBreakdownEnd()) ?? until - 5n * NS_PER_MINUTE;
    if (this.cursor >= until) return;
    const servers = await read.serverSpansEnding(this.cursor, until, MAX_REQUESTS);
    if (servers.length === 0) {
      this.cursor = until;
      return;
    }
    const requests = await this.breakDown(servers);
    if (this.closed) return;
    await this.o.store.write({ resources: [], spans: [], points: [], logs: [], requests });
    // A full page may have stopped among spans ending at the same time: take them again next run.
    this.cursor = servers.length === MAX_REQUESTS ? servers[servers.length - 1].endNs : until;
  }

  /** The breakdown of each server span, from its trace and its process's episodes and CPU samples. */
  async breakDown(servers: JobSpan[]): Promise<RequestBreakdown[]> {
    const read = this.o.store.read;
    const from = servers.reduce((m, s) => (s.startNs < m ? s.startNs : m), servers[0].startNs);
    const to = servers.reduce((m, s) => (s.endNs > m ? s.endNs : m), servers[0].endNs);
    const services = [...new Set(servers.map((s) => s.service))];
    const [trace, episodeSpans] = await Promise.all([
      read.spansOfTraces([...new Set(servers.map((s) => s.traceId))]),
      read.episodesOf(services, from - NS_PER_MINUTE, to),
    ]);
    const byTrace = new Map<string, JobSpan[]>();
    for (const s of trace) byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
    // The route an episode ran for: the server span of its trace.
    const episodeTraces = [...new Set(episodeSpans.map((e) => e.traceId))].filter((t) => !byTrace.has(t));
    for (const s of await read.spansOfTraces(episodeTraces))
      byTrace.set(s.traceId, [...(byTrace.get(s.traceId) ?? []), s]);
    const serverOf = (traceId: string) => byTrace.get(traceId)?.find((s) => s.kind === 2);
    const episodes: Episode[] = episodeSpans.map((e) => {
      const srv = serverOf(e.traceId);
      return {
        traceId: e.traceId,
        instance: e.instance,
        startNs: e.startNs,
        endNs: e.endNs,
        what: episodeName(e),
        route: srv ? routeOf(srv) : null,
      };
    });
    const processes = new Map<string, Process>();
    for (const service of services) {
      const samples = await read.timedSamples(service, from, to);
      const mine = servers.filter((s) => s.service === service);
      const inFlight = flightCounter(mine);
      const owned = owners(samples, inFlight);
      const busy: BusySample[] = [];
      for (const s of samples) {
        const culprit = culpritOf(s.frames);
        if (culprit)
          busy.push({
            instance: s.instance,
            timeNs: s.timeNs,
            weightNs: s.weightNs,
            culprit,
            route: owned.get(culprit) ?? null,
          });
      }
      for (const instance of new Set(mine.map((s) => s.instance)))
        processes.set(key(service, instance), {
          episodes: episodes.filter((e) => e.instance === instance),
          samples: busy.filter((s) => s.instance === instance),
          inFlight: (route, t) => inFlight.count(instance, route, t),
        });
    }
    return servers.map((s) => ({
      traceId: s.traceId,
      spanId: s.spanId,
      service: s.service,
      instance: s.instance,
      route: routeOf(s),
      startNs: s.startNs,
      durationNs: s.endNs - s.startNs,
      causes: breakdown(s, byTrace.get(s.traceId) ?? [s], processes.get(key(s.service, s.instance))!),
    }));
  }
}

/** An episode as a cause: its function, or who held the loop when it was not the app's code. */
function episodeName(e: JobSpan): string {
  const a = e.attributes;
  if (a[BLOCK_STARVED] === true) return 'the machine (the process hardly ran: CPU starvation)';
  if (a[BLOCK_ORIGIN] === BLOCK_ORIGINS.telemetry) return `telemetry: ${codeKey(a)}`;
  if (a[BLOCK_ORIGIN] === BLOCK_ORIGINS.runtime) return `Node: ${codeKey(a)}`;
  if (a[BLOCK_CAPTURED] === false) return 'a blocked loop (no stack captured)';
  return codeKey(a);
}

interface FlightCounter {
  count(instance: string, route: string, t: bigint): number;
  /** The routes in flight on the instance at t. */
  routes(instance: string, t: bigint): string[];
}

/** Requests in flight per process and route at a time: sorted starts and ends, binary searched. */
function flightCounter(servers: JobSpan[]): FlightCounter {
  const lists = new Map<string, { starts: bigint[]; ends: bigint[] }>();
  const routesOf = new Map<string, Set<string>>();
  for (const s of servers) {
    const route = routeOf(s);
    const id = key(s.instance, route);
    let l = lists.get(id);
    if (!l) lists.set(id, (l = { starts: [], ends: [] }));
    l.starts.push(s.startNs);
    l.ends.push(s.endNs);
    let r = routesOf.get(s.instance);
    if (!r) routesOf.set(s.instance, (r = new Set()));
    r.add(route);
  }
  const cmp = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
  for (const l of lists.values()) {
    l.starts.sort(cmp);
    l.ends.sort(cmp);
  }
  const atOrBefore = (xs: bigint[], t: bigint) => {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const count = (instance: string, route: string, t: bigint) => {
    const l = lists.get(key(instance, route));
    return l ? atOrBefore(l.starts, t) - atOrBefore(l.ends, t) : 0;
  };
  return {
    count,
    routes: (instance, t) => [...(routesOf.get(instance) ?? [])].filter((r) => count(instance, r, t) > 0),
  };
}

/**
 * Which route each piece of code belongs to, learned from the moments one route alone was in
 * flight on the process (then the loop was running that route's code, or nobody's).
 */
function owners(samples: TimedSample[], inFlight: FlightCounter): Map<string, string> {
  const votes = new Map<string, Map<string, number>>();
  for (const s of samples) {
    const culprit = culpritOf(s.frames);
    if (!culprit) continue;
    const routes = inFlight.routes(s.instance, s.timeNs);
    if (routes.length !== 1) continue;
    let v = votes.get(culprit);
    if (!v) votes.set(culprit, (v = new Map()));
    v.set(routes[0], (v.get(routes[0]) ?? 0) + 1);
  }
  const out = new Map<string, string>();
  for (const [culprit, v] of votes) {
    const total = [...v.values()].reduce((a, b) => a + b, 0);
    const [route, n] = [...v].sort((a, b) => b[1] - a[1])[0];
    if (total >= OWNER_MIN_SAMPLES && n >= OWNER_SHARE * total) out.set(culprit, route);
  }
  return out;
}
