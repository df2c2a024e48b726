// Thresholds that decide when a measurement becomes a finding, with defaults that keep a healthy
// service quiet. A YAML (or JSON) file given to `stallscope serve --findings FILE` overrides
// any of them; every mistake in it is reported with the file and line.
import type { Node } from 'yaml';
import type { FindingKind } from '../common/types';
import { ConfigDoc, readConfigText } from './config-file';

type Unit = 'duration' | 'count' | 'share' | 'ratio';

interface Setting {
  unit: Unit;
  value: number;
  /** For the docs and the error message. */
  meaning: string;
}

const d = (value: number, meaning: string): Setting => ({ unit: 'duration', value, meaning });

/** Every threshold, its unit and its default (durations in ms). */
const SPEC = {
  'loop-blocked': {
    'min-total': d(500, 'blocked time in one function over the window'),
    'min-count': { unit: 'count', value: 2, meaning: 'episodes in one function' },
    'critical-total': d(5000, 'blocked time that makes it critical'),
    'critical-max': d(1000, 'one episode this long makes it critical'),
  },
  'loop-saturated': {
    'min-utilization': { unit: 'share', value: 0.7, meaning: 'share of the window the loop was busy' },
    'critical-utilization': { unit: 'share', value: 0.9, meaning: 'utilization that makes it critical' },
    'min-busy': d(2000, 'sampled loop CPU time over the window'),
    'min-share': { unit: 'share', value: 0.05, meaning: 'share of the loop time a function must take to be named' },
    'max-blocked': {
      unit: 'share',
      value: 0.75,
      meaning: 'share of the busy time in blocking episodes above which the blocks are the whole story',
    },
  },
  'sync-call': {
    'min-total': d(200, 'time in one call site over the window'),
    'min-count': { unit: 'count', value: 2, meaning: 'calls at one site' },
    'critical-total': d(2000, 'time that makes it critical'),
  },
  'lock-contention': {
    'min-total-wait': d(1000, 'time spent waiting for the lock over the window'),
    'min-p95': d(20, '95th percentile wait over all acquisitions'),
    'critical-p95': d(250, '95th percentile wait that makes it critical'),
  },
  'shared-lock': {
    'min-cross-share': {
      unit: 'share',
      value: 0.3,
      meaning: 'share of the charged wait where the waiter and the holder are different functions',
    },
    'min-holder-share': {
      unit: 'share',
      value: 0.15,
      meaning: 'share of the charged wait each of two holder functions must carry',
    },
  },
  'lock-held': {
    'min-held': d(1000, 'how long a lock was held while others waited'),
    'critical-held': d(30_000, 'held this long makes it critical'),
  },
  'threadpool-saturated': {
    'min-total-wait': d(1000, 'time operations waited for a libuv thread over the window'),
    'critical-total-wait': d(10_000, 'wait that makes it critical'),
  },
  'slowed-by-others': {
    'min-share': {
      unit: 'share',
      value: 0.5,
      meaning: "share of a route's time spent waiting for other routes' work on the loop",
    },
    'critical-share': { unit: 'share', value: 0.8, meaning: 'share that makes it critical' },
    'min-total': d(1000, "a route's time over the window"),
  },
  'pool-queueing': {
    'min-total-wait': d(1000, 'time tasks waited for a worker over the window'),
    'min-wait-to-run': { unit: 'ratio', value: 1, meaning: 'mean queue wait over mean run time' },
    'critical-wait-to-run': { unit: 'ratio', value: 4, meaning: 'ratio that makes it critical' },
  },
} satisfies Record<FindingKind, Record<string, Setting>>;

export type FindingThresholds = { [K in keyof typeof SPEC]: { [S in keyof (typeof SPEC)[K]]: number } };

export function defaultThresholds(): FindingThresholds {
  return Object.fromEntries(
    Object.entries(SPEC).map(([kind, settings]) => [
      kind,
      Object.fromEntries(Object.entries(settings).map(([name, s]) => [name, (s as Setting).value])),
    ]),
  ) as FindingThresholds;
}

/** The value (durations in milliseconds), or why it is not acceptable. */
function parseValue(doc: ConfigDoc, node: Node | null, s: Setting, what: string): number {
  if (s.unit === 'duration') return doc.duration(node, what);
  const v = doc.scalar(node);
  const ok =
    typeof v === 'number' &&
    (s.unit === 'count' ? Number.isInteger(v) && v >= 0 : s.unit === 'share' ? v >= 0 && v <= 1 : v > 0);
  if (!ok)
    throw doc.error(
      node,
      `${what}: expected ${s.unit === 'count' ? 'a whole number, 0 or more' : s.unit === 'share' ? 'a number from 0 to 1' : 'a number greater than 0'}`,
    );
  return v as number;
}

/** Thresholds from a file's text: the defaults, with what it sets. */
export function parseFindingsConfig(text: string, file: string): FindingThresholds {
  const doc = new ConfigDoc(text, file);
  const out = defaultThresholds() as Record<string, Record<string, number>>;
  if (doc.root === null) return out as FindingThresholds;
  const kinds = Object.keys(SPEC);
  for (const [kind, kindNode, settings] of doc.entries(doc.root, `the finding kinds (${kinds.join(', ')})`)) {
    // Own keys only: a name like __proto__ or toString must not reach Object.prototype.
    const spec = Object.hasOwn(SPEC, kind) ? (SPEC as Record<string, Record<string, Setting>>)[kind] : undefined;
    if (!spec) throw doc.error(kindNode, `unknown finding kind "${kind}"; the kinds are ${kinds.join(', ')}`);
    const names = Object.keys(spec);
    for (const [name, nameNode, value] of doc.entries(
      settings ?? kindNode,
      `${kind}: the thresholds (${names.join(', ')})`,
    )) {
      const s = Object.hasOwn(spec, name) ? spec[name] : undefined;
      if (!s) throw doc.error(nameNode, `${kind}: unknown threshold "${name}"; it has ${names.join(', ')}`);
      out[kind][name] = parseValue(doc, value ?? nameNode, s, `${kind}.${name} (${s.meaning})`);
    }
  }
  return out as FindingThresholds;
}

export function loadFindingsConfig(file: string): FindingThresholds {
  return parseFindingsConfig(readConfigText(file), file);
}
