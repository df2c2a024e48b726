// `npm run demo`: stallscope (collector and dashboard) plus the example services in
// examples/services, each with the agent attached and each making one or two of the mistakes
// stallscope finds, and one healthy service as the control. A load generator drives them at a
// bounded rate; within a minute every pitfall shows up as a finding. Ctrl-C stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { serve, type Running } from '../cli/serve';
import { packageRoot } from '../common/package-root';
import type { FindingKind } from '../common/types';

interface Load {
  method: 'GET' | 'POST';
  /** `{n}` becomes a random number, so that requests spread over accounts or ids. */
  path: string;
  /** Requests in flight at once; each client waits `thinkMs` between its requests. */
  clients: number;
  thinkMs: number;
}

export interface ExampleService {
  name: string;
  file: string;
  /** What it does wrong, for the banner. */
  pitfalls: string;
  expected: FindingKind[];
  load: Load[];
}

const SERVICES_DIR = join(packageRoot(), 'examples', 'services');

export const SERVICES: ExampleService[] = [
  {
    name: 'catalog',
    file: 'catalog.js',
    pitfalls: 'a CPU loop in a request handler; crypto.pbkdf2Sync on every login (express)',
    expected: ['loop-blocked', 'sync-call'],
    load: [
      { method: 'GET', path: '/search?q=shoes', clients: 1, thinkMs: 700 },
      { method: 'POST', path: '/login', clients: 1, thinkMs: 400 },
      { method: 'GET', path: '/product/{n}', clients: 1, thinkMs: 100 },
    ],
  },
  {
    name: 'wallet',
    file: 'wallet.js',
    pitfalls: 'one mutex for balances and order numbers; a lock never released on an error path (async-mutex)',
    expected: ['shared-lock', 'lock-held'],
    load: [
      { method: 'POST', path: '/transfer', clients: 2, thinkMs: 60 },
      { method: 'POST', path: '/orders', clients: 2, thinkMs: 60 },
      { method: 'GET', path: '/statement?month=3', clients: 1, thinkMs: 500 },
    ],
  },
  {
    name: 'sessions',
    file: 'sessions.js',
    pitfalls: 'every request takes the same lock key across a slow write (async-lock)',
    expected: ['lock-contention'],
    load: [{ method: 'GET', path: '/session/{n}', clients: 4, thinkMs: 20 }],
  },
  {
    name: 'images',
    file: 'images.js',
    pitfalls: 'a one-thread worker pool given four tasks per request (piscina)',
    expected: ['pool-queueing'],
    load: [{ method: 'POST', path: '/upload', clients: 2, thinkMs: 100 }],
  },
  {
    name: 'crawler',
    file: 'crawler.mjs',
    pitfalls: 'fetches queue on a two-slot limiter; eight pbkdf2 calls at once fill the libuv threadpool (p-limit)',
    expected: ['lock-contention', 'threadpool-saturated'],
    load: [{ method: 'GET', path: '/crawl?url=site{n}', clients: 2, thinkMs: 500 }],
  },
  {
    name: 'healthy',
    file: 'healthy.mjs',
    pitfalls: 'none: a lock per account, async I/O, a limiter with room (the control)',
    expected: [],
    load: [
      { method: 'POST', path: '/deposit/{n}', clients: 2, thinkMs: 50 },
      { method: 'GET', path: '/readme', clients: 1, thinkMs: 200 },
      { method: 'GET', path: '/quote', clients: 2, thinkMs: 100 },
    ],
  },
];

export interface DemoOptions {
  port: number;
  otlpPort: number;
  /** The SQLite file; by default one in a temporary folder, removed when the demo stops. */
  dbPath?: string;
  /** Extra environment for the services (the tests export faster). */
  env?: Record<string, string>;
  log?: (line: string) => void;
}

export interface Demo {
  dashboard: string;
  otlp: string;
  services: Array<ExampleService & { port: number }>;
  /** Requests sent and failed so far (failures include the wallet's stuck statements). */
  requests: { sent: number; failed: number };
  stop(): Promise<void>;
}

const REGISTER = join(packageRoot(), 'dist', 'agent', 'register.js');

function startService(s: ExampleService, otlp: string, env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', REGISTER, join(SERVICES_DIR, s.file)], {
    // Locks are named by the file:line that made them, relative to here.
    cwd: packageRoot(),
    env: {
      ...process.env,
      OTEL_SERVICE_NAME: s.name,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp,
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
      OTEL_BSP_SCHEDULE_DELAY: '1000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`example service ${s.name} exited (${code}) before listening: ${err}`)));
  });
}

/** Clients that each send a request, wait for it (5 s at most), think, and go again. */
function drive(port: number, load: Load, stopped: AbortSignal, counts: Demo['requests']): Promise<void>[] {
  return Array.from({ length: load.clients }, async () => {
    while (!stopped.aborted) {
      counts.sent++;
      try {
        const path = load.path.replace('{n}', String(Math.floor(Math.random() * 1000)));
        const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: load.method, signal: AbortSignal.any([stopped, AbortSignal.timeout(5000)]) });
        await res.arrayBuffer();
        if (!res.ok) counts.failed++;
      } catch {
        if (!stopped.aborted) counts.failed++;
      }
      await new Promise((r) => setTimeout(r, load.thinkMs));
    }
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const force = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startDemo(o: DemoOptions): Promise<Demo> {
  const log = o.log ?? (() => undefined);
  const dir = o.dbPath ? undefined : mkdtempSync(join(tmpdir(), 'stallscope-demo-'));
  const running: Running = await serve({ dbPath: o.dbPath ?? join(dir!, 'demo.db'), host: '127.0.0.1', otlpPort: o.otlpPort, port: o.port, retentionMs: 0 });
  const otlp = `http://127.0.0.1:${running.collector.otlpPort}`;
  const children: ChildProcess[] = [];
  const stopLoad = new AbortController();
  const requests = { sent: 0, failed: 0 };
  const clients: Promise<void>[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopLoad.abort();
      await Promise.all(clients);
      await Promise.all(children.map(kill));
      await running.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    })());
  try {
    const started = await Promise.all(
      SERVICES.map(async (s) => {
        const { child, port } = await startService(s, otlp, o.env ?? {});
        children.push(child);
        return { ...s, port };
      }),
    );
    for (const s of started) for (const load of s.load) clients.push(...drive(s.port, load, stopLoad.signal, requests));
    log(`collector on ${otlp}; ${started.length} example services under load:`);
    for (const s of started) log(`  ${s.name.padEnd(9)} :${s.port}  ${s.pitfalls}`);
    return { dashboard: `http://127.0.0.1:${running.dashboard.port}`, otlp, services: started, requests, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '7318' },
      'otlp-port': { type: 'string', default: '4318' },
      db: { type: 'string' },
    },
  });
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const demo = await startDemo({ port: Number(values.port), otlpPort: Number(values['otlp-port']), dbPath: values.db, log });
  log(`\nDashboard: ${demo.dashboard}\nFindings appear within a minute: open the dashboard, or run\n  node dist/cli/main.js findings --url ${demo.dashboard}\nCtrl-C stops the demo and everything it started.`);
  let stopping = false;
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    log(`\nstopping (${demo.requests.sent} requests sent, ${demo.requests.failed} failed or timed out)...`);
    demo.stop().then(
      () => process.exit(0),
      (err: Error) => {
        process.stderr.write(`demo: ${err.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`demo: ${err.message}\n`);
    process.exit(1);
  });
}
