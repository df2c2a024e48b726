// bench/agent-overhead: what the agent costs a service, measured in one run against baselines.
// An express service under a bounded loopback load (autocannon), started several ways: no agent;
// plain OpenTelemetry (HTTP + express instrumentation, OTLP export); the stallscope agent (its
// loop profiler on at the default 100 Hz, with 2 s windows so that every round includes relays);
// the same agent with profiling off; the agent with only the blocking watchdog; and without lock
// and offload tracking. Variants run interleaved, several rounds, so that drift on a 2-core
// machine hits all of them alike; the median round counts. Then 1M awaits with and without the
// agent. Then source maps: the same kind of service bundled with its packages (a 5 MB map), a
// span with a stack on every request, with the map and without; and what loading that map costs
// the thread that does it, against Node's own SourceMap. Last, the main-thread cost of the
// profiler's start, relay and stop in an app of 5,000 functions against one of a single function
// (both also hold the SDK's own code), as the agent itself measures them (stallscope.profiler.pause).
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { buildSync } from 'esbuild';
import { tableBytes, type MapTable } from '../agent/source-maps';
import { SourceMapper } from '../agent/source-mapper';
import { captureStack, framesOf, type Frame } from '../agent/stack';
import { serve } from '../cli/serve';
import { MetricsRequest } from '../collector/otlp/proto';
import { PROFILER_COMMAND, PROFILER_METRICS } from '../common/conventions';
import { packageRoot } from '../common/package-root';
import { firstLine, loadService, median, startService, type LoadResult } from './load';

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
  /** The service to load, when not the plain one. */
  script?: () => string;
}

/** The bundled service, built by main(): with its source map beside it, and without one. */
const bundles = { withMap: '', withoutMap: '' };
const BUNDLED = { MAPPED: 'agent, bundle + 5 MB map', UNMAPPED: 'agent, bundle, no map' };

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
  // Every request makes a sync-call span whose stack is mapped (or, without a map, not).
  {
    name: BUNDLED.UNMAPPED,
    args: ['--require', AGENT],
    env: { STALLSCOPE_SYNC_THRESHOLD_MS: '0' },
    script: () => bundles.withoutMap,
  },
  {
    name: BUNDLED.MAPPED,
    args: ['--require', AGENT],
    env: { STALLSCOPE_SYNC_THRESHOLD_MS: '0' },
    script: () => bundles.withMap,
  },
];

function loadOnce(v: Variant, env: NodeJS.ProcessEnv): Promise<LoadResult> {
  // A longer warm-up: JIT, lazy paths, and the loop profiler's one start (its cost is measured apart, below).
  return loadService(v.name, v, [v.script?.() ?? SERVICE], env, {
    path: '/items/7',
    connections: CONNECTIONS,
    seconds: SECONDS,
    warmupSeconds: 3,
  });
}

async function awaitsOnce(v: Variant, env: NodeJS.ProcessEnv): Promise<number> {
  const child = startService(v, [AWAITS], env);
  return Number(await firstLine(child));
}

function buildBundles(dir: string): void {
  const entry = join(root, 'bench', 'fixtures', 'bundled-service.js');
  bundles.withMap = join(dir, 'mapped', 'main.js');
  bundles.withoutMap = join(dir, 'unmapped', 'main.js');
  const options = { entryPoints: [entry], bundle: true, platform: 'node' as const, logLevel: 'silent' as const };
  buildSync({ ...options, sourcemap: true, outfile: bundles.withMap });
  buildSync({ ...options, sourcemap: false, outfile: bundles.withoutMap });
}

/** Looking up the frames of one stack in the bundle's table, against taking and reading a stack. */
function mappingCost(table: MapTable | undefined): { mapUs: number; stackUs: number } {
  if (!table) throw new Error('no table to map through');
  const mapper = new SourceMapper({ ask: () => undefined, unusable: () => undefined });
  mapper.lookAt(bundles.withMap);
  mapper.loaded(bundles.withMap, { table });
  // 30 frames at generated positions that the map covers, spread over the bundle.
  const frames: Frame[] = [];
  const segments = table.segs.length / 4;
  for (let line = 0; frames.length < 30 && line + 1 < table.lines.length; line += Math.floor(table.lines.length / 31)) {
    const seg = table.lines[line];
    if (seg < table.lines[line + 1] && seg < segments)
      frames.push({ function: 'f', file: bundles.withMap, line: line + 1, column: table.segs[seg * 4] + 1 });
  }
  const N = 20_000;
  const time = (fn: () => unknown) => {
    for (let i = 0; i < 2000; i++) fn();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) fn();
    return ((performance.now() - t0) * 1000) / N;
  };
  const deep = (n: number, fn: () => unknown): unknown => (n ? deep(n - 1, fn) : fn());
  const mapUs = median([1, 2, 3].map(() => time(() => mapper.map(frames))));
  const stackUs = median([1, 2, 3].map(() => time(() => deep(30, () => framesOf(captureStack(deep, 30))))));
  if (mapper.map(frames).some((f) => !f.generated)) throw new Error('a frame was not mapped');
  return { mapUs, stackUs };
}

/**
 * Loading the bundle's map: the agent's loader on a thread of its own (as on the watchdog thread),
 * the main thread's longest stall meanwhile, and Node's SourceMap doing the same on the thread
 * that asks, the baseline.
 */
async function mapLoadCosts(): Promise<string> {
  const mapFile = `${bundles.withMap}.map`;
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  const lines = [
    `source maps: the bundle ${mb(statSync(bundles.withMap).size)}, its map ${mb(statSync(mapFile).size)}`,
  ];
  let lastTable: MapTable | undefined;
  const ours: Array<{ ms: number; longestGapMs: number; idleGapMs: number; mainGapMs: number; bytes: number }> = [];
  const node: Array<{ ms: number; heap: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    let mainGapMs = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      mainGapMs = Math.max(mainGapMs, now - last);
      last = now;
    }, 1);
    const r = await new Promise<{ ms: number; longestGapMs: number; idleGapMs: number; table: MapTable }>(
      (resolve, reject) => {
        const w = new Worker(join(__dirname, 'map-load-worker.js'), { workerData: bundles.withMap });
        w.once('message', (m) => {
          resolve(m);
          void w.terminate();
        });
        w.once('error', reject);
      },
    );
    clearInterval(ticker);
    lastTable = r.table;
    ours.push({
      ms: r.ms,
      longestGapMs: r.longestGapMs,
      idleGapMs: r.idleGapMs,
      mainGapMs,
      bytes: tableBytes(r.table),
    });

    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const map = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')));
    map.findEntry(1000, 0); // built by now: the lookup structure is complete
    const ms = performance.now() - t0;
    node.push({ ms, heap: process.memoryUsage().heapUsed - heapBefore });
  }
  const m = (xs: number[]) => median(xs);
  const perSpan = mappingCost(lastTable);
  const oursMs = m(ours.map((x) => x.ms));
  const nodeMs = m(node.map((x) => x.ms));
  lines.push(
    `  stallscope (its thread):   ${oursMs.toFixed(0).padStart(4)} ms to read and decode, that thread's longest pause ` +
      `${m(ours.map((x) => x.longestGapMs)).toFixed(1)} ms (idle, the same thread's: ${m(ours.map((x) => x.idleGapMs)).toFixed(1)} ms), main thread's longest pause meanwhile ${m(ours.map((x) => x.mainGapMs)).toFixed(1)} ms, ` +
      `table ${mb(m(ours.map((x) => x.bytes)))}`,
    `  Node's SourceMap (baseline, on the thread that asks): ${nodeMs.toFixed(0)} ms blocked, heap ${mb(m(node.map((x) => x.heap)))} ` +
      `(stallscope: x${(oursMs / nodeMs).toFixed(2)} of its time, none of it on the app's thread)`,
    `  mapping a span's 30-frame stack through it: ${perSpan.mapUs.toFixed(1)} us, against ${perSpan.stackUs.toFixed(1)} us to take and read ` +
      `that stack (the baseline; x${(perSpan.mapUs / perSpan.stackUs).toFixed(2)})`,
  );
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stallscope-bench-agent-'));
  // The agents export to a real collector, as in production.
  const running = await serve({
    store: { path: join(dir, 'bench.db'), retentionMs: 0 },
    host: '127.0.0.1',
    otlpPort: 0,
    port: 0,
  });
  const env = {
    ...process.env,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${running.collector.otlpPort}`,
    OTEL_SERVICE_NAME: 'bench-service',
  };
  try {
    buildBundles(dir);
    if (process.env.BENCH_SOURCE_MAPS_ONLY) {
      process.stdout.write(await mapLoadCosts());
      return;
    }
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
          `vs no agent ${(rps(v.name) / rps('no agent')).toFixed(3)}  vs plain OTel ${(rps(v.name) / rps('plain OpenTelemetry')).toFixed(3)}  ` +
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
        `  loop profiling at 100 Hz, agent with vs without (target <= 2%): ${costs('stallscope agent', 'stallscope, profiling off')}\n` +
        `  a span per request mapped through the bundle's 5 MB map, vs the bundle without a map: ${costs(BUNDLED.MAPPED, BUNDLED.UNMAPPED)}\n`,
    );
    // The loop profiler against the app alone, both measured in the same rounds.
    const p99 = (name: string) => median(results.get(name)!.p99);
    const pairedP99 = (name: string) =>
      median(results.get(name)!.p99.map((x, i) => x / results.get('no agent')!.p99[i]));
    process.stdout.write(`loop profiler, against no agent in the same run (median of per-round ratios):\n`);
    for (const [label, name] of [
      ['no agent', 'no agent'],
      ['agent, profiling off', 'stallscope, profiling off'],
      ['agent, profiling at 100 Hz', 'stallscope agent'],
    ]) {
      process.stdout.write(
        `  ${label.padEnd(28)} ${Math.round(rps(name)).toString().padStart(6)} req/s  p99 ${p99(name).toFixed(1).padStart(5)} ms  ` +
          `throughput x${paired(name, 'rps', 'no agent').toFixed(3)}  p99 x${pairedP99(name).toFixed(3)}\n`,
      );
    }
    process.stdout.write(await mapLoadCosts());

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
