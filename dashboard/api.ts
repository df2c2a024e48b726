// The JSON behind the dashboard's pages, under /api/dash. Each answers one page's question for a
// time window (since=15m, or from/to) and optionally one service, with a chart step.
import express, { type Request, type Router } from 'express';
import type { Store, Window } from '../db/index';
import { KINDS, POOL_METRICS, THREADPOOL_METRICS } from '../common/conventions';
import { poolLabel } from '../db/index';
import { msToNs, nsToIso } from '../common/time';
import { BadParam, handler, intParam, one, range, stepParam } from '../collector/params';

const DEFAULT_WINDOW_MS = 3_600_000;

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

export function dashboardApi(store: Store): Router {
  const api = express.Router();
  const dash = store.dashboard;

  api.get(
    '/overview',
    handler((req) => {
      const w = window(req);
      const episodes = dash.groups(KINDS.loopBlock, w, 5);
      return {
        window: {
          from: nsToIso(w.fromNs),
          to: nsToIso(w.toNs),
        },
        loop: dash.loop(w),
        locks: dash.locks(w).slice(0, 5),
        blockingGroups: episodes,
        latestEpisodes: dash.latest(KINDS.loopBlock, w, 10),
        syncCalls: dash.groups(KINDS.syncCall, w, 5),
        // The overview's two offload charts only, not the whole Offload page.
        offload: {
          canary: dash.meanChart(THREADPOOL_METRICS.canaryWait, w, () => 'canary wait'),
          poolWait: dash.meanChart(POOL_METRICS.queueWait, w, poolLabel),
        },
      };
    }),
  );

  api.get(
    '/locks',
    handler((req) => {
      const w = window(req);
      const locks = dash.locks(w);
      const top = intParam(req, 'top', 1, 20, 5);
      return {
        locks,
        chart: dash.groupChart(
          KINDS.lockWait,
          locks.slice(0, top).map((l) => l.lock),
          w,
        ),
      };
    }),
  );

  api.get(
    '/lock',
    handler((req) => dash.lock(required(req, 'name', 'the lock name (stallscope.lock.name)'), window(req))),
  );

  api.get(
    '/blocking',
    handler((req) => dash.blocking(window(req))),
  );

  api.get(
    '/blocking/group',
    handler((req) => {
      const kind = one(req, 'kind') ?? KINDS.loopBlock;
      if (kind !== KINDS.loopBlock && kind !== KINDS.syncCall)
        throw new BadParam(`kind: ${KINDS.loopBlock} or ${KINDS.syncCall}`);
      return dash.blockingGroup(kind, required(req, 'key', 'the group (as listed by /api/dash/blocking)'), window(req));
    }),
  );

  api.get(
    '/offload',
    handler((req) => dash.offload(window(req))),
  );

  api.use((req, res) => {
    res.status(404).json({ error: `no API endpoint ${req.method} /api/dash${req.path}` });
  });
  return api;
}
