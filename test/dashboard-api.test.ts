// The dashboard's JSON, from a real collector fed by real agent-instrumented services: an express
// app that blocks its loop and parses big JSON, and an ESM service whose requests queue on
// async-lock, p-limit, p-queue, Piscina, workerpool and the libuv threadpool.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REGISTER, agentEnv, call, markLine, startApp, stop, type App } from './agent-apps';
import { ENGINES, eventually, getJson, startServer, type Engine, type TestServer } from './helpers';

for (const engine of ENGINES) describe(`dashboard API (${engine})`, () => dashboardApi(engine));

function dashboardApi(engine: Engine): void {
  let server: TestServer;
  let shop: App;
  let worker: App;
  const dash = (path: string) => getJson(`${server.api}/api/dash${path}`);

  before(async () => {
    server = await startServer({ engine });
    [shop, worker] = await Promise.all([
      startApp(['--require', REGISTER, 'blocking-app.js'], agentEnv(server, 'shop')),
      startApp(['--import', REGISTER, 'offload-app.mjs'], agentEnv(server, 'worker')),
    ]);
    await call(shop, '/busy?ms=250');
    await call(shop, '/busy?ms=200');
    await call(shop, '/parse');
    for (const path of ['/keyed', '/limit', '/piscina', '/pbkdf2'])
      await Promise.all([call(worker, path), call(worker, path), call(worker, path)]);
    // Again on the now hot lock: holders' sites are recorded too.
    await Promise.all([call(worker, '/keyed'), call(worker, '/keyed')]);
  });
  after(async () => {
    await Promise.all([stop(shop), stop(worker)]);
    await server.close();
  });

  describe('dashboard API', () => {
    it('lists lock resources with contention, wait percentiles and queue depth, and charts them', async () => {
      const { body } = await eventually(
        async () => {
          const r = await dash('/locks?since=15m&service=worker');
          const keyed = r.body.locks?.find((l: { lock: string }) => l.lock === 'account:7');
          return keyed && keyed.contended >= 2 && keyed.maxQueue >= 1 ? r : undefined;
        },
        15_000,
        'contention on account:7 in /api/dash/locks',
      );
      const keyed = body.locks.find((l: { lock: string }) => l.lock === 'account:7');
      assert.equal(keyed.type, 'async-lock');
      assert.ok(keyed.totalWaitMs > 100, `total wait ${keyed.totalWaitMs} ms: two waiters of 80 and 160 ms`);
      assert.ok(keyed.waitP95Ms > 40, `p95 ${keyed.waitP95Ms}`);
      assert.ok(keyed.contendedPct > 50 && keyed.contendedPct <= 100);
      const limit = body.locks.find((l: { type: string }) => l.type === 'p-limit');
      assert.equal(limit.lock, `offload-app.mjs:${markLine('offload-app.mjs', 'limit')}`);
      assert.ok(
        body.chart.series.some(
          (s: { name: string; values: number[] }) => s.name === 'account:7' && s.values.some((v) => v > 0),
        ),
      );
      assert.equal(body.chart.times.length, body.chart.series[0].values.length);
    });

    it('opens one lock: who waited on whom, acquire sites, the slowest waits with their traces', async () => {
      // Sites are `fn (file:line)`; the route's arrow function is named by its property.
      const at = `(offload-app.mjs:${markLine('offload-app.mjs', 'keyed')})`;
      const here = (site: string) => site.endsWith(at);
      // The second round's waits (behind a holder on the now hot lock, whose site is known) are
      // charged in the wait_caused export after them.
      const { body } = await eventually(
        async () => {
          const r = await dash('/lock?name=account%3A7&since=15m');
          return r.body.pairs?.some((p: { holderSite: string }) => here(p.holderSite)) ? r : undefined;
        },
        15_000,
        'a wait charged to a holder whose site is known',
      );
      assert.equal(body.lock, 'account:7');
      assert.ok(body.wait.count >= 2);
      assert.ok(body.slowest.length >= 2);
      assert.match(body.slowest[0].traceId, /^[0-9a-f]{32}$/);
      assert.ok(body.slowest[0].durationMs >= body.slowest[1].durationMs, 'slowest first');
      assert.equal(body.acquireSites.length, 1);
      assert.ok(here(body.acquireSites[0].site), body.acquireSites[0].site);
      assert.ok(body.pairs.every((p: { waiterSite: string }) => here(p.waiterSite)));
      // Waits of the second round were charged to the holder at the same line: the time others
      // waited because it held the lock.
      const holder = body.holders.find((h: { site: string }) => here(h.site));
      assert.ok(holder && holder.totalMs > 50, JSON.stringify(body.holders));
    });

    it('groups blocking episodes by the function that blocked, and sync calls by API and call site', async () => {
      const { body } = await eventually(
        async () => {
          const r = await dash('/blocking?since=15m&service=shop');
          return r.body.episodes?.length && r.body.syncCalls?.length ? r : undefined;
        },
        15_000,
        'blocking groups',
      );
      const spin = body.episodes.find((g: { key: string }) => g.key.startsWith('spinFor '));
      assert.ok(spin, JSON.stringify(body.episodes));
      assert.ok(spin.key.endsWith(`blocking-app.js:${markLine('blocking-app.js', 'spin')})`), spin.key);
      assert.equal(spin.count, 2);
      assert.ok(spin.maxMs >= 180 && spin.totalMs >= spin.maxMs);
      assert.ok(body.syncCalls.some((g: { key: string }) => g.key.startsWith('JSON.parse at parseBig ')));
      const group = await dash(`/blocking/group?key=${encodeURIComponent(spin.key)}&since=15m`);
      assert.equal(group.body.spans.length, 2);
      assert.match(group.body.stack, /spinFor/);
    });

    it('shows the threadpool and the worker pools', async () => {
      const { body } = await eventually(
        async () => {
          const r = await dash('/offload?since=15m&service=worker');
          return r.body.poolWait?.series.length && r.body.threadpoolWaits?.length ? r : undefined;
        },
        15_000,
        'offload data',
      );
      assert.ok(body.threadpoolWaits.some((g: { key: string }) => g.key === 'PBKDF2REQUEST'));
      assert.ok(body.pools.some((g: { key: string; count: number }) => g.key === 'piscina-worker.js' && g.count >= 3));
      assert.ok(body.poolWait.series.some((s: { name: string }) => s.name === 'piscina-worker.js (piscina)'));
      assert.ok(body.canary.series.length >= 1);
    });

    it('gives an overview, and finds traces by what happened in them', async () => {
      const { body } = await dash('/overview?since=15m');
      assert.ok(body.loop.series.some((s: { service: string }) => s.service === 'shop'));
      assert.ok(body.blockingGroups.length >= 1);
      assert.ok(body.locks.length >= 1);
      const traces = await getJson(`${server.api}/api/traces?kind=lock-wait&service=worker&since=15m`);
      assert.ok(traces.body.length >= 1);
      assert.ok(traces.body.every((t: { matched: { name: string } }) => t.matched.name === 'lock wait'));
    });

    it('answers an empty window honestly, and names a bad parameter', async () => {
      const empty = await dash('/locks?from=2020-01-01T00:00:00Z&to=2020-01-01T01:00:00Z');
      assert.deepEqual(empty.body.locks, []);
      assert.deepEqual(empty.body.chart.series, []);
      for (const [path, param] of [
        ['/locks?since=soon', 'since'],
        ['/lock?since=15m', 'name'],
        ['/blocking/group?key=x&kind=lock-wait', 'kind'],
        ['/overview?step=1ms&since=1d', 'step'],
        ['/locks?since=100000000d', 'since'],
        ['/locks?from=99999999999999999999', 'from'],
      ]) {
        const r = await dash(path);
        assert.equal(r.status, 400, path);
        assert.match(r.body.error, new RegExp(`^${param}:`), path);
      }
      const traces = await getJson(`${server.api}/api/traces?kind=nope`);
      assert.equal(traces.status, 400);
      assert.match(traces.body.error, /^kind:/);
    });
  });
}
