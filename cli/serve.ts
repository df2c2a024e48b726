// `stallscope serve`: the collector and the dashboard in one process on one SQLite file.
import { startCollector, type Collector } from '../collector/index';
import type { FindingThresholds } from '../collector/findings-config';
import { startDashboard, type Dashboard } from '../dashboard/server';

export interface ServeOptions {
  dbPath: string;
  host: string;
  otlpPort: number;
  port: number;
  retentionMs: number;
  retentionIntervalMs?: number;
  retentionBatchSize?: number;
  maxQueuedRows?: number;
  maxBodyBytes?: number;
  /** STALLSCOPE_TOKEN: required by the pages and APIs, and by OTLP with otlpAuth. */
  token?: string;
  otlpAuth?: boolean;
  findingThresholds?: FindingThresholds;
}

export interface Running {
  collector: Collector;
  dashboard: Dashboard;
  close(): Promise<void>;
}

export async function serve(o: ServeOptions): Promise<Running> {
  const collector = await startCollector({ ...o, otlpToken: o.otlpAuth ? o.token : undefined });
  let dashboard: Dashboard;
  try {
    dashboard = await startDashboard(collector, { host: o.host, port: o.port, token: o.token });
  } catch (err) {
    await collector.close();
    throw err;
  }
  return {
    collector,
    dashboard,
    async close() {
      await dashboard.close();
      await collector.close();
    },
  };
}
