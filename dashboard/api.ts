// The JSON behind the dashboard's pages, under /api/dash. Each answers one page's question for a
// time window (since=15m, or from/to) and optionally one service, with a chart step, assembled
// from the read model; the response types are declared in common/types.ts, where the pages'
// JSDoc types find them too.
import express, { type Request, type Router } from 'express';
import type { Collector } from '../collector/index';
import {
  CODE_STACKTRACE,
  KINDS,
  METRICS,
  POOL_METRICS,
  POOL_NAME,
  POOL_TYPE,
  THREADPOOL_CATEGORY,
  THREADPOOL_METRICS,
} from '../common/conventions';
import { msToNs, nsToIso, stepTimes } from '../common/time';
import type {
  Attributes,
  BlockingGroupPage,
  BlockingPage,
  Chart,
  LockPage,
  LockPair,
  LocksPage,
  OffloadPage,
  OverviewPage,
  ProfilePage,
  RoutePage,
  RoutesPage,
  ServiceState,
  Window,
} from '../common/types';
import { BadParam, handler, intParam, one, range, stepParam } from '../collector/params';
import { flameTree, stackFrames } from '../collector/loop-profile';
import { encodeProfile } from '../collector/profiles';

const DEFAULT_WINDOW_MS = 3_600_000;
const STATE_ORDER: Record<ServiceState['state'], number> = { critical: 0, warning: 1, fine: 2 };
/** Blocking episodes read for the blocked-time flame graph. */
const BLOCKED_STACKS = 2000;

function window(req: Request): Window {
  const { fromMs, toMs } = range(req, DEFAULT_WINDOW_MS);
  const stepMs = stepParam(req, toMs! - fromMs!);
  return {
    service: one(req, 'service') || undefined,
    fromNs: msToNs(fromMs!),
    toNs: msToNs(toMs!),
    stepNs: msToNs(stepMs),
  };
}

function required(req: Request, name: string, what: string): string {
  const v = one(req, name);
  if (!v) throw new BadParam(`${name}: required, ${what}`);
  return v;
}

const text = (v: unknown) => (typeof v === 'string' ? v : String(v ?? ''));
/** How a pool is labelled in charts: its name and type. */
const poolLabel = (a: Attributes) => `${text(a[POOL_NAME])} (${text(a[POOL_TYPE])})`;

export function dashboardApi(collector: Collector): Router {
  const api = express.Router();
  const read = collector.store.read;

  /** Loop lag (p99, max) and utilization over time, per service; several instances: the worst delay, the mean utilization. */
  async function loopChart(w: Window): Promise<Chart> {
    const times = stepTimes(w);
    const series: Chart['series'] = [];
    for (const [name, fold, scale] of [
      [`${METRICS.loopDelayPrefix}p99`, 'max', 1000],
      [`${METRICS.loopDelayPrefix}max`, 'max', 1000],
      [METRICS.loopUtilization, 'avg', 1],
    ] as const) {
      const byService = new Map<string, Array<number | null>>();
      for (const r of await read.gaugeSteps(name, fold, w)) {
        let values = byService.get(r.service);
        if (!values) byService.set(r.service, (values = new Array<number | null>(times.length).fill(null)));
        if (r.step >= 0 && r.step < times.length) values[r.step] = r.value * scale;
      }
      for (const [service, values] of byService) series.push({ name, service, values });
    }
    return { times, series };
  }

  api.get(
    '/overview',
    handler(async (req): Promise<OverviewPage> => {
      const w = window(req);
      const [loop, locks, blockingGroups, latestEpisodes, syncCalls, canary, poolWait, findings, known] =
        await Promise.all([
          loopChart(w),
          read.locks(w),
          read.groups(KINDS.loopBlock, w, 5),
          read.latest(KINDS.loopBlock, w, 10),
          read.groups(KINDS.syncCall, w, 5),
          read.meanChart(THREADPOOL_METRICS.canaryWait, w, () => 'canary wait'),
          read.meanChart(POOL_METRICS.queueWait, w, poolLabel),
          collector.findings(w),
          read.services(),
        ]);
      const seenSince = nsToIso(w.fromNs);
      const services: ServiceState[] = known
        .filter((s) => (w.service ? s.service === w.service : s.lastSeen >= seenSince))
        .map((s): ServiceState => {
          const mine = findings.filter((f) => f.service === s.service);
          const line = (name: string) =>
            loop.series.find((x) => x.service === s.service && x.name === name)?.values ?? [];
          return {
            service: s.service,
            state: mine.some((f) => f.severity === 'critical') ? 'critical' : mine.length ? 'warning' : 'fine',
            lostMs: mine.reduce((a, f) => a + f.impactMs, 0),
            findings: mine.length,
            worst: mine[0] ? { kind: mine[0].kind, severity: mine[0].severity, title: mine[0].title } : null,
            loopP99Ms: line(`${METRICS.loopDelayPrefix}p99`),
            utilization: line(METRICS.loopUtilization),
          };
        })
        .sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || b.lostMs - a.lostMs);
      return {
        window: { from: nsToIso(w.fromNs), to: nsToIso(w.toNs) },
        services,
        loop,
        locks: locks.slice(0, 5),
        blockingGroups,
        latestEpisodes,
        syncCalls,
        // The overview's two offload charts only, not the whole Offload page.
        offload: { canary, poolWait },
      };
    }),
  );

  api.get(
    '/locks',
    handler(async (req): Promise<LocksPage> => {
      const w = window(req);
      const locks = await read.locks(w);
      const top = intParam(req, 'top', 1, 20, 5);
      const chart = await read.groupChart(
        KINDS.lockWait,
        locks.slice(0, top).map((l) => l.lock),
        w,
      );
      return { locks, chart };
    }),
  );

  api.get(
    '/lock',
    handler(async (req): Promise<LockPage> => {
      const name = required(req, 'name', 'the lock name (stallscope.lock.name)');
      const w = window(req);
      const [histograms, pairs, slowest, held, chart] = await Promise.all([
        read.lockHistograms(name, w),
        read.lockPairs(w, name),
        read.slowest(KINDS.lockWait, name, w, 10),
        read.latest(KINDS.lockHeld, w, 10, name),
        read.groupChart(KINDS.lockWait, [name], w),
      ]);
      const bySite = (site: (p: LockPair) => string) => {
        const totals = new Map<string, number>();
        for (const p of pairs) totals.set(site(p), (totals.get(site(p)) ?? 0) + p.totalMs);
        return [...totals].map(([s, totalMs]) => ({ site: s, totalMs })).sort((a, b) => b.totalMs - a.totalMs);
      };
      return {
        lock: name,
        ...histograms,
        acquireSites: bySite((p) => p.waiterSite),
        holders: bySite((p) => p.holderSite),
        pairs: pairs.slice(0, 50),
        slowest,
        held,
        chart,
      };
    }),
  );

  api.get(
    '/blocking',
    handler(async (req): Promise<BlockingPage> => {
      const w = window(req);
      const [episodes, syncCalls] = await Promise.all([
        read.groups(KINDS.loopBlock, w),
        read.groups(KINDS.syncCall, w),
      ]);
      return { episodes, syncCalls };
    }),
  );

  api.get(
    '/blocking/group',
    handler(async (req): Promise<BlockingGroupPage> => {
      const kind = one(req, 'kind') ?? KINDS.loopBlock;
      if (kind !== KINDS.loopBlock && kind !== KINDS.syncCall)
        throw new BadParam(`kind: ${KINDS.loopBlock} or ${KINDS.syncCall}`);
      const key = required(req, 'key', 'the group (as listed by /api/dash/blocking)');
      const spans = await read.latest(kind, window(req), 50, key);
      return { key, stack: text(spans[0]?.attributes[CODE_STACKTRACE] ?? ''), spans };
    }),
  );

  api.get(
    '/offload',
    handler(async (req): Promise<OffloadPage> => {
      const w = window(req);
      const category = (s: { attributes: Attributes }) => text(s.attributes[THREADPOOL_CATEGORY] ?? 'all');
      const [canary, inFlight, size, threadpoolWaits, poolWait, poolRun, pools] = await Promise.all([
        read.meanChart(THREADPOOL_METRICS.canaryWait, w, () => 'canary wait'),
        read.gaugeMaxChart(THREADPOOL_METRICS.inFlight, w, category),
        read.gaugeMaxChart(THREADPOOL_METRICS.size, w, () => 'threadpool size'),
        read.groups(KINDS.threadpoolWait, w),
        read.meanChart(POOL_METRICS.queueWait, w, poolLabel),
        read.meanChart(POOL_METRICS.runTime, w, poolLabel),
        read.groups(KINDS.poolTask, w),
      ]);
      return { canary, inFlight, size, threadpoolWaits, poolWait, poolRun, pools };
    }),
  );

  api.get(
    '/routes',
    handler(async (req): Promise<RoutesPage> => {
      const w = window(req);
      return { routes: await read.routes(w) };
    }),
  );

  api.get(
    '/route',
    handler(async (req): Promise<RoutePage> => {
      const w = window(req);
      const service = required(req, 'service', 'the service of the route');
      const route = required(req, 'route', 'the route (method and http.route, as /api/dash/routes lists it)');
      const [row] = await read.routes({ ...w, service }, route);
      return { route: row ?? null, slowest: row ? await read.slowestRequests(service, route, w, 10) : [] };
    }),
  );

  api.get(
    '/profile',
    handler(async (req): Promise<ProfilePage> => {
      const w = window(req);
      const [stacks, windows, episodes] = await Promise.all([
        read.stackWeights(w),
        read.profileWindows(w),
        read.latest(KINDS.loopBlock, w, BLOCKED_STACKS),
      ]);
      const withStack = episodes.filter((e) => typeof e.attributes[CODE_STACKTRACE] === 'string');
      return {
        windows,
        cpu: flameTree(stacks),
        blocked: flameTree(
          withStack.map((e) => ({
            frames: stackFrames(String(e.attributes[CODE_STACKTRACE])),
            weightMs: e.durationMs,
          })),
        ),
        blockedEpisodes: withStack.length,
      };
    }),
  );

  // The loop's CPU over the window as a pprof file: go tool pprof and speedscope open it.
  api.get('/profile.pb.gz', async (req, res) => {
    try {
      const w = window(req);
      const stacks = await read.stackWeights(w);
      const [windows] = await read.profileWindows(w);
      const body = encodeProfile(
        stacks.map((s) => ({ frames: s.frames, samples: s.samples, weightNs: BigInt(Math.round(s.weightMs * 1e6)) })),
        {
          service: w.service ?? 'all services',
          startNs: w.fromNs,
          durationNs: w.toNs - w.fromNs,
          periodNs: BigInt(Math.round((windows?.periodMs ?? 10) * 1e6)),
        },
      );
      const name = `${(w.service ?? 'all').replace(/[^\w.-]+/g, '_')}-loop-cpu.pb.gz`;
      res.type('application/octet-stream').set('Content-Disposition', `attachment; filename="${name}"`).send(body);
    } catch (err) {
      if (err instanceof BadParam) res.status(400).json({ error: err.message });
      else res.status(500).json({ error: `internal error: ${(err as Error).message}` });
    }
  });

  api.use((req, res) => {
    res.status(404).json({ error: `no API endpoint ${req.method} /api/dash${req.path}` });
  });
  return api;
}
