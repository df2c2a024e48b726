// bench/request-modes: what each request mode of the agent costs a service per request, on
// express, fastify and koa (@koa/router), measured in one run against the same service without an
// agent: no agent; the agent in full mode (OpenTelemetry's HTTP and express instrumentations, a
// span per request); full mode sampling 1% (parentbased_traceidratio 0.01); lean mode
// (STALLSCOPE_REQUESTS=lean: a span only for a request that stalled, per-route metrics for every
// one). All detectors on, exporting to a real collector. Real servers on 127.0.0.1, autocannon's
// closed-loop connections, bounded time; variants interleaved per round, so that drift on a shared
// machine hits all alike; ratios are medians of per-round ratios against no agent.
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { serve } from '../cli/serve';
import { packageRoot } from '../common/package-root';
import { loadService, median, type LoadResult, type Service } from './load';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CONNECTIONS = 16;
const FRAMEWORKS = (process.env.BENCH_FRAMEWORKS ?? 'express,fastify,koa').split(',');
const root = packageRoot();
const SERVICE = join(root, 'bench', 'fixtures', 'frameworks-service.js');
const AGENT = join(root, 'dist', 'agent', 'register.js');

const BASE = 'no agent';
const variants: Array<Service & { name: string; target?: number }> = [
  { name: BASE, args: [], env: {} },
  { name: 'full agent', args: ['--require', AGENT], env: { STALLSCOPE_REQUESTS: 'full' } },
  {
    name: 'full agent, 1% sampled',
    target: 0.85,
    args: ['--require', AGENT],
    env: {
      STALLSCOPE_REQUESTS: 'full',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.01',
    },
  },
  { name: 'lean agent', target: 0.92, args: ['--require', AGENT], env: { STALLSCOPE_REQUESTS: 'lean' } },
];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stallscope-bench-modes-'));
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
    process.stdout.write(
      `bench/request-modes: GET /items/:id, autocannon ${CONNECTIONS} closed-loop connections x ${SECONDS} s after 1 s warm-up, ` +
        `${ROUNDS} interleaved rounds (median), ratios: median of per-round ratios against no agent\n`,
    );
    for (const framework of FRAMEWORKS) {
      const results = new Map<string, LoadResult[]>(variants.map((v) => [v.name, []]));
      for (let round = 0; round < ROUNDS; round++) {
        for (const v of variants) {
          results.get(v.name)!.push(
            await loadService(`${framework}, ${v.name}`, v, [SERVICE, framework], env, {
              path: '/items/7',
              connections: CONNECTIONS,
              seconds: SECONDS,
            }),
          );
        }
      }
      const base = results.get(BASE)!;
      const ratio = (rs: LoadResult[], of: keyof LoadResult) => median(rs.map((r, i) => r[of] / base[i][of]));
      process.stdout.write(`${framework}:\n`);
      for (const v of variants) {
        const rs = results.get(v.name)!;
        const rps = ratio(rs, 'rps');
        const verdict = v.target === undefined ? '' : `  target >= ${v.target}: ${rps >= v.target ? 'met' : 'NOT met'}`;
        process.stdout.write(
          `  ${v.name.padEnd(24)} ${Math.round(median(rs.map((r) => r.rps)))
            .toString()
            .padStart(6)} req/s (x${rps.toFixed(3)})  ` +
            `p99 ${median(rs.map((r) => r.p99))
              .toFixed(1)
              .padStart(5)} ms (x${ratio(rs, 'p99').toFixed(2)})  ` +
            `CPU ${median(rs.map((r) => r.cpuUs))
              .toFixed(0)
              .padStart(4)} us/req (x${ratio(rs, 'cpuUs').toFixed(3)})  ` +
            `rounds ${rs.map((r) => Math.round(r.rps)).join(' ')}${verdict}\n`,
        );
      }
    }
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench/request-modes failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
