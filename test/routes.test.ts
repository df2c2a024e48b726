// Where each route's time went, on a real express service with the agent attached, under
// concurrent closed-loop load: a route that only awaits a timer loses its time to another route
// that blocks the loop; two routes sharing a mutex lose theirs to each other's holds; parallel
// calls count once; every breakdown adds up to the route's time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REGISTER, agentEnv, closedLoop, startApp, stop, type App } from './agent-apps';
import { eventually, getJson, startServer, type TestServer } from './helpers';
import type { Finding, RoutePage, RouteRow, RoutesPage } from '../common/types';
import { criticalPath } from '../collector/routes/critical-path';

const LOAD_MS = 5000;
const ROUTES_LAG_MS = 4000;

const span = (id: string, parent: string | null, start: number, end: number) => ({
  spanId: id,
  parentSpanId: parent,
  startNs: BigInt(start),
  endNs: BigInt(end),
});

describe('critical path', () => {
  it('counts parallel children once, and tiles the request with its own time around them', () => {
    // A request [0, 300): two calls in parallel [50, 140) and [60, 150), then one [160, 250).
    const root = span('r', null, 0, 300);
    const a = span('a', 'r', 50, 140);
    const b = span('b', 'r', 60, 150);
    const c = span('c', 'r', 160, 250);
    const path = criticalPath(root, [root, a, b, c]);
    assert.deepEqual(
      path.map((s) => [s.span.spanId, Number(s.fromNs), Number(s.toNs)]),
      [
        ['r', 0, 60],
        ['b', 60, 150],
        ['r', 150, 160],
        ['c', 160, 250],
        ['r', 250, 300],
      ],
    );
  });

  it('clips a child that ends a little after its parent instead of leaving it out', () => {
    const root = span('r', null, 0, 554);
    const handler = span('h', 'r', 1, 555);
    const call = span('c', 'h', 2, 553);
    assert.deepEqual(
      criticalPath(root, [root, handler, call]).map((s) => [s.span.spanId, Number(s.fromNs), Number(s.toNs)]),
      [
        ['r', 0, 1],
        ['h', 1, 2],
        ['c', 2, 553],
        ['h', 553, 554],
      ],
    );
  });

  it('walks a trace of 10,000 spans deep without running out of stack', () => {
    const spans = [span('s0', null, 0, 20_000)];
    for (let i = 1; i < 10_000; i++) spans.push(span(`s${i}`, `s${i - 1}`, i, 20_000 - i));
    const path = criticalPath(spans[0], spans);
    assert.equal(
      path.reduce((a, s) => a + Number(s.toNs - s.fromNs), 0),
      20_000,
    );
  });
});

describe('routes under concurrent load', { timeout: 180_000 }, () => {
  let server: TestServer;
  let apps: App[] = [];
  let routes: RouteRow[] = [];
  const route = (service: string, name: string) => routes.find((r) => r.service === service && r.route === name)!;

  before(async () => {
    server = await startServer({ routes: { intervalMs: 500, lagMs: ROUTES_LAG_MS } });
    // Two processes of the same app: one where a route blocks the loop, one with a shared mutex.
    apps = await Promise.all([
      startApp(['--require', REGISTER, 'routes-app.js'], agentEnv(server, 'reports')),
      startApp(['--require', REGISTER, 'routes-app.js'], agentEnv(server, 'ledger')),
    ]);
    const [reports, ledger] = apps;
    // Reports block the loop 250 ms at a time, 100 ms apart; the other clients never pause.
    await Promise.all([
      closedLoop(reports.port, ['/report?ms=250'], 1, LOAD_MS, { thinkMs: 100 }),
      closedLoop(reports.port, ['/ping'], 2, LOAD_MS),
      closedLoop(ledger.port, ['/pay', '/order'], 6, LOAD_MS),
      closedLoop(ledger.port, ['/fan-out'], 1, LOAD_MS),
    ]);
    await Promise.all(apps.map(stop));
    // The job breaks a request down once it ended ROUTES_LAG_MS ago: read after it has taken the last.
    const doneAt = Date.now() + ROUTES_LAG_MS + 1500;
    let seen: string[] = [];
    const wanted = [
      ['reports', 'GET /report'],
      ['reports', 'GET /ping'],
      ['ledger', 'GET /pay'],
      ['ledger', 'GET /order'],
      ['ledger', 'GET /fan-out'],
    ];
    routes = await eventually(
      async () => {
        const { body } = await getJson<RoutesPage>(`${server.api}/api/dash/routes?since=15m`);
        seen = body.routes.map((r) => `${r.service} ${r.route} (${r.requests})`);
        return Date.now() > doneAt &&
          wanted.every(([svc, name]) => body.routes.some((r) => r.service === svc && r.route === name))
          ? body.routes
          : undefined;
      },
      30_000,
      'every route broken down',
    ).catch((err: Error) => Promise.reject(new Error(`${err.message}; seen: ${seen.join(', ')}`)));
  });
  after(async () => {
    await Promise.all(apps.map(stop));
    await server.close();
  });

  /** A route's time by kind of cause, most first. */
  const byKind = (r: RouteRow) => {
    const m = new Map<string, number>();
    for (const c of r.causes) m.set(c.kind, (m.get(c.kind) ?? 0) + c.ms);
    return [...m].sort((a, b) => b[1] - a[1]);
  };

  it("charges /ping's time to the loop, blocked by renderReport in GET /report", () => {
    const ping = route('reports', 'GET /ping');
    // What the time can be pinned on (the rest is said as unattributed).
    const top = ping.causes.filter((c) => c.kind !== 'unattributed')[0];
    assert.equal(top.kind, 'loop-wait', JSON.stringify(ping.causes.slice(0, 4)));
    assert.match(top.what, /^renderReport \(.*routes-app\.js:\d+\), in GET \/report$/);
    assert.ok(top.share > 0.2, `share ${top.share}`);
    // The route that blocks: its own blocking, in the same function.
    const report = route('reports', 'GET /report');
    assert.equal(report.causes[0].kind, 'own-blocking');
    assert.match(report.causes[0].what, /^renderReport /);
  });

  it('charges the two routes on one mutex to the lock, held by both functions', () => {
    for (const name of ['GET /pay', 'GET /order']) {
      const r = route('ledger', name);
      const lock = r.causes.filter((c) => c.kind === 'lock-wait');
      assert.equal(byKind(r)[0][0], 'lock-wait', `${name}: ${JSON.stringify(byKind(r))}`);
      assert.ok(
        lock.some((c) => / held by debit \(/.test(c.what)),
        JSON.stringify(lock),
      );
      assert.ok(
        lock.some((c) => / held by nextOrderId \(/.test(c.what)),
        JSON.stringify(lock),
      );
    }
  });

  it('counts two calls made in parallel once', async () => {
    const { body } = await getJson<RoutePage>(
      `${server.api}/api/dash/route?service=ledger&route=${encodeURIComponent('GET /fan-out')}&since=15m`,
    );
    assert.ok(body.slowest.length >= 2);
    for (const req of body.slowest) {
      const calls = req.causes.filter((c) => c.kind === 'outgoing-call').reduce((a, c) => a + c.ms, 0);
      // Two 100 ms calls at once: at least one call's length, never more than the request.
      assert.ok(
        calls >= 95 && calls <= req.durationMs + 0.01,
        `${calls} ms of calls in a ${req.durationMs} ms request`,
      );
    }
  });

  it('adds every breakdown up to the route total', () => {
    for (const r of routes) {
      const sum = r.causes.reduce((a, c) => a + c.ms, 0);
      assert.ok(Math.abs(sum - r.totalMs) <= Math.max(1, r.totalMs * 0.001), `${r.route}: ${sum} of ${r.totalMs}`);
      assert.ok(r.requests > 0 && r.p50Ms! <= r.p95Ms! && r.p95Ms! <= r.p99Ms!);
    }
  });

  it('says that /ping is slowed by another route', async () => {
    const { body } = await getJson<Finding[]>(`${server.api}/api/findings?service=reports&since=15m`);
    const f = body.find((x) => x.kind === 'slowed-by-others' && x.resource === 'GET /ping');
    assert.ok(f, JSON.stringify(body.map((x) => [x.kind, x.title])));
    assert.match(f.title, /GET \/ping/);
    assert.match(f.detail, /renderReport .*GET \/report/);
  });
});

describe('a route whose requests make two calls in parallel', () => {
  it('gets the length of one call, not of both, and a breakdown that adds up to the request', async () => {
    const server = await startServer({ routes: { intervalMs: 200, lagMs: 500 } });
    try {
      const t0 = BigInt(Date.now() - 5000) * 1_000_000n;
      const ms = (n: number) => String(t0 + BigInt(n) * 1_000_000n);
      const traceId = 'ab'.repeat(16);
      const s = (
        id: string,
        parent: string | null,
        name: string,
        kind: number,
        from: number,
        to: number,
        attributes: unknown[] = [],
      ) => ({
        traceId,
        spanId: id.repeat(8),
        ...(parent ? { parentSpanId: parent.repeat(8) } : {}),
        name,
        kind,
        startTimeUnixNano: ms(from),
        endTimeUnixNano: ms(to),
        attributes,
      });
      const attr = (key: string, value: string) => ({ key, value: { stringValue: value } });
      const body = {
        resourceSpans: [
          {
            resource: { attributes: [attr('service.name', 'fan'), attr('service.instance.id', 'p1')] },
            scopeSpans: [
              {
                spans: [
                  s('01', null, 'GET /parallel', 2, 0, 300, [
                    attr('http.request.method', 'GET'),
                    attr('http.route', '/parallel'),
                  ]),
                  s('02', '01', 'GET', 3, 50, 140, [attr('server.address', 'stock')]),
                  s('03', '01', 'GET', 3, 55, 150, [attr('server.address', 'prices')]),
                ],
              },
            ],
          },
        ],
      };
      const res = await fetch(`${server.otlp}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200);
      const r = await eventually(
        async () => (await getJson<RoutesPage>(`${server.api}/api/dash/routes?service=fan&since=15m`)).body.routes[0],
        10_000,
        'the request broken down',
      );
      assert.equal(r.route, 'GET /parallel');
      assert.equal(Math.round(r.totalMs), 300);
      const calls = r.causes.filter((c) => c.kind === 'outgoing-call');
      assert.equal(Math.round(calls.reduce((a, c) => a + c.ms, 0)), 95); // from 55 to 150: the later-ending call
      assert.equal(Math.round(r.causes.reduce((a, c) => a + c.ms, 0)), 300);
      assert.deepEqual(
        calls.map((c) => c.what),
        ['GET prices'],
      );
    } finally {
      await server.close();
    }
  });
});
