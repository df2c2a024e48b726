// Thresholds that decide when a measurement becomes a finding, with defaults that keep a healthy
// service quiet. A YAML (or JSON) file given to `stallscope serve --findings FILE` overrides
// any of them; every mistake in it is reported with the file and line.
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, parseDocument, type Node } from 'yaml';
import { parseDuration } from '../common/duration';
import type { FindingKind } from '../common/types';

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
    'min-cross-share': { unit: 'share', value: 0.3, meaning: 'share of the wait spent behind a holder at another site' },
  },
  'lock-held': {
    'min-held': d(1000, 'how long a lock was held while others waited'),
    'critical-held': d(30_000, 'held this long makes it critical'),
  },
  'threadpool-saturated': {
    'min-total-wait': d(1000, 'time operations waited for a libuv thread over the window'),
    'critical-total-wait': d(10_000, 'wait that makes it critical'),
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
    Object.entries(SPEC).map(([kind, settings]) => [kind, Object.fromEntries(Object.entries(settings).map(([name, s]) => [name, (s as Setting).value]))]),
  ) as FindingThresholds;
}

/** A mistake in a configuration file; the message starts with `file:line:`. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The value in milliseconds (durations) or as written, or why it is not acceptable. */
function parseValue(node: Node, s: Setting): number | Error {
  const v = isScalar(node) ? node.value : undefined;
  const expected = (what: string) => new Error(`expected ${what}`);
  switch (s.unit) {
    case 'duration':
      return typeof v === 'string' ? parseDuration(v) : expected('a duration with a unit, e.g. 250ms or 2s');
    case 'count':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : expected('a whole number, 0 or more');
    case 'share':
      return typeof v === 'number' && v >= 0 && v <= 1 ? v : expected('a number from 0 to 1');
    case 'ratio':
      return typeof v === 'number' && v > 0 ? v : expected('a number greater than 0');
  }
}

/** Thresholds from a file's text: the defaults, with what it sets. */
export function parseFindingsConfig(text: string, file: string): FindingThresholds {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const at = (node: Node | null | undefined, reason: string) => new ConfigError(`${file}:${node?.range ? lines.linePos(node.range[0]).line : 1}: ${reason}`);
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new ConfigError(`${file}:${e.linePos?.[0].line ?? 1}: ${e.message.split('\n')[0]}`);
  }
  const out = defaultThresholds() as Record<string, Record<string, number>>;
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return out as FindingThresholds;
  if (!isMap(root)) throw at(root, `expected a mapping of finding kinds (${Object.keys(SPEC).join(', ')})`);
  for (const pair of root.items) {
    const kindNode = pair.key as Node;
    const kind = isScalar(kindNode) ? String(kindNode.value) : '';
    const spec = (SPEC as Record<string, Record<string, Setting>>)[kind];
    if (!spec) throw at(kindNode, `unknown finding kind "${kind}"; the kinds are ${Object.keys(SPEC).join(', ')}`);
    const settings = pair.value as Node | null;
    if (!isMap(settings)) throw at(settings ?? kindNode, `${kind}: expected a mapping of thresholds (${Object.keys(spec).join(', ')})`);
    for (const item of settings.items) {
      const nameNode = item.key as Node;
      const name = isScalar(nameNode) ? String(nameNode.value) : '';
      const s = spec[name];
      if (!s) throw at(nameNode, `${kind}: unknown threshold "${name}"; it has ${Object.keys(spec).join(', ')}`);
      const value = parseValue(item.value as Node, s);
      if (value instanceof Error) throw at((item.value as Node | null) ?? nameNode, `${kind}.${name} (${s.meaning}): ${value.message}`);
      out[kind][name] = value;
    }
  }
  return out as FindingThresholds;
}

export function loadFindingsConfig(file: string): FindingThresholds {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read it: ${(err as Error).message}`);
  }
  return parseFindingsConfig(text, file);
}
