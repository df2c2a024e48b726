// `stallscope serve`: the collector and the dashboard in one process on one SQLite file.
import { startCollector, type Collector } from '../collector/index';
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
}

export interface Running {
  collector: Collector;
  dashboard: Dashboard;
  close(): Promise<void>;
}

export async function serve(o: ServeOptions): Promise<Running> {
  const collector = await startCollector(o);
  let dashboard: Dashboard;
  try {
    dashboard = await startDashboard(collector, o.host, o.port);
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
