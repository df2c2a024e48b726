// `stallscope alerts`: a running stallscope's alert rules, the alerts pending, firing or recently
// resolved, and the latest state changes.
import type { AlertInstance, AlertRule, AlertTransition } from '../common/types';
import { getDashboardJson } from './findings';

export interface AlertsOptions {
  url: string;
  since: string;
  json: boolean;
  token?: string;
}

interface AlertsBody {
  file: string;
  rules: AlertRule[];
  alerts: AlertInstance[];
  history: AlertTransition[];
  lastEvalMs: number | null;
  lastError: string | null;
}

const time = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
const labelText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .filter(([k]) => k !== 'alertname' && k !== 'severity')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export async function printAlerts(o: AlertsOptions, write: (text: string) => void): Promise<void> {
  const body = await getDashboardJson<AlertsBody>(o.url, '/api/alerts', { since: o.since }, o.token);
  if (o.json) {
    write(`${JSON.stringify(body, null, 2)}\n`);
    return;
  }
  const out: string[] = [];
  out.push(
    `${body.rules.length} rule${body.rules.length === 1 ? '' : 's'} from ${body.file}; last evaluated ${time(body.lastEvalMs)} UTC${body.lastError ? ` (${body.lastError})` : ''}`,
  );
  const order = { firing: 0, pending: 1, resolved: 2 };
  const alerts = [...body.alerts].sort((a, b) => order[a.state] - order[b.state] || a.rule.localeCompare(b.rule));
  if (alerts.length) {
    out.push(
      '',
      table([
        ['STATE', 'RULE', 'SEVERITY', 'SINCE (UTC)', 'LABELS', 'SUMMARY'],
        ...alerts.map((a) => [
          a.state.toUpperCase(),
          a.rule,
          a.labels.severity ?? '',
          time(a.state === 'resolved' ? a.resolvedAtMs : a.state === 'firing' ? a.firedAtMs : a.activeSinceMs),
          labelText(a.labels),
          a.annotations.summary ?? '',
        ]),
      ]),
    );
  } else out.push('', 'No alert is pending or firing.');
  if (body.history.length) {
    out.push('', `State changes in the last ${o.since}, newest first:`);
    out.push(
      table(
        body.history.slice(0, 50).map((h) => [time(h.timeMs), h.rule, labelText(h.labels), `${h.from} -> ${h.to}`]),
      ),
    );
  }
  write(`${out.join('\n')}\n`);
}
