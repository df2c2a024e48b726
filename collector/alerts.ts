// The alert evaluator: every interval, off the ingest path, each rule's signal is read over its
// window and each alert (a rule and a label set) moves as in Prometheus: inactive -> pending
// (the condition holds) -> firing (it held for `for`) -> resolved (the first evaluation where it
// no longer holds). State and history are kept in the store, and each alert remembers what its
// receivers were last told, so a restart neither loses state nor notifies twice. With several
// collectors on one database, only the leader (store.leader()) evaluates and notifies; the others
// follow the stored state, and one that becomes leader starts from it.
import { createHash } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import type {
  AlertInstance,
  AlertRule,
  AlertRules,
  AlertTransition,
  AlertWrite,
  Finding,
  Window,
} from '../common/types';
import type { Store } from '../db/index';
import { DURATION_SIGNALS, parseAlertRules } from './alert-rules';
import { signalValues, type SignalValue } from './alert-signals';
import { formatMs } from './findings/wording';
import { Notifier, describeAlert } from './notifier';
import { key } from '../common/keys';

/** How long a resolved alert stays listed before it is forgotten. */
const RESOLVED_KEEP_MS = 15 * 60_000;

export interface AlertEngineOptions {
  rules: AlertRules;
  /** Where the rules live; edits from the dashboard are written here. */
  file: string;
  /** The rules file's text as loaded (empty when there is none yet). */
  text: string;
  store: Store;
  findings: (w: Window) => Promise<Finding[]>;
  log: (line: string) => void;
  /** Retry policy for receivers (tests shorten it). */
  retry?: { maxAttempts: number; backoffMs: number; maxBackoffMs: number };
}

export function fingerprintOf(labels: Record<string, string>): string {
  const sorted = Object.keys(labels)
    .sort()
    .map((k) => [k, labels[k]]);
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex').slice(0, 16);
}

function formatValue(rule: AlertRule, v: number | null): string {
  if (v === null) return 'no data';
  return DURATION_SIGNALS.has(rule.signal) ? formatMs(v) : String(Math.round(v * 100) / 100);
}

function render(rule: AlertRule, labels: Record<string, string>, value: number | null): Record<string, string> {
  const fields: Record<string, string> = {
    rule: rule.name,
    service: labels.service ?? '',
    resource: labels.resource ?? '',
    kind: labels.kind ?? '',
    value: formatValue(rule, value),
    threshold: `${rule.op} ${formatValue(rule, rule.threshold)}`,
    severity: rule.severity,
  };
  return Object.fromEntries(
    Object.entries(rule.annotations).map(([k, text]) => [
      k,
      text.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (_, f: string) => fields[f] ?? ''),
    ]),
  );
}

export interface AlertStatus {
  file: string;
  text: string;
  intervalMs: number;
  rules: AlertRule[];
  /** The signals whose values are durations (ms); the others count. */
  durationSignals: string[];
  receivers: Array<{ name: string; url: string }>;
  alerts: AlertInstance[];
  lastEvalMs: number | null;
  lastError: string | null;
}

export class AlertEngine {
  private rules: AlertRules;
  private text: string;
  private readonly instances = new Map<string, AlertInstance>();
  /** Alerts with a notification on its way: not sent again until it is done. */
  private readonly sending = new Set<string>();
  private readonly notifier: Notifier;
  private timer: NodeJS.Timeout | undefined;
  private evaluating: Promise<void> | undefined;
  private lastEvalMs: number | null = null;
  private lastError: string | null = null;
  private closed = false;
  /** Whether the last evaluation ran here as the leader. */
  private leading = false;
  /** The dashboard's alerts page, for the links in notifications (known once it listens). */
  externalUrl = '';

  constructor(private readonly o: AlertEngineOptions) {
    this.rules = o.rules;
    this.text = o.text;
    this.notifier = new Notifier({
      externalUrl: () => this.externalUrl,
      log: o.log,
      ...(o.retry ?? { maxAttempts: 8, backoffMs: 1000, maxBackoffMs: 60_000 }),
    });
  }

  /** Loads the state kept by the last run and starts the timer. */
  async start(): Promise<void> {
    await this.load();
    this.schedule();
  }

  /** The stored state, as the leader left it. */
  private async load(): Promise<void> {
    const stored = await this.o.store.read.alertInstances();
    this.instances.clear();
    for (const i of stored) this.instances.set(key(i.rule, i.fingerprint), i);
  }

  private schedule(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => void this.evaluate(), this.rules.intervalMs);
    this.timer.unref();
  }

  /** Drops the state of rules that are gone (the leader's rules are the ones evaluated). */
  private async forgetRemovedRules(): Promise<void> {
    if (!this.leading) return;
    const names = new Set(this.rules.rules.map((r) => r.name));
    for (const [k, i] of this.instances) if (!names.has(i.rule)) this.instances.delete(k);
    await this.o.store.writeAlerts({ upsert: [], remove: [], history: [], keepRules: [...names] });
  }

  /** Validates rules text as at start-up; when good, writes it to the rules file and applies it. */
  async replaceRules(text: string): Promise<AlertRules> {
    const rules = parseAlertRules(text, this.o.file);
    const tmp = `${this.o.file}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.o.file);
    for (const r of this.rules.receivers) this.notifier.forget(r.name);
    this.rules = rules;
    this.text = text;
    await this.forgetRemovedRules();
    this.schedule();
    void this.evaluate();
    return rules;
  }

  status(): AlertStatus {
    return {
      file: this.o.file,
      text: this.text,
      intervalMs: this.rules.intervalMs,
      rules: this.rules.rules,
      durationSignals: [...DURATION_SIGNALS],
      receivers: this.rules.receivers.map((r) => ({ name: r.name, url: r.url })),
      alerts: [...this.instances.values()],
      lastEvalMs: this.lastEvalMs,
      lastError: this.lastError,
    };
  }

  /** One evaluation of every rule; a call while one runs waits for it instead. */
  evaluate(nowMs = Date.now()): Promise<void> {
    this.evaluating ??= this.evaluateOnce(nowMs).finally(() => (this.evaluating = undefined));
    return this.evaluating;
  }

  private async evaluateOnce(nowMs: number): Promise<void> {
    if (this.closed) return;
    const leading = await this.o.store.leader().catch(() => false);
    if (!leading) {
      // Another collector evaluates: show what it stored.
      this.leading = false;
      await this.load().catch(() => undefined);
      for (const i of this.instances.values()) this.lastEvalMs = Math.max(this.lastEvalMs ?? 0, i.lastEvalMs);
      return;
    }
    if (!this.leading) {
      // Just became the leader: go on from the state the last one left, told receivers included.
      await this.load();
      this.leading = true;
      await this.forgetRemovedRules();
    }
    const write: AlertWrite = { upsert: [], remove: [], history: [] };
    const errors: string[] = [];
    // Rules on findings over the same window share one derivation per evaluation.
    const derived = new Map<bigint, Promise<Finding[]>>();
    const findings = (w: Window) => {
      let f = derived.get(w.fromNs);
      if (!f) derived.set(w.fromNs, (f = this.o.findings(w)));
      return f;
    };
    for (const rule of this.rules.rules) {
      let values: SignalValue[];
      try {
        values = await signalValues(rule, this.o.store.read, findings, nowMs);
      } catch (err) {
        errors.push(`rule "${rule.name}": ${(err as Error).message}`);
        continue;
      }
      this.apply(rule, values, nowMs, write);
    }
    this.lastEvalMs = nowMs;
    this.lastError = errors.length ? errors.join('; ') : null;
    if (errors.length) this.o.log(`stallscope: alert evaluation: ${this.lastError}`);
    if (write.upsert.length || write.remove.length || write.history.length) {
      try {
        await this.o.store.writeAlerts(write);
      } catch (err) {
        this.o.log(`stallscope: alert state not saved: ${(err as Error).message}`);
      }
    }
    this.notify(nowMs);
  }

  private labelsOf(rule: AlertRule, v: SignalValue | null): Record<string, string> {
    const labels: Record<string, string> = { alertname: rule.name, severity: rule.severity };
    if (v === null) labels.nodata = 'true';
    else {
      if (v.service) labels.service = v.service;
      if (v.resource) labels.resource = v.resource;
      if (v.kind) labels.kind = v.kind;
    }
    return { ...labels, ...rule.labels };
  }

  private apply(rule: AlertRule, values: SignalValue[], now: number, write: AlertWrite): void {
    const seen = new Set<string>();
    const step = (labels: Record<string, string>, holds: boolean, value: number | null) => {
      const fp = fingerprintOf(labels);
      seen.add(fp);
      this.transition(rule, fp, labels, holds, value, now, write);
    };
    if (values.length === 0 && rule.noData === 'alerting') step(this.labelsOf(rule, null), true, null);
    for (const v of values)
      step(this.labelsOf(rule, v), rule.op === '>' ? v.value > rule.threshold : v.value < rule.threshold, v.value);
    const keep = values.length === 0 && rule.noData === 'keep';
    for (const i of [...this.instances.values()]) {
      if (i.rule !== rule.name || seen.has(i.fingerprint)) continue;
      if (keep) continue;
      this.transition(rule, i.fingerprint, i.labels, false, null, now, write);
    }
  }

  private transition(
    rule: AlertRule,
    fp: string,
    labels: Record<string, string>,
    holds: boolean,
    value: number | null,
    now: number,
    write: AlertWrite,
  ): void {
    const k = key(rule.name, fp);
    const cur = this.instances.get(k);
    const record = (from: AlertTransition['from'], to: AlertTransition['to']) =>
      write.history.push({ timeMs: now, rule: rule.name, fingerprint: fp, labels, from, to, value });
    const save = (i: AlertInstance) => {
      this.instances.set(k, i);
      write.upsert.push(i);
    };
    if (holds) {
      const annotations = render(rule, labels, value);
      if (!cur || cur.state === 'resolved') {
        const to = rule.forMs > 0 ? 'pending' : 'firing';
        record(cur ? 'resolved' : 'inactive', to);
        save({
          rule: rule.name,
          fingerprint: fp,
          labels,
          annotations,
          state: to,
          value,
          activeSinceMs: now,
          firedAtMs: to === 'firing' ? now : null,
          resolvedAtMs: null,
          lastEvalMs: now,
          notifiedState: cur?.notifiedState ?? null,
          notifiedAtMs: cur?.notifiedAtMs ?? null,
        });
      } else if (cur.state === 'pending' && now - cur.activeSinceMs >= rule.forMs) {
        record('pending', 'firing');
        save({ ...cur, labels, annotations, state: 'firing', value, firedAtMs: now, lastEvalMs: now });
      } else {
        save({ ...cur, labels, annotations, value, lastEvalMs: now });
      }
      return;
    }
    if (!cur) return;
    if (cur.state === 'pending') {
      record('pending', 'inactive');
      this.instances.delete(k);
      write.remove.push({ rule: rule.name, fingerprint: fp });
    } else if (cur.state === 'firing') {
      record('firing', 'resolved');
      save({ ...cur, state: 'resolved', value, resolvedAtMs: now, lastEvalMs: now });
    } else if (
      now - (cur.resolvedAtMs ?? now) > RESOLVED_KEEP_MS &&
      cur.notifiedState !== 'firing' &&
      !this.sending.has(k)
    ) {
      this.instances.delete(k);
      write.remove.push({ rule: rule.name, fingerprint: fp });
    }
  }

  /** Sends what receivers have not been told: a new firing, a repeat, a resolution. */
  private notify(now: number): void {
    for (const [k, i] of this.instances) {
      if (this.sending.has(k)) continue;
      const rule = this.rules.rules.find((r) => r.name === i.rule);
      if (!rule) continue;
      let status: 'firing' | 'resolved' | undefined;
      if (i.state === 'firing' && (i.notifiedState !== 'firing' || now - (i.notifiedAtMs ?? 0) >= rule.repeatMs))
        status = 'firing';
      else if (i.state === 'resolved' && i.notifiedState === 'firing') status = 'resolved';
      if (!status) continue;
      const receivers = this.rules.receivers.filter((r) => rule.receivers.includes(r.name));
      if (receivers.length === 0) continue;
      this.sending.add(k);
      const sentAs = status;
      this.notifier.send(receivers, i, sentAs, (delivered) => {
        this.sending.delete(k);
        const cur = this.instances.get(k);
        if (this.closed || !cur) return;
        // Given up on every receiver: marked anyway, so that a dead receiver is tried again at
        // the repeat interval rather than every evaluation.
        const updated: AlertInstance = { ...cur, notifiedState: sentAs, notifiedAtMs: Date.now() };
        this.instances.set(k, updated);
        if (!delivered) this.o.log(`stallscope: ${describeAlert(cur)} ${sentAs}: no receiver took it`);
        this.o.store
          .writeAlerts({ upsert: [updated], remove: [], history: [] })
          .catch((err: Error) => this.o.log(`stallscope: alert state not saved: ${err.message}`));
      });
    }
  }

  /** Stops evaluating and sending; resolves once an evaluation under way has saved its state. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.notifier.close();
    await this.evaluating;
  }
}
