// Alert state and history in SQLite: written by the writer thread (AlertWriter), read by the
// collector's evaluator and the dashboard (AlertReads), so that alerts survive a restart.
import type Database from 'better-sqlite3';
import type { AlertInstance, AlertState, AlertTransition, AlertWrite } from '../common/types';

interface InstanceRow {
  rule: string;
  fingerprint: string;
  labels: string;
  annotations: string;
  state: AlertState;
  value: number | null;
  active_since_ms: number;
  fired_at_ms: number | null;
  resolved_at_ms: number | null;
  last_eval_ms: number;
  notified_state: AlertState | null;
  notified_at_ms: number | null;
}

export class AlertWriter {
  private readonly upsert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly history: Database.Statement;
  private readonly removeRule: Database.Statement;
  private readonly oldHistory: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.upsert = db.prepare(
      `INSERT OR REPLACE INTO alert_instances (rule, fingerprint, labels, annotations, state, value, active_since_ms, fired_at_ms, resolved_at_ms,
         last_eval_ms, notified_state, notified_at_ms)
       VALUES (@rule, @fingerprint, @labels, @annotations, @state, @value, @activeSinceMs, @firedAtMs, @resolvedAtMs, @lastEvalMs, @notifiedState, @notifiedAtMs)`,
    );
    this.remove = db.prepare('DELETE FROM alert_instances WHERE rule = ? AND fingerprint = ?');
    this.removeRule = db.prepare('DELETE FROM alert_instances WHERE rule NOT IN (SELECT value FROM json_each(?))');
    this.history = db.prepare(
      'INSERT INTO alert_history (time_ms, rule, fingerprint, labels, from_state, to_state, value) VALUES (@timeMs, @rule, @fingerprint, @labels, @from, @to, @value)',
    );
    this.oldHistory = db.prepare('DELETE FROM alert_history WHERE time_ms < ?');
  }

  write(w: AlertWrite): void {
    this.db.transaction(() => {
      if (w.keepRules) this.removeRule.run(JSON.stringify(w.keepRules));
      for (const r of w.remove) this.remove.run(r.rule, r.fingerprint);
      for (const i of w.upsert)
        this.upsert.run({ ...i, labels: JSON.stringify(i.labels), annotations: JSON.stringify(i.annotations) });
      for (const h of w.history) this.history.run({ ...h, labels: JSON.stringify(h.labels) });
    })();
  }

  deleteHistoryOlderThan(cutoffMs: number): number {
    return this.oldHistory.run(cutoffMs).changes;
  }
}

export class AlertReads {
  private readonly instancesQ: Database.Statement;
  private readonly historyQ: Database.Statement;

  constructor(db: Database.Database) {
    this.instancesQ = db.prepare('SELECT * FROM alert_instances ORDER BY rule, fingerprint');
    this.historyQ = db.prepare(
      'SELECT * FROM alert_history WHERE time_ms >= ? ORDER BY time_ms DESC, rowid DESC LIMIT ?',
    );
  }

  instances(): AlertInstance[] {
    return (this.instancesQ.all() as InstanceRow[]).map((r) => ({
      rule: r.rule,
      fingerprint: r.fingerprint,
      labels: JSON.parse(r.labels) as Record<string, string>,
      annotations: JSON.parse(r.annotations) as Record<string, string>,
      state: r.state,
      value: r.value,
      activeSinceMs: r.active_since_ms,
      firedAtMs: r.fired_at_ms,
      resolvedAtMs: r.resolved_at_ms,
      lastEvalMs: r.last_eval_ms,
      notifiedState: r.notified_state,
      notifiedAtMs: r.notified_at_ms,
    }));
  }

  /** State changes since `sinceMs`, newest first. */
  history(sinceMs: number, limit: number): AlertTransition[] {
    return (this.historyQ.all(sinceMs, limit) as Array<Record<string, unknown>>).map((r) => ({
      timeMs: Number(r.time_ms),
      rule: String(r.rule),
      fingerprint: String(r.fingerprint),
      labels: JSON.parse(String(r.labels)) as Record<string, string>,
      from: r.from_state as AlertTransition['from'],
      to: r.to_state as AlertTransition['to'],
      value: r.value === null ? null : Number(r.value),
    }));
  }
}
