// bench/lock-overhead: what lock tracking adds to each acquisition of a real async-mutex, in one
// run: the same loops with the instrumentation disabled (the baseline) and enabled, alternated
// over several rounds. Uncontended: acquire + release with no other task. Contended: tasks
// queued on one mutex, so every acquisition waits (the cost of tracking a wait and its span).
import { createRequire } from 'node:module';
import { BasicTracerProvider, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { LockTracker } from '../agent/locks/tracker';
import { AsyncMutexInstrumentation } from '../agent/locks/async-mutex';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const UNCONTENDED = 200_000;
const CONTENDED_TASKS = 20_000;

// Spans go through a real SDK tracer that drops them, so the cost measured is the agent's own.
const tracer = new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] }).getTracer('bench');
const tracker = new LockTracker({ waitThresholdMs: 0, heldThresholdMs: 5000 }, tracer, new MeterProvider().getMeter('bench'));
tracker.start();
const instrumentation = new AsyncMutexInstrumentation();
const { Mutex } = createRequire(__filename)('async-mutex') as typeof import('async-mutex');

async function uncontended(): Promise<number> {
  const mutex = new Mutex();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < UNCONTENDED; i++) (await mutex.acquire())();
  return Number(process.hrtime.bigint() - t0) / UNCONTENDED;
}

async function contended(): Promise<number> {
  const mutex = new Mutex();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONTENDED_TASKS }, () => mutex.runExclusive(() => undefined)));
  return Number(process.hrtime.bigint() - t0) / CONTENDED_TASKS;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const results = { plain: { u: [] as number[], c: [] as number[] }, tracked: { u: [] as number[], c: [] as number[] } };
  await uncontended(); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of ['plain', 'tracked'] as const) {
      if (mode === 'plain') instrumentation.disable();
      else instrumentation.enable();
      results[mode].u.push(await uncontended());
      results[mode].c.push(await contended());
    }
  }
  tracker.stop();
  const u = median(results.tracked.u) - median(results.plain.u);
  const c = median(results.tracked.c) - median(results.plain.c);
  process.stdout.write(`bench/lock-overhead: async-mutex ${require('async-mutex/package.json').version}, median of ${ROUNDS} rounds\n`);
  process.stdout.write(
    `uncontended acquire+release: ${median(results.plain.u).toFixed(0)} ns without the agent, ${median(results.tracked.u).toFixed(0)} ns with: ` +
      `+${u.toFixed(0)} ns (target <= 1000 ns), ratio ${(median(results.tracked.u) / median(results.plain.u)).toFixed(2)}\n`,
  );
  process.stdout.write(
    `contended (every acquisition waits, wait span each): ${median(results.plain.c).toFixed(0)} ns without, ${median(results.tracked.c).toFixed(0)} ns with: ` +
      `+${c.toFixed(0)} ns per wait, ratio ${(median(results.tracked.c) / median(results.plain.c)).toFixed(2)}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`bench/lock-overhead failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
