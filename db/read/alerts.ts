// Alert state and history as the writer thread left them (db/alerts.ts writes them).
import type { AlertInstance, AlertState, AlertTransition } from '../../common/types';
import { int, type SqlReader } from '../sql';

interface InstanceRow {
  rule: string;
  fingerprint: string;
  labels: string;
  annotations: string;
  state: AlertState;
  value: number | null;
  active_since_ms: unknown;
  fired_at_ms: unknown;
  resolved_at_ms: unknown;
  last_eval_ms: unknown;
  notified_state: AlertState | null;
  notified_at_ms: unknown;
}

const intOrNull = (v: unknown) => (v === null || v === undefined ? null : int(v));

export async function alertInstances(db: SqlReader): Promise<AlertInstance[]> {
  const rows = await db.all<InstanceRow>('SELECT * FROM alert_instances ORDER BY rule, fingerprint');
  return rows.map((r) => ({
    rule: r.rule,
    fingerprint: r.fingerprint,
    labels: JSON.parse(r.labels) as Record<string, string>,
    annotations: JSON.parse(r.annotations) as Record<string, string>,
    state: r.state,
    value: r.value === null ? null : Number(r.value),
    activeSinceMs: int(r.active_since_ms),
    firedAtMs: intOrNull(r.fired_at_ms),
    resolvedAtMs: intOrNull(r.resolved_at_ms),
    lastEvalMs: int(r.last_eval_ms),
    notifiedState: r.notified_state,
    notifiedAtMs: intOrNull(r.notified_at_ms),
  }));
}

/** State changes since `sinceMs`, newest first. */
export async function alertHistory(db: SqlReader, sinceMs: number, limit: number): Promise<AlertTransition[]> {
  const rows = await db.all<Record<string, unknown>>(
    `SELECT * FROM alert_history WHERE time_ms >= @since ORDER BY time_ms DESC, ${db.dialect.rowId} DESC LIMIT @limit`,
    { since: sinceMs, limit },
  );
  return rows.map((r) => ({
    timeMs: int(r.time_ms),
    rule: String(r.rule),
    fingerprint: String(r.fingerprint),
    labels: JSON.parse(String(r.labels)) as Record<string, string>,
    from: r.from_state as AlertTransition['from'],
    to: r.to_state as AlertTransition['to'],
    value: r.value === null ? null : Number(r.value),
  }));
}
