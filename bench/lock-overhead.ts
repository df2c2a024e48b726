// bench/lock-overhead: what lock tracking adds to each acquisition, per library, in one run:
// the same loops with tracking off (the baseline) and on, alternated over several rounds.
// Uncontended: acquire + release with no other task. Contended: tasks queued on one lock, so
// every acquisition waits (the cost of tracking a wait, including its span at threshold 0).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { BasicTracerProvider, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { InstrumentationBase } from '@opentelemetry/instrumentation';
import { LockTracker } from '../agent/locks/tracker';
import { AsyncMutexInstrumentation } from '../agent/locks/async-mutex';
import { AsyncLockInstrumentation } from '../agent/locks/async-lock';
import { PLimitInstrumentation, PQueueInstrumentation } from '../agent/locks/limiters';
import { WebLocksInstrumentation } from '../agent/locks/web-locks';
import { Mutex as OwnMutex } from '../agent/locks/named';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const UNCONTENDED = 100_000;
const CONTENDED = 10_000;

// Spans go through a real SDK tracer that drops them, so the cost measured is the agent's own.
const tracer = new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] }).getTracer('bench');
const tracker = new LockTracker(
  { waitThresholdMs: 0, heldThresholdMs: 5000 },
  tracer,
  new MeterProvider().getMeter('bench'),
);
register('@opentelemetry/instrumentation/hook.mjs', pathToFileURL(__filename));
const instrumentations = {
  asyncMutex: new AsyncMutexInstrumentation(),
  asyncLock: new AsyncLockInstrumentation(),
  pLimit: new PLimitInstrumentation(),
  pQueue: new PQueueInstrumentation(),
};
const webLocks = new WebLocksInstrumentation();
const load = createRequire(__filename);
const importEsm = new Function('specifier', 'return import(specifier)') as (
  specifier: string,
) => Promise<Record<string, any>>;
const version = (name: string) =>
  (
    JSON.parse(readFileSync(join(__dirname, '..', '..', 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;

interface Case {
  name: string;
  /** Turns tracking on or off for the next loops. */
  track(on: boolean): void;
  uncontended(n: number): Promise<void>;
  contended(n: number): Promise<void>;
}

/** Tracking on = the instrumentation enabled and the tracker running. */
function toggle(instrumentation?: InstrumentationBase): (on: boolean) => void {
  return (on) => {
    if (on) {
      instrumentation?.enable();
      tracker.start();
    } else {
      instrumentation?.disable();
      tracker.stop();
    }
  };
}

async function cases(): Promise<Case[]> {
  const asyncMutex = load('async-mutex') as typeof import('async-mutex');
  const AsyncLock = load('async-lock') as typeof import('async-lock');
  // ES modules: read through the namespace at each use, as live bindings are.
  const pLimit = await importEsm('p-limit');
  const pQueue = await importEsm('p-queue');
  const list: Case[] = [
    {
      name: `async-mutex ${version('async-mutex')} Mutex`,
      track: toggle(instrumentations.asyncMutex),
      async uncontended(n) {
        const m = new asyncMutex.Mutex();
        for (let i = 0; i < n; i++) (await m.acquire())();
      },
      async contended(n) {
        const m = new asyncMutex.Mutex();
        await Promise.all(Array.from({ length: n }, () => m.runExclusive(() => undefined)));
      },
    },
    {
      name: `async-lock ${version('async-lock')}`,
      track: toggle(instrumentations.asyncLock),
      async uncontended(n) {
        const lock = new AsyncLock();
        for (let i = 0; i < n; i++) await lock.acquire('k', () => undefined);
      },
      async contended(n) {
        const lock = new AsyncLock({ maxPending: Infinity });
        await Promise.all(Array.from({ length: n }, () => lock.acquire('k', () => undefined)));
      },
    },
    {
      name: `p-limit ${version('p-limit')}`,
      track: toggle(instrumentations.pLimit),
      async uncontended(n) {
        const limit = pLimit.default(1);
        for (let i = 0; i < n; i++) await limit(() => undefined);
      },
      async contended(n) {
        const limit = pLimit.default(1);
        await Promise.all(Array.from({ length: n }, () => limit(() => undefined)));
      },
    },
    {
      name: `p-queue ${version('p-queue')}`,
      track: toggle(instrumentations.pQueue),
      async uncontended(n) {
        const queue = new pQueue.default({ concurrency: 1 });
        for (let i = 0; i < n; i++) await queue.add(() => undefined);
      },
      async contended(n) {
        const queue = new pQueue.default({ concurrency: 1 });
        await Promise.all(Array.from({ length: n }, () => queue.add(() => undefined)));
      },
    },
    {
      name: 'stallscope Mutex',
      track: toggle(),
      async uncontended(n) {
        const m = new OwnMutex('bench');
        for (let i = 0; i < n; i++) (await m.acquire())();
      },
      async contended(n) {
        const m = new OwnMutex('bench');
        await Promise.all(Array.from({ length: n }, () => m.runExclusive(() => undefined)));
      },
    },
  ];
  const locks = (
    globalThis as { navigator?: { locks?: { request(name: string, fn: () => unknown): Promise<unknown> } } }
  ).navigator?.locks;
  if (locks) {
    list.push({
      name: `Web Locks (Node ${process.version})`,
      track(on) {
        toggle()(on);
        if (on) webLocks.start();
        else webLocks.stop();
      },
      async uncontended(n) {
        for (let i = 0; i < n; i++) await locks.request('bench', () => undefined);
      },
      async contended(n) {
        await Promise.all(Array.from({ length: n }, () => locks.request('bench', () => undefined)));
      },
    });
  }
  return list;
}

async function perOp(run: (n: number) => Promise<void>, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  await run(n);
  return Number(process.hrtime.bigint() - t0) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  process.stdout.write(
    `bench/lock-overhead: median of ${ROUNDS} rounds, tracking off then on in each round, Node ${process.version}\n`,
  );
  process.stdout.write(
    'library | uncontended off | on | added (target <= 1000 ns) | contended off | on | added per wait\n',
  );
  for (const c of await cases()) {
    const r = { off: { u: [] as number[], c: [] as number[] }, on: { u: [] as number[], c: [] as number[] } };
    c.track(false);
    await c.uncontended(UNCONTENDED / 10); // warm-up, both ways
    c.track(true);
    await c.uncontended(UNCONTENDED / 10);
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['off', 'on'] as const) {
        c.track(mode === 'on');
        r[mode].u.push(await perOp(c.uncontended, UNCONTENDED));
        r[mode].c.push(await perOp(c.contended, CONTENDED));
      }
    }
    c.track(false);
    const [uOff, uOn, cOff, cOn] = [median(r.off.u), median(r.on.u), median(r.off.c), median(r.on.c)];
    const ns = (x: number) => `${x.toFixed(0)} ns`;
    process.stdout.write(
      `${c.name} | ${ns(uOff)} | ${ns(uOn)} | +${ns(uOn - uOff)} (ratio ${(uOn / uOff).toFixed(2)}) | ${ns(cOff)} | ${ns(cOn)} | +${ns(cOn - cOff)}\n`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`bench/lock-overhead failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
