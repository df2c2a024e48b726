// bench/agent-overhead: what the agent costs a service, measured in one run against baselines.
// An express service under a bounded loopback load (autocannon), started several ways: no agent;
// plain OpenTelemetry (HTTP + express instrumentation, OTLP export); the stallscope agent (its
// loop profiler on at the default 100 Hz, with 2 s windows so that every round includes relays);
// the same agent with profiling off; the agent with only the blocking watchdog; and without lock
// and offload tracking. Variants run interleaved, several rounds, so that drift on a 2-core
// machine hits all of them alike; the median round counts. Then 1M awaits with and without the
// agent, and the main-thread cost of the profiler's start, relay and stop in an app of 5,000
// functions (and one of a single function; both also hold the SDK's own code), as the agent itself measures them (stallscope.profiler.pause).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import autocannon from 'autocannon';
import { serve } from '../cli/serve';
import { MetricsRequest } from '../collector/otlp/proto';
import { PROFILER_COMMAND, PROFILER_METRICS } from '../common/conventions';
import { packageRoot } from '../common/package-root';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const CONNECTIONS = 16;
const root = packageRoot();
const SERVICE = join(root, 'bench', 'fixtures', 'service.js');
const AWAITS = join(root, 'bench', 'fixtures', 'awaits.js');
const AGENT = join(root, 'dist', 'agent', 'register.js');
const OTEL = join(root, 'dist', 'bench', 'otel-baseline.js');

interface Variant {
  name: string;
  args: string[];
  env: Record<string, string>;
}

const variants: Variant[] = [
  { name: 'no agent', args: [], env: {} },
  { name: 'plain OpenTelemetry', args: ['--require', OTEL], env: {} },
  { name: 'stallscope agent', args: ['--require', AGENT], env: { STALLSCOPE_PROFILE_WINDOW_MS: '2000' } },
  { name: 'stallscope, profiling off', args: ['--require', AGENT], env: { STALLSCOPE_PROFILE_HZ: '0' } },
  {
    name: 'stallscope watchdog only',
    args: ['--require', AGENT],
    env: {
      STALLSCOPE_SYNC_CALLS: 'false',
      STALLSCOPE_LOOP_METRICS: 'false',
      STALLSCOPE_LOCKS: 'false',
      STALLSCOPE_THREADPOOL: 'false',
      STALLSCOPE_POOLS: 'false',
      STALLSCOPE_PROFILE_HZ: '0',
    },
  },
  {
    name: 'stallscope, no lock/offload',
    args: ['--require', AGENT],
    env: {
      STALLSCOPE_LOCKS: 'false',
      STALLSCOPE_THREADPOOL: 'false',
      STALLSCOPE_POOLS: 'false',
      STALLSCOPE_PROFILE_WINDOW_MS: '2000',
    },
  },
];

function start(v: Variant, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [...v.args, script], {
    env: { ...env, ...v.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)));
  });
}

/** CPU seconds (user + system) the process has used so far, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function loadOnce(v: Variant, env: NodeJS.ProcessEnv): Promise<{ rps: number; p99: number; cpuUs: number }> {
  const child = start(v, SERVICE, env);
  try {
    const { port } = JSON.parse(await firstLine(child)) as { port: number };
    const url = `http://127.0.0.1:${port}/items/7`;
    // Warm-up: JIT, lazy paths, and the loop profiler's one start (its cost is measured apart, below).
    await autocannon({ url, connections: CONNECTIONS, duration: 3 });
    const cpuBefore = cpuSeconds(child.pid!);
    const r = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS });
    const cpu = cpuSeconds(child.pid!) - cpuBefore;
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${v.name}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
    // CPU per request is steadier than throughput on a 2-core machine shared with the load generator.
    return { rps: r.requests.average, p99: r.latency.p99, cpuUs: (cpu / r.requests.total) * 1e6 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

async function awaitsOnce(v: Variant, env: NodeJS.ProcessEnv): Promise<number> {
  const child = start(v, AWAITS, env);
  return Number(await firstLine(child));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stallscope-bench-agent-'));
  // The agents export to a real collector, as in production.
  const running = await serve({
    dbPath: join(dir, 'bench.db'),
    host: '127.0.0.1',
    otlpPort: 0,
    port: 0,
    retentionMs: 0,
  });
  const env = {
    ...process.env,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${running.collector.otlpPort}`,
    OTEL_SERVICE_NAME: 'bench-service',
  };
  try {
    process.stdout.write(
      `bench/agent-overhead: express service, autocannon ${CONNECTIONS} connections x ${SECONDS} s, ${ROUNDS} interleaved rounds (median)\n`,
    );
    const results = new Map<string, { rps: number[]; p99: number[]; cpuUs: number[] }>(
      variants.map((v) => [v.name, { rps: [], p99: [], cpuUs: [] }]),
    );
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of variants) {
        const r = await loadOnce(v, env);
        results.get(v.name)!.rps.push(r.rps);
        results.get(v.name)!.p99.push(r.p99);
        results.get(v.name)!.cpuUs.push(r.cpuUs);
      }
    }
    const rps = (name: string) => median(results.get(name)!.rps);
    const cpu = (name: string) => median(results.get(name)!.cpuUs);
    for (const v of variants) {
      const rs = results.get(v.name)!;
      process.stdout.write(
        `${v.name.padEnd(30)} ${Math.round(rps(v.name)).toString().padStart(6)} req/s  p99 ${median(rs.p99).toFixed(1).padStart(5)} ms  ` +
          `vs plain OTel ${(rps(v.name) / rps('plain OpenTelemetry')).toFixed(3)}  ` +
          `CPU ${cpu(v.name).toFixed(0).padStart(4)} us/req (x${(cpu(v.name) / cpu('plain OpenTelemetry')).toFixed(3)} of plain OTel)  ` +
          `rounds ${rs.rps.map((x) => Math.round(x)).join(' ')}\n`,
      );
    }
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    const base = 'plain OpenTelemetry';
    // Rounds drift on a shared machine; a ratio within one round cancels most of it.
    const paired = (name: string, of: 'rps' | 'cpuUs', than = base) =>
      median(results.get(name)![of].map((x, i) => x / results.get(than)![of][i]));
    const costs = (name: string, than = base) =>
      `throughput ${pct(1 - paired(name, 'rps', than))}, CPU per request ${pct(paired(name, 'cpuUs', than) - 1)}`;
    process.stdout.write(
      `cost over plain OpenTelemetry, median of per-round ratios (target: agent <= 3%, watchdog alone <= 1%):\n` +
        `  stallscope agent: ${costs('stallscope agent')}\n` +
        `  watchdog alone: ${costs('stallscope watchdog only')}\n` +
        `  lock and offload tracking, agent with vs without: ${costs('stallscope agent', 'stallscope, no lock/offload')}\n` +
        `  loop profiling at 100 Hz, agent with vs without (target <= 2%): ${costs('stallscope agent', 'stallscope, profiling off')}\n`,
    );

    const awaits = new Map<string, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of [variants[0], variants[1], variants[2]]) {
        if (!awaits.has(v.name)) awaits.set(v.name, []);
        awaits.get(v.name)!.push(await awaitsOnce(v, env));
      }
    }
    const plain = median(awaits.get('no agent')!);
    for (const [name, times] of awaits) {
      process.stdout.write(
        `1M awaits, ${name.padEnd(22)} ${median(times).toFixed(1).padStart(7)} ms  ratio ${(median(times) / plain).toFixed(2)}\n`,
      );
    }
    await profilerPauses(dir);
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An app of `n` functions, every one compiled (called), kept busy for a while, then idle. */
function generatedApp(dir: string, n: number): string {
  const file = join(dir, `app-${n}.js`);
  const lines = ["'use strict';", 'const fns = [];'];
  for (let i = 0; i < n; i++) lines.push(`fns.push(function f${i}(x) { return (x * ${i % 13}) ^ ${i}; });`);
  lines.push(
    'let acc = 0;',
    'for (const f of fns) acc += f(1);',
    'const busyUntil = Date.now() + Number(process.env.BUSY_MS);',
    // Half the time busy in 20 ms turns: enough for the profiler to start and relay windows.
    'const turn = () => { const end = performance.now() + 20; while (performance.now() < end) for (let i = 0; i < 100; i++) acc += fns[(acc >>> 0) % fns.length](i); if (Date.now() < busyUntil) setTimeout(turn, 20); };',
    'setTimeout(turn, 300);',
    'setTimeout(() => process.stdout.write(`${acc & 1}\\n`), Number(process.env.BUSY_MS) + Number(process.env.IDLE_MS));',
  );
  writeFileSync(file, lines.join('\n'));
  return file;
}

/**
 * The main-thread cost of one profile start, relay and stop, as the agent records it
 * (stallscope.profiler.pause, timed on the main thread around V8's work), for an app of 5,000
 * functions against one of a single function: the start logs every compiled function, so it grows with code.
 */
async function profilerPauses(dir: string): Promise<void> {
  const pauses = new Map<string, { sum: number; count: number }>();
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.end();
      if (req.url !== '/v1/metrics') return;
      const m = MetricsRequest.toObject(MetricsRequest.decode(Buffer.concat(chunks)), { longs: Number }) as any;
      for (const rm of m.resourceMetrics ?? [])
        for (const sm of rm.scopeMetrics ?? [])
          for (const metric of sm.metrics ?? []) {
            if (metric.name !== PROFILER_METRICS.pause) continue;
            for (const dp of metric.histogram.dataPoints) {
              const command = dp.attributes.find((a: any) => a.key === PROFILER_COMMAND)?.value.stringValue;
              pauses.set(
                `${rm.resource.attributes.find((a: any) => a.key === 'service.name').value.stringValue}/${command}`,
                {
                  sum: dp.sum,
                  count: Number(dp.count),
                },
              );
            }
          }
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  try {
    const runs = Number(process.env.BENCH_ROUNDS ?? 3);
    for (let round = 0; round < runs; round++) {
      for (const n of [1, 5000]) {
        const child = spawn(process.execPath, ['--require', AGENT, generatedApp(dir, n)], {
          env: {
            ...process.env,
            OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
            OTEL_SERVICE_NAME: `fns-${n}-${round}`,
            OTEL_METRIC_EXPORT_INTERVAL: '500',
            STALLSCOPE_PROFILE_WINDOW_MS: '2000',
            BUSY_MS: '7000',
            IDLE_MS: '7000',
          },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        await firstLine(child);
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    process.stdout.write(
      `loop profiler, main-thread time per command (median over ${runs} runs, each: start, 2 s windows relayed, stop once idle):\n`,
    );
    const perRun = (n: number, command: string): number =>
      median(
        Array.from({ length: runs }, (_, round) => pauses.get(`fns-${n}-${round}/${command}`))
          .filter((p): p is { sum: number; count: number } => p !== undefined && p.count > 0)
          .map((p) => (p.sum / p.count) * 1000),
      ) ?? NaN;
    for (const command of ['start', 'boundary', 'stop']) {
      const none = perRun(1, command);
      const many = perRun(5000, command);
      process.stdout.write(
        `  ${command.padEnd(8)} app of 1 function ${none.toFixed(2).padStart(7)} ms   app of 5,000 functions ${many
          .toFixed(2)
          .padStart(7)} ms   ratio ${(many / none).toFixed(2)}\n`,
      );
    }
  } finally {
    receiver.close();
  }
}

main().catch((err) => {
  process.stderr.write(`bench/agent-overhead failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
