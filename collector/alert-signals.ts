// The value of an alert rule's signal over its window, per service or per resource. Lock, loop
// and pool signals come from the agent's metric points over the exact window (not the per-minute
// rollups), so that an alert resolves as soon as the window no longer holds the problem.
import {
  LOCK_CONTENDED,
  LOCK_METRICS,
  LOCK_NAME,
  METRICS,
  POOL_METRICS,
  POOL_NAME,
  THREADPOOL_METRICS,
} from '../common/conventions';
import type { AlertRule, Attributes, Finding } from '../common/types';
import { msToNs } from '../common/time';
import { quantile } from '../db/dashboard';
import type { DashboardQueries, Window } from '../db/index';
import { key } from '../common/keys';

export interface SignalValue {
  service: string;
  resource?: string;
  kind?: string;
  value: number;
}

const str = (v: unknown) => (typeof v === 'string' ? v : String(v ?? ''));

/** `*` any run of characters, `?` one; everything else literal. */
export function globMatch(glob: string | undefined, value: string): boolean {
  if (glob === undefined) return true;
  const re = new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(value);
}

interface LockAcc {
  service: string;
  lock: string;
  count: number;
  sum: number;
  bounds: number[];
  counts: number[];
  acquisitions: number;
  contended: number;
  maxPending: number;
}

function lockStats(dash: DashboardQueries, w: Window): LockAcc[] {
  const locks = new Map<string, LockAcc>();
  const acc = (service: string, a: Attributes): LockAcc => {
    const lock = str(a[LOCK_NAME]);
    const id = key(service, lock);
    let e = locks.get(id);
    if (!e)
      locks.set(
        id,
        (e = { service, lock, count: 0, sum: 0, bounds: [], counts: [], acquisitions: 0, contended: 0, maxPending: 0 }),
      );
    return e;
  };
  for (const s of dash.windowTotals(LOCK_METRICS.waitTime, w)) {
    const e = acc(s.service, s.attributes);
    e.count += s.step.count ?? 0;
    e.sum += s.step.sum ?? 0;
    if (s.step.bounds) e.bounds = s.step.bounds;
    s.step.bucketCounts?.forEach((c, i) => (e.counts[i] = (e.counts[i] ?? 0) + c));
  }
  for (const s of dash.windowTotals(LOCK_METRICS.acquisitions, w)) {
    const e = acc(s.service, s.attributes);
    e.acquisitions += s.step.increase ?? 0;
    if (s.attributes[LOCK_CONTENDED] === true) e.contended += s.step.increase ?? 0;
  }
  for (const s of dash.windowTotals(LOCK_METRICS.pending, w)) {
    const e = acc(s.service, s.attributes);
    e.maxPending = Math.max(e.maxPending, s.step.max ?? 0);
  }
  return [...locks.values()];
}

/** Per service: the largest value a gauge took in the window, in ms when it is in seconds. */
function gaugeMax(dash: DashboardQueries, name: string, w: Window, scale: number): SignalValue[] {
  const by = new Map<string, number>();
  for (const s of dash.windowTotals(name, w))
    if (s.step.max !== undefined) by.set(s.service, Math.max(by.get(s.service) ?? -Infinity, s.step.max * scale));
  return [...by].map(([service, value]) => ({ service, value }));
}

/** Per service (and pool): a histogram's mean in ms over the window. */
function histogramMean(
  dash: DashboardQueries,
  name: string,
  w: Window,
  resource?: (a: Attributes) => string,
): SignalValue[] {
  const by = new Map<string, { service: string; resource?: string; count: number; sum: number }>();
  for (const s of dash.histogramTotals(name, w)) {
    const r = resource?.(s.attributes);
    const id = key(s.service, r ?? '');
    const e = by.get(id) ?? { service: s.service, resource: r, count: 0, sum: 0 };
    e.count += s.count;
    e.sum += s.sum;
    by.set(id, e);
  }
  return [...by.values()]
    .filter((e) => e.count > 0)
    .map((e) => ({ service: e.service, resource: e.resource, value: (1000 * e.sum) / e.count }));
}

/** Every value of the rule's signal in the window ending at `nowMs`, filtered by its globs. */
export function signalValues(
  rule: AlertRule,
  dash: DashboardQueries,
  findings: (w: Window) => Finding[],
  nowMs: number,
): SignalValue[] {
  const toNs = msToNs(nowMs);
  const w: Window = {
    fromNs: toNs - msToNs(rule.windowMs),
    toNs,
    stepNs: msToNs(rule.windowMs),
  };
  let values: SignalValue[];
  switch (rule.signal) {
    case 'lock-wait-p95':
    case 'lock-wait-p99':
    case 'lock-wait-total':
    case 'lock-queue':
      values = lockStats(dash, w)
        .filter((l) => l.acquisitions > 0 || l.count > 0 || l.maxPending > 0)
        .map((l) => {
          const h = { count: l.count, sum: l.sum, bounds: l.bounds, counts: l.counts };
          const zeros = Math.max(0, l.acquisitions - l.contended);
          const value =
            rule.signal === 'lock-wait-total'
              ? l.sum * 1000
              : rule.signal === 'lock-queue'
                ? l.maxPending
                : 1000 * (quantile(h, rule.signal === 'lock-wait-p95' ? 0.95 : 0.99, zeros) ?? 0);
          return { service: l.service, resource: l.lock, value };
        });
      break;
    case 'loop-delay-p99':
    case 'loop-delay-max':
      values = gaugeMax(dash, `${METRICS.loopDelayPrefix}${rule.signal === 'loop-delay-p99' ? 'p99' : 'max'}`, w, 1000);
      break;
    case 'blocking-episodes': {
      const by = new Map<string, number>();
      for (const s of dash.windowTotals(METRICS.blocks, w))
        by.set(s.service, (by.get(s.service) ?? 0) + (s.step.increase ?? 0));
      values = [...by].map(([service, value]) => ({ service, value }));
      break;
    }
    case 'threadpool-canary-wait':
      values = histogramMean(dash, THREADPOOL_METRICS.canaryWait, w);
      break;
    case 'pool-queue-wait':
      values = histogramMean(dash, POOL_METRICS.queueWait, w, (a) => str(a[POOL_NAME]));
      break;
    case 'finding':
      values = findings(w)
        .filter((f) => rule.kind === undefined || f.kind === rule.kind)
        .map((f) => ({
          service: f.service,
          kind: f.kind,
          resource:
            f.resource ?? (f.location ? `${f.location.function} (${f.location.file}:${f.location.line})` : undefined),
          value: f.impactMs,
        }));
      break;
  }
  return values.filter(
    (v) =>
      globMatch(rule.service, v.service) && (rule.resource === undefined || globMatch(rule.resource, v.resource ?? '')),
  );
}
