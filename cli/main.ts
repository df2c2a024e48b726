#!/usr/bin/env node
// The stallscope command line. Exit codes: 0 success, 1 runtime failure, 2 bad usage, 3 findings
// at or above the --fail-on severity.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from './serve';
import { printFindings, type FindingsOptions } from './findings';
import { printAlerts } from './alerts';
import { loadFindingsConfig } from '../collector/findings-config';
import { ConfigError } from '../collector/config-file';
import { parseDuration } from '../common/time';
import { formatSize, parseSize } from '../common/size';
import { DEFAULT_MEMORY_BUDGET, DEFAULT_REQUEST_TIMEOUT_MS } from '../collector/index';
import { packageRoot } from '../common/package-root';
import { isLoopbackHost } from '../common/listen';

class Usage extends Error {}

/** A body may be 1/16 of the budget: below this, under 2 MiB, which refuses ordinary batches. */
const MIN_MEMORY_BUDGET = 32 * 1024 * 1024;

const MAIN_HELP = `stallscope: find the time your Node.js services lose to blocked event loops, busy thread pools and hot locks

Usage: stallscope <command> [options]

Commands:
  serve     run the OTLP collector and the dashboard on one SQLite file
  findings  print what costs your services time, with the fix (from a running dashboard)
  alerts    print the alert rules, the alerts pending and firing, and recent state changes

Run 'stallscope <command> --help' for a command's options.
Options: --help, --version`;

const SERVE_HELP = `Usage: stallscope serve [options]

Runs the OTLP/HTTP collector and the dashboard in one process.

Options:
  --db FILE           SQLite database file, created if missing (default ./stallscope.db)
  --otlp-port PORT    OTLP/HTTP port for agents and OpenTelemetry SDKs (default 4318)
  --port PORT         dashboard and query API port (default 7318)
  --host HOST         address both servers bind (default 127.0.0.1); any other than loopback
                      needs STALLSCOPE_TOKEN, which the pages and APIs then require
  --retention DUR     delete data older than this, e.g. 12h, 7d, 4w; 0 keeps everything (default 7d)
  --otlp-auth         OTLP requests need the token too (Authorization: Bearer <token>); without
                      it, OTLP beyond loopback takes data from anyone who can reach the port
  --memory-budget SIZE  bytes all OTLP requests in flight may hold together, e.g. 512MiB; past
                      it they get 503 with Retry-After (default 256MiB). A body may be 1/16 of
                      it after decompression (16 MiB by default, at most 64 MiB)
  --request-timeout DUR  time a client has to send one OTLP request, headers and body (default 30s)
  --findings FILE     thresholds for findings (YAML or JSON); see docs/findings.md
  --rules FILE        alert rules and receivers (YAML or JSON); see docs/alerts.md. Default:
                      <db without .db>.rules.yaml, read if it exists (the dashboard saves there)
  -h, --help          show this help

Environment: STALLSCOPE_TOKEN  a shared secret for the dashboard, its APIs and (--otlp-auth) OTLP`;

const FINDINGS_HELP = `Usage: stallscope findings [options]

Prints the findings of a running stallscope (what costs time, where, and the fix), most
costly first.

Options:
  --url URL           the dashboard (default http://127.0.0.1:7318)
  --service NAME      one service only
  --since DUR         the window back from now (default 15m)
  --json              the findings as a JSON array, as GET /api/findings returns them
  --fail-on LEVEL     exit with 3 when any finding is at LEVEL or worse: warning or critical
  -h, --help          show this help

Environment: STALLSCOPE_TOKEN  sent as a bearer token when the dashboard requires one`;

const ALERTS_HELP = `Usage: stallscope alerts [options]

Prints a running stallscope's alert rules, the alerts pending, firing or recently resolved,
and the latest state changes.

Options:
  --url URL           the dashboard (default http://127.0.0.1:7318)
  --since DUR         how far back the state changes go (default 24h)
  --json              everything as JSON, as GET /api/alerts returns it
  -h, --help          show this help

Environment: STALLSCOPE_TOKEN  sent as a bearer token when the dashboard requires one`;

function fail(err: unknown): never {
  const usage = err instanceof Usage || String((err as NodeJS.ErrnoException)?.code).startsWith('ERR_PARSE_ARGS');
  const hint = usage ? "; run 'stallscope --help'" : '';
  process.stderr.write(`stallscope: ${(err as Error).message}${hint}\n`);
  process.exit(usage || err instanceof ConfigError ? 2 : 1);
}

function port(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new Usage(`${flag}: "${value}" is not a port number (0-65535)`);
  return n;
}

async function runServe(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      db: { type: 'string', default: './stallscope.db' },
      'otlp-port': { type: 'string', default: '4318' },
      port: { type: 'string', default: '7318' },
      host: { type: 'string', default: '127.0.0.1' },
      retention: { type: 'string', default: '7d' },
      'otlp-auth': { type: 'boolean', default: false },
      'memory-budget': { type: 'string' },
      'request-timeout': { type: 'string' },
      findings: { type: 'string' },
      rules: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return;
  }
  const retentionMs = values.retention === '0' ? 0 : parseDuration(values.retention!);
  if (retentionMs instanceof Error) throw new Usage(`--retention: ${retentionMs.message}`);
  const token = process.env.STALLSCOPE_TOKEN?.trim() || undefined;
  if (token !== undefined && token.length < 16)
    throw new Usage('STALLSCOPE_TOKEN: use at least 16 characters (e.g. openssl rand -hex 16)');
  if (!isLoopbackHost(values.host!) && !token) {
    throw new Usage(
      `--host ${values.host}: listening beyond this machine needs STALLSCOPE_TOKEN set, or the pages and APIs would be open to the network`,
    );
  }
  if (values['otlp-auth'] && !token) throw new Usage('--otlp-auth: needs STALLSCOPE_TOKEN set');
  const memoryBudgetBytes =
    values['memory-budget'] === undefined ? DEFAULT_MEMORY_BUDGET : parseSize(values['memory-budget']);
  if (memoryBudgetBytes instanceof Error) throw new Usage(`--memory-budget: ${memoryBudgetBytes.message}`);
  if (memoryBudgetBytes < MIN_MEMORY_BUDGET) {
    throw new Usage(`--memory-budget: at least ${formatSize(MIN_MEMORY_BUDGET)}, or no request of useful size fits`);
  }
  const requestTimeoutMs =
    values['request-timeout'] === undefined ? DEFAULT_REQUEST_TIMEOUT_MS : parseDuration(values['request-timeout']);
  if (requestTimeoutMs instanceof Error) throw new Usage(`--request-timeout: ${requestTimeoutMs.message}`);
  if (requestTimeoutMs < 1000) throw new Usage('--request-timeout: at least 1s');
  const options = {
    store: { path: values.db!, retentionMs },
    host: values.host!,
    otlpPort: port(values['otlp-port']!, '--otlp-port'),
    port: port(values.port!, '--port'),
    token,
    otlpAuth: values['otlp-auth'],
    limits: { memoryBudgetBytes, requestTimeoutMs },
    findingThresholds: values.findings === undefined ? undefined : loadFindingsConfig(values.findings),
    rulesFile: values.rules,
  };
  const running = await serve(options);
  const otlpPort = running.collector.otlpPort;
  if (!isLoopbackHost(values.host!)) {
    // Beyond loopback, say exactly what anyone on the network can reach without the token.
    const open = [`/healthz on port ${running.dashboard.port} (status and counters only)`];
    if (!options.otlpAuth)
      open.unshift(`OTLP on port ${otlpPort} (anyone can write data; --otlp-auth requires the token)`);
    process.stdout.write(`stallscope: open without auth on ${values.host}: ${open.join('; ')}\n`);
  }
  process.stdout.write(
    `stallscope: collecting OTLP on http://${options.host}:${otlpPort}, ` +
      `dashboard on http://${options.host}:${running.dashboard.port}, database ${options.store.path}, ` +
      `retention ${retentionMs ? values.retention : 'off'}, memory budget ${formatSize(memoryBudgetBytes)}\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) {
      process.stderr.write('stallscope: stopped at once; requests still in flight were not acknowledged\n');
      process.exit(1);
    }
    stopping = true;
    running.close().then(
      () => process.exit(0),
      (err) => fail(err),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function dashboardUrl(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new Usage(`--url: "${value}" is not an http(s) URL, e.g. http://127.0.0.1:7318`);
  return value;
}

/** The options of the commands that ask a running stallscope; undefined once --help is printed. */
function clientArgs(
  args: string[],
  help: string,
  since: string,
  extra: Record<string, { type: 'string' | 'boolean' }>,
) {
  const parsed = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:7318' },
      since: { type: 'string', default: since },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
      ...extra,
    },
  });
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) {
    process.stdout.write(`${help}\n`);
    return undefined;
  }
  const ms = parseDuration(String(values.since));
  if (ms instanceof Error) throw new Usage(`--since: ${ms.message}`);
  return {
    values,
    url: dashboardUrl(String(values.url)),
    since: String(values.since),
    json: values.json === true,
    token: process.env.STALLSCOPE_TOKEN?.trim() || undefined,
  };
}

async function runFindings(args: string[]): Promise<void> {
  const a = clientArgs(args, FINDINGS_HELP, '15m', { service: { type: 'string' }, 'fail-on': { type: 'string' } });
  if (!a) return;
  const failOn = a.values['fail-on'] as string | undefined;
  if (failOn !== undefined && failOn !== 'warning' && failOn !== 'critical')
    throw new Usage(`--fail-on: "${failOn}" is not a level; use warning or critical`);
  const options: FindingsOptions = {
    url: a.url,
    service: a.values.service as string | undefined,
    since: a.since,
    json: a.json,
    failOn,
    token: a.token,
  };
  process.exitCode = await printFindings(options, (text) => process.stdout.write(text));
}

async function runAlerts(args: string[]): Promise<void> {
  const a = clientArgs(args, ALERTS_HELP, '24h', {});
  if (a)
    await printAlerts({ url: a.url, since: a.since, json: a.json, token: a.token }, (text) =>
      process.stdout.write(text),
    );
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${MAIN_HELP}\n`);
    return;
  }
  if (command === '--version' || command === '-v') {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return;
  }
  if (command === 'serve') return runServe(rest);
  if (command === 'findings') return runFindings(rest);
  if (command === 'alerts') return runAlerts(rest);
  throw new Usage(`unknown command "${command}"`);
}

main(process.argv.slice(2)).catch(fail);
