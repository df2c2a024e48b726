// The value of an alert rule's signal over its window, per service or per resource, read through
// the same read model as the pages: a lock's p95 in an alert is the Locks page's p95 for the same
// window. Every window is exact (the lock rollup keeps single exports for its edges), so that an
// alert resolves as soon as the window no longer holds the problem.
import { METRICS, POOL_METRICS, POOL_NAME, THREADPOOL_METRICS } from '../common/conventions';
import type { AlertRule, Attributes, Finding, Window } from '../common/types';
import { key } from '../common/keys';
import { msToNs } from '../common/time';
import type { ReadModel } from '../db/index';

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

/** Per service: the largest value a gauge took in the window, in ms when it is in seconds. */
async function gaugeMax(read: ReadModel, name: string, w: Window, scale: number): Promise<SignalValue[]> {
  const by = new Map<string, number>();
  for (const s of await read.windowTotals(name, w))
    if (s.step.max !== undefined) by.set(s.service, Math.max(by.get(s.service) ?? -Infinity, s.step.max * scale));
  return [...by].map(([service, value]) => ({ service, value }));
}

/** Per service (and pool): a histogram's mean in ms over the window. */
async function histogramMean(
  read: ReadModel,
  name: string,
  w: Window,
  resource?: (a: Attributes) => string,
): Promise<SignalValue[]> {
  const by = new Map<string, { service: string; resource?: string; count: number; sum: number }>();
  for (const s of await read.histogramTotals(name, w)) {
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
export async function signalValues(
  rule: AlertRule,
  read: ReadModel,
  findings: (w: Window) => Promise<Finding[]>,
  nowMs: number,
): Promise<SignalValue[]> {
  const toNs = msToNs(nowMs);
  const w: Window = { fromNs: toNs - msToNs(rule.windowMs), toNs, stepNs: msToNs(rule.windowMs) };
  let values: SignalValue[];
  switch (rule.signal) {
    case 'lock-wait-p95':
    case 'lock-wait-p99':
    case 'lock-wait-total':
    case 'lock-queue':
      values = (await read.locks(w))
        .filter((l) => l.acquisitions > 0 || l.totalWaitMs > 0 || l.maxQueue > 0)
        .map((l) => ({
          service: l.service,
          resource: l.lock,
          value:
            rule.signal === 'lock-wait-total'
              ? l.totalWaitMs
              : rule.signal === 'lock-queue'
                ? l.maxQueue
                : ((rule.signal === 'lock-wait-p95' ? l.waitP95Ms : l.waitP99Ms) ?? 0),
        }));
      break;
    case 'loop-delay-p99':
    case 'loop-delay-max':
      values = await gaugeMax(
        read,
        `${METRICS.loopDelayPrefix}${rule.signal === 'loop-delay-p99' ? 'p99' : 'max'}`,
        w,
        1000,
      );
      break;
    case 'blocking-episodes': {
      const by = new Map<string, number>();
      for (const s of await read.windowTotals(METRICS.blocks, w))
        by.set(s.service, (by.get(s.service) ?? 0) + (s.step.increase ?? 0));
      values = [...by].map(([service, value]) => ({ service, value }));
      break;
    }
    case 'threadpool-canary-wait':
      values = await histogramMean(read, THREADPOOL_METRICS.canaryWait, w);
      break;
    case 'pool-queue-wait':
      values = await histogramMean(read, POOL_METRICS.queueWait, w, (a) => str(a[POOL_NAME]));
      break;
    case 'finding':
      values = (await findings(w))
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
