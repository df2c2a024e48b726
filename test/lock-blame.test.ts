// Lock blame on ordinary load: closed-loop keep-alive clients without think time, each
// alternating two routes whose functions share one lock, with each lock library. Every wait is
// charged to the holds it overlapped, so the spans, the matrix and the findings must name both
// functions (a waiter re-queues behind its own path as often as behind the other one); and a hot
// lock whose second path is rare and short must not be taken for a shared one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { REGISTER, agentEnv, startApp, stop, type App } from './agent-apps';
import { eventually, getJson, startServer, type TestServer } from './helpers';
import { LOCK_HANDOFF_MS, LOCK_HOLDER_MS, LOCK_HOLDER_SITES, LOCK_NAME, SPAN_NAMES } from '../common/conventions';
import type { Finding, LockPage, SpanView, TraceSummary } from '../common/types';

const CLIENTS = 12;
const LOAD_MS = 3000;
const LIBS = ['async-mutex', 'async-lock', 'p-limit', 'stallscope'] as const;

/** Closed-loop clients on keep-alive connections, each alternating `paths`, for `ms`. */
async function closedLoop(port: number, paths: string[], clients: number, ms: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const end = Date.now() + ms;
  let done = 0;
  const get = (path: string) =>
    new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        })
        .on('error', reject);
    });
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let turn = c; Date.now() < end; turn++) {
        await get(paths[turn % paths.length]);
        done++;
      }
    }),
  );
  agent.destroy();
  return done;
}

const fnOf = (site: string) => site.replace(/ \(.*\)$/, '');

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.close();
});

async function lockWaits(service: string): Promise<SpanView[]> {
  const { body: traces } = await getJson<TraceSummary[]>(
    `${server.api}/api/traces?service=${service}&kind=lock-wait&limit=20&since=15m`,
  );
  const spans: SpanView[] = [];
  for (const t of traces) {
    const { body } = await getJson<{ spans: SpanView[] }>(`${server.api}/api/traces/${t.traceId}`);
    spans.push(...body.spans.filter((s) => s.name === SPAN_NAMES.lockWait));
  }
  return spans;
}

async function findings(service: string): Promise<Finding[]> {
  return (await getJson<Finding[]>(`${server.api}/api/findings?service=${service}&since=15m`)).body;
}

describe('lock blame under closed-loop load', { timeout: 240_000 }, () => {
  for (const lib of LIBS) {
    it(`${lib}: both functions are charged, both cross pairs show, and the finding is shared-lock`, async () => {
      const service = `ledger-${lib}`;
      const app: App = await startApp(
        ['--import', REGISTER, 'ledger-app.mjs'],
        agentEnv(server, service, { LOCK_LIB: lib }),
      );
      try {
        const requests = await closedLoop(app.port, ['/pay', '/order'], CLIENTS, LOAD_MS);
        assert.ok(requests > 50, `${requests} requests`);
      } finally {
        await stop(app);
      }
      const shared = await eventually(
        async () => (await findings(service)).find((f) => f.kind === 'shared-lock'),
        15_000,
        `a shared-lock finding for ${service}`,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify((await findings(service)).map((f) => [f.kind, f.title]))}`);
      });
      assert.match(shared.title, /debit/);
      assert.match(shared.title, /nextOrderId/);
      assert.ok(shared.figures.crossSiteShare >= 0.3, JSON.stringify(shared.figures));
      assert.ok(shared.figures.firstWaitedOnSecondMs > 0 && shared.figures.secondWaitedOnFirstMs > 0);

      // The spans: each wait names the holds it waited behind, and the charges add up to it.
      const waits = await lockWaits(service);
      assert.ok(waits.length >= 10, `${waits.length} lock waits`);
      const holders = new Set<string>();
      for (const w of waits) {
        const sites = w.attributes[LOCK_HOLDER_SITES] as string[];
        const ms = w.attributes[LOCK_HOLDER_MS] as number[];
        sites.forEach((s) => holders.add(fnOf(s)));
        const sum = ms.reduce((a, b) => a + b, 0) + Number(w.attributes[LOCK_HANDOFF_MS]);
        assert.ok(Math.abs(sum - w.durationMs) < 0.01, `charges ${sum} ms for a wait of ${w.durationMs} ms`);
      }
      assert.ok(holders.has('debit') && holders.has('nextOrderId'), [...holders].join(', '));

      // The matrix: debit waited on nextOrderId and the other way round.
      const lock = String(waits[0].attributes[LOCK_NAME]);
      const { body: page } = await getJson<LockPage>(
        `${server.api}/api/dash/lock?name=${encodeURIComponent(lock)}&service=${service}&since=15m`,
      );
      const cell = (waiter: string, holder: string) =>
        page.pairs
          .filter((p) => fnOf(p.waiterSite) === waiter && fnOf(p.holderSite) === holder)
          .reduce((a, p) => a + p.totalMs, 0);
      assert.ok(cell('debit', 'nextOrderId') > 100, JSON.stringify(page.pairs));
      assert.ok(cell('nextOrderId', 'debit') > 100, JSON.stringify(page.pairs));
      assert.deepEqual(
        page.holders
          .map((h) => fnOf(h.site))
          .slice(0, 2)
          .sort(),
        ['debit', 'nextOrderId'],
      );
    });
  }

  it('a hot lock whose second path is rare and short is lock-contention, not shared-lock', async () => {
    const service = 'ledger-hot';
    const app = await startApp(
      ['--import', REGISTER, 'ledger-app.mjs'],
      agentEnv(server, service, { LOCK_LIB: 'async-mutex', MODE: 'hot' }),
    );
    try {
      // Many debits contend; an order now and then takes the lock for no time.
      await Promise.all([closedLoop(app.port, ['/pay'], 10, LOAD_MS), closedLoop(app.port, ['/order'], 1, LOAD_MS)]);
    } finally {
      await stop(app);
    }
    const hot = await eventually(
      async () => (await findings(service)).find((f) => f.kind === 'lock-contention'),
      15_000,
      'a lock-contention finding',
    );
    assert.equal((await findings(service)).filter((f) => f.kind === 'shared-lock').length, 0);
    assert.match(hot.detail, /while debit \(/);
    assert.equal(hot.location?.function, 'debit');
  });
});
