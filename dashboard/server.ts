// The dashboard's HTTP server: the pages (static files drawing from the JSON APIs), the
// dashboard API, the collector's query API, and a health check. Everything shown comes from other
// programs, so the pages only ever insert it as text, and the Content-Security-Policy forbids any
// script or style that is not one of our files.
import http from 'node:http';
import { join } from 'node:path';
import express from 'express';
import { queryApi } from '../collector/query-api';
import { dashboardApi } from './api';
import { requireToken } from './auth';
import type { Collector } from '../collector/index';
import { closeServer, hostHeaderIsLoopback, listen } from '../common/listen';
import { packageRoot } from '../common/package-root';

export interface Dashboard {
  port: number;
  close(): Promise<void>;
}

export interface DashboardOptions {
  host: string;
  port: number;
  /** When set, the pages and APIs require it (a bearer header, or the cookie /login sets). */
  token?: string;
}

const PUBLIC = join(packageRoot(), 'dashboard', 'public');
const CHART_JS = join(packageRoot(), 'node_modules', 'chart.js', 'dist', 'chart.umd.js');

/** Each page: its path and the module that renders it (all share one HTML shell). */
const PAGES: Record<string, string> = {
  '/': 'overview',
  '/routes': 'routes',
  '/locks': 'locks',
  '/lock': 'lock',
  '/blocking': 'blocking',
  '/profile': 'profile',
  '/offload': 'offload',
  '/traces': 'traces',
  '/trace': 'trace',
  '/alerts': 'alerts',
};

const shell = (module: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stallscope</title>
<link rel="stylesheet" href="/style.css">
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<script src="/vendor/chart.js"></script>
<script type="module" src="/${module}.js"></script>
</head>
<body><noscript>The stallscope dashboard needs JavaScript.</noscript></body>
</html>
`;

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * Without a token the dashboard trusts whoever can reach it, which is only this machine: a
 * request naming any other host is a web page elsewhere using DNS rebinding to read it.
 */
function loopbackHostOnly(req: express.Request, res: express.Response, next: express.NextFunction): void {
  if (hostHeaderIsLoopback(req.get('host'))) return next();
  res
    .status(403)
    .type('text')
    .send(`host "${req.get('host') ?? ''}" is not this machine; set STALLSCOPE_TOKEN to serve other hosts`);
}

export async function startDashboard(collector: Collector, options: DashboardOptions): Promise<Dashboard> {
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, res, next) => {
    res.set(SECURITY_HEADERS);
    next();
  });
  // 503 while ingest is refused (a full disk, a locked database, a full queue or memory budget), so
  // that an orchestrator notices; the reasons say which.
  app.get('/healthz', (_req, res) => {
    const health = collector.health();
    res.status(health.status === 'ok' ? 200 : 503).json({
      ...health,
      writeBacklog: collector.store.backlog,
      otlpPort: collector.otlpPort,
      ingest: collector.stats,
    });
  });
  if (options.token) app.use(requireToken(options.token));
  else app.use(loopbackHostOnly);
  app.use('/api/dash', dashboardApi(collector));
  app.use('/api', queryApi(collector));
  app.get('/vendor/chart.js', (_req, res) => res.type('js').sendFile(CHART_JS));
  for (const [path, module] of Object.entries(PAGES))
    app.get(path, (_req, res) => res.type('html').send(shell(module)));
  app.use(express.static(PUBLIC, { index: false }));
  app.use((req, res) => {
    res.status(404).type('text').send(`no page ${req.path}`);
  });
  // Whatever a handler did not catch: a short answer, never a stack trace.
  app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: `internal error: ${err.message}` });
  });
  const server = http.createServer(app);
  const bound = await listen(server, options.port, options.host, '--port');
  return { port: bound, close: () => closeServer(server) };
}
