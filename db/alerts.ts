// Alert state and history in SQLite, written by the writer thread so that alerts survive a
// restart (the read model reads them back: db/read/alerts.ts).
import type Database from 'better-sqlite3';
import type { AlertWrite } from '../common/types';

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
