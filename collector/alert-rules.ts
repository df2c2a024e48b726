// Alert rules and receivers from a YAML (or JSON) file: validated whole, every mistake named with
// its line, so that a server never runs half-configured. docs/alerts.md describes the format.
import type { Node } from 'yaml';
import { ALERT_SIGNALS, FINDING_KINDS } from '../common/conventions';
import type {
  AlertReceiver,
  AlertRule,
  AlertRules,
  AlertSignal,
  FindingKind,
  NoDataPolicy,
  Severity,
} from '../common/types';
import { ConfigDoc, readConfigText } from './config-file';

/** Signals whose value is a duration (ms); the others count. */
export const DURATION_SIGNALS: ReadonlySet<AlertSignal> = new Set([
  'lock-wait-p95',
  'lock-wait-p99',
  'lock-wait-total',
  'loop-delay-p99',
  'loop-delay-max',
  'threadpool-canary-wait',
  'pool-queue-wait',
  'finding',
]);
/** Signals with a value per resource (a lock, a pool), not just per service. */
export const RESOURCE_SIGNALS: ReadonlySet<AlertSignal> = new Set([
  'lock-wait-p95',
  'lock-wait-p99',
  'lock-wait-total',
  'lock-queue',
  'pool-queue-wait',
  'finding',
]);

const DEFAULT_INTERVAL_MS = 15_000;
const DEFAULT_WINDOW_MS = 5 * 60_000;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_REPEAT_MS = 4 * 3_600_000;
/** What annotations may quote. */
export const TEMPLATE_FIELDS = ['rule', 'service', 'resource', 'kind', 'value', 'threshold', 'severity'] as const;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RULE_KEYS = [
  'name',
  'signal',
  'service',
  'resource',
  'kind',
  'above',
  'below',
  'window',
  'for',
  'severity',
  'no-data',
  'labels',
  'annotations',
  'receivers',
  'repeat',
];
const RECEIVER_KEYS = ['name', 'url', 'timeout', 'headers'];

/** A mapping of text; built with fromEntries so that a key like __proto__ stays a plain key. */
function strings(
  doc: ConfigDoc,
  node: Node | null,
  what: string,
  check?: (key: string, keyNode: Node) => void,
): Record<string, string> {
  const out: Array<[string, string]> = [];
  for (const [key, keyNode, value] of doc.entries(node, what)) {
    check?.(key, keyNode);
    const v = doc.scalar(value);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
      throw doc.error(value ?? keyNode, `${what}.${key}: expected text`);
    out.push([key, String(v)]);
  }
  return Object.fromEntries(out);
}

function receiver(doc: ConfigDoc, node: Node, i: number): AlertReceiver {
  const entries = doc.entries(node, `receivers[${i}]`);
  doc.only(entries, RECEIVER_KEYS, `receivers[${i}]`);
  const get = (k: string) => entries.find(([key]) => key === k)?.[2] ?? null;
  if (!entries.some(([k]) => k === 'name')) throw doc.error(node, `receivers[${i}]: needs a name`);
  const name = doc.string(get('name'), `receivers[${i}].name`);
  const urlNode = get('url');
  const url = doc.string(urlNode, `receiver ${name}: url`);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // reported below
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:'))
    throw doc.error(urlNode, `receiver ${name}: url "${url}" is not an http or https URL`);
  return {
    name,
    url,
    timeoutMs: get('timeout') ? doc.duration(get('timeout'), `receiver ${name}: timeout`) : DEFAULT_TIMEOUT_MS,
    headers: get('headers') ? strings(doc, get('headers'), `receiver ${name}: headers`) : {},
  };
}

function rule(doc: ConfigDoc, node: Node, i: number, receivers: Set<string>): AlertRule {
  const entries = doc.entries(node, `rules[${i}]`);
  const get = (k: string) => entries.find(([key]) => key === k)?.[2] ?? null;
  const has = (k: string) => entries.some(([key]) => key === k);
  const keyNode = (k: string) => entries.find(([key]) => key === k)?.[1];
  if (!has('name')) throw doc.error(node, `rules[${i}]: needs a name`);
  const name = doc.string(get('name'), `rules[${i}].name`);
  const what = `rule "${name}"`;
  doc.only(entries, RULE_KEYS, what);
  if (!has('signal')) throw doc.error(node, `${what}: needs a signal (${ALERT_SIGNALS.join(', ')})`);
  const signal = doc.string(get('signal'), `${what}: signal`) as AlertSignal;
  if (!ALERT_SIGNALS.includes(signal))
    throw doc.error(get('signal'), `${what}: unknown signal "${signal}"; use one of ${ALERT_SIGNALS.join(', ')}`);
  if (has('above') === has('below')) throw doc.error(node, `${what}: give one threshold, above or below`);
  const op = has('above') ? '>' : '<';
  const thresholdNode = get(op === '>' ? 'above' : 'below');
  let threshold: number;
  if (DURATION_SIGNALS.has(signal))
    threshold = doc.duration(thresholdNode, `${what}: ${op === '>' ? 'above' : 'below'} (${signal} is a duration)`);
  else {
    const v = doc.scalar(thresholdNode);
    if (typeof v !== 'number' || v < 0)
      throw doc.error(
        thresholdNode,
        `${what}: ${op === '>' ? 'above' : 'below'}: ${signal} is a count; expected a number, 0 or more`,
      );
    threshold = v;
  }
  if (has('resource') && !RESOURCE_SIGNALS.has(signal))
    throw doc.error(
      keyNode('resource'),
      `${what}: ${signal} is per service; resource applies to ${[...RESOURCE_SIGNALS].join(', ')}`,
    );
  let kind: FindingKind | undefined;
  if (has('kind')) {
    if (signal !== 'finding') throw doc.error(keyNode('kind'), `${what}: kind applies to the finding signal only`);
    kind = doc.string(get('kind'), `${what}: kind`) as FindingKind;
    if (!FINDING_KINDS.includes(kind))
      throw doc.error(get('kind'), `${what}: unknown finding kind "${kind}"; use one of ${FINDING_KINDS.join(', ')}`);
  }
  const severity = (has('severity') ? doc.string(get('severity'), `${what}: severity`) : 'warning') as Severity;
  if (severity !== 'warning' && severity !== 'critical')
    throw doc.error(get('severity'), `${what}: severity "${severity}": use warning or critical`);
  const noData = (has('no-data') ? doc.string(get('no-data'), `${what}: no-data`) : 'ok') as NoDataPolicy;
  if (!['ok', 'keep', 'alerting'].includes(noData))
    throw doc.error(get('no-data'), `${what}: no-data "${noData}": use ok, keep or alerting`);
  const labels = has('labels')
    ? strings(doc, get('labels'), `${what}: labels`, (key, k) => {
        if (!LABEL_NAME.test(key))
          throw doc.error(k, `${what}: label name "${key}": use letters, digits and _, not starting with a digit`);
      })
    : {};
  const annotationList: Array<[string, string]> = [];
  for (const [key, keyNode, value] of has('annotations')
    ? doc.entries(get('annotations'), `${what}: annotations`)
    : []) {
    const text = doc.string(value ?? keyNode, `${what}: annotation ${key}`);
    annotationList.push([key, text]);
    for (const m of text.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
      if (!(TEMPLATE_FIELDS as readonly string[]).includes(m[1])) {
        throw doc.error(
          value,
          `${what}: annotation ${key} quotes {{${m[1]}}}; it can quote ${TEMPLATE_FIELDS.map((f) => `{{${f}}}`).join(', ')}`,
        );
      }
    }
  }
  const to: string[] = [];
  for (const n of has('receivers') ? doc.items(get('receivers'), `${what}: receivers`) : []) {
    const r = doc.string(n, `${what}: receivers`);
    if (!receivers.has(r))
      throw doc.error(
        n,
        `${what}: no receiver named "${r}"${receivers.size ? `; the receivers are ${[...receivers].join(', ')}` : ' (add it under receivers)'}`,
      );
    to.push(r);
  }
  const windowMs = has('window') ? doc.duration(get('window'), `${what}: window`) : DEFAULT_WINDOW_MS;
  if (windowMs < 1000) throw doc.error(get('window'), `${what}: window: at least 1s`);
  return {
    name,
    signal,
    service: has('service') ? doc.string(get('service'), `${what}: service`) : undefined,
    resource: has('resource') ? doc.string(get('resource'), `${what}: resource`) : undefined,
    kind,
    op,
    threshold,
    windowMs,
    forMs: has('for') ? doc.duration(get('for'), `${what}: for`) : 0,
    severity,
    noData,
    labels,
    annotations: Object.fromEntries(annotationList),
    receivers: to,
    repeatMs: has('repeat') ? doc.duration(get('repeat'), `${what}: repeat`) : DEFAULT_REPEAT_MS,
    line: doc.line(node),
  };
}

export function parseAlertRules(text: string, file: string): AlertRules {
  const doc = new ConfigDoc(text, file);
  const out: AlertRules = { intervalMs: DEFAULT_INTERVAL_MS, receivers: [], rules: [] };
  if (doc.root === null) return out;
  const top = doc.entries(doc.root, 'the rules file (interval, receivers, rules)');
  doc.only(top, ['interval', 'receivers', 'rules'], 'the rules file');
  const get = (k: string) => top.find(([key]) => key === k)?.[2] ?? null;
  if (get('interval')) {
    out.intervalMs = doc.duration(get('interval'), 'interval');
    if (out.intervalMs < 1000) throw doc.error(get('interval'), 'interval: at least 1s');
  }
  const names = new Set<string>();
  for (const [i, n] of (get('receivers') ? doc.items(get('receivers'), 'receivers') : []).entries()) {
    const r = receiver(doc, n, i);
    if (names.has(r.name)) throw doc.error(n, `receiver "${r.name}" is defined twice`);
    names.add(r.name);
    out.receivers.push(r);
  }
  const ruleNames = new Set<string>();
  for (const [i, n] of (get('rules') ? doc.items(get('rules'), 'rules') : []).entries()) {
    const r = rule(doc, n, i, names);
    if (ruleNames.has(r.name)) throw doc.error(n, `rule "${r.name}" is defined twice`);
    ruleNames.add(r.name);
    out.rules.push(r);
  }
  return out;
}

export function loadAlertRules(file: string): AlertRules {
  return parseAlertRules(readConfigText(file), file);
}
