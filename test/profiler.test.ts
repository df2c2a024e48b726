// The Node agent's loop CPU profiles, end to end: a real app under load with the agent attached
// posts gzipped pprof to a real HTTP server in the test, which decodes it with protobufjs from
// collector/proto/pprof.proto (and the agent's metrics with the collector's OTLP decoder).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { MetricsRequest } from '../collector/otlp/proto';
import {
  METRICS,
  PROFILER_METRICS,
  PROFILER_OUTCOME,
  PROFILER_REASON,
  PROFILER_STATE,
  PROFILER_STATES,
  PROFILE_ORIGINS,
  PROFILE_PATH,
  PROFILE_REQUESTED_HZ,
  PROFILE_TIMESTAMP_LABEL,
  SERVICE_INSTANCE_ID,
} from '../common/conventions';
import { decodeProfile as readProfile } from '../collector/profiles';
import { nextWindow, policyFor, type WindowFacts } from '../agent/profiler';
import { REGISTER, markLine } from './agent-apps';
import { FIXTURES, eventually, waitForOutput } from './helpers';
import { decodeAgentProfile as decodeProfile, type AgentFrame as Frame } from './pprof';

const APP = 'profile-app.js';
const APP_FILE = join(FIXTURES, APP);

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Epoch ms when it arrived. */
  at: number;
}

interface Receiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

/** An OTLP/HTTP endpoint that keeps every request; with `holdProfiles`, profile posts never get an answer. */
async function startReceiver(opts: { holdProfiles?: boolean } = {}): Promise<Receiver> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), at: Date.now() });
      if (opts.holdProfiles && req.url === PROFILE_PATH) return;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const profilesIn = (r: Receiver) => r.received.filter((x) => x.path === PROFILE_PATH).map((x) => decodeProfile(x.body));

/** Every data point of a metric the agent exported, oldest first, with its attributes. */
function points(r: Receiver, name: string): Array<{ value: number; attrs: Record<string, string> }> {
  const out: Array<{ value: number; attrs: Record<string, string> }> = [];
  for (const req of r.received.filter((x) => x.path === '/v1/metrics')) {
    const m = MetricsRequest.toObject(MetricsRequest.decode(req.body), { longs: Number }) as any;
    for (const rm of m.resourceMetrics ?? [])
      for (const sm of rm.scopeMetrics ?? [])
        for (const metric of sm.metrics ?? []) {
          if (metric.name !== name) continue;
          const data = metric.gauge ?? metric.sum ?? metric.histogram;
          for (const dp of data.dataPoints ?? []) {
            const attrs = Object.fromEntries(
              (dp.attributes ?? []).map((a: any) => [a.key, String(Object.values(a.value)[0])]),
            );
            out.push({ value: Number(dp.asDouble ?? dp.asInt ?? dp.count ?? 0), attrs });
          }
        }
  }
  return out;
}

/** The profiler's state in the latest export (the series at 1). */
function currentState(r: Receiver): string | undefined {
  const states = points(r, PROFILER_METRICS.state);
  const n = Object.keys(PROFILER_STATES).length;
  return states.slice(-n).find((p) => p.value === 1)?.attrs[PROFILER_STATE];
}

/** The leaf-most frame of the app's own code, as `fn (file:line)`. */
function topAppFrame(stack: Frame[]): string | undefined {
  const f = stack.find((x) => x.origin === PROFILE_ORIGINS.app);
  return f && `${f.function} (${f.file}:${f.line})`;
}

interface RunningApp {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startApp(endpoint: string, env: Record<string, string> = {}, agent = true): Promise<RunningApp> {
  const child = spawn(process.execPath, agent ? ['--require', REGISTER, APP] : [APP], {
    cwd: FIXTURES,
    env: {
      ...process.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: 'profile-app',
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      STALLSCOPE_BLOCK_THRESHOLD_MS: '50',
      STALLSCOPE_PROFILE_WINDOW_MS: '2000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const [, port] = await waitForOutput(child, /"port":(\d+)/).catch((e: Error) =>
    Promise.reject(new Error(`${e.message}: ${err}`)),
  );
  await new Promise((r) => setTimeout(r, 300)); // the agent arms once the app has started
  return { child, port: Number(port), stderr: () => err, exited };
}

async function stopApp(app: RunningApp): Promise<void> {
  if (app.child.exitCode === null && app.child.signalCode === null) app.child.kill('SIGTERM');
  await app.exited;
}

/** `concurrency` clients calling `path` back to back for `ms`; every answer is checked. */
async function load(app: RunningApp, path: string, ms: number, concurrency = 4, gapMs = 0): Promise<number> {
  const end = Date.now() + ms;
  let answered = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const res = await fetch(`http://127.0.0.1:${app.port}${path}`);
        assert.equal(res.status, 200, `${path} answered ${res.status}`);
        assert.match(await res.text(), /^\{"x":-?\d/);
        answered++;
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    }),
  );
  return answered;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('loop CPU profiles from the Node agent', () => {
  let receiver: Receiver;
  before(async () => {
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
  });

  it('posts a pprof per busy window: the hot function as the top app frame, the real interval, the resource, times within the window', async () => {
    const t0 = BigInt(Date.now()) * 1_000_000n;
    const app = await startApp(receiver.url, {
      OTEL_EXPORTER_OTLP_HEADERS: 'x-test=profiles%20ok',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test',
    });
    try {
      await load(app, '/crunch', 6000);
      await eventually(async () => (profilesIn(receiver).length >= 2 ? true : undefined), 10_000, 'two profiles');
      const posts = receiver.received.filter((r) => r.path === PROFILE_PATH);
      // The window with the most samples: the first may have begun before the load.
      const post = posts.reduce((a, b) =>
        decodeProfile(b.body).samples.length > decodeProfile(a.body).samples.length ? b : a,
      );
      assert.equal(post.headers['content-type'], 'application/octet-stream');
      assert.equal(post.headers['x-test'], 'profiles ok', 'OTEL_EXPORTER_OTLP_HEADERS, percent-decoded');
      const p = decodeProfile(post.body);
      const receivedNs = BigInt(post.at) * 1_000_000n;

      assert.deepEqual(p.sampleTypes, ['samples/count', 'cpu/nanoseconds']);
      assert.equal(p.periodType, 'cpu/nanoseconds');
      assert.deepEqual([...p.mappings].sort(), Object.values(PROFILE_ORIGINS).sort());
      assert.ok(p.samples.length >= 50, `${p.samples.length} samples in a busy 2 s window`);

      // The hot function, as the leaf-most frame of the app's own code, over every window.
      const tally = new Map<string, number>();
      for (const s of profilesIn(receiver).flatMap((x) => x.samples)) {
        const top = topAppFrame(s.stack);
        if (top) tally.set(top, (tally.get(top) ?? 0) + 1);
      }
      const [hottest] = [...tally].sort((a, b) => b[1] - a[1]);
      assert.equal(hottest[0], `crunch (${APP_FILE}:${markLine(APP, 'crunch')})`, JSON.stringify([...tally]));
      const crunch = p.samples.flatMap((s) => s.stack).find((f) => f.function === 'crunch')!;
      assert.equal(crunch.startLine, crunch.line);

      // Whose code: express is a dependency, Node's own frames are the runtime's.
      const frames = p.samples.flatMap((s) => s.stack);
      assert.ok(frames.some((f) => f.file.includes('/node_modules/express/') && f.origin === 'dependency'));
      for (const f of frames.filter((x) => x.file.includes('/node_modules/')))
        assert.notEqual(f.origin, 'app', `${f.function} (${f.file})`);
      for (const f of frames.filter((x) => x.file.startsWith('node:'))) assert.equal(f.origin, 'runtime');
      assert.ok(!p.functions.includes('(idle)') && !p.functions.includes('(program)'), p.functions.join(', '));

      // The interval measured, not the one asked: the samples' own spacing.
      const times = p.samples.map((s) => s.timestampNs).sort((a, b) => (a < b ? -1 : 1));
      const gaps = times.slice(1).map((t, i) => Number(t - times[i]));
      assert.ok(p.periodNs >= 9_000_000, `period ${p.periodNs} ns for 100 Hz asked`);
      assert.ok(
        Math.abs(median(gaps) - p.periodNs) / p.periodNs < 0.35,
        `period ${p.periodNs} ns, samples ${median(gaps)} ns apart`,
      );
      for (const s of p.samples) {
        assert.deepEqual(s.values, [1, p.periodNs]);
        assert.equal(s.label, PROFILE_TIMESTAMP_LABEL);
        assert.equal(s.unit, 'nanoseconds');
        assert.ok(s.timestampNs >= p.timeNs && s.timestampNs <= p.timeNs + p.durationNs, 'a sample outside its window');
      }
      assert.ok(p.timeNs >= t0 && p.timeNs + p.durationNs <= receivedNs, 'the window is not when the test ran');
      assert.ok(p.durationNs >= 1_900_000_000n && p.durationNs < 4_000_000_000n, `window of ${p.durationNs} ns`);

      assert.ok(p.comments.includes('service.name=profile-app'), p.comments.join('\n'));
      assert.ok(p.comments.includes('deployment.environment.name=test'));
      assert.ok(
        decodeProfile(posts[0].body).comments.includes(`${PROFILE_REQUESTED_HZ}=100`),
        'the first window at 100 Hz',
      );
      assert.match(p.comments.find((c) => c.startsWith(`${SERVICE_INSTANCE_ID}=`)) ?? '', /=[0-9a-f-]{36}$/);

      // The collector reads it as sent: service, instance, rate, window, every sample in time.
      const stored = readProfile(post.body);
      assert.equal(stored.service, 'profile-app');
      assert.equal(stored.instance, p.comments.find((c) => c.startsWith(`${SERVICE_INSTANCE_ID}=`))!.split('=')[1]);
      assert.equal(
        stored.requestedHz,
        decodeProfile(post.body).comments.includes(`${PROFILE_REQUESTED_HZ}=25`) ? 25 : 100,
      );
      assert.equal(stored.resource['deployment.environment.name'], 'test');
      assert.equal(stored.startNs, p.timeNs);
      assert.equal(stored.durationNs, p.durationNs);
      assert.equal(stored.periodNs, BigInt(p.periodNs));
      assert.equal(stored.samples.length, p.samples.length);
      assert.deepEqual(
        stored.samples.map((x) => x.timeNs),
        p.samples.map((x) => x.timestampNs),
      );
      // Stored root first: crunch is where most of its stacks end, under express's handlers.
      const leaf = stored.stacks.find((st) => st.at(-1)?.fn === 'crunch');
      assert.ok(leaf, 'no stack ends in crunch');
      assert.equal(leaf.at(-1)!.origin, 'app');
      assert.ok(leaf.some((f) => f.origin === 'dependency' && f.file.includes('/node_modules/express/')));
    } finally {
      await stopApp(app);
    }
    assert.doesNotMatch(app.stderr(), /stallscope|Waiting for the debugger/);
  });

  it('does not sample an idle loop, and starts when the loop gets busy', async () => {
    const idle = await startReceiver();
    // Exports every second, as busy as an idle app's telemetry gets.
    const app = await startApp(idle.url, { STALLSCOPE_PROFILE_WINDOW_MS: '1000', OTEL_METRIC_EXPORT_INTERVAL: '1000' });
    try {
      await new Promise((r) => setTimeout(r, 4000));
      // Nothing, or a start-up window with samples of the telemetry's own work.
      for (const p of profilesIn(idle))
        assert.ok(!p.samples.some((s) => topAppFrame(s.stack)), 'app code ran in an idle app');
      // The agent's own telemetry keeps an idle loop about 5% busy, exporting every second; a
      // loaded machine can lift a second of it over the 10% at which sampling starts. So: a
      // start-up window at most, one more per second read that busy, and idle at the end unless
      // a second after start-up read busy.
      const busy = points(idle, METRICS.loopUtilization).map((p) => p.value >= 0.1);
      const idleProfiles = profilesIn(idle).length;
      assert.ok(
        idleProfiles <= 1 + busy.filter(Boolean).length,
        `${idleProfiles} profiles of an idle loop, ${busy.filter(Boolean).length} busy seconds`,
      );
      const rate = points(idle, PROFILER_METRICS.rate);
      assert.ok(rate.length > 0, 'no stallscope.profiler.rate');
      if (!busy.slice(1).some(Boolean)) {
        assert.deepEqual(rate.at(-1), { value: 0, attrs: {} });
        assert.deepEqual(currentState(idle), 'idle');
      }

      await load(app, '/crunch', 3000);
      await eventually(
        async () => (profilesIn(idle).length > idleProfiles ? true : undefined),
        10_000,
        'a profile once busy',
      );
      await eventually(
        async () => (points(idle, PROFILER_METRICS.rate).some((p) => p.value === 100) ? true : undefined),
        5000,
        'the rate at 100 Hz',
      );
    } finally {
      await stopApp(app);
      await idle.close();
    }
  });

  it('samples a saturated loop at a quarter of the rate, says so, and returns to the full rate once it calms', async () => {
    const sat = await startReceiver();
    const app = await startApp(sat.url, { STALLSCOPE_PROFILE_WINDOW_MS: '3000' });
    try {
      await fetch(`http://127.0.0.1:${app.port}/saturate?ms=12000`);
      await eventually(
        async () => profilesIn(sat).find((p) => p.comments.includes(`${PROFILE_REQUESTED_HZ}=25`)),
        30_000,
        'a profile at 25 Hz',
      );
      const reduced = profilesIn(sat).find((p) => p.comments.includes(`${PROFILE_REQUESTED_HZ}=25`))!;
      assert.ok(reduced.periodNs >= 35_000_000, `period ${reduced.periodNs} ns at 25 Hz`);
      const tops = reduced.samples.map((s) => topAppFrame(s.stack)).filter(Boolean);
      assert.ok(
        tops.filter((t) => t!.startsWith('crunch ')).length > tops.length / 2,
        'the saturated loop is still profiled',
      );
      await eventually(
        async () =>
          points(sat, PROFILER_METRICS.state).some((p) => p.attrs[PROFILER_STATE] === 'reduced' && p.value === 1) &&
          points(sat, PROFILER_METRICS.rate).some((p) => p.value === 25)
            ? true
            : undefined,
        5000,
        'the reduced rate and state',
      );
      const backoffs = points(sat, PROFILER_METRICS.backoffs);
      assert.ok(
        backoffs.some((p) => p.attrs[PROFILER_REASON] === 'saturated' && p.value >= 1),
        JSON.stringify(backoffs),
      );
      // Light work after the saturation: the full rate again.
      await new Promise((r) => setTimeout(r, 4000));
      const light = load(app, '/crunch?n=100000', 12_000, 1, 25);
      await eventually(
        async () => {
          const rate = points(sat, PROFILER_METRICS.rate);
          const reducedAt = rate.findIndex((p) => p.value === 25);
          return rate.slice(reducedAt).some((p) => p.value === 100) ? true : undefined;
        },
        15_000,
        'the full rate back',
      );
      await light;
    } finally {
      await stopApp(app);
      await sat.close();
    }
  });

  for (const [name, path, code, stderrMatch] of [
    ['process.exit(3)', '/exit?code=3', 3, /^$/],
    ['a fatal exception', '/throw', 1, /Error: the app failed on purpose/],
  ] as const) {
    it(`leaves the app's exit unchanged while sampling: ${name}`, async () => {
      // The same agent without the profiler, and no agent at all.
      const plain = await startApp(receiver.url, {}, false);
      await fetch(`http://127.0.0.1:${plain.port}${path}`);
      const plainExit = await plain.exited;
      const unprofiled = await startApp(receiver.url, { STALLSCOPE_PROFILE_HZ: '0' });
      await load(unprofiled, '/crunch', 500);
      await fetch(`http://127.0.0.1:${unprofiled.port}${path}`);
      await unprofiled.exited;

      const before = profilesIn(receiver).length;
      const app = await startApp(receiver.url, { STALLSCOPE_PROFILE_WINDOW_MS: '1000' });
      await load(app, '/crunch', 2500);
      // A window has been relayed, so the profiler's session is connected now.
      await eventually(async () => (profilesIn(receiver).length > before ? true : undefined), 10_000, 'a profile');
      await fetch(`http://127.0.0.1:${app.port}${path}`);
      const exit = await app.exited;

      assert.deepEqual(exit, plainExit);
      assert.equal(exit.code, code);
      assert.match(app.stderr(), stderrMatch);
      assert.equal(app.stderr(), unprofiled.stderr());
      assert.doesNotMatch(app.stderr(), /Waiting for the debugger/);
    });
  }

  it('costs the app nothing when the collector is down or never answers: failures are counted and warned once', async () => {
    const hanging = await startReceiver({ holdProfiles: true });
    const app = await startApp(hanging.url, {
      STALLSCOPE_PROFILE_WINDOW_MS: '1000',
      OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
    });
    try {
      assert.ok((await load(app, '/crunch', 5000)) > 20);
      await eventually(
        async () =>
          points(hanging, PROFILER_METRICS.profiles).some((p) => p.attrs[PROFILER_OUTCOME] === 'failed' && p.value >= 1)
            ? true
            : undefined,
        5000,
        'a failed profile counted',
      );
      const sent = hanging.received.filter((r) => r.path === PROFILE_PATH).length;
      assert.ok(sent >= 1 && sent <= 4, `${sent} profile posts in 5 s of 1 s windows: one at a time`);
    } finally {
      await stopApp(app);
      await hanging.close();
    }
    const warnings = app.stderr().match(/stallscope: loop profile export failed[^\n]*/g) ?? [];
    assert.equal(warnings.length, 1, app.stderr());
    assert.match(warnings[0], /no answer within 1000 ms/);
    assert.deepEqual(await app.exited, { code: 0, signal: null });

    // Nothing listening at all.
    const down = await startApp('http://127.0.0.1:1', { STALLSCOPE_PROFILE_WINDOW_MS: '1000' });
    try {
      assert.ok((await load(down, '/crunch', 3500)) > 20);
    } finally {
      await stopApp(down);
    }
    assert.deepEqual(await down.exited, { code: 0, signal: null });
    assert.ok((down.stderr().match(/stallscope: loop profile export failed/g) ?? []).length <= 1, down.stderr());
  });

  it("reports a 10%-busy loop's utilization as about 0.1 while sampling it, as without the profiler", async () => {
    // While V8 samples, libuv loses the idle time its signals interrupt: this loop (10 ms of
    // work every 100 ms) read about 0.25 from libuv when profiled, 0.13 when not.
    const utilizations = async (hz: string) => {
      const r = await startReceiver();
      const app = await startApp(r.url, {
        STALLSCOPE_PROFILE_HZ: hz,
        STALLSCOPE_PROFILE_WINDOW_MS: '1000',
        OTEL_METRIC_EXPORT_INTERVAL: '1500',
      });
      try {
        await fetch(`http://127.0.0.1:${app.port}/duty?busy=10&ms=9000`);
        await new Promise((done) => setTimeout(done, 9000));
        if (hz !== '0') {
          assert.ok(profilesIn(r).length >= 4, `${profilesIn(r).length} profiles: not sampled throughout`);
          assert.equal(currentState(r), PROFILER_STATES.sampling);
        }
        // The exports after the first (which holds the start-up).
        return points(r, 'nodejs.eventloop.utilization')
          .slice(1)
          .map((p) => p.value);
      } finally {
        await stopApp(app);
        await r.close();
      }
    };
    const off = median(await utilizations('0'));
    const on = await utilizations('100');
    assert.ok(on.length >= 3, `${on.length} utilization points`);
    assert.ok(off > 0.05 && off < 0.3, `utilization ${off} without the profiler`);
    assert.ok(median(on) > 0.05 && median(on) < 0.3, `utilization ${on.join(', ')} while sampling`);
    assert.ok(Math.abs(median(on) - off) < 0.08, `utilization ${median(on)} while sampling, ${off} without`);
  });

  it('STALLSCOPE_PROFILE_HZ=0 turns profiling off', async () => {
    const off = await startReceiver();
    const app = await startApp(off.url, { STALLSCOPE_PROFILE_HZ: '0', STALLSCOPE_PROFILE_WINDOW_MS: '1000' });
    try {
      await load(app, '/crunch', 3000);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(profilesIn(off), []);
      assert.deepEqual(points(off, PROFILER_METRICS.rate), []);
      assert.ok(points(off, 'nodejs.eventloop.utilization').length > 0, 'the agent runs otherwise');
    } finally {
      await stopApp(app);
      await off.close();
    }
  });
});

describe('the loop profiler picks the next window from the last one', () => {
  const policy = policyFor({ hz: 100, windowMs: 30_000 }, 100);
  const window = (w: Partial<WindowFacts>): WindowFacts => ({
    hz: 100,
    state: 'sampling',
    elu: 0.5,
    maxGapMs: 10,
    relayMs: 1,
    ...w,
  });

  it('keeps a busy loop at the full rate, and stops sampling an idle one', () => {
    assert.deepEqual(nextWindow(policy, window({})), { hz: 100, state: 'sampling', reason: undefined });
    assert.deepEqual(nextWindow(policy, window({ elu: 0.01 })), { hz: 0, state: 'idle' });
  });

  it('samples a loop with no headroom at a quarter of the rate, and no less', () => {
    const saturated = { elu: 0.97, maxGapMs: 80 };
    assert.deepEqual(nextWindow(policy, window(saturated)), {
      hz: 25,
      state: 'reduced',
      reason: 'saturated',
      backoff: 'saturated',
    });
    assert.deepEqual(nextWindow(policy, window({ ...saturated, hz: 25, state: 'reduced', reason: 'saturated' })), {
      hz: 25,
      state: 'reduced',
      reason: 'saturated',
    });
    // Busy but never held up: it still turns often enough.
    assert.equal(nextWindow(policy, window({ elu: 0.97, maxGapMs: 20 })).hz, 100);
  });

  it('lowers the rate when a relay held the main thread too long, then stops sampling', () => {
    assert.deepEqual(nextWindow(policy, window({ relayMs: 60 })), {
      hz: 25,
      state: 'reduced',
      reason: 'cost',
      backoff: 'cost',
    });
    assert.deepEqual(nextWindow(policy, window({ relayMs: 60, hz: 25, state: 'reduced', reason: 'cost' })), {
      hz: 0,
      state: 'paused',
      reason: 'cost',
      backoff: 'cost',
    });
    // The budget: half the blocking threshold, and 1% of a short window.
    assert.equal(policyFor({ hz: 100, windowMs: 2000 }, 100).costBudgetMs, 20);
  });

  it('returns to the full rate once the loop is calm', () => {
    assert.deepEqual(nextWindow(policy, window({ hz: 25, state: 'reduced', reason: 'saturated', elu: 0.4 })), {
      hz: 100,
      state: 'sampling',
    });
    assert.equal(nextWindow(policy, window({ hz: 25, state: 'reduced', reason: 'saturated', elu: 0.8 })).hz, 25);
  });
});
