// `stallscope serve`: the collector and the dashboard in one process on one SQLite file.
import { startCollector, type Collector, type CollectorOptions } from '../collector/index';
import { existsSync } from 'node:fs';
import { parseAlertRules } from '../collector/alert-rules';
import { readConfigText } from '../collector/config-file';
import { startDashboard, type Dashboard } from '../dashboard/server';

/** The collector's options, and the dashboard's: its port and token. */
export interface ServeOptions extends Omit<CollectorOptions, 'alerts' | 'log' | 'otlpToken'> {
  port: number;
  /** STALLSCOPE_TOKEN: required by the pages and APIs, and by OTLP with otlpAuth. */
  token?: string;
  otlpAuth?: boolean;
  /** The alert rules file; by default <database>.rules.yaml, read if it exists. */
  rulesFile?: string;
  /** Notification and evaluation log lines (default: stdout). */
  log?: (line: string) => void;
}

/** Where the dashboard keeps rules when no --rules file is given: beside the database. */
export const defaultRulesFile = (dbPath: string) => `${dbPath.replace(/\.db$/, '')}.rules.yaml`;

/** The rules to start with; a bad file throws a ConfigError naming its line. */
function loadRules(o: ServeOptions) {
  const file = o.rulesFile ?? defaultRulesFile(o.store.path);
  const text = o.rulesFile !== undefined || existsSync(file) ? readConfigText(file) : '';
  return { file, text, rules: parseAlertRules(text, file) };
}

export interface Running {
  collector: Collector;
  dashboard: Dashboard;
  close(): Promise<void>;
}

export async function serve(o: ServeOptions): Promise<Running> {
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const collector = await startCollector({
    ...o,
    otlpToken: o.otlpAuth ? o.token : undefined,
    alerts: loadRules(o),
    log,
  });
  let dashboard: Dashboard;
  try {
    dashboard = await startDashboard(collector, { host: o.host, port: o.port, token: o.token });
  } catch (err) {
    await collector.close();
    throw err;
  }
  collector.alerts.externalUrl = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${dashboard.port}/alerts`;
  return {
    collector,
    dashboard,
    async close() {
      await dashboard.close();
      await collector.close();
    },
  };
}
