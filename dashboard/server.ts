// The dashboard's HTTP server: the query API and a health check (the pages join it later).
import http from 'node:http';
import express from 'express';
import { queryApi } from '../collector/query-api';
import { dashboardApi } from './api';
import type { Collector } from '../collector/index';
import { closeServer, listen } from '../common/listen';

export interface Dashboard {
  port: number;
  close(): Promise<void>;
}

export async function startDashboard(collector: Collector, host: string, port: number): Promise<Dashboard> {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', writeBacklog: collector.store.backlog, otlpPort: collector.otlpPort, ingest: collector.stats });
  });
  app.use('/api/dash', dashboardApi(collector.store));
  app.use('/api', queryApi(collector.store));
  const server = http.createServer(app);
  const bound = await listen(server, port, host, '--port');
  return { port: bound, close: () => closeServer(server) };
}
