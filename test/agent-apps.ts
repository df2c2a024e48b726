// Running apps with the stallscope agent attached, against a real collector: shared by the
// agent's end-to-end tests and the dashboard's.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { buildSync } from 'esbuild';
import { FIXTURES, eventually, getJson, startServer, waitForOutput, type TestServer } from './helpers';
import { packageRoot } from '../common/package-root';

export const REGISTER = join(packageRoot(), 'dist', 'agent', 'register.js');

/** The 1-based line of a `MARK:name` comment in a fixture (or a file in `dir`). */
export function markLine(file: string, mark: string, dir = FIXTURES): number {
  const i = readFileSync(join(dir, file), 'utf8')
    .split('\n')
    .findIndex((l) => l.includes(`MARK:${mark}`));
  assert.ok(i >= 0, `no MARK:${mark} in ${file}`);
  return i + 1;
}

const TS_SERVICE = join(FIXTURES, 'ts-service');

/**
 * Builds the TypeScript service of the fixtures into `dir` as users ship one: with tsc (a file per
 * module, external maps) and with esbuild (one bundle, inline map, its dependencies inside).
 */
export function buildService(dir: string): { dist: string; bundle: string } {
  const dist = join(dir, 'dist');
  const tsc = join(packageRoot(), 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(TS_SERVICE, 'tsconfig.json'), '--outDir', dist]);
  const bundle = join(dir, 'bundle', 'main.js');
  buildSync({
    entryPoints: [join(TS_SERVICE, 'src', 'server.ts')],
    bundle: true,
    platform: 'node',
    sourcemap: 'inline',
    // A lock library stays outside, as any library an instrumentation patches must.
    external: ['async-mutex'],
    outfile: bundle,
    logLevel: 'silent',
  });
  return { dist, bundle };
}

export interface App {
  child: ChildProcess;
  port: number;
  stderr: () => string;
}

export function agentEnv(server: TestServer, service: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    OTEL_EXPORTER_OTLP_ENDPOINT: server.otlp,
    OTEL_SERVICE_NAME: service,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_METRIC_EXPORT_INTERVAL: '500',
    STALLSCOPE_BLOCK_THRESHOLD_MS: '50',
    STALLSCOPE_SYNC_THRESHOLD_MS: '20',
    ...extra,
  };
}

export async function startApp(args: string[], env: NodeJS.ProcessEnv): Promise<App> {
  const child = spawn(process.execPath, args, { cwd: FIXTURES, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const port = Number(
    (
      await waitForOutput(child, /"port":(\d+)/).catch((e: Error) => Promise.reject(new Error(`${e.message}: ${err}`)))
    )[1],
  );
  // The detectors arm once the app has started (its loop mostly idle for a moment).
  await new Promise((r) => setTimeout(r, 300));
  return { child, port, stderr: () => err };
}

export function stop(app: App): Promise<void> {
  return new Promise((resolve) => {
    // Exited, or ended by a signal (exitCode stays null then): nothing to wait for.
    if (app.child.exitCode !== null || app.child.signalCode !== null) return resolve();
    app.child.once('exit', () => resolve());
    app.child.kill('SIGTERM');
  });
}

/** Runs `fn` against an app started with the agent on a fresh collector; stops both after. */
export async function withAgentApp(
  args: string[],
  service: string,
  fn: (server: TestServer, app: App) => Promise<void>,
): Promise<void> {
  const server = await startServer();
  try {
    const app = await startApp(args, agentEnv(server, service));
    try {
      await fn(server, app);
    } finally {
      await stop(app);
    }
  } finally {
    await server.close();
  }
}

const newTraceId = () => randomBytes(16).toString('hex');
const newSpanId = () => randomBytes(8).toString('hex');

/** Calls the app as the child of a known remote parent, so the test knows the trace id. */
export async function call(app: App, path: string): Promise<{ traceId: string; parentId: string; body: string }> {
  const traceId = newTraceId();
  const parentId = newSpanId();
  const res = await fetch(`http://127.0.0.1:${app.port}${path}`, {
    headers: { traceparent: `00-${traceId}-${parentId}-01` },
  });
  return { traceId, parentId, body: await res.text() };
}

export type SpanJson = {
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: number;
  durationMs: number;
  attributes: Record<string, any>;
};

export async function traceWith(server: TestServer, traceId: string, name: string): Promise<SpanJson[]> {
  return eventually(
    async () => {
      const { status, body } = await getJson(`${server.api}/api/traces/${traceId}`);
      return status === 200 && body.spans.some((s: SpanJson) => s.name === name)
        ? (body.spans as SpanJson[])
        : undefined;
    },
    10_000,
    `a "${name}" span in trace ${traceId}`,
  );
}

/** A request a closed-loop client sends: a GET of the path, or a method with a JSON body. */
export type LoadRequest = string | { path: string; method: string; body: string };

/**
 * Closed-loop keep-alive clients on 127.0.0.1, each cycling through `requests` until `ms` have
 * passed and waiting `thinkMs` between its requests (0: none); answers counted per path and per
 * status if asked.
 */
export async function closedLoop(
  port: number,
  requests: LoadRequest[],
  clients: number,
  ms: number,
  o: { thinkMs?: number; counts?: Map<string, number>; statuses?: Map<number, number> } = {},
): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const end = Date.now() + ms;
  const send = (r: LoadRequest) =>
    new Promise<void>((resolve, reject) => {
      const { path, method, body } = typeof r === 'string' ? { path: r, method: 'GET', body: undefined } : r;
      const headers = body === undefined ? {} : { 'content-type': 'application/json' };
      http
        .request({ host: '127.0.0.1', port, path, method, headers, agent }, (res) => {
          o.statuses?.set(res.statusCode!, (o.statuses.get(res.statusCode!) ?? 0) + 1);
          res.resume().on('end', () => resolve());
        })
        .on('error', reject)
        .end(body);
    });
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let turn = c; Date.now() < end; turn++) {
        const r = requests[turn % requests.length];
        await send(r);
        const path = typeof r === 'string' ? r : r.path;
        o.counts?.set(path, (o.counts.get(path) ?? 0) + 1);
        if (o.thinkMs) await new Promise((r) => setTimeout(r, o.thinkMs));
      }
    }),
  );
  agent.destroy();
}
