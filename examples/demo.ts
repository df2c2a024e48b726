// `npm run demo`: stallscope (collector and dashboard) plus the example services in
// examples/services, each with the agent attached and each making one or two of the mistakes
// stallscope finds, and one healthy service as the control. A load generator drives them at a
// bounded rate; within a minute every pitfall shows up as a finding, and the demo's alert rules
// fire (and, as the catalog's load pauses, resolve) into a webhook receiver of its own that
// prints what it is told.
// Ctrl-C stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { serve, type Running } from '../cli/serve';
import { packageRoot } from '../common/package-root';
import { closeServer, listen } from '../common/listen';
import type { FindingKind } from '../common/types';

interface Load {
  method: 'GET' | 'POST';
  /**
   * `{n}` becomes a random number, so that requests spread over accounts or ids. Several paths:
   * each client goes through them in turn.
   */
  path: string | string[];
  /** Requests in flight at once; each client waits `thinkMs` between its requests (0: closed loop). */
  clients: number;
  thinkMs: number;
  /** Load in bursts: on for `onMs`, then off for `offMs`. */
  burst?: { onMs: number; offMs: number };
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
      // Paused now and then (after the first 90 s), so that its alert resolves and fires again.
      { method: 'GET', path: '/search?q=shoes', clients: 1, thinkMs: 1000, burst: { onMs: 90_000, offMs: 60_000 } },
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
      // Closed-loop clients without think time, each alternating the two paths.
      { method: 'POST', path: ['/transfer', '/orders'], clients: 4, thinkMs: 0 },
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
    load: [{ method: 'POST', path: '/upload', clients: 2, thinkMs: 200 }],
  },
  {
    name: 'crawler',
    file: 'crawler.mjs',
    pitfalls: 'fetches queue on a two-slot limiter; eight pbkdf2 calls at once fill the libuv threadpool (p-limit)',
    expected: ['lock-contention', 'threadpool-saturated'],
    load: [{ method: 'GET', path: '/crawl?url=site{n}', clients: 2, thinkMs: 800 }],
  },
  {
    name: 'inventory',
    file: 'inventory.py',
    pitfalls:
      'Python asyncio: a CPU loop in a handler, one global asyncio.Lock across a slow write, time.sleep in a coroutine',
    expected: ['loop-blocked', 'lock-contention', 'sync-call'],
    load: [
      { method: 'GET', path: '/reserve/sku-{n}', clients: 3, thinkMs: 20 },
      { method: 'GET', path: '/report', clients: 1, thinkMs: 1000 },
      { method: 'GET', path: '/audit', clients: 1, thinkMs: 150 },
    ],
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
  /** What the demo's webhook receiver was told, in order. */
  alerts: Array<{ status: string; alertname: string }>;
  stop(): Promise<void>;
}

const REGISTER = join(packageRoot(), 'dist', 'agent', 'register.js');

/** How long a service may take to say which port it listens on. */
const START_TIMEOUT_MS = 60_000;

/** Starts a service; `started` gets the child at once, so that a failed start can still stop it. */
function startService(
  s: ExampleService,
  otlp: string,
  env: Record<string, string>,
  started: (child: ChildProcess) => void,
): Promise<number> {
  // Python services run with the Python agent (standard library only) from agent/python.
  const python = s.file.endsWith('.py');
  const [command, args] = python
    ? ['python3', ['-m', 'stallscope_agent', join(SERVICES_DIR, s.file)]]
    : [process.execPath, ['--import', REGISTER, join(SERVICES_DIR, s.file)]];
  const child = spawn(command, args, {
    // Locks are named by the file:line that made them, relative to here.
    cwd: packageRoot(),
    env: {
      ...process.env,
      OTEL_SERVICE_NAME: s.name,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp,
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
      OTEL_BSP_SCHEDULE_DELAY: '1000',
      PYTHONPATH: join(packageRoot(), 'agent', 'python'),
      STALLSCOPE_DEMO: '1',
      ...env,
    },
    // The services read their stdin to its end: when the demo dies, even by SIGKILL, they stop.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  started(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () =>
        reject(new Error(`example service ${s.name} did not say its port within ${START_TIMEOUT_MS / 1000} s: ${err}`)),
      START_TIMEOUT_MS,
    );
    child.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /"port":\s*(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`example service ${s.name} exited (${code}) before listening: ${err}`)),
    );
    child.once('error', (e) =>
      reject(new Error(`example service ${s.name} could not start (${command}): ${e.message}`)),
    );
  });
}

/** Clients that each send a request, wait for it (5 s at most), think, and go again. */
function drive(port: number, load: Load, stopped: AbortSignal, counts: Demo['requests']): Promise<void>[] {
  const paths = typeof load.path === 'string' ? [load.path] : load.path;
  const began = Date.now();
  return Array.from({ length: load.clients }, async (_, client) => {
    for (let turn = client; !stopped.aborted; turn++) {
      if (load.burst) {
        const period = load.burst.onMs + load.burst.offMs;
        const into = (Date.now() - began) % period;
        if (into >= load.burst.onMs) {
          await new Promise((r) => setTimeout(r, Math.min(1000, period - into)));
          continue;
        }
      }
      counts.sent++;
      try {
        const path = paths[turn % paths.length].replace('{n}', String(Math.floor(Math.random() * 1000)));
        // A timer of our own: AbortSignal.timeout inside AbortSignal.any can be collected
        // before it fires on Node 20 (nodejs/node#57736), which would stall this client.
        const request = new AbortController();
        const timer = setTimeout(() => request.abort(), 5000);
        const stop = () => request.abort();
        stopped.addEventListener('abort', stop, { once: true });
        try {
          const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: load.method, signal: request.signal });
          await res.arrayBuffer();
          if (!res.ok) counts.failed++;
        } finally {
          clearTimeout(timer);
          stopped.removeEventListener('abort', stop);
        }
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

/**
 * A webhook receiver of the demo's own that says what it is told, so that the demo's alerts are
 * seen firing and resolving (Alertmanager's webhook payload, as any receiver gets it).
 */
async function startReceiver(log: (line: string) => void, received: Demo['alerts']): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      try {
        const payload = JSON.parse(body) as {
          status: string;
          alerts: Array<{ status: string; labels: Record<string, string>; annotations: Record<string, string> }>;
        };
        for (const a of payload.alerts) {
          received.push({ status: a.status, alertname: a.labels.alertname });
          log(`alert ${a.status}: ${a.labels.alertname} (${a.labels.service ?? ''}) ${a.annotations.summary ?? ''}`);
        }
      } catch {
        log('alert receiver: a payload that is not JSON');
      }
      res.end('ok');
    });
  });
  await listen(server, 0, '127.0.0.1', 'the demo receiver');
  return server;
}

/** The demo's rules: a contended lock that stays slow, and a loop that blocks while its load is on. */
function demoRules(receiverPort: number): string {
  return `interval: 5s
receivers:
  - { name: demo, url: "http://127.0.0.1:${receiverPort}/hook" }
rules:
  - name: wallet ledger slow
    signal: lock-wait-p95
    service: wallet
    resource: "*wallet.js*"
    above: 20ms
    window: 1m
    for: 15s
    severity: warning
    annotations: { summary: "{{resource}}: wait p95 {{value}}" }
    receivers: [demo]
  - name: catalog loop blocked
    signal: blocking-episodes
    service: catalog
    above: 0
    window: 30s
    for: 0s
    severity: critical
    annotations: { summary: "{{value}} blocking episodes in 30 s" }
    receivers: [demo]
`;
}

export async function startDemo(o: DemoOptions): Promise<Demo> {
  const log = o.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'stallscope-demo-'));
  const alerts: Demo['alerts'] = [];
  const receiver = await startReceiver(log, alerts);
  const rulesFile = join(dir, 'demo.rules.yaml');
  writeFileSync(rulesFile, demoRules((receiver.address() as AddressInfo).port));
  const running: Running = await serve({
    store: { path: o.dbPath ?? join(dir, 'demo.db'), retentionMs: 0 },
    host: '127.0.0.1',
    otlpPort: o.otlpPort,
    port: o.port,
    rulesFile,
    log,
  });
  const otlp = `http://127.0.0.1:${running.collector.otlpPort}`;
  const children: ChildProcess[] = [];
  const stopLoad = new AbortController();
  // Every request in flight listens for the stop (and lets go when it ends): more than ten at once is expected.
  setMaxListeners(Infinity, stopLoad.signal);
  const requests = { sent: 0, failed: 0 };
  const clients: Promise<void>[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopLoad.abort();
      await Promise.all(clients);
      await Promise.all(children.map(kill));
      await running.close();
      await closeServer(receiver);
      rmSync(dir, { recursive: true, force: true });
    })());
  try {
    const started = await Promise.all(
      SERVICES.map(async (s) => ({
        ...s,
        port: await startService(s, otlp, o.env ?? {}, (child) => children.push(child)),
      })),
    );
    for (const s of started) for (const load of s.load) clients.push(...drive(s.port, load, stopLoad.signal, requests));
    log(`collector on ${otlp}; ${started.length} example services under load:`);
    for (const s of started) log(`  ${s.name.padEnd(9)} :${s.port}  ${s.pitfalls}`);
    return { dashboard: `http://127.0.0.1:${running.dashboard.port}`, otlp, services: started, requests, alerts, stop };
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
  // Signals are handled from the start: one during start-up stops what has started so far.
  let demo: Demo | undefined;
  let stopping = false;
  const onSignal = () => {
    if (stopping) {
      process.stderr.write('demo: stopped at once\n');
      process.exit(1);
    }
    stopping = true;
    if (!demo) return; // startDemo stops what it started when it fails; see below
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
  demo = await startDemo({ port: Number(values.port), otlpPort: Number(values['otlp-port']), dbPath: values.db, log });
  if (stopping) {
    await demo.stop();
    process.exit(0);
  }
  log(
    `\nDashboard: ${demo.dashboard}\nFindings appear within a minute: open the dashboard, or run\n  node dist/cli/main.js findings --url ${demo.dashboard}\nCtrl-C stops the demo and everything it started.`,
  );
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`demo: ${err.message}\n`);
    process.exit(1);
  });
}
