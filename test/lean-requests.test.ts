// Lean request mode end to end: the same service on express, fastify, koa (@koa/router) and plain
// node:http, with the agent in lean mode, under closed-loop load without think time on mixed
// routes (one blocks the loop, one takes a shared mutex, one queues on a one-thread libuv pool,
// one only awaits a timer, one answers at once), exporting to a real collector; then what the
// dashboard API says: every request counted per route, the time by cause, the stalled requests
// traced with their agent spans under them, the fast ones not, an incoming traceparent kept. And
// the app answers and exits as it does without the agent.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { REGISTER, agentEnv, closedLoop, startApp, stop, type App, type SpanJson } from './agent-apps';
import { FIXTURES, eventually, getJson, startServer, waitForOutput, type TestServer } from './helpers';
import type { Finding, RouteRow, RoutesPage, TraceSummary } from '../common/types';
import { resolveConfig } from '../agent/config';
import { STARVED, blockedSince, caughtBlocking, loopClock, resetLoopClock, turned } from '../agent/loop-clock';

const FRAMEWORKS = ['express', 'fastify', 'koa', 'http'] as const;
const LOAD_MS = 5000;
const QUIET_ITEMS = 5;
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

/** A route as the Routes page names it, from the path a client asked for. */
const routeOf = (path: string) => `GET ${path.split('?')[0].replace(/^\/items\/\d+$/, '/items/:id')}`;

describe('lean request mode under concurrent load', { timeout: 240_000 }, () => {
  let server: TestServer;
  const apps = new Map<string, App>();
  const asked = new Map<string, Map<string, number>>();
  let routes: RouteRow[] = [];
  const route = (fw: string, name: string) => {
    const r = routes.find((x) => x.service === `lean-${fw}` && x.route === name);
    assert.ok(r, `${fw} ${name}: ${routes.map((x) => `${x.service} ${x.route}`).join(', ')}`);
    return r;
  };

  before(async () => {
    server = await startServer({ routes: { intervalMs: 500, lagMs: 3000 } });
    for (const fw of FRAMEWORKS) {
      const env = agentEnv(server, `lean-${fw}`, {
        STALLSCOPE_REQUESTS: 'lean',
        STALLSCOPE_THREADPOOL_WAIT_THRESHOLD_MS: '1',
        UV_THREADPOOL_SIZE: '1',
        // The agent decides what lean mode exports: a ratio sampler changes nothing.
        ...(fw === 'koa' ? { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' } : {}),
      });
      apps.set(fw, await startApp(['--require', REGISTER, 'lean-app.js', fw], env));
    }
    // One service at a time: the machine's two cores are shared with the load and the collector.
    for (const fw of FRAMEWORKS) {
      {
        const port = apps.get(fw)!.port;
        const counts = new Map<string, number>();
        asked.set(fw, counts);
        await Promise.all([
          closedLoop(port, ['/report?ms=60'], 1, LOAD_MS, { counts }),
          closedLoop(port, ['/pay'], 2, LOAD_MS, { counts }),
          closedLoop(port, ['/hash'], 2, LOAD_MS, { counts }),
          closedLoop(port, ['/ping'], 2, LOAD_MS, { counts }),
          closedLoop(port, ['/items/3', '/items/41'], 1, LOAD_MS, { counts }),
        ]);
        // On a quiet loop: fast requests, and one that joins a caller's trace.
        for (let i = 0; i < QUIET_ITEMS; i++)
          assert.equal((await fetch(`http://127.0.0.1:${port}/items/999`)).status, 200);
        counts.set('/items/999', QUIET_ITEMS);
        const sent = await fetch(`http://127.0.0.1:${port}/report?ms=80`, {
          headers: { traceparent: `00-${TRACE_ID.slice(0, -2)}${FRAMEWORKS.indexOf(fw)}0-${PARENT_ID}-01` },
        });
        assert.equal(sent.status, 200);
        counts.set('/report?ms=80', 1);
      }
    }
    await Promise.all([...apps.values()].map(stop));
    routes = await eventually(
      async () => {
        const { body } = await getJson<RoutesPage>(`${server.api}/api/dash/routes?since=15m`);
        // Every answer the clients had is counted once the apps' last export is in.
        const complete = FRAMEWORKS.every((fw) => {
          const want = new Map<string, number>();
          for (const [path, n] of asked.get(fw)!) want.set(routeOf(path), (want.get(routeOf(path)) ?? 0) + n);
          return [...want].every(
            ([name, n]) => body.routes.find((r) => r.service === `lean-${fw}` && r.route === name)?.requests === n,
          );
        });
        return complete ? body.routes : undefined;
      },
      30_000,
      'every request counted',
    ).catch(async (err: Error) => {
      const { body } = await getJson<RoutesPage>(`${server.api}/api/dash/routes?since=15m`);
      const seen = body.routes.map((r) => `${r.service} ${r.route} ${r.requests}`).join(', ');
      const want = [...asked].map(([fw, c]) => `${fw}: ${[...c].map(([p, n]) => `${p}=${n}`).join(' ')}`).join('; ');
      throw new Error(`${err.message}; seen ${seen}; asked ${want}`);
    });
  });
  after(async () => {
    await Promise.all([...apps.values()].map(stop));
    await server.close();
  });

  it('names and counts every route of every framework, traced or not', () => {
    for (const fw of FRAMEWORKS) {
      for (const name of ['GET /items/:id', 'GET /report', 'GET /pay', 'GET /ping', 'GET /hash']) {
        const r = route(fw, name);
        assert.ok(r.requests > 0 && r.p50Ms! <= r.p95Ms! && r.p95Ms! <= r.p99Ms!, `${fw} ${name}`);
        const sum = r.causes.reduce((a, c) => a + c.ms, 0);
        assert.ok(
          Math.abs(sum - r.totalMs) <= Math.max(0.5, r.totalMs * 0.001),
          `${fw} ${name}: ${sum} of ${r.totalMs}`,
        );
      }
    }
  });

  it('charges each route its stalls: own blocking, the loop blocked by another route, the lock', () => {
    for (const fw of FRAMEWORKS) {
      const stalls = (r: RouteRow) => r.causes.filter((c) => c.kind !== 'unattributed');
      const report = route(fw, 'GET /report');
      assert.equal(stalls(report)[0].kind, 'own-blocking', `${fw}: ${JSON.stringify(report.causes)}`);
      // /ping waits for the loop, held by /report (a loaded machine may take some of it too).
      const ping = route(fw, 'GET /ping');
      assert.equal(stalls(ping)[0].kind, 'loop-wait', `${fw}: ${JSON.stringify(ping.causes)}`);
      assert.ok(
        ping.causes.some((c) => c.kind === 'loop-wait' && c.what === 'the loop blocked, in GET /report'),
        `${fw}: ${JSON.stringify(ping.causes)}`,
      );
      assert.ok(!ping.causes.some((c) => c.kind === 'own-blocking'), `${fw}: ${JSON.stringify(ping.causes)}`);
      const pay = route(fw, 'GET /pay');
      assert.ok(
        pay.causes.some((c) => c.kind === 'lock-wait' && /^lock .*, held by .*lean-app\.js:\d+/.test(c.what)),
        `${fw}: ${JSON.stringify(pay.causes)}`,
      );
      assert.ok(
        route(fw, 'GET /hash').causes.some((c) => c.kind === 'threadpool-wait'),
        `${fw}: ${JSON.stringify(route(fw, 'GET /hash').causes)}`,
      );
    }
  });

  it('exports stalled requests with their agent spans under them and their route', async () => {
    for (const fw of FRAMEWORKS) {
      for (const [kind, spanName, routeName] of [
        ['loop-block', 'event loop blocked', '/report'],
        ['lock-wait', 'lock wait', '/pay'],
        ['threadpool-wait', 'threadpool wait', '/hash'],
      ]) {
        const { body: found } = await getJson<TraceSummary[]>(
          `${server.api}/api/traces?service=lean-${fw}&kind=${kind}&since=15m&limit=50`,
        );
        const withServer = [];
        for (const t of found) {
          const { body } = await getJson<{ spans: SpanJson[] }>(`${server.api}/api/traces/${t.traceId}`);
          const root = body.spans.find((s) => s.kind === 2);
          const stall = body.spans.find((s) => s.name === spanName);
          if (root && stall) withServer.push({ root, stall });
        }
        assert.ok(withServer.length > 0, `${fw} ${kind}: no traced request of ${JSON.stringify(found)}`);
        // Only /pay takes the lock and only /hash the pool; but a loaded machine can hold up any
        // route's code past the blocking threshold, so most blocks, not all, are /report's.
        const elsewhere = withServer.filter(({ root }) => root.name !== `GET ${routeName}`);
        if (kind === 'loop-block')
          assert.ok(elsewhere.length < withServer.length / 2, `${fw}: ${elsewhere.map((x) => x.root.name).join(', ')}`);
        else assert.deepEqual(elsewhere, [], `${fw} ${kind}`);
        for (const { root, stall } of withServer) {
          assert.equal(stall.parentSpanId, root.spanId, `${fw} ${kind}`);
          const path = root.name.replace(/^GET /, '');
          assert.equal(root.attributes[fw === 'http' ? 'stallscope.http.path_route' : 'http.route'], path);
          assert.ok(
            ['stalled', 'loop-blocked', 'lock-holder'].includes(root.attributes['stallscope.request.exported']),
          );
        }
      }
    }
  });

  it('does not export a fast request on a quiet loop, and counts it', async () => {
    for (const fw of FRAMEWORKS) {
      const { body } = await getJson<TraceSummary[]>(
        `${server.api}/api/traces?service=lean-${fw}&attribute=url.path=/items/999&since=15m`,
      );
      assert.deepEqual(body, [], fw);
      assert.ok(route(fw, 'GET /items/:id').requests >= QUIET_ITEMS);
    }
  });

  it('keeps an incoming traceparent', async () => {
    for (const fw of FRAMEWORKS) {
      const traceId = `${TRACE_ID.slice(0, -2)}${FRAMEWORKS.indexOf(fw)}0`;
      const { status, body } = await getJson<{ spans: SpanJson[] }>(`${server.api}/api/traces/${traceId}`);
      assert.equal(status, 200, fw);
      const root = body.spans.find((s) => s.kind === 2)!;
      assert.equal(root.parentSpanId, PARENT_ID, fw);
      assert.equal(root.name, 'GET /report');
      assert.ok(body.spans.some((s) => s.name === 'event loop blocked' && s.parentSpanId === root.spanId));
    }
  });

  it('says that /ping is slowed by another route', async () => {
    const { body } = await getJson<Finding[]>(`${server.api}/api/findings?service=lean-express&since=15m`);
    const f = body.find((x) => x.kind === 'slowed-by-others' && x.resource === 'GET /ping');
    assert.ok(
      f,
      `${JSON.stringify(body.map((x) => [x.kind, x.title]))}; ${JSON.stringify(route('express', 'GET /ping'))}`,
    );
    assert.match(f.detail, /GET \/report/);
  });
});

describe('lean request mode leaves the app as it is', { timeout: 60_000 }, () => {
  const PATHS = ['/items/7', '/fail', '/nope', '/report?ms=1', '/items/7?x=1'];

  /** What the app answers to each path, and how it exits on SIGTERM. */
  async function observe(fw: string, args: string[], env: NodeJS.ProcessEnv) {
    const child = spawn(process.execPath, [...args, 'lean-app.js', fw], { cwd: FIXTURES, env, stdio: 'pipe' });
    const port = Number((await waitForOutput(child, /"port":(\d+)/))[1]);
    const answers = [];
    for (const path of PATHS) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      answers.push([path, res.status, res.headers.get('content-type'), await res.text()]);
    }
    const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    child.kill('SIGTERM');
    return { answers, exit: await exit };
  }

  let server: TestServer;
  before(async () => (server = await startServer()));
  after(() => server.close());

  for (const fw of FRAMEWORKS) {
    it(`answers and exits alike on ${fw}`, async () => {
      const without = await observe(fw, [], process.env);
      const lean = await observe(
        fw,
        ['--require', REGISTER],
        agentEnv(server, `same-${fw}`, { STALLSCOPE_REQUESTS: 'lean' }),
      );
      assert.deepEqual(lean, without);
    });
  }
});

describe('lean request settings and the loop clock', () => {
  it('reads STALLSCOPE_REQUESTS and STALLSCOPE_SLOW_REQUEST_MS, naming a bad value', () => {
    const warnings: string[] = [];
    const lean = resolveConfig({ STALLSCOPE_REQUESTS: ' Lean ', STALLSCOPE_SLOW_REQUEST_MS: '250' }, {}, (m) =>
      warnings.push(m),
    );
    assert.equal(lean.requests, 'lean');
    assert.equal(lean.slowRequestMs, 250);
    const bad = resolveConfig({ STALLSCOPE_REQUESTS: 'thin' }, { requests: 'sparse' as 'lean' }, (m) =>
      warnings.push(m),
    );
    assert.equal(bad.requests, 'full');
    assert.deepEqual(warnings, [
      'STALLSCOPE_REQUESTS="thin" is not full or lean; using full',
      'start(): requests=sparse is not full or lean; using full',
    ]);
  });

  it('tells a request the blocked stretches it overlapped, and who blocked them', () => {
    resetLoopClock();
    loopClock.thresholdMs = 50;
    const report = {};
    const seen: Array<[number, object | undefined]> = [];
    const visit = (ms: number, by: object | undefined) => seen.push([ms, by]);
    // The process busy all along (1 ms of CPU per ms) but from 1200 to 1300, when it hardly ran.
    turned(1000, 1_000_000);
    turned(1010, 1_010_000);
    caughtBlocking(report);
    // 1010 → 1090: blocked by report; 1090 → 1100 a turn; 1100 → 1200 blocked by nobody known.
    turned(1090, 1_090_000);
    turned(1100, 1_100_000);
    blockedSince(1050, 1150, visit); // the open stretch, and the end of report's
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[0], [50, undefined]);
    assert.equal(seen[1][0], 40);
    assert.equal(seen[1][1], report);
    turned(1200, 1_200_000);
    seen.length = 0;
    blockedSince(1095, 1210, visit);
    assert.deepEqual(seen, [[100, undefined]]);
    seen.length = 0;
    blockedSince(1200, 1210, visit);
    assert.deepEqual(seen, []);
    turned(1300, 1_210_000);
    seen.length = 0;
    blockedSince(1250, 1300, visit);
    assert.equal(seen.length, 1);
    assert.equal(seen[0][0], 50);
    assert.equal(seen[0][1], STARVED);
    resetLoopClock();
  });
});
